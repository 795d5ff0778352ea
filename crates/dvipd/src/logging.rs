//! Where dvipd's log goes: to journald with each line's level when systemd runs it with its
//! output on the journal, else to stderr.
//!
//! Owns choosing the sink. Through journald, `journalctl -p err -u dvipd` finds the errors;
//! through a plain stderr stream they would all be logged at one priority. It must not log
//! anything itself.

use std::os::fd::AsFd as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Whether `journal_stream` (systemd's `JOURNAL_STREAM`, `DEVICE:INODE`) names the stream
/// with this device and inode: systemd sets it for a service whose output goes to the
/// journal, and a child whose stderr was redirected elsewhere inherits a stale one.
pub fn is_journal(journal_stream: Option<&str>, device: u64, inode: u64) -> bool {
    let Some((d, i)) = journal_stream.and_then(|s| s.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(device) && i.parse() == Ok(inode)
}

/// Starts logging at `RUST_LOG`'s level (default `info`).
pub fn init() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = std::io::stderr();
    let on_journal = nix::sys::stat::fstat(stderr.as_fd()).is_ok_and(|st| {
        is_journal(
            std::env::var("JOURNAL_STREAM").ok().as_deref(),
            st.st_dev,
            st.st_ino,
        )
    });
    if on_journal {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter())
                .with(journald.with_syslog_identifier("dvipd".to_owned()))
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_systemd_named_is_the_journal() {
        assert!(is_journal(Some("8:12345"), 8, 12345));
        assert!(!is_journal(Some("8:12345"), 8, 99), "stderr was redirected");
        assert!(!is_journal(None, 8, 12345));
        assert!(!is_journal(Some("garbage"), 8, 12345));
    }
}
