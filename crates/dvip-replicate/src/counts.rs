//! A node's counts for one key: connections open now (a gauge) and connections made per
//! second lately (the recent rate).
//!
//! Owns adding counts up and forgetting what is older than the longest window. It must not
//! know whose counts they are.

use serde::{Deserialize, Serialize};

/// Connections made, per second (seconds since the caller's epoch), for the last `horizon`
/// seconds: `(second, count)` in order of seconds. A sorted vector, not a map: most keys hold
/// a few seconds, and a map's first node alone would cost more than the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub per_second: Vec<(u64, u32)>,
}

impl Recent {
    /// Recent counts from `(second, count)` pairs in any order (a second given twice adds up).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u32)>) -> Self {
        let mut recent = Self::default();
        for (second, n) in pairs {
            recent.merge(second, n, u32::saturating_add);
        }
        recent
    }

    /// The count of `second`, made anew with `combine(old, n)`, or `n` where there was none.
    fn merge(&mut self, second: u64, n: u32, combine: impl Fn(u32, u32) -> u32) {
        // New counts nearly always go to the latest second: look there first.
        match self.per_second.last_mut() {
            Some((last, count)) if *last == second => *count = combine(*count, n),
            Some((last, _)) if *last < second => self.per_second.push((second, n)),
            None => self.per_second.push((second, n)),
            Some(_) => match self.per_second.binary_search_by_key(&second, |&(s, _)| s) {
                Ok(at) => self.per_second[at].1 = combine(self.per_second[at].1, n),
                Err(at) => self.per_second.insert(at, (second, n)),
            },
        }
    }

    /// One more connection made in `second`.
    pub fn add_one(&mut self, second: u64) {
        self.merge(second, 1, u32::saturating_add);
    }

    /// Takes the larger of each second's count here and in `heard` (what was heard of one
    /// node for a second gone by only grows).
    pub fn merge_max(&mut self, heard: &Self) {
        for &(second, n) in &heard.per_second {
            self.merge(second, n, u32::max);
        }
    }

    /// Connections made in the `window` seconds up to second `now` (that second included).
    pub fn within(&self, now: u64, window: u64) -> u64 {
        let from = (now + 1).saturating_sub(window);
        let start = self.per_second.partition_point(|&(s, _)| s < from);
        self.per_second[start..]
            .iter()
            .take_while(|&&(s, _)| s <= now)
            .map(|&(_, n)| u64::from(n))
            .sum()
    }

    /// The seconds from `from` on.
    pub fn since(&self, from: u64) -> Self {
        let start = self.per_second.partition_point(|&(s, _)| s < from);
        Self {
            per_second: self.per_second[start..].to_vec(),
        }
    }

    /// Forgets the seconds before `from`.
    pub fn forget_before(&mut self, from: u64) {
        let start = self.per_second.partition_point(|&(s, _)| s < from);
        self.per_second.drain(..start);
    }

    /// Adds `other`'s counts second by second.
    pub fn add(&mut self, other: &Self) {
        for &(second, n) in &other.per_second {
            self.merge(second, n, u32::saturating_add);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(pairs: &[(u64, u32)]) -> Recent {
        Recent::from_pairs(pairs.iter().copied())
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

    #[test]
    fn seconds_stay_in_order_whichever_comes_first_and_max_takes_the_larger() {
        let mut r = recent(&[(5, 1), (3, 2), (9, 1), (5, 1)]);
        assert_eq!(r.per_second, [(3, 2), (5, 2), (9, 1)]);
        r.add_one(4);
        r.add_one(9);
        assert_eq!(r.per_second, [(3, 2), (4, 1), (5, 2), (9, 2)]);
        r.merge_max(&recent(&[(3, 1), (5, 7), (10, 1)]));
        assert_eq!(r.per_second, [(3, 2), (4, 1), (5, 7), (9, 2), (10, 1)]);
    }
}
