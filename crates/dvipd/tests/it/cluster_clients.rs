//! A cluster as a client on its LAN sees it: who answers ARP during a handover, and a
//! forward-mode listener answered by whichever node owns its address.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use dvip_netns::{in_namespace, mac_text, Lab, Prober};

use crate::cluster::{logs, start_with, wait};

const ADDRESSES: [&str; 4] = [
    "198.51.100.11",
    "198.51.100.12",
    "198.51.100.13",
    "198.51.100.14",
];

fn bindings(i: usize) -> String {
    let mut text =
        format!("cluster {{ nodename = node{i}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }} }}\n");
    for (k, a) in ADDRESSES.iter().enumerate() {
        text.push_str(&format!(
            "Binding \"s{k}\" {{ Enable_Duravip = true  Bind_Address = {a} }}\n"
        ));
    }
    text
}

#[test]
fn sigterm_hands_every_address_over_without_two_nodes_answering_for_one() {
    let lab = Lab::new("dvc", 2);
    let _one = start_with(&lab, 1, &bindings(1));
    let two = start_with(&lab, 2, &bindings(2));
    wait(&lab, Duration::from_secs(15), "both nodes hold two", |h| {
        h.iter().all(|n| n.len() == 2)
    });
    let topology = lab.topology();
    let targets: Vec<Ipv4Addr> = ADDRESSES.iter().map(|a| a.parse().expect("v4")).collect();
    let prober = Prober::start(
        &topology.client(),
        "eth0",
        dvip_netns::CLIENT_ADDRESS.parse().expect("v4"),
        targets,
        Duration::from_millis(2),
    )
    .expect("the prober starts");
    two.signal("TERM");
    wait(
        &lab,
        Duration::from_secs(5),
        "node1 holds everything",
        |h| h[0].len() == 4 && h[1].is_empty(),
    );
    // A few more rounds after the move, so a late answer from node2 would be seen.
    std::thread::sleep(Duration::from_millis(100));
    let answers = prober.stop().expect("the prober ran");
    let mut by_round: BTreeMap<(Ipv4Addr, u64), BTreeSet<String>> = BTreeMap::new();
    for a in &answers {
        by_round
            .entry((a.address, a.round))
            .or_default()
            .insert(mac_text(a.mac));
    }
    let doubled: Vec<_> = by_round.iter().filter(|(_, macs)| macs.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "two nodes answered at once: {doubled:?}"
    );
    let node1 = topology.mac(1);
    for address in ADDRESSES {
        let address: Ipv4Addr = address.parse().expect("v4");
        let last = answers.iter().rev().find(|a| a.address == address);
        assert_eq!(
            last.map(|a| mac_text(a.mac)),
            Some(node1.clone()),
            "{address} answered by node1 at the end\n{}",
            logs(&lab)
        );
    }
}

/// A backend on node `i`'s loopback that answers every line with the node's name.
fn backend(lab: &Lab, i: usize) {
    let listener = in_namespace(&lab.node(i), || {
        TcpListener::bind("127.0.0.1:2525").expect("backend binds")
    });
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut write = stream.try_clone().expect("clone");
                for _ in BufReader::new(stream).lines().map_while(Result::ok) {
                    if write.write_all(format!("node{i}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// Connects from the client and returns the name of the node whose backend answered.
fn who_answers(lab: &Lab, at: SocketAddr) -> Result<String, String> {
    in_namespace(&lab.topology().client(), || {
        let stream = TcpStream::connect_timeout(&at, Duration::from_millis(500))
            .map_err(|e| format!("connect {at}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        (&stream).write_all(b"who\n").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim().to_owned())
    })
}

#[test]
fn a_forward_mode_listener_is_answered_by_the_owner_and_then_by_the_survivor() {
    let lab = Lab::new("dvc", 2);
    for i in 1..=2 {
        backend(&lab, i);
    }
    let config = |i| {
        format!(
            "cluster {{ nodename = node{i}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }} }}\n\
             ESMTP_Listener {{ Listen \"198.51.100.15:25\" {{ Enable_Duravip = true  Duravip_Forward = \"127.0.0.1:2525\" }} }}\n"
        )
    };
    let mut daemons = [
        start_with(&lab, 1, &config(1)),
        start_with(&lab, 2, &config(2)),
    ];
    wait(
        &lab,
        Duration::from_secs(15),
        "one node holds the listener",
        |h| h.iter().flatten().count() == 1,
    );
    let owner = if lab.addresses(1).is_empty() { 2 } else { 1 };
    let at: SocketAddr = "198.51.100.15:25".parse().expect("address");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut answer = who_answers(&lab, at);
    while answer.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        answer = who_answers(&lab, at);
    }
    assert_eq!(answer, Ok(format!("node{owner}")), "{}", logs(&lab));

    daemons[owner - 1]
        .0
        .kill()
        .expect("kill -9 the owner's dvipd");
    let survivor = 3 - owner;
    wait(
        &lab,
        Duration::from_secs(5),
        "the survivor holds the listener",
        |h| h[survivor - 1].len() == 1,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match who_answers(&lab, at) {
            Ok(node) if node == format!("node{survivor}") => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "after the failover: {other:?}\n{}",
                logs(&lab)
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
