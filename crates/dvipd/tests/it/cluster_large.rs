//! 10,240 addresses in one cluster: the most a node may manage. They spread over two nodes
//! and all move to the survivor when one dies. The bounds are generous (the kernel's address
//! list makes a takeover of thousands of addresses take seconds, see docs/plumbing.md); the
//! measured times belong in BENCHMARKS.md.

use std::net::Ipv4Addr;
use std::time::Duration;

use dvip_netns::Lab;

use crate::cluster::{start_with, wait};

const COUNT: u32 = 10_240;

fn config(i: usize) -> String {
    let mut text = format!(
        "cluster {{ nodename = node{i}  Topology \"198.18.0.0/15\" {{ interface = \"eth0\" }} }}\n"
    );
    let first = u32::from(Ipv4Addr::new(198, 18, 0, 10));
    for k in 0..COUNT {
        text.push_str(&format!(
            "Binding \"s{k}\" {{ Enable_Duravip = true  Bind_Address = {} }}\n",
            Ipv4Addr::from(first + k)
        ));
    }
    text
}

#[test]
fn ten_thousand_addresses_spread_over_two_nodes_and_all_move_to_the_survivor() {
    let lab = Lab::new("dvx", 2);
    let _one = start_with(&lab, 1, &config(1));
    let mut two = start_with(&lab, 2, &config(2));
    let took = wait(&lab, Duration::from_secs(90), "5,120 on each node", |h| {
        h.iter().all(|n| n.len() == COUNT as usize / 2)
    });
    eprintln!("10,240 addresses spread over two nodes in {took:?}");
    two.0.kill().expect("kill -9 node2's dvipd");
    let took = wait(
        &lab,
        Duration::from_secs(90),
        "node1 holds all 10,240",
        |h| h[0].len() == COUNT as usize,
    );
    eprintln!("node1 took over 5,120 addresses in {took:?}");
}
