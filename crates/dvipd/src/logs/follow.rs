//! Following a file into its journal, for a `Log_Follow` stanza.
//!
//! Owns one file's thread: opening the follower (which repairs what a crash left), polling it,
//! counting what it appended, and trying again after a failure. The file handling itself
//! (rotation, the kept position) is `dvip_journal::Follower`'s. It must not route syslog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dvip_config::{InputJournal, LogFollow};
use dvip_journal::{Durability, Follower};
use tracing::{info, warn};

use super::metrics::LogMetrics;
use super::{open_journal, wait, RETRY};

/// How often the file is looked at for new lines.
const POLL: Duration = Duration::from_millis(100);

fn open(follow: &LogFollow, journal: &InputJournal) -> dvip_journal::Result<Follower> {
    Follower::open(&follow.file, open_journal(journal)?, Durability::Process)
}

/// Follows `follow.file` into `journal` until `stop`. On a failure the follower is dropped
/// and opened again after [`RETRY`]: opening finds, by matching, what the failed one had
/// already appended.
pub(super) fn run(
    follow: &LogFollow,
    journal: &InputJournal,
    metrics: &LogMetrics,
    stop: &AtomicBool,
) {
    let file = follow.file.display().to_string();
    let mut follower: Option<Follower> = None;
    let mut failing = false;
    // Said once each time the file goes missing: an MTA not started yet, or a path mistyped.
    let mut missing = false;
    while !stop.load(Ordering::Relaxed) {
        let absent = !follow.file.exists();
        if absent && !missing {
            info!(file, "waiting for the file to appear");
        }
        missing = absent;
        let result = match follower.as_mut() {
            Some(f) => f.poll().map(Some),
            None => open(follow, journal).map(|f| {
                if f.recovered() > 0 {
                    info!(
                        file,
                        journal = journal.log,
                        lines = f.recovered(),
                        "found lines appended just before the last stop; not taking them again"
                    );
                }
                follower = Some(f);
                None
            }),
        };
        match result {
            Ok(progress) => {
                if failing {
                    info!(file, journal = journal.log, "following again");
                    failing = false;
                }
                if let Some(p) = progress {
                    if p.lines > 0 {
                        metrics.appended(&journal.log, p.lines, p.bytes);
                    }
                    if p.rotated {
                        info!(file, "the file was rotated; now following the new one");
                    }
                    if p.truncated {
                        info!(
                            file,
                            "the file was truncated; reading it again from its start"
                        );
                    }
                }
                wait(stop, POLL);
            }
            Err(e) => {
                metrics.write_failed(&journal.log);
                if !failing {
                    warn!(
                        file,
                        journal = journal.log,
                        "cannot follow (trying again every second): {e}"
                    );
                }
                failing = true;
                follower = None;
                wait(stop, RETRY);
            }
        }
    }
}
