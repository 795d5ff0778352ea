//! `--spread`: IPv4 addresses on holder interfaces, still answered on the configured one;
//! IPv6 and interfaces whose `arp_ignore` forbids it stay where the hint says.

use std::collections::BTreeMap;
use std::time::Duration;

use dvip_netns::Netns;

use crate::{call, config, eventually, Daemon};

const SPREAD: &str = r#"
cluster { nodename = solo
  Topology "198.51.100.0/24" { interface = "dv0" }
  Topology "2001:db8::/64" { interface = "dv0" } }
Binding "a" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
Binding "b" { Enable_Duravip = true  Bind_Address = 198.51.100.12 }
Binding "c" { Enable_Duravip = true  Bind_Address = 198.51.100.13 }
Binding "d" { Enable_Duravip = true  Bind_Address = 198.51.100.14 }
Binding "v6" { Enable_Duravip = true  Bind_Address = 2001:db8::11 }
"#;

const SPREAD_V4: [&str; 4] = [
    "198.51.100.11",
    "198.51.100.12",
    "198.51.100.13",
    "198.51.100.14",
];

/// The one-host (/32, /128) global addresses of the namespace, by interface.
fn hosts_by_interface(ns: &Netns) -> BTreeMap<String, Vec<String>> {
    let out = dvip_netns::ip(&["-n", ns.name(), "-j", "addr", "show"]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let mut by_interface = BTreeMap::new();
    for link in links.as_array().into_iter().flatten() {
        let mut hosts: Vec<String> = link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["prefixlen"] == 32 || a["prefixlen"] == 128)
            .filter(|a| a["scope"] == "global")
            .filter_map(|a| a["local"].as_str().map(str::to_owned))
            .collect();
        if !hosts.is_empty() {
            hosts.sort();
            let name = link["ifname"].as_str().unwrap_or("?").to_owned();
            by_interface.insert(name, hosts);
        }
    }
    by_interface
}

/// A namespace with a client, where `dv0` has an address of its own (the node's) so replies to
/// the client have a route.
fn node_with_client() -> Netns {
    let ns = Netns::with_client("dvipd-sp");
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    ns
}

#[test]
fn spread_ipv4_addresses_sit_on_holders_and_answer_on_the_configured_interface() {
    let ns = node_with_client();
    let conf = config(&ns, SPREAD);
    let mut daemon = Daemon::start_with(&ns, &conf, &["--spread", "2"], &[]);
    let mut placed = BTreeMap::new();
    eventually(Duration::from_secs(5), &daemon, || {
        placed = hosts_by_interface(&ns);
        let on_holders: Vec<&String> = ["dvip-hold0", "dvip-hold1"]
            .iter()
            .flat_map(|h| placed.get(*h).into_iter().flatten())
            .collect();
        let mut on_holders: Vec<&str> = on_holders.iter().map(|s| s.as_str()).collect();
        on_holders.sort_unstable();
        if on_holders == SPREAD_V4 && placed.get("dv0") == Some(&vec!["2001:db8::11".to_owned()]) {
            Ok(())
        } else {
            Err(format!("addresses by interface: {placed:?}"))
        }
    });
    assert!(
        placed
            .keys()
            .all(|name| name == "dv0" || name.starts_with("dvip-hold")),
        "only dv0 and holders: {placed:?}"
    );

    // The client reaches a spread address through dv0: ARP is answered with dv0's MAC and
    // the node's kernel refuses the connection (nothing listens on port 9).
    for address in SPREAD_V4 {
        let target: std::net::SocketAddr = format!("{address}:9").parse().expect("address");
        let answer = ns.run_in_client(|| {
            std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| e.kind())
        });
        assert_eq!(
            answer,
            Err(std::io::ErrorKind::ConnectionRefused),
            "{address} answers from the node"
        );
    }
    let mac = ns.mac();
    let learned = ns.client_neighbours();
    for address in SPREAD_V4 {
        assert!(
            learned
                .iter()
                .any(|(ip, lladdr)| ip == address && *lladdr == mac),
            "{address} at dv0's {mac}: {learned:?}"
        );
    }

    let info = call(
        &conf.with_extension("sock"),
        &serde_json::json!({"command": "info"}),
    );
    assert_eq!(info["holders"], 2, "{info}");
    assert_eq!(info["held_on_holders"], 4, "{info}");

    // A clean stop takes them off the holders too.
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert_eq!(hosts_by_interface(&ns), BTreeMap::new());
}

#[test]
fn an_interface_with_arp_ignore_keeps_its_addresses() {
    let ns = node_with_client();
    let sysctl = ns
        .command("sysctl")
        .args(["-qw", "net.ipv4.conf.dv0.arp_ignore=1"])
        .status();
    assert!(sysctl.is_ok_and(|s| s.success()), "sysctl arp_ignore");
    let conf = config(&ns, SPREAD);
    let daemon = Daemon::start_with(&ns, &conf, &["--spread", "2"], &[]);
    let mut want: Vec<String> = SPREAD_V4.iter().map(|s| (*s).to_owned()).collect();
    want.push("2001:db8::11".to_owned());
    want.sort();
    eventually(Duration::from_secs(5), &daemon, || {
        let placed = hosts_by_interface(&ns);
        if placed.len() == 1 && placed.get("dv0") == Some(&want) {
            Ok(())
        } else {
            Err(format!("addresses by interface: {placed:?}"))
        }
    });
    assert!(
        daemon.log().contains("arp_ignore is set"),
        "says why it does not spread:\n{}",
        daemon.log()
    );
}
