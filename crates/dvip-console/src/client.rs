//! The client: one request to a dvipd's socket and its typed answer, or its event stream.
//!
//! Owns the socket's location (default, `DVIP_SOCKET`) and the client's half of the line
//! protocol. It must not know how a reply is shown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{ConsoleError, ErrorKind};
use crate::event::EventLine;
use crate::reply::Answer;
use crate::request::Request;

/// Where dvipd listens unless told otherwise.
pub const SOCKET_DEFAULT: &str = "/run/dvip/dvipd.sock";

/// The environment variable that names the socket for every console command.
pub const SOCKET_ENV: &str = "DVIP_SOCKET";

/// A dvipd's console, reached through its socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// The console at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn unreachable(&self, e: &dyn std::fmt::Display) -> ConsoleError {
        ConsoleError::new(
            ErrorKind::Unreachable,
            format!(
                "cannot reach dvipd at {}: {e} (is dvipd running? see --socket or {SOCKET_ENV})",
                self.socket.display()
            ),
        )
    }

    /// Sends `request` and reads the answer its kind expects.
    pub async fn call(&self, request: &Request) -> Result<Answer, ConsoleError> {
        let reply = self.exchange(request).await?;
        Answer::from_json(request, reply)
    }

    /// [`Client::call`], giving up after `within`.
    pub async fn call_within(
        &self,
        request: &Request,
        within: Duration,
    ) -> Result<Answer, ConsoleError> {
        match tokio::time::timeout(within, self.call(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                Err(self.unreachable(&format_args!("no answer within {} s", within.as_secs_f64())))
            }
        }
    }

    /// [`Client::call`] from code that runs no runtime of its own.
    pub fn call_blocking(&self, request: &Request) -> Result<Answer, ConsoleError> {
        runtime()?.block_on(self.call(request))
    }

    async fn exchange(&self, request: &Request) -> Result<serde_json::Value, ConsoleError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(request.to_line().as_bytes())
            .await
            .map_err(|e| self.unreachable(&e))?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if line.is_empty() {
            return Err(self.unreachable(&"it closed the connection without a reply"));
        }
        serde_json::from_str(&line).map_err(|e| {
            ConsoleError::new(
                ErrorKind::BadReply,
                format!("dvipd's reply is not JSON: {e}"),
            )
        })
    }

    /// Asks for the event stream and hands every event to `on_event` until dvipd goes away
    /// (`Ok`) or the stream cannot be read.
    pub async fn follow(&self, on_event: impl FnMut(EventLine)) -> Result<(), ConsoleError> {
        self.follow_with(|| {}, on_event).await
    }

    /// [`Client::follow`], calling `on_open` once dvipd has accepted, before any event: from
    /// then on nothing it does is missed.
    pub async fn follow_with(
        &self,
        on_open: impl FnOnce(),
        mut on_event: impl FnMut(EventLine),
    ) -> Result<(), ConsoleError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(Request::Events.to_line().as_bytes())
            .await
            .map_err(|e| self.unreachable(&e))?;
        let mut lines = BufReader::new(read).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|e| self.unreachable(&e))?
            .ok_or_else(|| self.unreachable(&"it closed the connection"))?;
        let accepted: serde_json::Value = serde_json::from_str(&first).map_err(|e| {
            ConsoleError::new(
                ErrorKind::BadReply,
                format!("dvipd's reply is not JSON: {e}"),
            )
        })?;
        Answer::from_json(&Request::Events, accepted)?;
        on_open();
        while let Some(line) = lines.next_line().await.map_err(|e| self.unreachable(&e))? {
            match serde_json::from_str::<EventLine>(&line) {
                Ok(event) => on_event(event),
                Err(e) => {
                    return Err(ConsoleError::new(
                        ErrorKind::BadReply,
                        format!("an event this dvip cannot read ({e}): {line}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// [`Client::follow`] from code that runs no runtime of its own.
    pub fn follow_blocking(&self, on_event: impl FnMut(EventLine)) -> Result<(), ConsoleError> {
        runtime()?.block_on(self.follow(on_event))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ConsoleError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConsoleError::new(ErrorKind::Unavailable, format!("cannot start: {e}")))
}
