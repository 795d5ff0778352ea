//! The whole-file write lock that jlog takes on a journal's files, so a jlog process and a dvip
//! process can share one journal.
//!
//! jlog takes `fcntl(F_SETLKW)` record locks over the whole file. dvip takes the open file
//! description kind (`F_OFD_SETLKW`) over the same range: the kernel makes the two kinds
//! conflict, so a dvip writer and a jlog writer exclude each other, while dvip's own locks stay
//! tied to the file handle rather than the process (two handles in one process exclude each
//! other, and closing one file never drops a lock held through another). This file locks and
//! unlocks; it knows nothing of what the file holds.

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;

/// A held lock; dropping it unlocks.
#[must_use = "the lock is released when this is dropped"]
pub(crate) struct Locked<'a> {
    file: &'a File,
}

/// Waits for the whole-file write lock on `file`.
pub(crate) fn lock(file: &File) -> io::Result<Locked<'_>> {
    set(file, libc::F_WRLCK)?;
    Ok(Locked { file })
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Unlocking a lock we hold cannot fail but for a closed descriptor, and we borrow
        // the file; closing it releases the lock in any case.
        let _ = set(self.file, libc::F_UNLCK);
    }
}

fn set(file: &File, kind: libc::c_int) -> io::Result<()> {
    let range = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // Open file description locks require 0 here.
        l_pid: 0,
    };
    loop {
        match fcntl(file, FcntlArg::F_OFD_SETLKW(&range)) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}
