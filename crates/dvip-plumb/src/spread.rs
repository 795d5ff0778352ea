//! Spreading: which interface's address list an IPv4 address goes on when a node may hold
//! thousands of them.
//!
//! Owns the rule, not the netlink requests ([`crate::plumb`] makes those). The kernel keeps
//! each interface's IPv4 addresses in a list it walks on every add and removal, so a takeover
//! of thousands of addresses onto one interface costs seconds. Linux answers ARP for a local
//! address whatever interface carries it (unless `arp_ignore` says otherwise), so dvipd can put
//! IPv4 addresses on small "holder" interfaces (`dvip-hold0`, `dvip-hold1`, …: dummy
//! interfaces that carry no traffic) and keep every list short, while announcements still go
//! out on the configured interface. IPv6 is never spread: a neighbour solicitation is only
//! answered for an address on the interface it arrived on.
//!
//! It must not decide which addresses a node holds, and it never moves an address a plumber
//! already placed (see [`crate::plumb::Plumber`]).

use std::net::IpAddr;

/// The name every holder interface starts with; the holder's number follows.
pub const HOLDER_PREFIX: &str = "dvip-hold";

/// Up to this many IPv4 addresses in the configuration, nothing is spread: every address stays
/// on the interface its topology hint names, where operators look for it.
pub const SPREAD_ABOVE: usize = 1_024;

/// How many of the configuration's IPv4 addresses each holder is sized for: a holder's list
/// stays a few hundred long even when one node holds every address.
pub const ADDRESSES_PER_HOLDER: usize = 256;

/// The most holders dvipd makes.
pub const HOLDERS_MAX: u16 = 64;

/// How many holders a configuration of `ipv4_addresses` gets by default: none up to
/// [`SPREAD_ABOVE`], then one per [`ADDRESSES_PER_HOLDER`], at most [`HOLDERS_MAX`]
/// (40 for 10,240).
pub fn holders_for(ipv4_addresses: usize) -> u16 {
    if ipv4_addresses <= SPREAD_ABOVE {
        return 0;
    }
    let wanted = ipv4_addresses.div_ceil(ADDRESSES_PER_HOLDER);
    u16::try_from(wanted)
        .unwrap_or(HOLDERS_MAX)
        .min(HOLDERS_MAX)
}

/// The name of holder `number`.
pub fn holder_name(number: u16) -> String {
    format!("{HOLDER_PREFIX}{number}")
}

/// The holder an address goes on out of `holders`: its number, mixed, modulo the count. Mixed
/// because the election hands a node addresses in patterns (every third of a range, say) that
/// a plain modulo would crowd onto a few holders; any node puts an address on the same
/// holder.
pub fn holder_of(address: IpAddr, holders: u16) -> Option<u16> {
    let IpAddr::V4(v4) = address else {
        return None;
    };
    if holders == 0 {
        return None;
    }
    // murmur3's finalizer: every input bit moves every output bit.
    let mut mixed = u32::from(v4);
    mixed ^= mixed >> 16;
    mixed = mixed.wrapping_mul(0x85eb_ca6b);
    mixed ^= mixed >> 13;
    mixed = mixed.wrapping_mul(0xc2b2_ae35);
    mixed ^= mixed >> 16;
    let number = mixed % u32::from(holders);
    Some(u16::try_from(number).expect("a remainder of a u16 fits a u16"))
}

/// Whether the kernel answers ARP requests arriving on `interface` for addresses on other
/// interfaces of this namespace: `arp_ignore` is 0 for the interface and for `all` (the kernel
/// applies the larger of the two). Read from this thread's namespace's `/proc/sys`.
pub fn answers_for_any_interface(interface: &str) -> std::io::Result<bool> {
    let read = |scope: &str| -> std::io::Result<u8> {
        let path = format!("/proc/sys/net/ipv4/conf/{scope}/arp_ignore");
        let text = std::fs::read_to_string(&path)?;
        text.trim().parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: {e}"))
        })
    };
    Ok(read("all")?.max(read(interface)?) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_configurations_stay_on_their_interfaces() {
        assert_eq!(holders_for(0), 0);
        assert_eq!(holders_for(SPREAD_ABOVE), 0);
        assert_eq!(holders_for(SPREAD_ABOVE + 1), 5);
        assert_eq!(holders_for(10_240), 40);
        assert_eq!(holders_for(1_000_000), HOLDERS_MAX);
    }

    #[test]
    fn a_range_and_every_third_of_it_fill_the_holders_evenly_and_ipv6_is_never_spread() {
        for step in [1, 2, 3] {
            let mut counts = [0usize; 40];
            for n in (0..10_240u32).step_by(step) {
                let address = IpAddr::V4((0xc612_0000 + n).into());
                counts[usize::from(holder_of(address, 40).unwrap())] += 1;
            }
            let mean = 10_240 / step / 40;
            assert!(
                counts.iter().all(|&c| c > mean / 2 && c < mean * 3 / 2),
                "every {step}: {counts:?}"
            );
        }
        assert_eq!(holder_of("2001:db8::1".parse().unwrap(), 40), None);
        assert_eq!(holder_of("198.18.0.1".parse().unwrap(), 0), None);
    }

    #[test]
    fn holder_names_fit_the_kernels_limit() {
        assert_eq!(holder_name(3), "dvip-hold3");
        assert!(holder_name(HOLDERS_MAX - 1).len() < 16);
    }
}
