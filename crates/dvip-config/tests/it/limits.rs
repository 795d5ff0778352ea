//! The limits: 10,240 DuraVIP addresses are accepted, 10,241 refused at the first one past
//! the limit; and what the wire between nodes cannot carry (too many services on one address,
//! a State over the message limit) is refused before a node ever sends it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use dvip_config::{load_str, Code, LoadOptions};
use dvip_core::DURAVIP_ADDRESS_COUNT_MAX;

use crate::HOSTNAME;

/// A 3.x config with `count` DuraVIP bindings on 198.18.0.0/15, one per line after line 1.
pub(crate) fn many_bindings(count: usize) -> String {
    let mut text =
        String::from("cluster { Topology \"198.18.0.0/15\" { interface = \"eth0\" } }\n");
    for i in 0..count {
        let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32);
        let _ = writeln!(
            text,
            "Binding \"b{i}\" {{ Enable_Duravip = true  Bind_Address = {address} }}"
        );
    }
    text
}

#[test]
fn the_largest_allowed_address_set_is_accepted() {
    let text = many_bindings(DURAVIP_ADDRESS_COUNT_MAX);
    let checked = load_str(Path::new("max.conf"), &text, &LoadOptions::new(HOSTNAME));
    assert!(checked.is_valid(), "{:?}", checked.diagnostics.first());
    assert_eq!(checked.config.addresses.len(), 10_240);
}

#[test]
fn one_address_more_is_refused_at_the_first_past_the_limit() {
    let text = many_bindings(DURAVIP_ADDRESS_COUNT_MAX + 1);
    let checked = load_str(Path::new("over.conf"), &text, &LoadOptions::new(HOSTNAME));
    let errors: Vec<_> = checked.of(dvip_config::Severity::Error).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, Code::TooManyAddresses);
    assert!(
        errors[0].message.starts_with("10241 DuraVIP addresses"),
        "{}",
        errors[0].message
    );
    let line = checked
        .sources
        .location(errors[0].span.expect("located"))
        .line;
    assert_eq!(
        line, 10_242,
        "line 1 is the cluster stanza, so binding 10,241 is on line 10,242"
    );
}

#[test]
fn more_listener_ports_on_one_address_than_the_wire_carries_are_refused_there() {
    let mut text = String::from(
        "cluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
         ESMTP_Listener {\n",
    );
    for port in 1..=dvip_core::wire::SERVICES_PER_ADDRESS_MAX + 1 {
        let _ = writeln!(
            text,
            "  Listen \"198.51.100.9:{port}\" {{ Enable_Duravip = true }}"
        );
    }
    text.push_str("}\n");
    let checked = load_str(Path::new("ports.conf"), &text, &LoadOptions::new(HOSTNAME));
    let errors: Vec<_> = checked.of(dvip_config::Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, Code::WireLimit);
    assert!(
        errors[0]
            .message
            .contains("4097 listener ports on 198.51.100.9"),
        "{}",
        errors[0].message
    );
    let at = checked.sources.location(errors[0].span.expect("located"));
    assert_eq!(at.line, 3, "at the address's first service");
}

#[test]
fn a_state_over_the_message_limit_is_refused() {
    // 10,240 addresses with seven names of 250 bytes each: about 18 MB of State.
    let mut text =
        String::from("cluster { Topology \"198.18.0.0/15\" { interface = \"eth0\" } }\n");
    let pad = "x".repeat(240);
    for i in 0..DURAVIP_ADDRESS_COUNT_MAX {
        let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32);
        for k in 0..7 {
            let _ = writeln!(
                text,
                "Binding \"{pad}{i}-{k}\" {{ Enable_Duravip = true  Bind_Address = {address} }}"
            );
        }
    }
    let checked = load_str(Path::new("huge.conf"), &text, &LoadOptions::new(HOSTNAME));
    let errors: Vec<_> = checked.of(dvip_config::Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{:?}", errors.first());
    assert_eq!(errors[0].code, Code::WireLimit);
    assert!(
        errors[0].message.contains("State would be"),
        "{}",
        errors[0].message
    );
}
