//! jlog's on-disk vocabulary: file names, the metastore, record headers, record ids, and the
//! walk over a segment's bytes that every other module trusts.
//!
//! This file owns byte layouts only; it opens no file and takes no lock. Integers are in the
//! machine's own byte order, as jlog writes them, so a journal moves between machines of the
//! same order only (Momentum shipped an endian-changing tool for the other case).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The metastore's file name inside a journal directory.
pub(crate) const METASTORE: &str = "metastore";
/// The suffix of a segment's index file.
pub(crate) const INDEX_SUFFIX: &str = ".idx";
/// The prefix of a subscriber's checkpoint file; the subscriber's bytes follow in hex.
pub(crate) const CHECKPOINT_PREFIX: &str = "cp.";
/// The magic every record header of a new journal carries (jlog's `DEFAULT_HDR_MAGIC`).
pub const HEADER_MAGIC: u32 = 0x663A_7318;
/// The segment size past which writers move to the next segment (jlog's default, 4 MiB).
pub const UNIT_LIMIT_DEFAULT: u32 = 4 * 1024 * 1024;
/// Mode of the files a journal is made of; the directory adds `x` where `r` is set.
pub const FILE_MODE: u32 = 0o640;
/// Bytes in a record header.
pub const HEADER_LEN: usize = 16;
/// Bytes in a metastore (older 12-byte metastores lack the magic, which was then 0).
pub(crate) const METASTORE_LEN: usize = 16;
/// Bytes in a checkpoint file.
pub(crate) const CHECKPOINT_LEN: usize = 8;

/// jlog's safety level, kept in the metastore so every writer of the journal shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// `JLOG_UNSAFE`.
    Unsafe,
    /// `JLOG_ALMOST_SAFE`, jlog's default: nothing is synced but the segments it closes.
    AlmostSafe,
    /// `JLOG_SAFE`: the metastore and checkpoints are synced too.
    Safe,
}

impl Safety {
    fn to_raw(self) -> u32 {
        match self {
            Self::Unsafe => 0,
            Self::AlmostSafe => 1,
            Self::Safe => 2,
        }
    }

    fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Unsafe),
            1 => Some(Self::AlmostSafe),
            2 => Some(Self::Safe),
            _ => None,
        }
    }
}

impl fmt::Display for Safety {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unsafe => "unsafe",
            Self::AlmostSafe => "almost-safe",
            Self::Safe => "safe",
        })
    }
}

/// The journal-wide settings every writer reads under the metastore's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The segment writers append to.
    pub storage_log: u32,
    /// Segment size in bytes past which writers move on.
    pub unit_limit: u32,
    pub safety: Safety,
    /// The value in every record header's first word.
    pub header_magic: u32,
}

impl Meta {
    pub fn new(unit_limit: u32, safety: Safety) -> Self {
        Self {
            storage_log: 0,
            unit_limit,
            safety,
            header_magic: HEADER_MAGIC,
        }
    }

    pub fn encode(&self) -> [u8; METASTORE_LEN] {
        let mut out = [0; METASTORE_LEN];
        out[0..4].copy_from_slice(&self.storage_log.to_ne_bytes());
        out[4..8].copy_from_slice(&self.unit_limit.to_ne_bytes());
        out[8..12].copy_from_slice(&self.safety.to_raw().to_ne_bytes());
        out[12..16].copy_from_slice(&self.header_magic.to_ne_bytes());
        out
    }

    /// Reads a 16-byte metastore, or a 12-byte one from before the magic existed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != METASTORE_LEN && bytes.len() != 12 {
            return None;
        }
        let word = |i: usize| u32_at(bytes, i * 4);
        Some(Self {
            storage_log: word(0),
            unit_limit: word(1),
            safety: Safety::from_raw(word(2))?,
            header_magic: if bytes.len() == METASTORE_LEN {
                word(3)
            } else {
                0
            },
        })
    }
}

/// When a record was written, as jlog keeps it: seconds and microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: u32,
    pub micros: u32,
}

impl Timestamp {
    pub fn from_system(time: std::time::SystemTime) -> Self {
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seconds: since.as_secs() as u32,
            micros: since.subsec_micros(),
        }
    }

    pub fn to_system(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH
            + std::time::Duration::new(u64::from(self.seconds), self.micros.saturating_mul(1000))
    }
}

