//! What has been written, per node and log, kept so that a crash at any moment neither loses
//! nor repeats a line.
//!
//! Owns the state file `STATE_DIR/NODE/LOG.json` and the commit of a batch:
//! 1. the files the batch will touch are recorded with their lengths before it (an intent);
//! 2. the lines are appended and the files synced;
//! 3. the last record id is recorded with the files' new lengths.
//!
//! Only then may the node hear an acknowledgement. At start, every file the state names is cut
//! back to its recorded length: bytes written after the last record (of a batch that did not
//! finish) go, and the node sends those records again. Records at or before the recorded id
//! are skipped when they come again. Every write of the state is whole (a temporary file,
//! synced, renamed, the directory synced). This file must not talk to a node.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use dvip_journal::RecordId;
use serde::{Deserialize, Serialize};

use crate::CollectError;

/// The durable state of one node's log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// The last record written and synced; `None` before the first.
    pub last: Option<RecordId>,
    /// Files with the length they are known good to.
    pub files: BTreeMap<PathBuf, u64>,
}

/// One node's log's state on disk.
#[derive(Debug)]
pub struct Stream {
    path: PathBuf,
    pub state: StreamState,
}

impl Stream {
    /// Opens (or starts) the state of `log` from `node` under `dir`, and cuts every file it
    /// names back to its recorded length.
    pub fn open(dir: &Path, node: &str, log: &str) -> Result<Self, CollectError> {
        let mut stream = Self {
            path: dir.join(node).join(format!("{log}.json")),
            state: StreamState::default(),
        };
        stream.reload()?;
        Ok(stream)
    }

    /// Takes the state the disk holds for the stream's own, and cuts every file it names back
    /// to its recorded length: what a start does, and what a failed batch must do before the
    /// next, since what it left behind (appended bytes, a state that may or may not have
    /// reached the disk) is known only from the disk.
    pub fn reload(&mut self) -> Result<(), CollectError> {
        let path = &self.path;
        self.state = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CollectError::State {
                path: path.clone(),
                why: format!("does not parse ({e}); move it away to start this stream afresh, which writes its lines again"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StreamState::default(),
            Err(e) => return Err(CollectError::io(path, "read the state", e)),
        };
        self.cut_back()
    }

    fn cut_back(&self) -> Result<(), CollectError> {
        for (file, &len) in &self.state.files {
            match fs::metadata(file) {
                Ok(m) if m.len() > len => {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(file)
                        .map_err(|e| CollectError::io(file, "open to cut back", e))?;
                    f.set_len(len)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| CollectError::io(file, "cut back to the last commit", e))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CollectError::io(file, "stat", e)),
            }
        }
        Ok(())
    }

    /// Whether `id` was already written.
    pub fn written(&self, id: RecordId) -> bool {
        self.state.last.is_some_and(|last| id <= last)
    }

    /// Step 1: records the files a batch will touch, at their lengths now.
    pub fn intend(&mut self, files: &BTreeMap<PathBuf, u64>) -> Result<(), CollectError> {
        let mut next = StreamState {
            last: self.state.last,
            files: files.clone(),
        };
        // Files of the last commit stay named until this one is done.
        for (file, len) in &self.state.files {
            next.files.entry(file.clone()).or_insert(*len);
        }
        self.save(&next)?;
        self.state = next;
        Ok(())
    }

    /// Step 3: `last` is written and the files stand at `files`' lengths. When that cannot be
    /// recorded, the stream is reloaded from the disk before the error is returned.
    pub fn commit(
        &mut self,
        last: RecordId,
        files: BTreeMap<PathBuf, u64>,
    ) -> Result<(), CollectError> {
        let next = StreamState {
            last: Some(last),
            files,
        };
        if let Err(e) = self.save(&next) {
            // The batch's bytes are in the files; unless they go, its records, which come
            // again since they were never acknowledged, would be written twice. A disk that
            // filled up between the append and the commit does this.
            self.reload()?;
            return Err(e);
        }
        self.state = next;
        Ok(())
    }

    fn save(&self, state: &StreamState) -> Result<(), CollectError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)
            .map_err(|e| CollectError::io(dir, "create the state directory", e))?;
        let staging = self.path.with_extension("json.new");
        let bytes = serde_json::to_vec(state).expect("a state serializes");
        let mut file =
            File::create(&staging).map_err(|e| CollectError::io(&staging, "write the state", e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| CollectError::io(&staging, "write the state", e))?;
        fs::rename(&staging, &self.path)
            .map_err(|e| CollectError::io(&self.path, "replace the state", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CollectError::io(dir, "sync the state directory", e))
    }
}
