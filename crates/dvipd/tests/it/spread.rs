//! `--spread`: IPv4 addresses on holder interfaces, still answered on the configured one;
//! IPv6 and interfaces whose `arp_ignore` forbids it stay where the hint says.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use dvip_netns::Netns;
use dvipd::plumb::Plumber;

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

/// Two holders, and a lifetime that outlasts any delay of the refreshes on a busy machine
/// (these tests look at where addresses are, not at their expiry).
const SPREAD_TWO: [&str; 4] = ["--spread", "2", "--address-lifetime", "60"];

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
    let mut daemon = Daemon::start_with(&ns, &conf, &SPREAD_TWO, &[]);
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
    assert_eq!(
        holder_names(&ns),
        ["dvip-hold0", "dvip-hold1"],
        "both holders are made"
    );
    for holder in holder_names(&ns) {
        let out = dvip_netns::ip(&["-n", ns.name(), "-6", "-o", "addr", "show", "dev", &holder]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "",
            "{holder} carries no IPv6 address, not even a link-local one"
        );
    }

    // A clean stop takes the addresses away, and the holders with them.
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert_eq!(hosts_by_interface(&ns), BTreeMap::new());
    assert_eq!(holder_names(&ns), Vec::<String>::new(), "holders deleted");
}

/// The namespace's holder interfaces, by name.
fn holder_names(ns: &Netns) -> Vec<String> {
    let out = dvip_netns::ip(&["-n", ns.name(), "-j", "link", "show"]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let mut names: Vec<String> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|name| name.starts_with("dvip-hold"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// A configuration of `count` bindings from 198.18.0.10 on `dv0`.
fn many(count: u32) -> String {
    let mut text = String::from(
        "cluster { nodename = solo\n  Topology \"198.18.0.0/15\" { interface = \"dv0\" } }\n",
    );
    for n in 0..count {
        let address = std::net::Ipv4Addr::from(0xc612_000a + n);
        text.push_str(&format!(
            "Binding \"b{n}\" {{ Enable_Duravip = true  Bind_Address = {address} }}\n"
        ));
    }
    text
}

#[test]
fn a_reload_past_the_threshold_spreads_new_addresses_and_leaves_the_old_ones_in_place() {
    let ns = node_with_client();
    let threshold = dvipd::spread::SPREAD_ABOVE as u32;
    let conf = config(&ns, &many(threshold));
    // A long lifetime: the test daemon's usual 2 s would refresh a thousand addresses a
    // second, a load the tests running beside this one would feel.
    let mut daemon = Daemon::start_with(&ns, &conf, &["--address-lifetime", "60"], &[]);
    eventually(Duration::from_secs(20), &daemon, || {
        let placed = hosts_by_interface(&ns);
        let on_dv0 = placed.get("dv0").map_or(0, Vec::len);
        if on_dv0 == threshold as usize && placed.len() == 1 {
            Ok(())
        } else {
            Err(format!("{on_dv0} on dv0; interfaces: {:?}", placed.keys()))
        }
    });

    let grown = threshold + 100;
    std::fs::write(&*conf, many(grown)).expect("write config");
    daemon.signal("HUP");
    let mut placed = BTreeMap::new();
    eventually(Duration::from_secs(20), &daemon, || {
        placed = hosts_by_interface(&ns);
        let total: usize = placed.values().map(Vec::len).sum();
        if total == grown as usize {
            Ok(())
        } else {
            Err(format!("{total} of {grown} plumbed"))
        }
    });
    let mut all: Vec<&String> = placed.values().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), grown as usize, "no address on two interfaces");
    let on_dv0 = &placed["dv0"];
    assert_eq!(on_dv0.len(), threshold as usize, "the old ones stay on dv0");
    assert!(
        !on_dv0.contains(&"198.18.4.10".to_owned()),
        "the first new address (the 1,025th) is on a holder"
    );
    assert_eq!(
        holder_names(&ns).len(),
        usize::from(dvipd::spread::holders_for(grown as usize)),
        "{:?}",
        placed.keys()
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
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
    let daemon = Daemon::start_with(&ns, &conf, &SPREAD_TWO, &[]);
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

#[test]
fn an_address_plumbed_before_spreading_began_is_refreshed_where_it_is() {
    let ns = Netns::new("dvipd-pl");
    let (before, after): (IpAddr, IpAddr) = (
        "198.18.0.10".parse().expect("v4"),
        "198.18.0.11".parse().expect("v4"),
    );
    let on_holders = ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut plumber = Plumber::connect(Duration::from_secs(60)).expect("netlink");
            plumber.plumb(before, 32, "dv0").await.expect("plumbed");
            plumber.spread_over(2);
            plumber.make_holders().await;
            // The refresh of the old one, then a new one.
            plumber.plumb(before, 32, "dv0").await.expect("refreshed");
            plumber.plumb(after, 32, "dv0").await.expect("plumbed");
            plumber.on_holders()
        })
    });
    assert_eq!(on_holders, 1, "only the new address is on a holder");
    let placed = hosts_by_interface(&ns);
    assert_eq!(
        placed.get("dv0"),
        Some(&vec![before.to_string()]),
        "{placed:?}"
    );
    let on_holder: Vec<&String> = placed
        .iter()
        .filter(|(name, _)| name.starts_with("dvip-hold"))
        .flat_map(|(_, hosts)| hosts)
        .collect();
    assert_eq!(on_holder, [&after.to_string()], "{placed:?}");
    assert_eq!(
        holder_names(&ns),
        ["dvip-hold0", "dvip-hold1"],
        "both made at once"
    );
}