/// A record header: magic, time, payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub time: Timestamp,
    pub len: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..4].copy_from_slice(&self.magic.to_ne_bytes());
        out[4..8].copy_from_slice(&self.time.seconds.to_ne_bytes());
        out[8..12].copy_from_slice(&self.time.micros.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
        out
    }

    /// The header at `at`, if 16 bytes are there.
    pub fn decode_at(bytes: &[u8], at: usize) -> Option<Self> {
        let end = at.checked_add(HEADER_LEN)?;
        let raw = bytes.get(at..end)?;
        Some(Self {
            magic: u32_at(raw, 0),
            time: Timestamp {
                seconds: u32_at(raw, 4),
                micros: u32_at(raw, 8),
            },
            len: u32_at(raw, 12),
        })
    }

    /// Bytes the record takes on disk, header included.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// A record's place in a journal: its segment and its 1-based position there. A checkpoint is
/// the id of the last record its subscriber has read; position 0 means none of that segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId {
    pub segment: u32,
    pub position: u32,
}

impl RecordId {
    pub const START: Self = Self {
        segment: 0,
        position: 0,
    };

    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut out = [0; CHECKPOINT_LEN];
        out[0..4].copy_from_slice(&self.segment.to_ne_bytes());
        out[4..8].copy_from_slice(&self.position.to_ne_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == CHECKPOINT_LEN).then(|| Self {
            segment: u32_at(bytes, 0),
            position: u32_at(bytes, 4),
        })
    }
}

/// jlog's spelling, `0000002a:00000007`, so ids read the same in dvip and in jlogctl.
impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}:{:08x}", self.segment, self.position)
    }
}

/// A record id that is not `SEGMENT:POSITION` in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a record id: write SEGMENT:POSITION in hex, as 0000002a:00000007")]
pub struct BadRecordId(pub String);

impl FromStr for RecordId {
    type Err = BadRecordId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadRecordId(text.to_owned());
        let (segment, position) = text.split_once(':').ok_or_else(bad)?;
        let hex = |part: &str| u32::from_str_radix(part, 16).map_err(|_| bad());
        Ok(Self {
            segment: hex(segment)?,
            position: hex(position)?,
        })
    }
}

/// A segment's file name: its id as eight lowercase hex digits.
pub fn segment_name(segment: u32) -> String {
    format!("{segment:08x}")
}

/// The segment a file name stands for, if it is one (jlog's `is_datafile`).
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    (name.len() == 8 && name.bytes().all(lower_hex))
        .then(|| u32::from_str_radix(name, 16).ok())
        .flatten()
}

/// A subscriber's checkpoint file name: `cp.` and the name's bytes in lowercase hex.
pub fn checkpoint_name(subscriber: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{}", lower_hex(subscriber.as_bytes()))
}

/// Bytes as lowercase hex, two digits each: how jlog names checkpoints, and dvip the files
/// it keeps beside them.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The subscriber a checkpoint file name stands for, if it is one.
pub fn parse_checkpoint_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix(CHECKPOINT_PREFIX)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// What a walk over a segment's bytes found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Offsets of the whole records, in order.
    pub offsets: Vec<u64>,
    /// Where the whole records end.
    pub end: u64,
    /// Why the walk stopped before the end of the bytes, if it did.
    pub stop: Option<WalkStop>,
}

/// Why a walk stopped short of the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkStop {
    /// Fewer bytes than a header, or a record whose payload runs past the end: a record
    /// still being written, or one a crash cut short.
    Incomplete,
    /// A header without the journal's magic: damage, not a write in progress.
    BadMagic,
}

/// Walks the records of `bytes` (which begin at file offset `base`) from the start.
pub fn walk(bytes: &[u8], base: u64, magic: u32) -> Walk {
    let mut offsets = Vec::new();
    let mut at = 0usize;
    let stop = loop {
        if at == bytes.len() {
            break None;
        }
        let Some(header) = Header::decode_at(bytes, at) else {
            break Some(WalkStop::Incomplete);
        };
        if header.magic != magic {
            break Some(WalkStop::BadMagic);
        }
        let end = at as u64 + header.record_len();
        if end > bytes.len() as u64 {
            break Some(WalkStop::Incomplete);
        }
        offsets.push(base + at as u64);
        at = end as usize;
    };
    Walk {
        offsets,
        end: base + at as u64,
        stop,
    }
}

