//! What can go wrong with a journal, grouped by who must act: the operator named something
//! that is not there, the disk is full, the files are damaged, or the system failed.

use std::io;
use std::path::PathBuf;

/// An error from a journal operation. Each variant says what became of the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No journal at this path. Nothing was changed.
    #[error("{path}: no journal here (no directory with a metastore); create it with `dvip log write` or a writer")]
    NotFound { path: PathBuf },
    /// The path holds something that is not a journal. Nothing was changed.
    #[error("{path}: not a journal: {reason}")]
    NotAJournal { path: PathBuf, reason: String },
    /// The subscriber has no checkpoint in this journal. Nothing was changed.
    #[error("{path}: no subscriber `{subscriber}`; add it with `dvip log subscriber add`")]
    UnknownSubscriber { path: PathBuf, subscriber: String },
    /// The subscriber already has a checkpoint. It was left as it was.
    #[error("{path}: subscriber `{subscriber}` already exists")]
    SubscriberExists { path: PathBuf, subscriber: String },
    /// A subscriber name that cannot be one. Nothing was changed.
    #[error("`{name}` cannot name a subscriber: {reason}")]
    BadSubscriber { name: String, reason: &'static str },
    /// A record too large for jlog's 32-bit length. Nothing was written.
    #[error("a record of {len} bytes is larger than a journal can hold (4 GiB)")]
    RecordTooLarge { len: usize },
    /// The file system is full. No part of the write is visible; the next write after space
    /// returns works.
    #[error("{path}: the disk is full; nothing of this write was kept, and writing works again once there is space")]
    DiskFull { path: PathBuf },
    /// The system refused an operation on a journal file, with the errno.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path and what was being done to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path, action: &'static str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path, action: &'static str) -> Result<T> {
        self.map_err(|source| Error::from_io(path, action, source))
    }
}

impl Error {
    pub(crate) fn from_io(path: &std::path::Path, action: &'static str, source: io::Error) -> Self {
        let full = matches!(source.raw_os_error(), Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT);
        if full {
            Self::DiskFull {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                action,
                source,
            }
        }
    }
}
