//! Source files and positions: what was read, from where, and how to point into it.
//!
//! Owns reading files (through [`Files`], so tests and fuzzers can serve them from memory) and
//! turning byte offsets into line and column. It must not interpret what it reads.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Where configuration text comes from.
pub trait Files {
    /// The whole text of `path`.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// A name that is the same for every way of spelling the same file, for include cycles.
    fn identity(&self, path: &Path) -> io::Result<PathBuf>;
    /// When `path` is a directory, the names in it that an include reads: every entry whose
    /// name does not start with `.`, in lexical (byte) order. `None` when it is not a
    /// directory.
    fn directory(&self, path: &Path) -> Option<io::Result<Vec<PathBuf>>>;
}

/// Sorts directory entries as an include reads them, dropping hidden ones.
fn include_order(mut names: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt as _;
    names.retain(|n| !n.as_bytes().starts_with(b"."));
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFiles;

impl Files for DiskFiles {
    /// Only a regular file is read, and never more than [`FILE_SIZE_MAX`] bytes of it: an
    /// include of a FIFO would wait for a writer forever (and with it a reload), one of
    /// `/dev/zero` would read without end. The file is opened without blocking and checked
    /// as opened, so it cannot be swapped for a FIFO between the check and the read.
    fn read(&self, path: &Path) -> io::Result<String> {
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a directory, FIFO, socket or device)",
            ));
        }
        if metadata.len() > FILE_SIZE_MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes, more than the {} MB a configuration may be",
                    metadata.len(),
                    FILE_SIZE_MAX >> 20
                ),
            ));
        }
        let mut bytes = Vec::new();
        // A file that grows while read stops at the limit and is refused below.
        file.take(FILE_SIZE_MAX as u64 + 1)
            .read_to_end(&mut bytes)?;
        String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not UTF-8 text (bad byte at offset {at})"),
            )
        })
    }

    fn identity(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn directory(&self, path: &Path) -> Option<io::Result<Vec<PathBuf>>> {
        if !std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        let names = std::fs::read_dir(path).and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        });
        Some(names.map(|names| {
            include_order(names)
                .into_iter()
                .map(|n| path.join(n))
                .collect()
        }))
    }
}

/// Files held in memory, keyed by the exact path a config or include names.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryFiles {
    /// An empty set of files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> &mut Self {
        self.files.insert(normalize(&path.into()), text.into());
        self
    }
}

impl Files for MemoryFiles {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn identity(&self, path: &Path) -> io::Result<PathBuf> {
        let path = normalize(path);
        if self.files.contains_key(&path) {
            Ok(path)
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such file"))
        }
    }

    /// A path is a directory when some file lies under it.
    fn directory(&self, path: &Path) -> Option<io::Result<Vec<PathBuf>>> {
        let dir = normalize(path);
        let mut names: Vec<std::ffi::OsString> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return None;
        }
        names.dedup();
        Some(Ok(include_order(names)
            .into_iter()
            .map(|n| dir.join(n))
            .collect()))
    }
}

/// Removes `.` and folds `..` lexically, which is all an in-memory tree needs.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub(crate) u32);

/// A range of bytes in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The smallest span covering both (which must be in the same file).
    pub fn to(self, other: Self) -> Self {
        debug_assert_eq!(self.file, other.file, "a span cannot cross files");
        Self {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A position a person reads: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as it was named (on the command line or in an include).
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One file that was read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as named by the user or the including file.
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    line_starts: Vec<u32>,
}

impl SourceFile {
    fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| offset(i + 1)))
            .collect();
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// 0-based index of the line holding `byte`.
    fn line_index(&self, byte: u32) -> usize {
        self.line_starts
            .partition_point(|&start| start <= byte)
            .saturating_sub(1)
    }

    /// The text of the line holding `byte`, without its newline.
    pub fn line_text(&self, byte: u32) -> &str {
        let index = self.line_index(byte);
        let start = self.line_starts[index] as usize;
        let end = self
            .line_starts
            .get(index + 1)
            .map_or(self.text.len(), |&e| e as usize);
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// Line and column (both 1-based) of `byte`.
    pub fn line_column(&self, byte: u32) -> (u32, u32) {
        let index = self.line_index(byte);
        let start = self.line_starts[index] as usize;
        let byte = (byte as usize).min(self.text.len());
        // Columns count characters so a caret lines up under UTF-8 text; a span never
        // starts inside a character because the lexer only cuts at character boundaries.
        let column = self.text.get(start..byte).map_or(0, |s| s.chars().count());
        (offset(index) + 1, offset(column) + 1)
    }
}

/// Every file read while loading one configuration, in the order first read.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub(crate) fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile::new(path, text));
        FileId(offset(self.files.len() - 1))
    }

    /// The file behind an id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Where a span starts, as a person reads it.
    pub fn location(&self, span: Span) -> Location {
        let file = self.file(span.file);
        let (line, column) = file.line_column(span.start);
        Location {
            path: file.path.clone(),
            line,
            column,
        }
    }

    /// How many files were read.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when nothing could be read at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Byte offsets are stored in 32 bits: a config file over 4 GiB is refused before lexing.
pub(crate) fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The largest file we read; anything bigger is surely not a config.
pub(crate) const FILE_SIZE_MAX: usize = 256 * 1024 * 1024;
