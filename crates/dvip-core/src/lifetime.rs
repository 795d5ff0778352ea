//! How long a plumbed address lives unless its daemon refreshes it: defined once, for dvipd,
//! the simulator and the lab.
//!
//! Owns the shortest lifetime and the rule that lengthens it for large address sets. It must
//! not plumb anything.

use std::time::Duration;

/// The shortest lifetime dvipd gives its addresses: how long a dead daemon's addresses can
/// outlive it if its guardian died with it. Long enough that a daemon refreshing every third
/// of it never lets one lapse.
pub const ADDRESS_LIFETIME_MIN: Duration = Duration::from_secs(6);

/// How many addresses a node refreshes per second at most when it chooses the lifetime
/// itself. Every refresh is an add that walks the interface's address list in the kernel, so
/// refreshing 10,240 addresses every 2 s would keep a core busy; 50 a second costs a few
/// percent of one at that size.
pub const REFRESHES_PER_SECOND: u64 = 50;

/// The lifetime for `count` addresses: [`ADDRESS_LIFETIME_MIN`], or longer so that refreshing
/// each address once per third of its lifetime stays within [`REFRESHES_PER_SECOND`]
/// (6 s up to 100 addresses, 62 s at 1,024, 615 s at 10,240).
pub fn address_lifetime_for(count: usize) -> Duration {
    let seconds = (3 * count as u64).div_ceil(REFRESHES_PER_SECOND);
    ADDRESS_LIFETIME_MIN.max(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_get_the_minimum_and_large_ones_stay_within_the_refresh_rate() {
        assert_eq!(address_lifetime_for(0), ADDRESS_LIFETIME_MIN);
        assert_eq!(address_lifetime_for(100), ADDRESS_LIFETIME_MIN);
        assert_eq!(address_lifetime_for(1_024), Duration::from_secs(62));
        assert_eq!(address_lifetime_for(10_240), Duration::from_secs(615));
        for count in [1, 100, 101, 1_024, 10_240] {
            let per_second = count as f64 / (address_lifetime_for(count).as_secs_f64() / 3.0);
            assert!(
                per_second <= REFRESHES_PER_SECOND as f64,
                "{count}: {per_second}"
            );
        }
    }
}
