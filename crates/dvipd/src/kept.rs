//! What a node keeps across a restart of its dvipd: whether it is on standby, and the standing
//! moves it knows.
//!
//! Owns the state file's place, format and writing. A file is replaced in one rename after
//! its bytes are on disk, so a crash or power loss leaves the old state or the new one, never
//! half of either. It must not decide anything: the daemon reads it at start and writes it
//! when an operator changes what it holds.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where state files go unless told otherwise.
pub const STATE_DIR_DEFAULT: &str = "/var/lib/dvip";

/// What survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The node it belongs to: a file another node left in a shared directory is not used.
    pub node: String,
    /// Drained for maintenance until put online.
    pub standby: bool,
    /// The standing moves (and clearings) the node knew, announced again in its next view.
    #[serde(default)]
    pub moves: Vec<dvip_core::wire::StandingMove>,
}

/// Why the state could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    /// The file or its directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds something else than a state.
    #[error("{path}: not a dvip state file ({why}); remove it or put the node on standby or online again")]
    Garbled {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The state file of `node` in `dir`: one per node, so nodes sharing a directory (a lab on
/// one machine) keep apart.
pub fn path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("state-{node}.json"))
}

/// What `node` kept in `dir`; nothing kept (no file) reads as the default: online.
pub fn read(dir: &Path, node: &str) -> Result<Kept, KeptError> {
    let path = path(dir, node);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Kept {
                node: node.to_owned(),
                ..Kept::default()
            })
        }
        Err(source) => return Err(KeptError::Io { path, source }),
    };
    let kept: Kept = serde_json::from_str(&text).map_err(|e| KeptError::Garbled {
        path: path.clone(),
        why: e.to_string(),
    })?;
    if kept.node != node {
        return Err(KeptError::Garbled {
            path,
            why: format!("it belongs to node `{}`", kept.node),
        });
    }
    Ok(kept)
}

/// Keeps `kept` in `dir`: written beside, flushed to disk, renamed over the old file, and
/// the directory flushed so the rename itself survives a power loss.
pub fn write(dir: &Path, kept: &Kept) -> Result<(), KeptError> {
    let path = path(dir, &kept.node);
    let io = |source| KeptError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let temporary = dir.join(format!(".state-{}.json.new", kept.node));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    let mut bytes = serde_json::to_vec_pretty(kept).expect("a state is plain data");
    bytes.push(b'\n');
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dvip-kept-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_state_survives_its_writer_and_each_node_reads_only_its_own() {
        let d = dir("own");
        assert!(!read(&d, "node1").expect("no file").standby);
        let kept = Kept {
            node: "node1".into(),
            standby: true,
            moves: vec![dvip_core::wire::StandingMove {
                address: "198.51.100.7".parse().unwrap(),
                to: Some("node2".into()),
                counter: 3,
                origin: "node1".into(),
            }],
        };
        write(&d, &kept).expect("written");
        assert_eq!(read(&d, "node1").expect("read"), kept);
        assert!(!read(&d, "node2").expect("another node's file").standby);
        std::fs::copy(path(&d, "node1"), path(&d, "node2")).expect("copied");
        assert!(matches!(read(&d, "node2"), Err(KeptError::Garbled { .. })));
        std::fs::write(path(&d, "node1"), "standby").expect("garbled");
        let garbled = read(&d, "node1").unwrap_err().to_string();
        assert!(garbled.contains("not a dvip state file"), "{garbled}");
        let _ = std::fs::remove_dir_all(d);
    }
}
