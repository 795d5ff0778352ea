//! `dvip plumb` against a real kernel, inside a network namespace each test makes and
//! removes (root required, as in CI). Addresses come from the documentation ranges.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::text;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace with a veth pair (`dv0`, `dv1`) up; removed on drop, even when a test fails.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's ip runs")
}

impl Netns {
    fn new() -> Self {
        let name = format!(
            "dvip-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let made = ip(&["netns", "add", &name]);
        assert!(
            made.status.success(),
            "ip netns add: {} (these tests need root)",
            text(&made.stderr)
        );
        let netns = Self { name };
        for args in [
            &["link", "add", "dv0", "type", "veth", "peer", "name", "dv1"][..],
            &["link", "set", "dv0", "up"],
            &["link", "set", "dv1", "up"],
        ] {
            let mut all = vec!["-n", netns.name.as_str()];
            all.extend_from_slice(args);
            let out = ip(&all);
            assert!(out.status.success(), "ip {all:?}: {}", text(&out.stderr));
        }
        netns
    }

    fn dvip(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_dvip")])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// The addresses on `dv0` as the kernel lists them: (address, valid lifetime in seconds
    /// or None for forever).
    fn addresses(&self) -> Vec<(String, Option<u64>)> {
        let out = ip(&["-n", &self.name, "-j", "addr", "show", "dev", "dv0"]);
        let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
        links[0]["addr_info"]
            .as_array()
            .expect("addr_info")
            .iter()
            .filter(|a| a["scope"] != "link")
            .map(|a| {
                let lft = a["valid_life_time"]
                    .as_u64()
                    .filter(|&s| s != u64::from(u32::MAX));
                (a["local"].as_str().expect("local").to_owned(), lft)
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn plumbed_addresses_carry_a_lifetime_and_only_they_are_listed() {
    let ns = Netns::new();
    let add = ns.dvip(&[
        "plumb",
        "add",
        "198.51.100.7/32",
        "--interface",
        "dv0",
        "--lifetime",
        "30",
    ]);
    assert_eq!(add.status.code(), Some(0), "{}", text(&add.stderr));
    let add6 = ns.dvip(&[
        "plumb",
        "add",
        "2001:db8::7/128",
        "--interface",
        "dv0",
        "--lifetime",
        "30",
    ]);
    assert_eq!(add6.status.code(), Some(0), "{}", text(&add6.stderr));
    assert!(ip(&[
        "-n",
        &ns.name,
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

    let list = ns.dvip(&["plumb", "list", "--json"]);
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
    let ns = Netns::new();
    assert!(ns
        .dvip(&["plumb", "add", "198.51.100.7/32", "--interface", "dv0"])
        .status
        .success());
    assert!(ns
        .dvip(&["plumb", "add", "198.51.100.9/32", "--interface", "dv0"])
        .status
        .success());
    assert!(ip(&[
        "-n",
        &ns.name,
        "addr",
        "add",
        "198.51.100.8/32",
        "dev",
        "dv0"
    ])
    .status
    .success());

    let foreign = ns.dvip(&["plumb", "remove", "198.51.100.8"]);
    assert_eq!(foreign.status.code(), Some(0));
    assert!(text(&foreign.stdout).contains("was not plumbed by dvip"));
    let removed = ns.dvip(&["plumb", "remove", "198.51.100.9"]);
    assert!(text(&removed.stdout).contains("removed 198.51.100.9"));

    let clean = ns.dvip(&["plumb", "clean"]);
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
    let ns = Netns::new();
    assert!(ns
        .dvip(&[
            "plumb",
            "add",
            "198.51.100.7/32",
            "--interface",
            "dv0",
            "--lifetime",
            "2"
        ])
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
    let ns = Netns::new();
    let out = ns.dvip(&["plumb", "add", "198.51.100.7/32", "--interface", "nosuch0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interface `nosuch0` does not exist"),
        "{}",
        text(&out.stderr)
    );
    let bad = ns.dvip(&["plumb", "add", "198.51.100.7/33", "--interface", "dv0"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a prefix too long for IPv4 is a usage error"
    );
}
