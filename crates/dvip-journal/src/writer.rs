//! Appending records: one at a time or in batches, under the segment's lock, moving to a new
//! segment at the unit size, as jlog's writers do, so dvip and jlog writers may share a journal.
//!
//! What a writer adds to jlog's: a record and its header go out in one write, so a reader
//! never meets a header without its payload; a failed write is cut back off the segment, so a
//! full disk leaves no partial record; and before appending after bytes it did not write
//! itself, the writer checks them, cutting off a record that a crashed writer left half done.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{
    damaged_ranges, walk, Header, Meta, Timestamp, WalkStop, FILE_MODE, METASTORE,
};
use crate::journal::{file_len, read_full_at, sync_dir, Durability, Journal};
use crate::lock::lock;

/// Appends records to one journal.
#[derive(Debug)]
pub struct Writer {
    journal: Journal,
    durability: Durability,
    open: Option<OpenSegment>,
    buffer: Vec<u8>,
    repairs: Vec<TailRepair>,
    last_end: Option<(u32, u64)>,
}

#[derive(Debug)]
struct OpenSegment {
    id: u32,
    file: File,
    /// Where the last whole record this writer knows of ends; bytes past it are checked
    /// before the next append.
    known_end: Option<u64>,
}

/// What a writer did about bytes it found at the end of a segment that were not whole records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TailRepair {
    /// A record cut short (by a crash of some writer) was removed from the end.
    CutShort { segment: u32, at: u64, bytes: u64 },
    /// Damage with whole records after it: the segment was left for a reader's repair and
    /// writing moved on to a new segment.
    MovedPastDamage { segment: u32, at: u64 },
}

impl std::fmt::Display for TailRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CutShort { segment, at, bytes } => write!(
                f,
                "segment {}: cut {bytes} bytes of a record left half written (by a crashed writer) at byte {at}",
                crate::format::segment_name(*segment)
            ),
            Self::MovedPastDamage { segment, at } => write!(
                f,
                "segment {}: damage at byte {at} with records after it; writing moved to a new segment so readers repair it",
                crate::format::segment_name(*segment)
            ),
        }
    }
}

impl Writer {
    pub fn new(journal: Journal, durability: Durability) -> Self {
        Self {
            journal,
            durability,
            open: None,
            buffer: Vec::new(),
            repairs: Vec::new(),
            last_end: None,
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Appends one record stamped with the current time.
    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        self.append_batch(
            Timestamp::from_system(std::time::SystemTime::now()),
            [payload],
        )
    }

    /// Appends records stamped `time`, in order: all of them are kept, or (on an error) none
    /// of those still in the current segment.
    pub fn append_batch<'p>(
        &mut self,
        time: Timestamp,
        payloads: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<()> {
        let mut pending = payloads.into_iter().peekable();
        while pending.peek().is_some() {
            self.append_some(time, &mut pending)?;
        }
        Ok(())
    }

    /// What this writer's appends survive.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Where this writer's last append ended: the segment and the byte after its last record.
    pub fn last_end(&self) -> Option<(u32, u64)> {
        self.last_end
    }

    /// What the writer has cut or moved past since this was last asked.
    pub fn take_repairs(&mut self) -> Vec<TailRepair> {
        std::mem::take(&mut self.repairs)
    }

    /// Writes as many of `pending` as the current segment takes, in one write.
    fn append_some<'p>(
        &mut self,
        time: Timestamp,
        pending: &mut std::iter::Peekable<impl Iterator<Item = &'p [u8]>>,
    ) -> Result<()> {
        let meta = self.journal.meta_unlocked()?;
        let mut segment = match self.open.take() {
            Some(open) if open.id == meta.storage_log => open,
            _ => self.open_segment(meta.storage_log)?,
        };
        let outcome = self.write_into(&mut segment, &meta, time, pending);
        match outcome {
            Ok(Next::Stay) => {
                self.open = Some(segment);
                Ok(())
            }
            Ok(Next::MoveOn) => self.move_on(segment.id),
            Err(e) => {
                self.open = Some(segment);
                Err(e)
            }
        }
    }

