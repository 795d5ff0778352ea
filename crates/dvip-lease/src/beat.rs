//! The heartbeat on the wire: what one daemon tells every other every few milliseconds.
//!
//! Owns the message and its bytes: `DL`, a little-endian format version, and a postcard
//! body, checked for size before decoding. Decoding never panics. It must not decide anything.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The format version this build speaks.
pub(crate) const WIRE_VERSION: u16 = 2;
const MAGIC: [u8; 2] = *b"DL";
const HEADER_LEN: usize = 4;
/// A beat fits one datagram with room to spare.
pub(crate) const BEAT_SIZE_MAX: usize = 16 * 1024;

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    pub from: String,
    /// Which run of the sender's daemon: its clock starts again with each.
    pub incarnation: u64,
    /// When it was sent, on the sender's monotonic clock.
    pub sent: Duration,
    /// The sender's own epoch as the sender knows it.
    pub epoch: u64,
    /// The members the sender still trusts, with the latest beat it heard from each.
    pub acks: Vec<Ack>,
    /// Every promise the sender has made and not seen cleared.
    pub promises: Vec<Promise>,
}

/// "I heard your beat sent at `sent`, in your run `incarnation`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub to: String,
    pub incarnation: u64,
    pub sent: Duration,
}

/// "I have not heard `about` for `suspect_after`, and will not acknowledge it again in its
/// epoch `epoch`; I hold plan `plan`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub about: String,
    pub epoch: u64,
    pub plan: u64,
}

/// A beat that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    TooShort,
    TooLong(usize),
    NotABeat,
    Version(u16),
    Body,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "shorter than a beat's header"),
            Self::TooLong(n) => write!(f, "{n} bytes, more than a beat may be"),
            Self::NotABeat => write!(f, "not a dvip heartbeat"),
            Self::Version(v) => write!(f, "heartbeat format {v}, this build speaks {WIRE_VERSION}"),
            Self::Body => write!(f, "a heartbeat whose body does not decode"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Beat {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&WIRE_VERSION.to_le_bytes());
        postcard::to_extend(self, bytes).expect("a beat holds only plain data")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > BEAT_SIZE_MAX {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort);
        }
        if bytes[..2] != MAGIC {
            return Err(DecodeError::NotABeat);
        }
        let version = u16::from_le_bytes([bytes[2], bytes[3]]);
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        postcard::from_bytes(&bytes[HEADER_LEN..]).map_err(|_| DecodeError::Body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_beat_comes_back_as_it_went() {
        let beat = Beat {
            from: "node1".into(),
            incarnation: 77,
            sent: Duration::from_micros(1_234_567),
            epoch: 2,
            acks: vec![Ack {
                to: "node2".into(),
                incarnation: 5,
                sent: Duration::from_millis(5),
            }],
            promises: vec![Promise {
                about: "node3".into(),
                epoch: 0,
                plan: 12,
            }],
        };
        assert_eq!(Beat::decode(&beat.encode()), Ok(beat.clone()));
        let mut other = beat.encode();
        other[2] = 9;
        assert_eq!(Beat::decode(&other), Err(DecodeError::Version(9)));
        assert_eq!(Beat::decode(b"DR\x01\x00"), Err(DecodeError::NotABeat));
    }

    proptest! {
        #[test]
        fn garbage_is_refused_and_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = b"DL\x01\x00".to_vec();
            framed.extend(&bytes);
            let _ = Beat::decode(&framed);
            let _ = Beat::decode(&bytes);
        }
    }
}