/// The byte ranges of a segment that jlog's repair would cut out: everything not part of a
/// chain of whole records. A stretch after damage counts as records again only where a
/// header with the magic is followed by another such header or by the end of the bytes.
pub fn damaged_ranges(bytes: &[u8], magic: u32) -> Vec<Range<u64>> {
    let len = bytes.len();
    let header_at = |at: usize| Header::decode_at(bytes, at).filter(|h| h.magic == magic);
    // A record at `at` whose end is the end of the bytes or the start of another header.
    let anchored = |at: usize| -> Option<usize> {
        let next = at.checked_add(header_at(at)?.record_len() as usize)?;
        (next == len || (next < len && header_at(next).is_some())).then_some(next)
    };
    let mut damaged = Vec::new();
    let mut at = 0usize;
    while at < len {
        let whole = header_at(at)
            .and_then(|h| at.checked_add(h.record_len() as usize))
            .filter(|&next| next <= len);
        if let Some(next) = whole {
            at = next;
            continue;
        }
        // Damage at `at`: resume at the first anchored record after it, if any.
        match (at + 1..len.saturating_sub(HEADER_LEN - 1)).find(|&i| anchored(i).is_some()) {
            Some(resume) => {
                damaged.push(at as u64..resume as u64);
                at = resume;
            }
            None => {
                damaged.push(at as u64..len as u64);
                at = len;
            }
        }
    }
    damaged
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Vec<u8> {
        let header = Header {
            magic: HEADER_MAGIC,
            time: Timestamp {
                seconds: 1,
                micros: 2,
            },
            len: payload.len() as u32,
        };
        let mut out = header.encode().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn subscriber_names_round_trip_through_checkpoint_file_names() {
        assert_eq!(checkpoint_name("master"), "cp.6d6173746572");
        assert_eq!(
            parse_checkpoint_name("cp.6d6173746572").as_deref(),
            Some("master")
        );
        assert_eq!(parse_checkpoint_name("cp.6"), None);
        assert_eq!(parse_checkpoint_name("metastore"), None);
    }

    #[test]
    fn segment_names_are_eight_lowercase_hex_digits() {
        assert_eq!(segment_name(0x2a), "0000002a");
        assert_eq!(parse_segment_name("0000002a"), Some(0x2a));
        assert_eq!(parse_segment_name("0000002A"), None);
        assert_eq!(parse_segment_name("0000002a.idx"), None);
    }

    #[test]
    fn record_ids_print_and_parse_as_jlog_does() {
        let id = RecordId {
            segment: 0x2a,
            position: 7,
        };
        assert_eq!(id.to_string(), "0000002a:00000007");
        assert_eq!("0000002a:00000007".parse::<RecordId>(), Ok(id));
        assert!("2a".parse::<RecordId>().is_err());
    }

    #[test]
    fn a_walk_stops_at_a_record_cut_short_and_at_a_bad_magic() {
        let mut bytes = record(b"one");
        bytes.extend(record(b"two"));
        let whole = bytes.len() as u64;
        bytes.extend(&record(b"three")[..10]);
        let walked = walk(&bytes, 0, HEADER_MAGIC);
        assert_eq!(walked.offsets, vec![0, 19]);
        assert_eq!(walked.end, whole);
        assert_eq!(walked.stop, Some(WalkStop::Incomplete));
        bytes.truncate(whole as usize);
        bytes.extend([0xff; 20]);
        assert_eq!(walk(&bytes, 0, HEADER_MAGIC).stop, Some(WalkStop::BadMagic));
    }

    #[test]
    fn damage_between_records_is_cut_and_the_records_after_it_kept() {
        let mut bytes = record(b"one");
        bytes.extend([0xee; 7]);
        bytes.extend(record(b"two"));
        bytes.extend(record(b"three"));
        assert_eq!(damaged_ranges(&bytes, HEADER_MAGIC), vec![19..26]);
        let mut tail = record(b"one");
        tail.extend(&record(b"two")[..5]);
        assert_eq!(damaged_ranges(&tail, HEADER_MAGIC), vec![19..24]);
    }
}
