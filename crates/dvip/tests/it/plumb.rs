//! `dvip plumb` against a real kernel, inside a network namespace each test makes and
//! removes (root required, as in CI). Addresses come from the documentation ranges.

use std::time::{Duration, Instant};

use dvip_netns::{ip, Netns};
use serde_json::Value;

use crate::text;

fn dvip(ns: &Netns, args: &[&str]) -> std::process::Output {
    ns.command(env!("CARGO_BIN_EXE_dvip"))
        .args(args)
        .output()
        .expect("ip netns exec runs")
}

#[test]
fn plumbed_addresses_carry_a_lifetime_and_only_they_are_listed() {
    let ns = Netns::new("dvip-t");
    let add = dvip(
        &ns,
        &[
            "plumb",
            "add",
            "198.51.100.7/32",
            "--interface",
            "dv0",
            "--lifetime",
            "30",
        ],
    );
    assert_eq!(add.status.code(), Some(0), "{}", text(&add.stderr));
    let add6 = dvip(
        &ns,
        &[
            "plumb",
            "add",
            "2001:db8::7/128",
            "--interface",
            "dv0",
            "--lifetime",
            "30",
        ],
    );
    assert_eq!(add6.status.code(), Some(0), "{}", text(&add6.stderr));
    assert!(ip(&[
        "-n",
        ns.name(),
        "addr",
        "add",
        "198.51.100.8/32",
        "dev",
        "dv0"
    ])
    .status
    .success());

    let kernel = ns.addresses();
    let lifetime = |a: &str| kernel.iter().find(|(x, _)| x == a).map(|(_, l)| *l);
    assert!(
        matches!(lifetime("198.51.100.7"), Some(Some(s)) if s <= 30),
        "{kernel:?}"
    );
    assert!(
        matches!(lifetime("2001:db8::7"), Some(Some(s)) if s <= 30),
        "{kernel:?}"
    );
    assert_eq!(
        lifetime("198.51.100.8"),
        Some(None),
        "the hand-made address lives forever"
    );

    let list = dvip(&ns, &["plumb", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&list.stdout).expect("JSON");
    let mut addresses: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["address"].as_str().expect("str"))
        .collect();
    addresses.sort_unstable();
    assert_eq!(
        addresses,
        ["198.51.100.7", "2001:db8::7"],
        "only dvip's own addresses"
    );
}

#[test]
fn clean_and_remove_touch_only_dvip_s_addresses() {
    let ns = Netns::new("dvip-t");
    assert!(dvip(
        &ns,
        &["plumb", "add", "198.51.100.7/32", "--interface", "dv0"]
    )
    .status
    .success());
    assert!(dvip(
        &ns,
        &["plumb", "add", "198.51.100.9/32", "--interface", "dv0"]
    )
    .status
    .success());
    assert!(ip(&[
        "-n",
        ns.name(),
        "addr",
        "add",
        "198.51.100.8/32",
        "dev",
        "dv0"
    ])
    .status
    .success());

    let foreign = dvip(&ns, &["plumb", "remove", "198.51.100.8"]);
    assert_eq!(foreign.status.code(), Some(0));
    assert!(text(&foreign.stdout).contains("was not plumbed by dvip"));
    let removed = dvip(&ns, &["plumb", "remove", "198.51.100.9"]);
    assert!(text(&removed.stdout).contains("removed 198.51.100.9"));

    let clean = dvip(&ns, &["plumb", "clean"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    assert!(
        text(&clean.stdout).contains("1 address(es) removed"),
        "{}",
        text(&clean.stdout)
    );
    let left: Vec<String> = ns.addresses().into_iter().map(|(a, _)| a).collect();
    assert_eq!(left, ["198.51.100.8"]);
}

#[test]
fn an_address_nobody_refreshes_disappears_by_itself() {
    // What keeps a killed daemon's addresses from answering next to their new owner.
    let ns = Netns::new("dvip-t");
    assert!(dvip(
        &ns,
        &[
            "plumb",
            "add",
            "198.51.100.7/32",
            "--interface",
            "dv0",
            "--lifetime",
            "2"
        ]
    )
    .status
    .success());
    assert!(ns.addresses().iter().any(|(a, _)| a == "198.51.100.7"));
    let deadline = Instant::now() + Duration::from_secs(8);
    while ns.addresses().iter().any(|(a, _)| a == "198.51.100.7") {
        assert!(
            Instant::now() < deadline,
            "the address outlived its 2 s lifetime by 6 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_unknown_interface_is_an_error_that_names_it() {
    let ns = Netns::new("dvip-t");
    let out = dvip(
        &ns,
        &["plumb", "add", "198.51.100.7/32", "--interface", "nosuch0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interface `nosuch0` does not exist"),
        "{}",
        text(&out.stderr)
    );
    let bad = dvip(
        &ns,
        &["plumb", "add", "198.51.100.7/33", "--interface", "dv0"],
    );
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a prefix too long for IPv4 is a usage error"
    );
}
