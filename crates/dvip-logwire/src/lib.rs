//! The log service's protocol: what an aggregator and a node's log service say to each other
//! over their TLS connection, and how it is framed.
//!
//! Owns the messages, their encoding and the framing (docs/log-service.md describes both for
//! other implementers), and the server's rules as a state machine. It must not read journals,
//! open sockets or speak TLS: its callers hand it a connected stream.
//!
//! A frame is a 4-byte big-endian length, then that many bytes: one message encoded with
//! postcard. Each side's first frame says which protocol version it speaks; new messages and
//! errors are only ever added at the end of their enums, so an older peer fails on what it
//! does not know with a clear error, never misreads it.

mod session;
mod stream;

use dvip_journal::{RecordId, Timestamp};
use serde::{Deserialize, Serialize};

pub use session::{ServerSession, Step};
pub use stream::{Framed, StreamError};

/// The version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame either side accepts: far above a batch of records at the default
/// credit, far below what would let a peer make the other allocate without bound.
pub const FRAME_MAX: u32 = 16 * 1024 * 1024;

/// How many bytes the length prefix takes.
const PREFIX: usize = 4;

/// What an aggregator (the client) says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first message: the version spoken and who is asking (the name in its certificate
    /// is what counts; this one is for the node's log).
    Hello { version: u16, client: String },
    /// Which logs this node serves.
    List,
    /// Start reading `log` as `subscriber`, from just after its checkpoint. The node sends
    /// at most `credit` records before it hears [`Request::More`].
    Open {
        log: String,
        subscriber: String,
        credit: u32,
    },
    /// `records` more may be sent.
    More { records: u32 },
    /// Everything up to and including `through` is safely written: move the checkpoint.
    Ack { through: RecordId },
    /// How far behind the open log's subscriber is (also a heartbeat: a node that does not
    /// answer is gone).
    Backlog,
}

/// What a node's log service says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The answer to `Hello`: the version spoken and the node's name.
    Welcome { version: u16, node: String },
    /// The answer to `List`.
    Logs { logs: Vec<LogInfo> },
    /// The answer to `Open`: the subscriber's checkpoint, after which records will come.
    Opened { log: String, checkpoint: RecordId },
    /// Records in order, each after the one before.
    Records { records: Vec<WireRecord> },
    /// The checkpoint now stands at `through`.
    Acked { through: RecordId },
    /// The request could not be done; after a `Version` error the node closes the connection.
    Error { kind: ErrorKind, message: String },
    /// The answer to `Backlog`: what the subscriber has not acknowledged, and the time of the
    /// oldest such record.
    Backlog {
        records: u64,
        bytes: u64,
        oldest: Option<Timestamp>,
    },
}

/// One log a node serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInfo {
    /// The key in the cluster `logs`.
    pub name: String,
    /// Its subscribers.
    pub subscribers: Vec<String>,
}

/// One record as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    pub id: RecordId,
    pub time: Timestamp,
    pub payload: Vec<u8>,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The peer speaks a version this side does not.
    Version,
    /// A request other than `Hello` came first, or `Hello` came twice.
    Sequence,
    /// No such log on this node.
    UnknownLog,
    /// The log has no such subscriber.
    UnknownSubscriber,
    /// `More` or `Ack` with no log open.
    NotOpen,
    /// An `Ack` for a record not sent, or before the last one acknowledged.
    BadAck,
    /// The journal could not be read or its checkpoint moved.
    Journal,
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix is over [`FRAME_MAX`].
    #[error("a frame of {len} bytes is over the limit of {FRAME_MAX}")]
    TooLarge { len: u32 },
    /// The bytes are not a message this version knows.
    #[error("a frame does not hold a message this version knows: {0}")]
    Malformed(#[from] postcard::Error),
}

/// `message` as one frame.
pub fn encode<M: Serialize>(message: &M) -> Result<Vec<u8>, WireError> {
    let mut frame = vec![0; PREFIX];
    let frame = postcard::to_extend(message, std::mem::take(&mut frame))?;
    let len = u32::try_from(frame.len() - PREFIX).unwrap_or(u32::MAX);
    if len > FRAME_MAX {
        return Err(WireError::TooLarge { len });
    }
    let mut frame = frame;
    frame[..PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Takes bytes as they arrive and hands out whole messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Where the unread bytes start.
    start: usize,
}

impl Decoder {
    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, if its bytes have all arrived. After an error the connection
    /// is not to be trusted further.
    pub fn message<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, WireError> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.get(..PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes"));
        if len > FRAME_MAX {
            return Err(WireError::TooLarge { len });
        }
        let end = PREFIX + len as usize;
        let Some(body) = unread.get(PREFIX..end) else {
            return Ok(None);
        };
        let message = postcard::from_bytes(body)?;
        self.start += end;
        if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(message))
    }

    /// Bytes received and not yet part of a message handed out.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }
}
