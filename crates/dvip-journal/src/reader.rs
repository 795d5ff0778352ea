//! Reading a journal as one subscriber: records after its checkpoint, in order, across
//! segments, with the checkpoint moved only when the caller says the records are safe.
//!
//! The reader keeps a cursor (the last record it handed out) apart from the durable checkpoint,
//! so a consumer can read ahead and acknowledge later. A closed segment that does not parse is
//! repaired as jlog repairs it, and the loss is reported with its byte ranges.

use std::fs::File;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::{walk, Meta, RecordId, Timestamp};
use crate::index::{open_data, open_index, read_u64, resync, SegmentState};
use crate::journal::{read_full_at, Journal};
use crate::repair::repair_segment;

/// One record as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub time: Timestamp,
    pub payload: Vec<u8>,
}

/// Bytes of a segment that did not hold records and were cut out so reading could go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    pub segment: u32,
    /// Byte ranges of the segment as it was before the repair.
    pub lost: Vec<Range<u64>>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: u64 = self.lost.iter().map(|r| r.end - r.start).sum();
        write!(
            f,
            "segment {}: {bytes} damaged bytes cut out (",
            crate::format::segment_name(self.segment)
        )?;
        for (i, range) in self.lost.iter().enumerate() {
            write!(
                f,
                "{}{}..{}",
                if i > 0 { ", " } else { "" },
                range.start,
                range.end
            )?;
        }
        write!(f, "); the records in them are lost")
    }
}

/// What one read returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Damage repaired on the way, in the order met.
    pub damage: Vec<Damage>,
    /// Damage in the segment still being written: reading waits there until a writer moves
    /// on (dvip's writers do at their next append) and the segment can be repaired.
    pub blocked_at: Option<(u32, u64)>,
}

/// Repairs of one segment before a reader gives up on it (jlog tries four times).
const REPAIR_ATTEMPTS: u32 = 4;

/// Reads one journal as one subscriber.
#[derive(Debug)]
pub struct Reader {
    journal: Journal,
    subscriber: String,
    cursor: RecordId,
    segment: Option<(u32, File, File)>,
}

