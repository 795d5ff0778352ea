//! Messages over any byte stream (a TLS stream, in practice): send one, wait for the next.
//!
//! Owns moving frames between a [`Decoder`] and a `Read + Write`. It must not open the
//! stream: the caller hands over one already connected and authenticated.

use std::io::{ErrorKind, Read, Write};

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
}

/// A stream carrying framed messages.
#[derive(Debug)]
pub struct Framed<S> {
    stream: S,
    decoder: Decoder,
    buffer: Vec<u8>,
}

impl<S: Read + Write> Framed<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            decoder: Decoder::default(),
            buffer: vec![0; 64 * 1024],
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Sends one message and flushes it.
    pub fn send<M: Serialize>(&mut self, message: &M) -> Result<(), StreamError> {
        self.stream.write_all(&encode(message)?)?;
        self.stream.flush()?;
        Ok(())
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
                Err(e) => return Err(e.into()),
            }
        }
    }
}
