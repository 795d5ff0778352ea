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

/// The nftables table (family `netdev`).
pub const TABLE: &str = "dvip_silence";

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
            "  chain out{n} {{\n    type filter hook egress device \"{interface}\" priority 1;\n    arp saddr ip @silent drop\n    ip saddr @silent drop\n  }}\n"
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

/// One transaction: `speak` leave the set and `hush` join it. Deleting an element that is not
/// there would fail the whole transaction (nft 1.0.6 has no `destroy`), so each is added
/// first: the change is right whatever the set held.
pub fn change(hush: &[Ipv4Addr], speak: &[Ipv4Addr]) -> Result<(), KernelLeaseError> {
    if hush.is_empty() && speak.is_empty() {
        return Ok(());
    }
    nft(&change_script(hush, speak))
}

fn change_script(hush: &[Ipv4Addr], speak: &[Ipv4Addr]) -> String {
    let mut script = String::new();
    let mut line = |verb: &str, addresses: &[Ipv4Addr]| {
        if !addresses.is_empty() {
            script.push_str(&format!(
                "{verb} element netdev {TABLE} silent {{ {} }}\n",
                list(addresses.iter())
            ));
        }
    };
    line("add", speak);
    line("delete", speak);
    line("add", hush);
    script
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
        let script = change_script(&[[198, 51, 100, 11].into()], &[[198, 51, 100, 10].into()]);
        assert_eq!(
            script,
            "add element netdev dvip_silence silent { 198.51.100.10 }\n\
             delete element netdev dvip_silence silent { 198.51.100.10 }\n\
             add element netdev dvip_silence silent { 198.51.100.11 }\n"
        );
    }
}
