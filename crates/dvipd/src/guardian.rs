//! The guardian: a small process that outlives a crashed dvipd just long enough to remove the
//! addresses it held.
//!
//! Owns the guardian's life on both sides. dvipd starts it (the same program, `--guard`) with
//! a pipe on its standard input whose other end only dvipd holds; dvipd never writes to it.
//! However dvipd ends (a clean stop, a panic, `kill -9`, the OOM killer), the kernel closes
//! that end, the guardian reads end-of-file and removes every address carrying dvip's mark
//! from the namespace they share, at once instead of after the addresses' lifetime. It must not
//! touch anything else, and it ignores the signals a terminal or a service manager sends to a
//! whole group (SIGINT, SIGTERM, SIGHUP): it has work left to do after dvipd is gone.

use std::io::Read;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::plumb::Plumber;

/// A running guardian, as dvipd holds it: dropping the pipe's end lets it clean up.
pub struct Guardian {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Guardian {
    /// Starts `program --guard` (normally this very program) in the current namespace.
    pub fn start(program: &std::path::Path) -> std::io::Result<Self> {
        let mut child = Command::new(program)
            .arg("--guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// The guardian's process id (for `dvip info` and tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// After a clean stop: lets the guardian look for leftovers and waits (up to `within`)
    /// for it to finish, so no process outlives dvipd.
    pub fn finish(mut self, within: Duration) {
        drop(self.pipe.take());
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The guardian's side: waits for end-of-file on standard input, then removes every address
/// dvip added in this network namespace. Returns how many it removed.
pub fn guard() -> std::io::Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered and never awaited: these signals no longer end the process.
        let _ignored = [
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ];
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while !matches!(stdin.read(&mut sink), Ok(0) | Err(_)) {}
        })
        .await
        .map_err(std::io::Error::other)?;
        let mut plumber = Plumber::connect(Duration::from_secs(1))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let removed = plumber
            .remove_all_ours()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(removed.len())
    })
}