    fn write_into<'p>(
        &mut self,
        segment: &mut OpenSegment,
        meta: &Meta,
        time: Timestamp,
        pending: &mut std::iter::Peekable<impl Iterator<Item = &'p [u8]>>,
    ) -> Result<Next> {
        let path = self.journal.segment_path(segment.id);
        let _held = lock(&segment.file).at(&path, "lock the segment")?;
        let size =
            match self.settle_tail(segment.id, &segment.file, &mut segment.known_end, meta)? {
                Ok(size) => size,
                Err(next) => return Ok(next),
            };
        let limit = u64::from(meta.unit_limit);
        if size >= limit {
            return Ok(Next::MoveOn);
        }
        self.buffer.clear();
        let mut end = size;
        while end < limit {
            let Some(payload) = pending.peek() else { break };
            let len = u32::try_from(payload.len())
                .map_err(|_| Error::RecordTooLarge { len: payload.len() })?;
            let header = Header {
                magic: meta.header_magic,
                time,
                len,
            };
            self.buffer.extend_from_slice(&header.encode());
            self.buffer.extend_from_slice(payload);
            end += header.record_len();
            pending.next();
        }
        let written = segment
            .file
            .write_all_at(&self.buffer, size)
            .and_then(|()| match self.durability {
                Durability::Disk => segment.file.sync_data(),
                Durability::Process => Ok(()),
            });
        if let Err(e) = written {
            // Cutting a file shorter needs no space; if even that fails, the tail check of the
            // next append finds the partial record and cuts it.
            let _ = segment.file.set_len(size);
            segment.known_end = None;
            return Err(Error::from_io(&path, "append to the segment", e));
        }
        segment.known_end = Some(end);
        self.last_end = Some((segment.id, end));
        Ok(if end >= limit {
            Next::MoveOn
        } else {
            Next::Stay
        })
    }

    /// Checks the locked segment's bytes past what this writer knows to be whole: the size
    /// to append at, or the need to move on past damage.
    fn settle_tail(
        &mut self,
        id: u32,
        file: &File,
        known_end: &mut Option<u64>,
        meta: &Meta,
    ) -> Result<Result<u64, Next>> {
        let path = self.journal.segment_path(id);
        let mut size = file_len(file).at(&path, "stat the segment")?;
        if *known_end != Some(size) {
            match check_tail(file, &path, id, *known_end, size, meta.header_magic)? {
                Tail::Whole => {}
                Tail::Cut(repair, end) => {
                    size = end;
                    self.repairs.push(repair);
                }
                Tail::Damaged(repair) => {
                    self.repairs.push(repair);
                    return Ok(Err(Next::MoveOn));
                }
            }
            *known_end = Some(size);
        }
        Ok(Ok(size))
    }

    /// Checks the end of the segment being written, as an append would, without appending:
    /// a half-written record is cut off, and damage with records after it makes writers
    /// move on. Returns what was done.
    pub fn check_tail(&mut self) -> Result<Vec<TailRepair>> {
        let meta = self.journal.meta()?;
        let mut segment = self.open_segment(meta.storage_log)?;
        let path = self.journal.segment_path(segment.id);
        let next = {
            let _held = lock(&segment.file).at(&path, "lock the segment")?;
            self.settle_tail(segment.id, &segment.file, &mut segment.known_end, &meta)?
        };
        if next.is_err() {
            self.move_on(segment.id)?;
        } else {
            self.open = Some(segment);
        }
        Ok(self.take_repairs())
    }

    fn open_segment(&self, id: u32) -> Result<OpenSegment> {
        let path = self.journal.segment_path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(FILE_MODE)
            .open(&path)
            .at(&path, "open the segment")?;
        Ok(OpenSegment {
            id,
            file,
            known_end: None,
        })
    }

    /// Moves the journal to the segment after `full`, unless another writer already did.
    fn move_on(&mut self, full: u32) -> Result<()> {
        let journal = &self.journal;
        let path = journal.path().join(METASTORE);
        let _held = lock(journal.metastore()).at(&path, "lock the metastore")?;
        let mut meta = journal.read_meta_locked()?;
        if meta.storage_log == full {
            let next = full.checked_add(1).ok_or_else(|| Error::NotAJournal {
                path: journal.path().to_owned(),
                reason: "it has used every segment id".into(),
            })?;
            let segment = journal.segment_path(next);
            OpenOptions::new()
                .write(true)
                .create(true)
                .mode(FILE_MODE)
                .open(&segment)
                .at(&segment, "create the next segment")?;
            // The full segment's index is closed here, under its lock, before the metastore
            // says the segment is full. A jlog reader sizes a segment, indexes it, and then
            // closes its index if the (live, mapped) metastore has moved on: had the last
            // records landed between its sizing and that look, it would close the index
            // without them and never read them. With the index closed first, a reader either
            // finds it closed or finds the metastore not yet moved on. jlog's own writer
            // leaves this to readers; a failure here leaves it to them too.
            let closing = Meta {
                storage_log: next,
                ..meta
            };
            let _ = crate::index::resync(journal, full, &closing);
            meta.storage_log = next;
            journal.write_meta_locked(&meta)?;
            if self.durability == Durability::Disk {
                sync_dir(journal.path())?;
            }
        }
        Ok(())
    }
}

enum Next {
    Stay,
    MoveOn,
}

enum Tail {
    Whole,
    Cut(TailRepair, u64),
    Damaged(TailRepair),
}

/// Checks the bytes of a locked segment past the last record this writer knows to be whole.
fn check_tail(
    file: &File,
    path: &Path,
    segment: u32,
    known: Option<u64>,
    size: u64,
    magic: u32,
) -> Result<Tail> {
    let from = known.filter(|&k| k <= size).unwrap_or(0);
    let mut bytes = vec![0; (size - from) as usize];
    let got = read_full_at(file, &mut bytes, from).at(path, "read the segment's tail")?;
    bytes.truncate(got);
    let walked = walk(&bytes, from, magic);
    let Some(stop) = walked.stop else {
        return Ok(Tail::Whole);
    };
    let rest = &bytes[(walked.end - from) as usize..];
    let records_after = match stop {
        WalkStop::Incomplete => false,
        WalkStop::BadMagic => damaged_ranges(rest, magic)
            .first()
            .is_some_and(|r| r.end < rest.len() as u64),
    };
    if records_after {
        return Ok(Tail::Damaged(TailRepair::MovedPastDamage {
            segment,
            at: walked.end,
        }));
    }
    file.set_len(walked.end)
        .at(path, "cut a record a crash left half written")?;
    Ok(Tail::Cut(
        TailRepair::CutShort {
            segment,
            at: walked.end,
            bytes: size - walked.end,
        },
        walked.end,
    ))
}
