//! Node-local journals in jlog's on-disk format.
//!
//! A journal is a directory of segments that writers append records to, and subscribers that
//! each read every record once, moving a durable checkpoint; a segment is removed once every
//! subscriber is past it. The files are jlog's, byte for byte, and the locks are jlog's too, so
//! jlog's library and tools (`jlogctl`) work on dvip's journals while dvip works on them, and
//! the other way round.
//!
//! This crate is synchronous and owns no thread: the daemon and the tools call it from where
//! they stand. It never reads a clock except to stamp a record appended without a time.
//!
//! What survives what (see [`Durability`]):
//! - a reader never sees part of a record: a record and its header go out in one write, and
//!   readers index only records whose every byte is in the segment;
//! - a crashed writer's half-written record is cut off by the next writer before it appends;
//! - a write that fails (a full disk) is cut back off the segment before the error returns;
//! - a closed segment that does not parse is repaired as jlog repairs it, and the reader is
//!   told which byte ranges were lost.

mod error;
mod follow;
mod format;
mod index;
mod journal;
mod lock;
mod reader;
mod repair;
mod status;
mod uri;
mod writer;

pub use error::{Error, Result};
pub use follow::{FollowProgress, Follower};
pub use format::{
    checkpoint_name, damaged_ranges, parse_checkpoint_name, parse_segment_name, segment_name, walk,
    BadRecordId, Header, Meta, RecordId, Safety, Timestamp, Walk, WalkStop, FILE_MODE, HEADER_LEN,
    HEADER_MAGIC, UNIT_LIMIT_DEFAULT,
};
pub use journal::{CreateOptions, Durability, Journal, Start};
pub use reader::{Batch, Damage, Reader, Record};
pub use status::{Backlog, JournalStatus, SegmentStatus, SubscriberStatus};
pub use uri::{JournalUri, Scheme, UriError};
pub use writer::{TailRepair, Writer};

/// What a repair found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// What was done at the end of the segment being written.
    pub tail: Vec<TailRepair>,
    /// Closed segments that did not parse, with the ranges cut out.
    pub segments: Vec<Damage>,
}

/// Repairs what can be repaired: cuts a half-written record off the segment being written
/// (or moves writers past damage there) and repairs every closed segment that does not parse.
pub fn repair(journal: &Journal) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let mut writer = Writer::new(Journal::open(journal.path())?, Durability::Process);
    report.tail = writer.check_tail()?;
    let meta = journal.meta()?;
    for segment in journal.segments()? {
        let damaged = match index::resync(journal, segment, &meta)? {
            index::SegmentState::Damaged { closed, .. } => closed,
            // A closed index is trusted by readers; a repair reads the bytes behind it.
            index::SegmentState::Indexed { closed: true, .. } => !parses(journal, segment, &meta)?,
            _ => false,
        };
        if damaged {
            let lost = repair::repair_segment(journal, segment, &meta)?;
            report.segments.push(Damage { segment, lost });
        }
    }
    Ok(report)
}

/// Whether every byte of a closed segment is a whole record.
fn parses(journal: &Journal, segment: u32, meta: &Meta) -> Result<bool> {
    let path = journal.segment_path(segment);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(Error::from_io(&path, "read the segment", e)),
    };
    Ok(walk(&bytes, 0, meta.header_magic).stop.is_none())
}
