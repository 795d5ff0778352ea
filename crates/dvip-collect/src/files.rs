//! The aggregated files held open between batches: at most `Max_Open` of them, each closed
//! once it has gone `Max_Idle` seconds without a write, so a busy log is not opened again for
//! every batch and a quiet one does not hold a descriptor for ever.
//!
//! Owns the open handles and their limits. It must not decide what goes into a file nor
//! record what was written ([`crate::pull`] and [`crate::state`] do): a handle found to no
//! longer be the file at its name (renamed or removed meanwhile) is opened again, since what
//! was written is recorded by name.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{CollectError, Output};

/// Files held open at once when `Max_Open` is not set.
pub const MAX_OPEN_DEFAULT: u32 = 256;

/// Seconds a file stays open without a write when `Max_Idle` is not set.
pub const MAX_IDLE_DEFAULT: u32 = 60;

#[derive(Debug)]
struct Held {
    file: Arc<File>,
    last: Instant,
}

/// The open files of one aggregator, shared by its pullers.
#[derive(Debug)]
pub struct OpenFiles {
    max_open: usize,
    max_idle: Duration,
    open: Mutex<HashMap<PathBuf, Held>>,
}

impl OpenFiles {
    /// Limits from the configuration (`None`: the defaults); at least one file is held.
    pub fn new(max_open: Option<u32>, max_idle: Option<u32>) -> Self {
        Self {
            max_open: max_open.unwrap_or(MAX_OPEN_DEFAULT).max(1) as usize,
            max_idle: Duration::from_secs(max_idle.unwrap_or(MAX_IDLE_DEFAULT).into()),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The file at `path`, open for appending: the one held if it is still the file of that
    /// name, else opened (with its directories) in `output`'s modes, closing the file written
    /// longest ago when `Max_Open` are held.
    pub(crate) fn get(&self, path: &Path, output: &Output) -> Result<Arc<File>, CollectError> {
        let now = Instant::now();
        let mut open = self.lock_without_idle(now);
        if let Some(held) = open.get_mut(path) {
            if same_file(&held.file, path) {
                held.last = now;
                return Ok(Arc::clone(&held.file));
            }
            open.remove(path);
        }
        while open.len() >= self.max_open {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, held)| held.last)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            open.remove(&oldest);
        }
        let file = Arc::new(open_for_append(path, output)?);
        open.insert(
            path.to_owned(),
            Held {
                file: Arc::clone(&file),
                last: now,
            },
        );
        Ok(file)
    }

    /// Closes the files that have gone `Max_Idle` without a write.
    pub fn close_idle(&self) {
        drop(self.lock_without_idle(Instant::now()));
    }

    /// The held files, with those idle past `Max_Idle` at `now` closed first.
    fn lock_without_idle(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Held>> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|_, held| now.duration_since(held.last) < self.max_idle);
        open
    }

    /// How many files are held open.
    pub fn held(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// Whether the open `file` is still the one named `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn open_for_append(path: &Path, output: &Output) -> Result<File, CollectError> {
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(output.dir_mode)
            .create(dir)
            .map_err(|e| CollectError::io(dir, "create the directory", e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(output.file_mode)
        .open(path)
        .map_err(|e| CollectError::io(path, "open", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(files: OpenFiles) -> Output {
        Output {
            template: crate::Template::parse("/var/log/%{l}/%{n}").expect("a template"),
            file_mode: 0o640,
            dir_mode: 0o755,
            files: Arc::new(files),
        }
    }

    #[test]
    fn no_more_than_max_open_are_held_and_the_longest_unwritten_goes_first() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = output(OpenFiles::new(Some(2), None));
        let path = |n: &str| dir.path().join(n);
        let a = out.files.get(&path("a"), &out).expect("a");
        out.files.get(&path("b"), &out).expect("b");
        out.files.get(&path("a"), &out).expect("a again");
        out.files.get(&path("c"), &out).expect("c");
        assert_eq!(out.files.held(), 2);
        // `b` was written longest ago: `a` is still the handle held.
        let again = out.files.get(&path("a"), &out).expect("a once more");
        assert!(Arc::ptr_eq(&a, &again));
    }

    #[test]
    fn a_file_idle_past_max_idle_is_closed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = output(OpenFiles::new(None, Some(0)));
        out.files.get(&dir.path().join("a"), &out).expect("a");
        out.files.close_idle();
        assert_eq!(out.files.held(), 0);
    }

    #[test]
    fn a_file_renamed_away_is_opened_again_by_its_name() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = output(OpenFiles::new(None, None));
        let path = dir.path().join("sub").join("a");
        let first = out.files.get(&path, &out).expect("a");
        std::fs::rename(&path, dir.path().join("moved")).expect("rename");
        let second = out.files.get(&path, &out).expect("a again");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(path.exists());
    }
}
