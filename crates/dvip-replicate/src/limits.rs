//! Cluster-wide limits on inbound connections per client prefix, decided on the replicated
//! counts: "no more than 30 connections a minute from any /24, over the whole fleet".
//!
//! Owns the arithmetic of prefixes and windows and the verdict. It must not speak any MTA's
//! protocol (the daemon's policy server translates) nor send anything.

use std::net::IpAddr;
use std::time::Duration;

use crate::{Key, Replica};

/// At most `connections` in any `window` from one prefix of the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundLimit {
    /// The prefix length that groups IPv4 clients (24: a /24).
    pub prefix_v4: u8,
    /// The prefix length that groups IPv6 clients (64: a /64).
    pub prefix_v6: u8,
    pub connections: u64,
    pub window: Duration,
}

/// What to tell the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Under every limit: the connection is counted.
    Accept,
    /// A limit is reached: the connection is not counted, and should be deferred.
    Defer {
        /// The client's prefix, as `198.51.100.0/24`.
        prefix: String,
        /// Connections from it in the window, cluster-wide.
        counted: u64,
        limit: InboundLimit,
    },
}

/// The first and last address of `address`'s prefix of `len` bits.
pub fn prefix_range(address: IpAddr, len: u8) -> (IpAddr, IpAddr) {
    match address {
        IpAddr::V4(a) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let bits = u32::from(a);
            let v4 = |b: u32| IpAddr::V4(b.into());
            (v4(bits & mask), v4(bits | !mask))
        }
        IpAddr::V6(a) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let bits = u128::from(a);
            let v6 = |b: u128| IpAddr::V6(b.into());
            (v6(bits & mask), v6(bits | !mask))
        }
    }
}

impl Replica {
    /// Connections from `address`'s prefix of `len` bits in the `window` up to `now`, over
    /// the cluster.
    pub fn inbound_within(&self, address: IpAddr, len: u8, window: Duration, now: Duration) -> u64 {
        let (first, last) = prefix_range(address, len);
        self.counts_in(Key::Inbound(first)..=Key::Inbound(last), None)
            .values()
            .map(|c| c.recent.within(now.as_secs(), window.as_secs().max(1)))
            .sum()
    }

    /// A client at `address` connects here: deferred if any limit is reached over the
    /// cluster, else counted (as a connection made, none left open: the MTA does not say
    /// when it closes).
    pub fn admit(&mut self, address: IpAddr, limits: &[InboundLimit], now: Duration) -> Verdict {
        let verdict = self.check(address, limits, now);
        if verdict == Verdict::Accept {
            self.count(&Key::Inbound(address), now);
        }
        verdict
    }

    /// The verdict on a client at `address` without counting it (a later stage of a
    /// connection already counted).
    pub fn check(&self, address: IpAddr, limits: &[InboundLimit], now: Duration) -> Verdict {
        for limit in limits {
            let len = match address {
                IpAddr::V4(_) => limit.prefix_v4,
                IpAddr::V6(_) => limit.prefix_v6,
            };
            let counted = self.inbound_within(address, len, limit.window, now);
            if counted >= limit.connections {
                let (first, _) = prefix_range(address, len);
                return Verdict::Defer {
                    prefix: format!("{first}/{len}"),
                    counted,
                    limit: limit.clone(),
                };
            }
        }
        Verdict::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaOptions;

    fn limit(connections: u64) -> InboundLimit {
        InboundLimit {
            prefix_v4: 24,
            prefix_v6: 64,
            connections,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn prefixes_are_the_first_and_last_address_of_their_bits() {
        let a: IpAddr = "198.51.100.77".parse().expect("ip");
        assert_eq!(
            prefix_range(a, 24),
            (
                "198.51.100.0".parse().expect("ip"),
                "198.51.100.255".parse().expect("ip")
            )
        );
        assert_eq!(prefix_range(a, 32), (a, a));
        assert_eq!(
            prefix_range(a, 0).1,
            "255.255.255.255".parse::<IpAddr>().expect("ip")
        );
        let b: IpAddr = "2001:db8:1:2:3::4".parse().expect("ip");
        assert_eq!(
            prefix_range(b, 64),
            (
                "2001:db8:1:2::".parse().expect("ip"),
                "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip")
            )
        );
    }

    #[test]
    fn a_prefix_is_deferred_at_its_limit_and_accepted_once_the_window_moves_on() {
        let mut r = Replica::new("a", ReplicaOptions::default());
        let now = Duration::from_secs(10_000);
        for last in 1..=3u8 {
            let client = IpAddr::from([198, 51, 100, last]);
            assert_eq!(r.admit(client, &[limit(3)], now), Verdict::Accept);
        }
        let fourth = r.admit([198, 51, 100, 9].into(), &[limit(3)], now);
        assert!(
            matches!(&fourth, Verdict::Defer { prefix, counted: 3, .. } if prefix == "198.51.100.0/24"),
            "{fourth:?}"
        );
        // Another /24 is not held back, and a minute later the first is free again.
        assert_eq!(
            r.admit([198, 51, 101, 1].into(), &[limit(3)], now),
            Verdict::Accept
        );
        let later = now + Duration::from_secs(60);
        assert_eq!(
            r.admit([198, 51, 100, 9].into(), &[limit(3)], later),
            Verdict::Accept
        );
    }

    #[test]
    fn the_limit_holds_across_nodes_and_a_node_s_death_does_not_reset_it() {
        let (mut a, mut b) = crate::testing::pair();
        let now = Duration::from_secs(10_000);
        for last in 1..=2u8 {
            assert_eq!(
                a.admit([198, 51, 100, last].into(), &[limit(4)], now),
                Verdict::Accept
            );
            assert_eq!(
                b.admit([198, 51, 100, 10 + last].into(), &[limit(4)], now),
                Verdict::Accept
            );
        }
        let sent = now + Duration::from_secs(1);
        a.tick(sent);
        b.tick(sent);
        crate::testing::exchange(&mut a, &mut b);
        for r in [&mut a, &mut b] {
            assert!(matches!(
                r.admit([198, 51, 100, 99].into(), &[limit(4)], sent),
                Verdict::Defer { counted: 4, .. }
            ));
        }
        // b dies: what it admitted still counts at a for the rest of the window.
        a.handle_view(2, &["a".to_owned()].into());
        assert!(matches!(
            a.admit([198, 51, 100, 99].into(), &[limit(4)], sent),
            Verdict::Defer { counted: 4, .. }
        ));
    }
}
