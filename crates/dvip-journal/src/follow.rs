//! Following a log file an MTA writes (Exim's mainlog, say) into a journal, line by line,
//! through rotation, with the position kept so that a restart neither loses nor repeats a line.
//!
//! The position (the file's device and inode, the byte after the last line taken, and where
//! the journal ended after that line) is kept in `follow.<hex of the file's path>` inside the
//! journal directory, replaced whole by a rename after each append. A crash between the append
//! and that rename is repaired on the next start: the records the journal holds past the
//! position's journal end are matched against the file's next lines, and every line that
//! matches is counted as taken.
//!
//! Rotation: when the path names a new file, the old one (still open) is read to its end and
//! then the new one from its start; when the file got shorter (copytruncate), it is read again
//! from its start. Rotated while no follower ran: the old file is looked for beside the new one
//! by its inode and read to its end first. This file never reads a record for a subscriber.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::{lower_hex, walk, Header, Timestamp, HEADER_LEN};
use crate::index::open_data;
use crate::journal::{read_full_at, sync_dir, Durability, Journal};
use crate::writer::Writer;

/// Bytes read from the file at a time, and so the longest record one line makes.
const CHUNK: usize = 1 << 20;

/// Where following stands, as kept on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    device: u64,
    inode: u64,
    /// The byte after the last line taken.
    offset: u64,
    /// The journal's segment and byte after the record of that line.
    journal_end: Option<(u32, u64)>,
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FollowProgress {
    /// Lines appended to the journal.
    pub lines: u64,
    /// Their bytes, newlines not counted (as the records hold them).
    pub bytes: u64,
    /// The path named a new file (rename rotation); the old one was read to its end first.
    pub rotated: bool,
    /// The file got shorter (copytruncate) and was read again from its start.
    pub truncated: bool,
}

/// Follows one file into one journal.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    writer: Writer,
    position_path: PathBuf,
    position: Position,
    file: Option<File>,
    /// Lines matched against the journal when the follower started (a crash's repair).
    recovered: u64,
    /// Where the file is read into, kept between polls rather than made anew each time.
    buffer: Vec<u8>,
}

impl Follower {
    /// Starts following `path` into `journal` from where the last follower of it stopped (or
    /// from the file's start).
    pub fn open(path: &Path, journal: Journal, durability: Durability) -> Result<Self> {
        let position_path = journal.path().join(position_name(path));
        let position = match fs::read(&position_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::NotAJournal {
                path: position_path.clone(),
                reason: format!("the follow position does not parse: {e}"),
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound => Position::default(),
            Err(e) => {
                return Err(Error::from_io(
                    &position_path,
                    "read the follow position",
                    e,
                ))
            }
        };
        let writer = Writer::new(journal, durability);
        let mut follower = Self {
            path: path.to_owned(),
            writer,
            position_path,
            position,
            file: None,
            recovered: 0,
            buffer: Vec::new(),
        };
        follower.reopen_kept_file()?;
        follower.recover_after_crash()?;
        Ok(follower)
    }

    /// Lines found in the journal at start that the kept position had not yet counted.
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// The file this follower had (by inode), wherever it is now: at the path, or renamed
    /// beside it by a rotation.
    fn reopen_kept_file(&mut self) -> Result<()> {
        if self.position.inode == 0 {
            return Ok(());
        }
        let same =
            |m: &fs::Metadata| m.dev() == self.position.device && m.ino() == self.position.inode;
        let mut candidates = vec![self.path.clone()];
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(entries) = fs::read_dir(dir) {
            candidates.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        for candidate in candidates {
            if fs::metadata(&candidate).is_ok_and(|m| same(&m)) {
                if let Ok(file) = File::open(&candidate) {
                    self.file = Some(file);
                    return Ok(());
                }
            }
        }
        // Gone (rotated and compressed or removed): nothing more can be read of it.
        Ok(())
    }

    /// Counts as taken the lines whose records the journal holds past the kept position.
    fn recover_after_crash(&mut self) -> Result<()> {
        let (Some(file), Some((segment, end))) = (&self.file, self.position.journal_end) else {
            return Ok(());
        };
        let journal = self.writer.journal();
        let magic = journal.meta()?.header_magic;
        let mut offset = self.position.offset;
        let mut matched = 0;
        let mut last_end = None;
        'segments: for id in journal.segments()?.into_iter().filter(|&s| s >= segment) {
            let Some(data) = open_data(journal, id)? else {
                continue;
            };
            let data_path = journal.segment_path(id);
            let len = data.metadata().at(&data_path, "stat the segment")?.len();
            let from = if id == segment { end } else { 0 };
            let mut bytes = vec![0; len.saturating_sub(from) as usize];
            let got = read_full_at(&data, &mut bytes, from).at(&data_path, "read the segment")?;
            bytes.truncate(got);
            let walked = walk(&bytes, from, magic);
            for &at in &walked.offsets {
                let local = (at - from) as usize;
                let header = Header::decode_at(&bytes, local).expect("walked");
                let payload = &bytes[local + HEADER_LEN..local + HEADER_LEN + header.len as usize];
                let mut line = vec![0; payload.len() + 1];
                let got = read_full_at(file, &mut line, offset)
                    .at(&self.path, "read the followed file")?;
                if got != line.len()
                    || &line[..payload.len()] != payload
                    || line[payload.len()] != b'\n'
                {
                    break 'segments;
                }
                offset += line.len() as u64;
                matched += 1;
                last_end = Some((id, at + header.record_len()));
            }
        }
        if matched > 0 {
            self.position.offset = offset;
            self.position.journal_end = last_end;
            self.recovered = matched;
            self.save()?;
        }
        Ok(())
    }

    /// Appends every whole line written since the last poll; follows a rotation.
    pub fn poll(&mut self) -> Result<FollowProgress> {
        let mut progress = FollowProgress::default();
        let current = match fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(Error::from_io(&self.path, "stat the followed file", e)),
        };
        let renamed = current.as_ref().is_some_and(|m| {
            self.file.is_none() || m.dev() != self.position.device || m.ino() != self.position.inode
        });
        if let Some(file) = self.file.take() {
            let len = file
                .metadata()
                .at(&self.path, "stat the followed file")?
                .len();
            if len < self.position.offset {
                progress.truncated = true;
                self.position.offset = 0;
            }
            // Everything the old file holds, its unfinished last line included, once renamed.
            self.take_lines(&file, renamed, &mut progress)?;
            if renamed {
                progress.rotated = true;
            } else {
                self.file = Some(file);
            }
        }
        if renamed {
            let Ok(file) = File::open(&self.path) else {
                return Ok(progress);
            };
            let meta = file.metadata().at(&self.path, "stat the followed file")?;
            self.position = Position {
                device: meta.dev(),
                inode: meta.ino(),
                offset: 0,
                journal_end: self.position.journal_end,
            };
            self.save()?;
            self.take_lines(&file, false, &mut progress)?;
            self.file = Some(file);
        }
        Ok(progress)
    }

