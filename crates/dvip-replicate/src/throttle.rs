//! Named throttles shared by the cluster: "at most N in any `secs` seconds, over the fleet",
//! decided on the replicated counts of the throttle's hits.
//!
//! Owns the throttle's rule and the words of its limit (`N/secs`). It must not send anything.
//!
//! How close the fleet stays: every node knows the others' hits as of their last batch, at
//! most `max_delay` old. A node lets a hit through when the hits it knows of in the window are
//! under N, so the fleet can pass N plus the hits the other nodes let through in the last
//! `max_delay`: at a steady rate R over N nodes, about `(nodes - 1) / nodes x R x max_delay`
//! over.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Key, Kind, Replica};

/// A throttle's hits, as `dvip throttle show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleCount {
    pub name: String,
    /// The rate it was last asked with on this node (`None`: only other nodes use it).
    pub hits_allowed: Option<u64>,
    /// Its window, in seconds ([`crate::WINDOW_DEFAULT_S`] when this node never used it).
    pub window_s: u64,
    /// Hits in the window, over the cluster.
    pub hits: u64,
    /// Of which this node's.
    pub hits_here: u64,
}

/// `N/secs`: at most `hits` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub hits: u64,
    pub window: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `100/60`: 100 hits in any 60 seconds.
    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || format!("`{text}` is not a rate like `100/60` (hits per seconds)");
        let (hits, secs) = text.split_once('/').ok_or_else(wrong)?;
        let hits: u64 = hits.trim().parse().map_err(|_| wrong())?;
        let secs: u64 = secs.trim().parse().map_err(|_| wrong())?;
        if secs == 0 || secs > 3600 {
            return Err(format!("`{text}`: the window is 1 to 3600 seconds"));
        }
        Ok(Self {
            hits,
            window: Duration::from_secs(secs),
        })
    }
}

impl Replica {
    /// One hit of throttle `name` here: let through (and counted) if the cluster's hits in
    /// the window are under the rate, else held back (and not counted).
    pub fn throttle(&mut self, name: &str, rate: Rate, now: Duration) -> bool {
        self.throttle_rates.insert(name.to_owned(), rate);
        let key = Key::Throttle(name.to_owned());
        let hits = self
            .cluster(&key)
            .recent
            .within(now.as_secs(), rate.window.as_secs());
        if hits >= rate.hits {
            return false;
        }
        self.count(&key, now);
        true
    }
}

impl Replica {
    /// Every throttle with hits lately, here or elsewhere.
    pub fn throttles(&self, now: Duration) -> Vec<ThrottleCount> {
        self.counts_in(Kind::Throttle.range(), None)
            .into_iter()
            .filter_map(|(key, counts)| {
                let Key::Throttle(name) = key else {
                    return None;
                };
                let rate = self.throttle_rates.get(&name);
                let window_s = rate.map_or(crate::WINDOW_DEFAULT_S, |r| r.window.as_secs());
                let here = self.own(&Key::Throttle(name.clone()));
                Some(ThrottleCount {
                    hits_allowed: rate.map(|r| r.hits),
                    window_s,
                    hits: counts.recent.within(now.as_secs(), window_s),
                    hits_here: here.recent.within(now.as_secs(), window_s),
                    name,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exchange, pair};

    #[test]
    fn a_rate_is_read_with_its_mistakes_said() {
        let r: Rate = "100/60".parse().expect("a rate");
        assert_eq!((r.hits, r.window), (100, Duration::from_secs(60)));
        assert!("100"
            .parse::<Rate>()
            .is_err_and(|e| e.contains("like `100/60`")));
        assert!("5/0"
            .parse::<Rate>()
            .is_err_and(|e| e.contains("1 to 3600")));
    }

    #[test]
    fn the_fleet_shares_one_allowance_and_it_comes_back_as_the_window_moves() {
        let (mut a, mut b) = pair();
        let rate: Rate = "4/10".parse().expect("a rate");
        let now = Duration::from_secs(20_000);
        assert!(a.throttle("bulk", rate, now));
        assert!(a.throttle("bulk", rate, now));
        assert!(b.throttle("bulk", rate, now));
        let sent = now + Duration::from_secs(1);
        a.tick(sent);
        b.tick(sent);
        exchange(&mut a, &mut b);
        assert!(b.throttle("bulk", rate, sent), "the fourth of four");
        assert!(!b.throttle("bulk", rate, sent), "the fifth waits");
        // a has not heard of b's fourth hit yet: it lets a fifth through, the one over that
        // max_delay allows. Once it hears, both hold back.
        assert!(a.throttle("bulk", rate, sent));
        let heard = sent + Duration::from_secs(1);
        a.tick(heard);
        b.tick(heard);
        exchange(&mut a, &mut b);
        assert!(!a.throttle("bulk", rate, heard));
        assert!(!b.throttle("bulk", rate, heard));
        let shown = b.throttles(heard);
        assert_eq!(shown.len(), 1);
        assert_eq!(
            (shown[0].hits_allowed, shown[0].hits, shown[0].hits_here),
            (Some(4), 5, 2)
        );
        // Twelve seconds on, the window holds none of them.
        assert!(a.throttle("bulk", rate, now + Duration::from_secs(12)));
    }
}