impl Reader {
    /// Opens `subscriber`'s view of the journal, starting after its checkpoint.
    pub fn open(journal: Journal, subscriber: &str) -> Result<Self> {
        let cursor = journal.checkpoint(subscriber)?;
        Ok(Self {
            journal,
            subscriber: subscriber.to_owned(),
            cursor,
            segment: None,
        })
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn subscriber(&self) -> &str {
        &self.subscriber
    }

    /// The last record handed out (or the checkpoint, before any read).
    pub fn cursor(&self) -> RecordId {
        self.cursor
    }

    /// Reads up to `max` records after the cursor.
    pub fn read(&mut self, max: usize) -> Result<Batch> {
        let mut batch = Batch::default();
        let mut repairs = 0;
        let mut stalls = 0;
        while batch.records.len() < max {
            let meta = self.journal.meta()?;
            let segment = self.cursor.segment;
            match resync(&self.journal, segment, &meta)? {
                SegmentState::Missing => {
                    if !self.skip_to_next(segment, &meta)? {
                        break;
                    }
                }
                SegmentState::Damaged {
                    offset,
                    closed: false,
                } => {
                    batch.blocked_at = Some((segment, offset));
                    break;
                }
                SegmentState::Damaged {
                    offset,
                    closed: true,
                } => {
                    repairs += 1;
                    if repairs > REPAIR_ATTEMPTS {
                        return Err(Error::NotAJournal {
                            path: self.journal.segment_path(segment),
                            reason: format!("the segment still does not parse at byte {offset} after {REPAIR_ATTEMPTS} repairs"),
                        });
                    }
                    let lost = repair_segment(&self.journal, segment, &meta)?;
                    self.segment = None;
                    batch.damage.push(Damage { segment, lost });
                }
                SegmentState::Indexed { records, closed } => {
                    if self.cursor.position > records {
                        // A checkpoint past the end (a repair shortened the segment): jlog
                        // moves it back to the end, and so do we.
                        self.cursor.position = records;
                    }
                    let want =
                        (max - batch.records.len()).min((records - self.cursor.position) as usize);
                    if want > 0 {
                        let got =
                            self.read_records(segment, self.cursor.position, want as u32, &meta)?;
                        if let Some(last) = got.last() {
                            self.cursor = last.id;
                        }
                        let progressed = !got.is_empty();
                        let short = got.len() < want;
                        batch.records.extend(got);
                        if short {
                            // The index changed under us; look again, a few times at most.
                            stalls = if progressed { 0 } else { stalls + 1 };
                            if stalls > REPAIR_ATTEMPTS {
                                break;
                            }
                            continue;
                        }
                    } else if closed {
                        if !self.skip_to_next(segment, &meta)? {
                            break;
                        }
                    } else {
                        break;
                    }
                }
            }
        }
        Ok(batch)
    }

    /// Moves the cursor to the start of the next segment that exists, if the writer has gone
    /// past `segment`; returns whether it moved.
    fn skip_to_next(&mut self, segment: u32, meta: &Meta) -> Result<bool> {
        if segment >= meta.storage_log {
            return Ok(false);
        }
        let next = self
            .journal
            .segments()?
            .into_iter()
            .find(|&s| s > segment)
            .unwrap_or(meta.storage_log);
        self.cursor = RecordId {
            segment: next,
            position: 0,
        };
        self.segment = None;
        Ok(true)
    }

    /// Reads `count` records of `segment` after `position`, all indexed.
    fn read_records(
        &mut self,
        segment: u32,
        position: u32,
        count: u32,
        meta: &Meta,
    ) -> Result<Vec<Record>> {
        if self
            .segment
            .as_ref()
            .is_none_or(|(id, _, _)| *id != segment)
        {
            let Some(data) = open_data(&self.journal, segment)? else {
                return Ok(Vec::new());
            };
            let index = open_index(&self.journal, segment)?;
            self.segment = Some((segment, data, index));
        }
        // Set just above.
        let (_, data, index) = self.segment.as_ref().expect("segment open");
        let index_path = self.journal.index_path(segment);
        let data_path = self.journal.segment_path(segment);
        let mut raw = vec![0; (count as usize + 1) * 8];
        let got = read_full_at(index, &mut raw, u64::from(position) * 8)
            .at(&index_path, "read the index")?;
        let offsets: Vec<u64> = raw[..got - got % 8]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .collect();
        if offsets.len() < count as usize {
            return Ok(Vec::new());
        }
        let first = offsets[0];
        // The offset after the last wanted record bounds the read; the closing 0 or the end
        // of the index leaves it to the segment's size.
        let end = match offsets.get(count as usize) {
            Some(&next) if next > first => next,
            _ => data.metadata().at(&data_path, "stat the segment")?.len(),
        };
        let mut bytes = vec![0; end.saturating_sub(first) as usize];
        let got = read_full_at(data, &mut bytes, first).at(&data_path, "read the segment")?;
        bytes.truncate(got);
        let walked = walk(&bytes, first, meta.header_magic);
        let mut records = Vec::with_capacity(count as usize);
        for (i, &offset) in offsets.iter().take(count as usize).enumerate() {
            if walked.offsets.get(i) != Some(&offset) {
                // The index no longer fits the segment (a repair ran elsewhere): rebuild it
                // and read again on the next pass.
                let _ = index.set_len(0);
                break;
            }
            let at = (offset - first) as usize;
            let header = crate::format::Header::decode_at(&bytes, at).expect("walked header");
            let start = at + crate::format::HEADER_LEN;
            records.push(Record {
                id: RecordId {
                    segment,
                    position: position + 1 + i as u32,
                },
                time: header.time,
                payload: bytes[start..start + header.len as usize].to_vec(),
            });
        }
        Ok(records)
    }

    /// Makes every record up to and including `through` read for good: the checkpoint moves
    /// there, and segments no subscriber needs any more are removed.
    pub fn checkpoint(&mut self, through: RecordId) -> Result<()> {
        self.journal.set_checkpoint(&self.subscriber, through)?;
        if through > self.cursor {
            self.cursor = through;
        }
        Ok(())
    }

    /// Checkpoints everything read so far.
    pub fn checkpoint_read(&mut self) -> Result<()> {
        self.checkpoint(self.cursor)
    }

    /// Goes back to the durable checkpoint, so records read but not checkpointed come again.
    pub fn rewind(&mut self) -> Result<()> {
        self.cursor = self.journal.checkpoint(&self.subscriber)?;
        Ok(())
    }
}

/// The number of records indexed in `segment`, for status reports.
pub(crate) fn indexed_records(journal: &Journal, segment: u32, meta: &Meta) -> Result<u32> {
    Ok(resync(journal, segment, meta)?.indexed())
}

/// The offset of record `position` (1-based) of `segment`, from its index.
pub(crate) fn record_offset(journal: &Journal, segment: u32, position: u32) -> Result<Option<u64>> {
    if position == 0 {
        return Ok(Some(0));
    }
    let index = open_index(journal, segment)?;
    let path = journal.index_path(segment);
    match read_u64(&index, u64::from(position - 1) * 8) {
        Ok(offset) => Ok(Some(offset)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::from_io(&path, "read the index", e)),
    }
}
