//! The kernel's side of pre-plumbing (docs/leases.md, "Plumbing before it is needed"): an
//! nftables table, `dvip_silence`, whose egress chains drop what is sent from the IPv4
//! addresses in its `silent` set, so that an address plumbed on its successor ahead of need
//! stays silent there until a takeover lets it speak with one set change.
//!
//! Owns that table's text and every change to it. It must not decide which addresses are
//! silent (the daemon does, from the core's successors) nor touch `dvip_lease`, which a reload
//! replaces whole: this table is only ever changed element by element, by the daemon's loop,
//! so what it holds is always what the loop believes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::kernel_lease::{nft, KernelLeaseError};
use crate::nfset::{self, NfSetError, Step};

/// The nftables table (family `netdev`).
pub const TABLE: &str = "dvip_silence";
/// Its set of silent addresses.
pub const SET: &str = "silent";

/// The table, in nft's language: one egress chain per interface, sharing the `silent` set.
pub fn ruleset(interfaces: &[String], silent: &BTreeSet<Ipv4Addr>) -> String {
    let elements = if silent.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", list(silent.iter()))
    };
    let mut text =
        format!("table netdev {TABLE} {{\n  set silent {{ type ipv4_addr;{elements} }}\n");
    for (n, interface) in interfaces.iter().enumerate() {
        text.push_str(&format!(
            "  chain out{n} {{\n    type filter hook egress device \"{interface}\" priority 1;\n    arp saddr ip @{SET} drop\n    ip saddr @{SET} drop\n  }}\n"
        ));
    }
    text.push_str("}\n");
    text
}

/// Loads the table for `interfaces` with `silent` in it, replacing an older one in the same
/// transaction.
pub fn install(interfaces: &[String], silent: &BTreeSet<Ipv4Addr>) -> Result<(), KernelLeaseError> {
    nft(&format!(
        "table netdev {TABLE} {{}}\ndelete table netdev {TABLE}\n{}",
        ruleset(interfaces, silent)
    ))
}

/// One transaction, over netlink ([`crate::nfset`]): `speak` leave the set and `hush` join
/// it. Deleting an element that is not there would fail the whole transaction, so each is
/// added first: the change is right whatever the set held.
pub fn change(hush: &[Ipv4Addr], speak: &[Ipv4Addr]) -> Result<(), NfSetError> {
    if hush.is_empty() && speak.is_empty() {
        return Ok(());
    }
    nfset::change(TABLE, SET, &steps(hush, speak))
}

fn steps<'a>(hush: &'a [Ipv4Addr], speak: &'a [Ipv4Addr]) -> Vec<(Step, &'a [Ipv4Addr])> {
    [(Step::Add, speak), (Step::Delete, speak), (Step::Add, hush)]
        .into_iter()
        .filter(|(_, addresses)| !addresses.is_empty())
        .collect()
}

/// Removes the table, if there is one.
pub fn remove() {
    let _ = nft(&format!("delete table netdev {TABLE}\n"));
}

fn list<'a>(addresses: impl Iterator<Item = &'a Ipv4Addr>) -> String {
    addresses
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_silences_one_set_on_every_interface() {
        let silent: BTreeSet<Ipv4Addr> = [[198, 51, 100, 10].into()].into();
        let text = ruleset(&["eth0".into(), "eth1".into()], &silent);
        assert!(text.contains("set silent { type ipv4_addr; elements = { 198.51.100.10 }; }"));
        assert_eq!(text.matches("arp saddr ip @silent drop").count(), 2);
        assert!(text.contains("device \"eth1\""));
    }

    #[test]
    fn a_change_adds_before_it_deletes_so_a_missing_element_never_fails_it() {
        let (hush, speak) = ([[198, 51, 100, 11].into()], [[198, 51, 100, 10].into()]);
        let steps = steps(&hush, &speak);
        let kinds: Vec<Step> = steps.iter().map(|(s, _)| *s).collect();
        assert_eq!(kinds, [Step::Add, Step::Delete, Step::Add]);
        assert_eq!(steps[2].1, hush);
        assert_eq!(super::steps(&hush, &[]).len(), 1);
    }
}
