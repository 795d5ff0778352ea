//! Accept loops that outlive their errors.
//!
//! Owns what an accept loop does when `accept` fails: out of descriptors (EMFILE, ENFILE), out
//! of memory, a connection reset before it was taken. It backs off and goes on, because a
//! console or metrics endpoint that stops accepting stays dead until dvipd restarts. It must
//! not decide what to do with an accepted connection.

use std::time::Duration;

use tracing::warn;

/// The first pause after a failed accept.
const PAUSE_FIRST: Duration = Duration::from_millis(10);
/// The longest pause between two tries.
const PAUSE_MAX: Duration = Duration::from_secs(1);

/// The pause an accept loop takes after each failure: doubling while failures go on, back to
/// the first after a success.
#[derive(Debug)]
pub struct Backoff {
    what: &'static str,
    next: Duration,
}

impl Backoff {
    /// For the loop accepting `what` (for the log).
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            next: PAUSE_FIRST,
        }
    }

    /// An accept worked.
    pub fn accepted(&mut self) {
        self.next = PAUSE_FIRST;
    }

    /// An accept failed: says so (once per pause) and waits before the next try.
    pub async fn failed(&mut self, e: &std::io::Error) {
        let pause = self.pause();
        warn!(
            "cannot accept {} connections ({e}): trying again in {} ms",
            self.what,
            pause.as_millis()
        );
        tokio::time::sleep(pause).await;
    }

    fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(PAUSE_MAX);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_start_over_after_a_success() {
        let mut b = Backoff::new("test");
        let pauses: Vec<u128> = (0..9).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.accepted();
        assert_eq!(b.pause(), PAUSE_FIRST);
    }
}
