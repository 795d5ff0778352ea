//! A node whose topology hint names an interface it does not have: its share is served by the
//! others, every address answers ARP from exactly one machine, and the node takes its share
//! back when the interface appears. Then the interface goes again, taking the addresses on it
//! along, and the others take them over.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dvip_netns::{Lab, Prober};

use crate::cluster::{logs, start_with, wait};

const ADDRESSES: [&str; 6] = [
    "198.51.100.21",
    "198.51.100.22",
    "198.51.100.23",
    "198.51.100.24",
    "198.51.100.25",
    "198.51.100.26",
];

fn config(node: usize, interface: &str) -> String {
    let mut text = format!(
        "cluster {{ nodename = node{node}  Topology \"198.51.100.0/24\" {{ interface = \"{interface}\" }} }}\n"
    );
    for (i, a) in ADDRESSES.iter().enumerate() {
        text += &format!("Binding \"b{i}\" {{ Enable_Duravip = true  Bind_Address = {a} }}\n");
    }
    text
}

/// Which machines (by MAC) answered ARP for each address in the answers since `seen`.
fn answerers(prober: &Prober, seen: usize) -> BTreeMap<Ipv4Addr, BTreeSet<[u8; 6]>> {
    let mut by: BTreeMap<Ipv4Addr, BTreeSet<[u8; 6]>> = BTreeMap::new();
    for a in prober
        .answers_since(seen)
        .into_iter()
        .filter(|a| !a.gratuitous)
    {
        by.entry(a.address).or_default().insert(a.mac);
    }
    by
}

/// Waits until, over a second of probing, every address answered from exactly one machine.
fn wait_one_answer_each(lab: &Lab, prober: &Prober, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let seen = prober.answers().len();
        std::thread::sleep(Duration::from_secs(1));
        let by = answerers(prober, seen);
        let good = by.len() == ADDRESSES.len() && by.values().all(|m| m.len() == 1);
        if good {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: answers over the last second {by:?}\n{}",
            logs(lab)
        );
    }
}

#[test]
fn a_node_without_its_hinted_interface_serves_nothing_until_the_interface_appears() {
    let lab = Lab::new("dvm", 3);
    let _one = start_with(&lab, 1, &config(1, "eth0"));
    let _two = start_with(&lab, 2, &config(2, "eth0"));
    // A typo, or a VLAN not created yet.
    let _three = start_with(&lab, 3, &config(3, "eth1"));
    let targets: Vec<Ipv4Addr> = ADDRESSES.iter().map(|a| a.parse().expect("v4")).collect();
    let prober = Prober::start(
        &lab.topology().client(),
        "eth0",
        dvip_netns::CLIENT_ADDRESS.parse().expect("v4"),
        targets,
        Duration::from_millis(100),
    )
    .expect("the prober starts");
    wait(
        &lab,
        Duration::from_secs(20),
        "nodes 1 and 2 share everything",
        |h| h[0].len() + h[1].len() == ADDRESSES.len() && h[2].is_empty(),
    );
    wait_one_answer_each(
        &lab,
        &prober,
        Duration::from_secs(10),
        "one answer per address",
    );
    assert!(lab.addresses(3).is_empty(), "node3 holds nothing");

    // The interface appears: node3 offers its addresses and takes its share.
    let ns = lab.node(3);
    dvip_netns::ip(&[
        "-n", &ns, "link", "add", "eth1", "link", "eth0", "type", "macvlan", "mode", "bridge",
    ]);
    // Only the interface an address is on answers for it, or node3's eth0 would answer
    // for eth1's addresses too (Linux's default), under a second MAC of the same machine.
    let sysctl = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.arp_ignore=1",
        ])
        .status();
    assert!(sysctl.is_ok_and(|s| s.success()), "sysctl arp_ignore");
    dvip_netns::ip(&["-n", &ns, "link", "set", "eth1", "up"]);
    wait(
        &lab,
        Duration::from_secs(20),
        "node3 takes its share",
        |h| h.iter().all(|n| n.len() == 2),
    );
    wait_one_answer_each(
        &lab,
        &prober,
        Duration::from_secs(10),
        "one answer per address, node3 in",
    );

    // It is deleted again, with the addresses on it: the others take them over.
    dvip_netns::ip(&["-n", &ns, "link", "del", "eth1"]);
    wait(
        &lab,
        Duration::from_secs(10),
        "nodes 1 and 2 take node3's share",
        |h| h[0].len() + h[1].len() == ADDRESSES.len(),
    );
    wait_one_answer_each(
        &lab,
        &prober,
        Duration::from_secs(10),
        "one answer per address after the delete",
    );
    drop(prober);
}
