//! A node's counts for one key: connections open now (a gauge) and connections made per
//! second lately (the recent rate).
//!
//! Owns adding counts up and forgetting what is older than the longest window. It must not
//! know whose counts they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Connections made, per second (seconds since the caller's epoch), for the last `horizon`
/// seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub per_second: BTreeMap<u64, u32>,
}

impl Recent {
    /// Connections made in the `window` seconds up to second `now` (that second included).
    pub fn within(&self, now: u64, window: u64) -> u64 {
        let from = (now + 1).saturating_sub(window);
        self.per_second
            .range(from..=now)
            .map(|(_, &n)| u64::from(n))
            .sum()
    }

    /// Forgets the seconds before `from`.
    pub fn forget_before(&mut self, from: u64) {
        self.per_second = self.per_second.split_off(&from);
    }

    fn add(&mut self, other: &Self) {
        for (&second, &n) in &other.per_second {
            let slot = self.per_second.entry(second).or_default();
            *slot = slot.saturating_add(n);
        }
    }
}

/// One node's counts for one key, or their sum over nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Connections open now.
    pub open: u32,
    /// Connections made lately.
    pub recent: Recent,
}

impl Counts {
    /// Nothing open and nothing recent: the key can be dropped.
    pub fn is_empty(&self) -> bool {
        self.open == 0 && self.recent.per_second.is_empty()
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.open = self.open.saturating_add(other.open);
        self.recent.add(&other.recent);
    }

    /// `other`'s recent counts alone (what a departed member leaves behind).
    pub fn add_recent(&mut self, other: &Self) {
        self.recent.add(&other.recent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(pairs: &[(u64, u32)]) -> Recent {
        Recent {
            per_second: pairs.iter().copied().collect(),
        }
    }

    #[test]
    fn a_window_counts_its_seconds_and_no_others() {
        let r = recent(&[(8, 1), (10, 2), (11, 4), (12, 8)]);
        assert_eq!(r.within(12, 1), 8);
        assert_eq!(r.within(12, 3), 14);
        assert_eq!(r.within(12, 60), 15);
        assert_eq!(r.within(9, 60), 1);
    }

    #[test]
    fn sums_add_gauges_and_rates_second_by_second() {
        let mut a = Counts {
            open: 2,
            recent: recent(&[(1, 1), (2, 1)]),
        };
        a.add(&Counts {
            open: 3,
            recent: recent(&[(2, 5), (3, 1)]),
        });
        assert_eq!(a.open, 5);
        assert_eq!(a.recent, recent(&[(1, 1), (2, 6), (3, 1)]));
        a.recent.forget_before(2);
        assert_eq!(a.recent, recent(&[(2, 6), (3, 1)]));
    }
}
