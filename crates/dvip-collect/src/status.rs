//! What the aggregator knows of each node's log, for `dvip collect status`: connected or
//! not, where it stands, and how far behind.
//!
//! Owns the board the pullers update and the file it is written to once a second
//! (`STATE_DIR/status.json`, replaced whole), which `dvip collect status` reads. It must not
//! decide anything about pulling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dvip_journal::RecordId;
use serde::{Deserialize, Serialize};

/// One node's log as the aggregator sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub node: String,
    pub log: String,
    /// Whether a connection is open and replaying.
    pub connected: bool,
    /// The subscriber read as.
    pub subscriber: Option<String>,
    /// The last record written to the files.
    pub last: Option<RecordId>,
    /// What the node holds that this aggregator has not acknowledged, as the node last said.
    pub lag_records: Option<u64>,
    pub lag_bytes: Option<u64>,
    /// Age of the oldest record not acknowledged, in seconds; 0 when caught up.
    pub lag_seconds: Option<f64>,
    /// Why it is not connected, when it is not.
    pub error: Option<String>,
    /// Lines and bytes written to the files since the aggregator started.
    pub written_lines: u64,
    pub written_bytes: u64,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectStatus {
    pub aggregator: String,
    /// When the aggregator last wrote this, in milliseconds since the epoch.
    pub updated_ms: u64,
    pub streams: Vec<StreamStatus>,
}

/// How old the status file may be before its aggregator is taken for stopped: it is
/// written every second.
const STALE_MS: u64 = 5_000;

impl CollectStatus {
    /// Milliseconds since the aggregator wrote this.
    pub fn age_ms(&self) -> u64 {
        now_ms().saturating_sub(self.updated_ms)
    }

    /// Whether the aggregator that wrote this still runs (it wrote within the last seconds).
    pub fn running(&self) -> bool {
        self.age_ms() <= STALE_MS
    }
}

/// The board the pullers write on.
#[derive(Clone, Debug, Default)]
pub struct Board(Arc<Mutex<BTreeMap<(String, String), StreamStatus>>>);

impl Board {
    /// Changes `node`'s `log` entry.
    pub fn update(&self, node: &str, log: &str, change: impl FnOnce(&mut StreamStatus)) {
        if let Ok(mut board) = self.0.lock() {
            let entry = board
                .entry((node.to_owned(), log.to_owned()))
                .or_insert_with(|| StreamStatus {
                    node: node.to_owned(),
                    log: log.to_owned(),
                    ..StreamStatus::default()
                });
            change(entry);
        }
    }

    /// Drops `node`'s `log` entry.
    pub fn remove(&self, node: &str, log: &str) {
        if let Ok(mut board) = self.0.lock() {
            board.remove(&(node.to_owned(), log.to_owned()));
        }
    }

    pub fn report(&self, aggregator: &str) -> CollectStatus {
        let streams = self
            .0
            .lock()
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default();
        CollectStatus {
            aggregator: aggregator.to_owned(),
            updated_ms: now_ms(),
            streams,
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where the status is written.
pub fn status_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// Writes the report whole (a temporary file renamed into place); a failure is not worth
/// stopping for and is left to the next second.
pub(crate) fn write(state_dir: &Path, report: &CollectStatus) {
    let path = status_path(state_dir);
    let staging = path.with_extension("json.new");
    let Ok(bytes) = serde_json::to_vec_pretty(report) else {
        return;
    };
    if std::fs::create_dir_all(state_dir).is_ok() && std::fs::write(&staging, bytes).is_ok() {
        let _ = std::fs::rename(&staging, &path);
    }
}

/// Reads what a running aggregator last wrote.
pub fn read(state_dir: &Path) -> std::io::Result<CollectStatus> {
    let bytes = std::fs::read(status_path(state_dir))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}
