//! A journal directory: creating and opening it, its metastore, its segments, and its
//! subscribers' checkpoints with the segment removal that moving a checkpoint allows.
//!
//! Appending lives in `writer`, reading in `reader`, the index in `index`. This file never
//! reads a record.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::{
    checkpoint_name, parse_checkpoint_name, parse_segment_name, segment_name, Meta, RecordId,
    Safety, CHECKPOINT_LEN, FILE_MODE, INDEX_SUFFIX, METASTORE, METASTORE_LEN, UNIT_LIMIT_DEFAULT,
};
use crate::index;
use crate::lock::lock;

/// How long a record must last once a write of it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// The record is in the kernel when the write returns: it survives the writer's crash,
    /// not the machine's. jlog's own writers give this at every safety level.
    #[default]
    Process,
    /// The record, and any new segment and checkpoint, are on the disk (fdatasync) when the
    /// write returns: it survives a power loss.
    Disk,
}

impl Durability {
    pub(crate) fn safety(self) -> Safety {
        match self {
            Self::Process => Safety::AlmostSafe,
            Self::Disk => Safety::Safe,
        }
    }
}

/// Where a new subscriber starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// At the oldest record still kept.
    Begin,
    /// After the last record written so far.
    End,
}

/// How to make a journal that does not exist yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOptions {
    /// Segment size past which writers move to a new segment.
    pub unit_limit: u32,
    pub durability: Durability,
    /// Subscribers that exist from the first moment, so no record is removed before they read it.
    pub subscribers: Vec<String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            unit_limit: UNIT_LIMIT_DEFAULT,
            durability: Durability::Process,
            subscribers: Vec::new(),
        }
    }
}

/// An open journal directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    metastore: File,
}

