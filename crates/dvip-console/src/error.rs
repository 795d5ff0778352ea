//! Console errors: what went wrong with a request, by kind, with the words for an operator.
//!
//! Owns the kinds a reply's error may have and how an error travels (`{"ok": false, "kind",
//! "error"}`). It must not decide when a request fails.

use serde::{Deserialize, Serialize};

/// The kind of a console error, stable for scripts (`dvip ... --json` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Not a request dvipd understands: not JSON, an unknown command, a missing field.
    BadRequest,
    /// A protocol version this dvipd does not speak.
    Version,
    /// The request was understood and cannot be done: a move to a node that is no candidate,
    /// a reload into an invalid configuration, a command with no view.
    Refused,
    /// A request that may not be broadcast.
    NotBroadcastable,
    /// dvipd cannot answer now: it is stopping, or not joined to the group the request needs.
    Unavailable,
    /// No dvipd answered: the socket is missing, refused the connection, or stayed silent.
    Unreachable,
    /// dvipd answered something this client cannot read (another version?).
    BadReply,
}

impl ErrorKind {
    /// The kind as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Version => "version",
            Self::Refused => "refused",
            Self::NotBroadcastable => "not-broadcastable",
            Self::Unavailable => "unavailable",
            Self::Unreachable => "unreachable",
            Self::BadReply => "bad-reply",
        }
    }
}

/// A console error: its kind and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ConsoleError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, in words.
    #[serde(rename = "error")]
    pub message: String,
}

impl ConsoleError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The error as a reply line's JSON: `{"ok": false, "kind": ..., "error": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"ok": false, "kind": self.kind, "error": self.message})
    }
}
