//! What `dvip log show` reports of a journal: its segments, its subscribers and how far each is
//! behind. Typed here; printed or serialized by the tool.

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::format::{Header, RecordId, Safety, Timestamp, HEADER_LEN};
use crate::index::open_data;
use crate::journal::{read_full_at, Journal};
use crate::reader::{indexed_records, record_offset};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalStatus {
    pub path: String,
    /// The segment writers append to.
    pub writing: u32,
    pub unit_limit: u32,
    pub safety: Safety,
    pub segments: Vec<SegmentStatus>,
    pub subscribers: Vec<SubscriberStatus>,
    /// Bytes of all segments.
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentStatus {
    pub id: u32,
    pub bytes: u64,
    pub records: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubscriberStatus {
    pub name: String,
    pub checkpoint: RecordId,
    pub backlog: Backlog,
}

/// What a subscriber has yet to read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    pub records: u64,
    pub bytes: u64,
    /// When the oldest unread record was written.
    pub oldest: Option<Timestamp>,
}

impl Journal {
    /// The journal's segments and subscribers with their backlogs.
    pub fn status(&self) -> Result<JournalStatus> {
        let meta = self.meta()?;
        let mut segments = Vec::new();
        for id in self.segments()? {
            let path = self.segment_path(id);
            let bytes = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                // Removed since the listing: a reader's checkpoint just passed it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(crate::error::Error::from_io(&path, "stat the segment", e)),
            };
            segments.push(SegmentStatus {
                id,
                bytes,
                records: indexed_records(self, id, &meta)?,
            });
        }
        let mut subscribers = Vec::new();
        for (name, checkpoint) in self.checkpoints()? {
            let backlog = self.backlog(checkpoint, &segments)?;
            subscribers.push(SubscriberStatus {
                name,
                checkpoint,
                backlog,
            });
        }
        Ok(JournalStatus {
            path: self.path().display().to_string(),
            writing: meta.storage_log,
            unit_limit: meta.unit_limit,
            safety: meta.safety,
            bytes: segments.iter().map(|s| s.bytes).sum(),
            segments,
            subscribers,
        })
    }

    fn backlog(&self, checkpoint: RecordId, segments: &[SegmentStatus]) -> Result<Backlog> {
        let mut backlog = Backlog::default();
        for segment in segments.iter().filter(|s| s.id >= checkpoint.segment) {
            let read = if segment.id == checkpoint.segment {
                checkpoint.position.min(segment.records)
            } else {
                0
            };
            let unread = segment.records - read;
            if unread == 0 {
                continue;
            }
            backlog.records += u64::from(unread);
            // The first unread record starts where the last read one ends.
            let Some(start) = record_offset(self, segment.id, read + 1)? else {
                continue;
            };
            backlog.bytes += segment.bytes.saturating_sub(start);
            if backlog.oldest.is_none() {
                backlog.oldest = self.time_at(segment.id, start)?;
            }
        }
        Ok(backlog)
    }

    fn time_at(&self, segment: u32, offset: u64) -> Result<Option<Timestamp>> {
        let Some(data) = open_data(self, segment)? else {
            return Ok(None);
        };
        let mut raw = [0; HEADER_LEN];
        let path = self.segment_path(segment);
        let got = read_full_at(&data, &mut raw, offset).at(&path, "read a record header")?;
        Ok(Header::decode_at(&raw[..got], 0).map(|h| h.time))
    }
}
