//! A segment's index (`XXXXXXXX.idx`): one `u64` offset per whole record and, once the writer
//! has moved past the segment, a closing `0`. Readers extend it under its lock, exactly as
//! jlog's readers do, so either kind of reader can follow the other; a dvip writer moving past
//! a segment closes its index the same way before it changes the metastore.
//!
//! This file owns bringing an index up to date with its segment. An index is derived data:
//! when it disagrees with the segment, it is rebuilt from the segment, never trusted.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use crate::error::{IoContext, Result};
use crate::format::{walk, Header, Meta, WalkStop, FILE_MODE, HEADER_LEN};
use crate::journal::{read_full_at, Journal};
use crate::lock::lock;

/// A segment as its index now describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentState {
    /// The segment's file does not exist (removed, or never made).
    Missing,
    /// `records` whole records are indexed; `closed` once the writer has moved on and every
    /// byte of the segment is accounted for.
    Indexed { records: u32, closed: bool },
    /// Bytes at `offset` are not a record: the segment needs repair (if closed) or the
    /// writer's attention (if still written).
    Damaged { offset: u64, closed: bool },
}

impl SegmentState {
    pub(crate) fn indexed(&self) -> u32 {
        match self {
            Self::Indexed { records, .. } => *records,
            _ => 0,
        }
    }
}

pub(crate) fn open_data(journal: &Journal, segment: u32) -> Result<Option<File>> {
    let path = journal.segment_path(segment);
    match OpenOptions::new().read(true).write(true).open(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        other => other.at(&path, "open the segment").map(Some),
    }
}

pub(crate) fn open_index(journal: &Journal, segment: u32) -> Result<File> {
    let path = journal.index_path(segment);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .open(&path)
        .at(&path, "open the index")
}

/// Brings the index of `segment` up to date and says what it now describes.
pub(crate) fn resync(journal: &Journal, segment: u32, meta: &Meta) -> Result<SegmentState> {
    let Some(data) = open_data(journal, segment)? else {
        return Ok(SegmentState::Missing);
    };
    let index = open_index(journal, segment)?;
    let index_path = journal.index_path(segment);
    let _held = lock(&index).at(&index_path, "lock the index")?;
    let closed = segment < meta.storage_log;
    let attempt = extend(journal, segment, &data, &index, meta.header_magic, closed)?;
    if let Some(state) = attempt {
        return Ok(state);
    }
    // The index disagreed with the segment: rebuild it from nothing.
    index.set_len(0).at(&index_path, "clear a stale index")?;
    Ok(
        extend(journal, segment, &data, &index, meta.header_magic, closed)?
            .unwrap_or(SegmentState::Damaged { offset: 0, closed }),
    )
}

/// One pass of jlog's resync: `None` when the index does not fit the segment.
fn extend(
    journal: &Journal,
    segment: u32,
    data: &File,
    index: &File,
    magic: u32,
    closed: bool,
) -> Result<Option<SegmentState>> {
    let data_path = journal.segment_path(segment);
    let index_path = journal.index_path(segment);
    let data_len = data.metadata().at(&data_path, "stat the segment")?.len();
    let index_len = index.metadata().at(&index_path, "stat the index")?.len();
    if index_len % 8 != 0 {
        return Ok(None);
    }
    let mut entries = index_len / 8;
    let mut from = 0u64;
    if entries > 0 {
        let last = read_u64(index, index_len - 8).at(&index_path, "read the index")?;
        if last == 0 && entries > 1 {
            return Ok(Some(SegmentState::Indexed {
                records: (entries - 1) as u32,
                closed: true,
            }));
        }
        if last >= data_len {
            return Ok(None);
        }
        let mut raw = [0; HEADER_LEN];
        let got = read_full_at(data, &mut raw, last).at(&data_path, "read the segment")?;
        let Some(header) = Header::decode_at(&raw[..got], 0).filter(|h| h.magic == magic) else {
            return Ok(None);
        };
        from = last + header.record_len();
        if from > data_len {
            return Ok(None);
        }
    }
    let mut bytes = vec![0; (data_len - from) as usize];
    let got = read_full_at(data, &mut bytes, from).at(&data_path, "read the segment")?;
    bytes.truncate(got);
    let walked = walk(&bytes, from, magic);
    if !walked.offsets.is_empty() {
        let raw: Vec<u8> = walked
            .offsets
            .iter()
            .flat_map(|o| o.to_ne_bytes())
            .collect();
        index
            .write_all_at(&raw, entries * 8)
            .at(&index_path, "extend the index")?;
        entries += walked.offsets.len() as u64;
    }
    let records = entries as u32;
    match walked.stop {
        Some(WalkStop::BadMagic) => {
            return Ok(Some(SegmentState::Damaged {
                offset: walked.end,
                closed,
            }))
        }
        Some(WalkStop::Incomplete) if closed => {
            return Ok(Some(SegmentState::Damaged {
                offset: walked.end,
                closed,
            }))
        }
        _ => {}
    }
    if closed {
        // jlog writes no closing mark for an empty segment: a lone 0 would read as the
        // offset of a first record.
        if entries > 0 {
            index
                .write_all_at(&0u64.to_ne_bytes(), entries * 8)
                .at(&index_path, "close the index")?;
        }
        return Ok(Some(SegmentState::Indexed {
            records,
            closed: true,
        }));
    }
    Ok(Some(SegmentState::Indexed {
        records,
        closed: false,
    }))
}

pub(crate) fn read_u64(file: &File, offset: u64) -> std::io::Result<u64> {
    let mut raw = [0; 8];
    if read_full_at(file, &mut raw, offset)? != 8 {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "the index ends inside an entry",
        ));
    }
    Ok(u64::from_ne_bytes(raw))
}
