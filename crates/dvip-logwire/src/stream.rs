//! Messages over any byte stream (a TLS stream, in practice): send one, wait for the next.
//!
//! Owns moving frames between a [`Decoder`] and a `Read + Write`. It must not open the
//! stream: the caller hands over one already connected and authenticated.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{encode, Decoder, WireError};

/// Why a stream stopped carrying messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// Reading or writing failed.
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a message.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A write made no progress for the stall limit: the peer stopped reading.
    #[error("the peer took nothing for {} s: it has stopped reading", .0.as_secs())]
    Stalled(Duration),
}

/// A stream carrying framed messages.
#[derive(Debug)]
pub struct Framed<S> {
    stream: S,
    decoder: Decoder,
    buffer: Vec<u8>,
    /// How long a write may make no progress; `None`: as long as the stream blocks.
    stall_limit: Option<Duration>,
}

impl<S: Read + Write> Framed<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            decoder: Decoder::default(),
            buffer: vec![0; 64 * 1024],
            stall_limit: None,
        }
    }

    /// Gives up a send that makes no progress for `limit`. The stream's own write timeout
    /// must be shorter, so that a blocked write comes back to look at the clock: a socket's
    /// timeout restarts with every byte taken, and a slowly growing buffer would never let it
    /// run out.
    pub fn with_stall_limit(mut self, limit: Duration) -> Self {
        self.stall_limit = Some(limit);
        self
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Sends one message and flushes it.
    pub fn send<M: Serialize>(&mut self, message: &M) -> Result<(), StreamError> {
        let frame = encode(message)?;
        let mut written = 0;
        let mut progress = Instant::now();
        while written < frame.len() {
            match self.stream.write(&frame[written..]) {
                Ok(0) => return Err(StreamError::Closed),
                Ok(n) => {
                    written += n;
                    progress = Instant::now();
                }
                Err(e) => self.waited(e, progress)?,
            }
        }
        loop {
            match self.stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) => self.waited(e, progress)?,
            }
        }
    }

    /// A write that could not go on: fine to try again unless it is a failure or the stall
    /// limit has passed since `progress`.
    fn waited(&self, e: std::io::Error, progress: Instant) -> Result<(), StreamError> {
        match e.kind() {
            ErrorKind::Interrupted => Ok(()),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => match self.stall_limit {
                Some(limit) if progress.elapsed() < limit => Ok(()),
                Some(limit) => Err(StreamError::Stalled(limit)),
                None => Err(e.into()),
            },
            _ => Err(e.into()),
        }
    }

    /// The next message, waiting for it. With a read timeout set on the stream, `Ok(None)`
    /// when none came in time.
    pub fn receive<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, StreamError> {
        loop {
            if let Some(message) = self.decoder.message()? {
                return Ok(Some(message));
            }
            match self.stream.read(&mut self.buffer) {
                Ok(0) => return Err(StreamError::Closed),
                Ok(n) => self.decoder.push(&self.buffer[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A peer that died or was killed leaves without TLS's goodbye: the same end.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(StreamError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