impl Journal {
    /// Opens the journal at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        match fs::metadata(&dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::NotFound { path: dir }),
            Err(e) => return Err(Error::from_io(&dir, "stat the journal directory", e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::NotAJournal {
                    path: dir,
                    reason: "not a directory".into(),
                })
            }
            Ok(_) => {}
        }
        let path = dir.join(METASTORE);
        let metastore = match OpenOptions::new().read(true).write(true).open(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotAJournal {
                    path: dir,
                    reason: "it has no metastore".into(),
                })
            }
            other => other.at(&path, "open the metastore")?,
        };
        let journal = Self { dir, metastore };
        journal.meta()?;
        Ok(journal)
    }

    /// Makes the journal with its subscribers in one step: it is built under a temporary name
    /// and renamed into place, so no writer ever sees it without its subscribers. If another
    /// process made it first, that journal is opened.
    pub fn create(dir: impl AsRef<Path>, options: &CreateOptions) -> Result<Self> {
        let dir = dir.as_ref();
        for name in &options.subscribers {
            check_subscriber_name(name)?;
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .at(parent, "create the directory above the journal")?;
        let file_name = dir.file_name().ok_or_else(|| Error::NotAJournal {
            path: dir.to_owned(),
            reason: "the path has no final name".into(),
        })?;
        // Unique per call, not only per process: two threads of one process (dvipd's inputs)
        // may make the same journal at once, and neither may remove the other's staging.
        static STAGINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let staging = parent.join(format!(
            ".{}.new-{}-{}",
            file_name.to_string_lossy(),
            std::process::id(),
            STAGINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&staging);
        DirBuilder::new()
            .mode(dir_mode(FILE_MODE))
            .create(&staging)
            .at(&staging, "create the journal directory")?;
        let built = (|| {
            let meta = Meta::new(options.unit_limit.max(1), options.durability.safety());
            let path = staging.join(METASTORE);
            write_new(&path, &meta.encode())?;
            for name in &options.subscribers {
                write_new(
                    &staging.join(checkpoint_name(name)),
                    &RecordId::START.encode(),
                )?;
            }
            if options.durability == Durability::Disk {
                sync_dir(&staging)?;
            }
            Ok(())
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        match fs::rename(&staging, dir) {
            Ok(()) => {
                if options.durability == Durability::Disk {
                    sync_dir(parent)?;
                }
            }
            // Someone else's journal is already there (rename onto a non-empty directory).
            Err(e) if dir.is_dir() => {
                let _ = fs::remove_dir_all(&staging);
                let _ = e;
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(Error::from_io(dir, "move the new journal into place", e));
            }
        }
        Self::open(dir)
    }

    /// Opens the journal, making it as `options` say if it does not exist; then adds, at the
    /// beginning, any subscriber of `options` it lacks (a crash between making a journal and
    /// adding a subscriber by hand cannot lose that subscriber's records this way).
    pub fn open_or_create(dir: impl AsRef<Path>, options: &CreateOptions) -> Result<Self> {
        let journal = match Self::open(dir.as_ref()) {
            Err(Error::NotFound { .. }) => Self::create(dir, options)?,
            other => other?,
        };
        let existing = journal.subscribers()?;
        for name in &options.subscribers {
            if !existing.contains(name) {
                match journal.add_subscriber(name, Start::Begin) {
                    Ok(()) | Err(Error::SubscriberExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn segment_path(&self, segment: u32) -> PathBuf {
        self.dir.join(segment_name(segment))
    }

    pub(crate) fn index_path(&self, segment: u32) -> PathBuf {
        self.dir
            .join(format!("{}{INDEX_SUFFIX}", segment_name(segment)))
    }

    fn checkpoint_path(&self, subscriber: &str) -> PathBuf {
        self.dir.join(checkpoint_name(subscriber))
    }

    /// The metastore, read under its lock. A 12-byte metastore from before jlog kept a magic
    /// is extended as jlog extends it.
    pub fn meta(&self) -> Result<Meta> {
        let path = self.dir.join(METASTORE);
        let _held = lock(&self.metastore).at(&path, "lock the metastore")?;
        self.read_meta_locked()
    }

    /// The metastore without its lock, for the append path: jlog's writers read it the same
    /// way (through a shared mapping), and the one field that moves is checked again under the
    /// segment's lock by what it implies (a full segment).
    pub(crate) fn meta_unlocked(&self) -> Result<Meta> {
        self.read_meta_locked()
    }

    pub(crate) fn read_meta_locked(&self) -> Result<Meta> {
        let path = self.dir.join(METASTORE);
        // One read: a regular file returns short only at its end, which the length checks.
        let mut buffer = [0; METASTORE_LEN + 1];
        let len = loop {
            match self.metastore.read_at(&mut buffer, 0) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                other => break other.at(&path, "read the metastore")?,
            }
        };
        let bytes = &buffer[..len];
        if len == 12 {
            self.metastore
                .write_all_at(&0u32.to_ne_bytes(), 12)
                .at(&path, "extend the metastore")?;
        }
        let meta = Meta::decode(bytes).ok_or_else(|| Error::NotAJournal {
            path: self.dir.clone(),
            reason: format!("its metastore holds {len} bytes, not a jlog metastore's 16"),
        })?;
        if meta.unit_limit == 0 {
            return Err(Error::NotAJournal {
                path: self.dir.clone(),
                reason: "its metastore sets a segment size of 0".into(),
            });
        }
        Ok(meta)
    }

    pub(crate) fn write_meta_locked(&self, meta: &Meta) -> Result<()> {
        let path = self.dir.join(METASTORE);
        self.metastore
            .write_all_at(&meta.encode(), 0)
            .at(&path, "write the metastore")?;
        if meta.safety == Safety::Safe {
            self.metastore.sync_data().at(&path, "sync the metastore")?;
        }
        Ok(())
    }

    pub(crate) fn metastore(&self) -> &File {
        &self.metastore
    }

    /// The segments on disk, oldest first.
    pub fn segments(&self) -> Result<Vec<u32>> {
        let mut segments: Vec<u32> = self
            .names()?
            .iter()
            .filter_map(|name| parse_segment_name(name))
            .collect();
        segments.sort_unstable();
        Ok(segments)
    }

    fn names(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir).at(&self.dir, "list the journal directory")?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.at(&self.dir, "list the journal directory")?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The subscribers, by name, sorted.
    pub fn subscribers(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .names()?
            .iter()
            .filter_map(|n| parse_checkpoint_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every subscriber with its checkpoint.
    pub fn checkpoints(&self) -> Result<Vec<(String, RecordId)>> {
        let mut out = Vec::new();
        for name in self.subscribers()? {
            match self.checkpoint(&name) {
                Ok(id) => out.push((name, id)),
                // Removed between the listing and the read.
                Err(Error::UnknownSubscriber { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The id of the last record `subscriber` has read.
    pub fn checkpoint(&self, subscriber: &str) -> Result<RecordId> {
        let path = self.checkpoint_path(subscriber);
        let file = self.open_checkpoint(subscriber)?;
        let _held = lock(&file).at(&path, "lock the checkpoint")?;
        read_checkpoint(&file, &path)
    }

    fn open_checkpoint(&self, subscriber: &str) -> Result<File> {
        let path = self.checkpoint_path(subscriber);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::UnknownSubscriber {
                path: self.dir.clone(),
                subscriber: subscriber.to_owned(),
            }),
            other => other.at(&path, "open the checkpoint"),
        }
    }

    /// Moves `subscriber`'s checkpoint to `id`, then removes every segment it has left that
    /// no subscriber still needs (jlog's rule: a segment goes once every checkpoint is past it).
    pub fn set_checkpoint(&self, subscriber: &str, id: RecordId) -> Result<()> {
        let path = self.checkpoint_path(subscriber);
        let file = self.open_checkpoint(subscriber)?;
        let old = {
            let _held = lock(&file).at(&path, "lock the checkpoint")?;
            let empty = file.metadata().at(&path, "stat the checkpoint")?.len() == 0;
            let old = if empty {
                id
            } else {
                read_checkpoint(&file, &path)?
            };
            file.write_all_at(&id.encode(), 0)
                .at(&path, "write the checkpoint")?;
            if self.meta()?.safety == Safety::Safe {
                file.sync_data().at(&path, "sync the checkpoint")?;
            }
            old
        };
        if old.segment < id.segment {
            let earliest = self.checkpoints()?.iter().map(|(_, cp)| cp.segment).min();
            for segment in old.segment..id.segment {
                if earliest.is_some_and(|e| e > segment) {
                    self.remove_segment(segment)?;
                }
            }
        }
        Ok(())
    }

    fn remove_segment(&self, segment: u32) -> Result<()> {
        for path in [self.segment_path(segment), self.index_path(segment)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(Error::from_io(
                        &path,
                        "remove a segment every subscriber has read",
                        e,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds a subscriber whose first read starts as `start` says.
    pub fn add_subscriber(&self, subscriber: &str, start: Start) -> Result<()> {
        check_subscriber_name(subscriber)?;
        let path = self.checkpoint_path(subscriber);
        let made = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path);
        let file = match made {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::SubscriberExists {
                    path: self.dir.clone(),
                    subscriber: subscriber.to_owned(),
                })
            }
            other => other.at(&path, "create the checkpoint")?,
        };
        let id = match start {
            Start::Begin => RecordId {
                segment: self.segments()?.first().copied().unwrap_or(0),
                position: 0,
            },
            Start::End => {
                let meta = self.meta()?;
                let state = index::resync(self, meta.storage_log, &meta)?;
                RecordId {
                    segment: meta.storage_log,
                    position: state.indexed(),
                }
            }
        };
        let _held = lock(&file).at(&path, "lock the checkpoint")?;
        file.write_all_at(&id.encode(), 0)
            .at(&path, "write the checkpoint")?;
        if self.meta()?.safety == Safety::Safe {
            file.sync_data().at(&path, "sync the checkpoint")?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes a subscriber; segments only it held back go at the next checkpoint or clean.
    /// Returns whether it existed.
    pub fn remove_subscriber(&self, subscriber: &str) -> Result<bool> {
        let path = self.checkpoint_path(subscriber);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::from_io(&path, "remove the checkpoint", e)),
        }
    }

    /// Removes every segment older than the oldest checkpoint; returns how many went.
    pub fn clean(&self) -> Result<usize> {
        let Some(earliest) = self.checkpoints()?.iter().map(|(_, cp)| cp.segment).min() else {
            // With no subscriber nobody will read; jlog keeps everything then, and so do we.
            return Ok(0);
        };
        let mut removed = 0;
        for segment in self.segments()?.into_iter().filter(|&s| s < earliest) {
            self.remove_segment(segment)?;
            removed += 1;
        }
        Ok(removed)
    }
}

fn read_checkpoint(file: &File, path: &Path) -> Result<RecordId> {
    let mut bytes = [0; CHECKPOINT_LEN];
    let len = read_full_at(file, &mut bytes, 0).at(path, "read the checkpoint")?;
    match len {
        // A subscriber being added: jlog creates the file, then writes it.
        0 => Ok(RecordId::START),
        CHECKPOINT_LEN => Ok(RecordId::decode(&bytes).unwrap_or(RecordId::START)),
        _ => Err(Error::NotAJournal {
            path: path.to_owned(),
            reason: format!("a checkpoint of {len} bytes, not 8"),
        }),
    }
}

/// The size of an open file: `fstat`, cheaper than the `statx` behind `File::metadata`, on
/// the path every append takes.
pub(crate) fn file_len(file: &File) -> std::io::Result<u64> {
    let stat = nix::sys::stat::fstat(file).map_err(std::io::Error::from)?;
    Ok(stat.st_size as u64)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .at(path, "create")?;
    file.write_all_at(bytes, 0).at(path, "write")
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at(dir, "sync the directory")
}

/// jlog's directory mode: the file mode with `x` wherever `r` is set.
fn dir_mode(file_mode: u32) -> u32 {
    file_mode | ((file_mode & 0o444) >> 2)
}

fn check_subscriber_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 120 {
        Some("it is longer than 120 bytes, which would make its checkpoint's file name too long")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::BadSubscriber {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
