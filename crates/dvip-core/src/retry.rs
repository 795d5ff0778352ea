//! Plumbs that failed: when each is tried again, and when the node gives it up.
//!
//! Owns the bookkeeping of addresses a node holds but could not put on an interface: the
//! backoff between tries and the deadline after which the node stops holding the address so
//! that another candidate serves it. It must not decide what that means for the cluster (the
//! node releases and re-announces) nor plumb anything.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// How long after the first failure a plumb is tried again; each failure doubles it.
pub const PLUMB_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two tries of one plumb.
pub const PLUMB_RETRY_MAX: Duration = Duration::from_secs(1);

/// One address that failed to plumb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failing {
    /// When it first failed (since its last success).
    since: Duration,
    /// The wait before the next try.
    delay: Duration,
    /// When it is tried next.
    next: Duration,
    /// How many times it failed.
    failures: u32,
}

/// Addresses held but not plumbed, with when to try each again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Retries {
    failing: BTreeMap<IpAddr, Failing>,
}

/// What is due at one moment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// Try these again now.
    pub(crate) retry: Vec<IpAddr>,
    /// These failed for longer than the deadline: give them up.
    pub(crate) give_up: Vec<IpAddr>,
}

impl Retries {
    /// A plumb of `address` failed at `now`; its number of failures so far.
    pub(crate) fn failed(&mut self, address: IpAddr, now: Duration) -> u32 {
        let entry = self
            .failing
            .entry(address)
            .and_modify(|f| f.delay = (f.delay * 2).min(PLUMB_RETRY_MAX))
            .or_insert(Failing {
                since: now,
                delay: PLUMB_RETRY_FIRST,
                next: now,
                failures: 0,
            });
        entry.next = now + entry.delay;
        entry.failures += 1;
        entry.failures
    }

    /// `address` is plumbed, or no longer held: nothing to try.
    pub(crate) fn forget(&mut self, address: IpAddr) {
        self.failing.remove(&address);
    }

    pub(crate) fn clear(&mut self) {
        self.failing.clear();
    }

    /// What is due at `now`: addresses failing since `deadline` ago or longer are given up
    /// (and forgotten here); the others whose wait is over are tried again, once (the next
    /// try is armed when the caller reports that one failing too).
    pub(crate) fn due(&mut self, now: Duration, deadline: Duration) -> Due {
        let mut due = Due::default();
        for (&address, failing) in &mut self.failing {
            if now >= failing.since + deadline {
                due.give_up.push(address);
            } else if now >= failing.next {
                due.retry.push(address);
                // Not again until this try is reported: a failure re-arms it.
                failing.next = failing.since + deadline;
            }
        }
        for address in &due.give_up {
            self.failing.remove(address);
        }
        due
    }

    /// Addresses failing now that `select` picks, marked as tried at once (their interface
    /// just became usable: waiting out the backoff would only keep them dark).
    pub(crate) fn retry_now(
        &mut self,
        deadline: Duration,
        mut select: impl FnMut(IpAddr) -> bool,
    ) -> Vec<IpAddr> {
        let mut now = Vec::new();
        for (&address, failing) in &mut self.failing {
            if select(address) {
                failing.next = failing.since + deadline;
                now.push(address);
            }
        }
        now
    }

    /// When [`Retries::due`] has something next, if anything fails.
    pub(crate) fn next_due(&self, deadline: Duration) -> Option<Duration> {
        self.failing
            .values()
            .map(|f| f.next.min(f.since + deadline))
            .min()
    }

    /// The addresses failing now.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.failing.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
    const DEADLINE: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tries_back_off_and_the_address_is_given_up_at_the_deadline() {
        let mut r = Retries::default();
        assert_eq!(r.failed(A, ms(0)), 1);
        assert_eq!(r.due(ms(50), DEADLINE), Due::default());
        assert_eq!(r.next_due(DEADLINE), Some(ms(100)));
        assert_eq!(r.due(ms(100), DEADLINE).retry, vec![A]);
        // Tried once; nothing more until that try is reported.
        assert_eq!(r.due(ms(150), DEADLINE), Due::default());
        assert_eq!(r.failed(A, ms(110)), 2);
        assert_eq!(r.next_due(DEADLINE), Some(ms(310)));
        r.failed(A, ms(310));
        r.failed(A, ms(710));
        r.failed(A, ms(1510));
        // Capped at a second.
        assert_eq!(r.next_due(DEADLINE), Some(ms(2510)));
        let due = r.due(ms(3000), DEADLINE);
        assert_eq!(due.give_up, vec![A]);
        assert_eq!(r.addresses().count(), 0);
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let mut r = Retries::default();
        r.failed(A, ms(0));
        r.forget(A);
        assert_eq!(r.next_due(DEADLINE), None);
        // A new failure starts a new deadline.
        r.failed(A, ms(5000));
        assert_eq!(r.due(ms(7000), DEADLINE).give_up, Vec::<IpAddr>::new());
        assert_eq!(r.due(ms(8000), DEADLINE).give_up, vec![A]);
    }
}