    /// Appends the whole lines of `file` past the position (and an unfinished last line too
    /// when `to_end`), saving the position after each append and counting them in `progress`.
    fn take_lines(
        &mut self,
        file: &File,
        to_end: bool,
        progress: &mut FollowProgress,
    ) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(CHUNK, 0);
        let taken = self.take_lines_into(file, to_end, &mut buffer, progress);
        self.buffer = buffer;
        taken
    }

    fn take_lines_into(
        &mut self,
        file: &File,
        to_end: bool,
        buffer: &mut [u8],
        progress: &mut FollowProgress,
    ) -> Result<()> {
        loop {
            let got = read_full_at(file, buffer, self.position.offset)
                .at(&self.path, "read the followed file")?;
            let chunk = &buffer[..got];
            let whole = match chunk.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                // A line longer than a chunk goes in as chunk-long pieces, or it would
                // stop the follower for good.
                None if got == CHUNK => got,
                None if to_end && got > 0 => got,
                None => 0,
            };
            if whole == 0 {
                return Ok(());
            }
            let lines: Vec<&[u8]> = chunk[..whole].split(|&b| b == b'\n').collect();
            // A chunk ending in a newline splits into one empty piece after it.
            let lines = if chunk[whole - 1] == b'\n' {
                &lines[..lines.len() - 1]
            } else {
                &lines[..]
            };
            let time = Timestamp::from_system(std::time::SystemTime::now());
            self.writer.append_batch(time, lines.iter().copied())?;
            self.position.offset += whole as u64;
            self.position.journal_end = self.writer.last_end();
            self.save()?;
            progress.lines += lines.len() as u64;
            progress.bytes += lines.iter().map(|l| l.len() as u64).sum::<u64>();
        }
    }

    fn save(&self) -> Result<()> {
        let mut staging = self.position_path.clone().into_os_string();
        staging.push(".new");
        let staging = PathBuf::from(staging);
        let bytes = serde_json::to_vec(&self.position).expect("a position serializes");
        let file = File::create(&staging).at(&staging, "write the follow position")?;
        file.write_all_at(&bytes, 0)
            .at(&staging, "write the follow position")?;
        let disk = self.writer.durability() == Durability::Disk;
        if disk {
            file.sync_data().at(&staging, "sync the follow position")?;
        }
        fs::rename(&staging, &self.position_path)
            .at(&self.position_path, "replace the follow position")?;
        if disk {
            sync_dir(self.writer.journal().path())?;
        }
        Ok(())
    }
}

/// `follow.` and the followed path's bytes in hex (readable with `xxd -r -p`); a path too long
/// for a file name keeps its first 100 bytes and adds a hash of the whole.
fn position_name(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() <= 100 {
        return format!("follow.{}", lower_hex(bytes));
    }
    // FNV-1a: stable across builds and versions, unlike std's hasher.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("follow.{}-{hash:016x}", lower_hex(&bytes[..100]))
}
