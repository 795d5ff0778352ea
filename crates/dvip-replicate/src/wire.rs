//! The replication messages on the bus, and their encoding.
//!
//! Owns the bytes: a four-byte header (`DR` and a little-endian format version) and a
//! postcard body, checked for size before decoding. Decoding never panics; a message that
//! fails changes nothing and the caller counts it. New kinds of message are new variants at
//! the end, as in the election's wire.

use serde::{Deserialize, Serialize};

use crate::cache::CacheWrite;
use crate::{Counts, Key};

/// The format version this build speaks.
pub const WIRE_VERSION: u16 = 1;
const MAGIC: [u8; 2] = *b"DR";
const HEADER_LEN: usize = 4;
/// The largest message accepted (the bus edge fragments anything larger than a datagram).
pub const MESSAGE_SIZE_MAX: usize = 64 * 1024 * 1024;

/// One multicast message, stamped with the view it was sent in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The sender's keys that changed, with their counts now (empty counts: nothing left).
    Batch {
        view_id: u64,
        changes: Vec<(Key, Counts)>,
    },
    /// Every count of the sender's own: its copies elsewhere are replaced by this.
    Snapshot {
        view_id: u64,
        counts: Vec<(Key, Counts)>,
    },
    /// Writes to named caches, `(cache, key, write)`: new ones, or every one held for a
    /// joiner. Not bound to a view: the last write wins wherever and whenever it lands.
    Cache {
        writes: Vec<(String, String, CacheWrite)>,
    },
}

impl Message {
    /// The view a message of counts belongs to (`None`: a message of any view).
    pub fn view_id(&self) -> Option<u64> {
        match self {
            Self::Batch { view_id, .. } | Self::Snapshot { view_id, .. } => Some(*view_id),
            Self::Cache { .. } => None,
        }
    }
}

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    TooLarge(usize),
    NotReplication,
    Version(u16),
    Body(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "{n} bytes, over the {MESSAGE_SIZE_MAX} accepted"),
            Self::NotReplication => f.write_str("not a replication message"),
            Self::Version(v) => write!(f, "format version {v}; this build speaks {WIRE_VERSION}"),
            Self::Body(why) => write!(f, "malformed: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub fn encode(message: &Message) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    let body = postcard::to_stdvec(message).expect("postcard writes into a Vec");
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MESSAGE_SIZE_MAX {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(DecodeError::NotReplication);
    }
    let version = u16::from_le_bytes([bytes[2], bytes[3]]);
    if version != WIRE_VERSION {
        return Err(DecodeError::Version(version));
    }
    postcard::from_bytes(&bytes[HEADER_LEN..]).map_err(|e| DecodeError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_comes_back_as_it_went_and_garbage_is_refused() {
        let message = Message::Batch {
            view_id: 7,
            changes: vec![(
                Key::Inbound("203.0.113.9".parse().expect("ip")),
                Counts::default(),
            )],
        };
        assert_eq!(decode(&encode(&message)), Ok(message));
        assert_eq!(decode(b"DV\x01\x00"), Err(DecodeError::NotReplication));
        assert_eq!(decode(b"DR\x09\x00"), Err(DecodeError::Version(9)));
        assert!(matches!(
            decode(b"DR\x01\x00\xff\xff"),
            Err(DecodeError::Body(_))
        ));
    }
}
