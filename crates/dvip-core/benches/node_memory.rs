//! How much memory one node's state takes at 10,240 addresses.
//!
//! `cargo bench -p dvip-core --bench node_memory`. Goal: under 16 MiB. A node is built with
//! 10,240 configured addresses, installed in a view of 3 (and 16) members that all announce
//! the same addresses, and fed every State so it plans; the heap it holds then is measured
//! with dhat's allocator (bytes live, not RSS). Its baseline is the configuration alone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use dvip_core::{Action, ManagedAddress, Node, NodeOptions, PlumbHint};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn config() -> Vec<ManagedAddress> {
    (0..10_240u32)
        .map(|i| ManagedAddress {
            address: IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i)),
            bindings: [format!("b{i}")].into(),
            listener_ports: if i % 3 == 0 {
                [25].into()
            } else {
                Default::default()
            },
            preference: None,
            follow: None,
            plumb: PlumbHint {
                interface: "eth0".into(),
                cidrmask: 32,
            },
        })
        .collect()
}

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

fn measure(members: usize) -> (usize, usize) {
    let names: Vec<String> = (0..members).map(|n| format!("node{n:02}")).collect();
    let before = live_bytes();
    let config = config();
    let config_bytes = live_bytes() - before;
    // Each member announces the same configuration: build their States with their own nodes.
    let states: Vec<Vec<u8>> = names
        .iter()
        .map(|name| {
            let mut node = Node::new(name.clone(), NodeOptions::default(), &config);
            node.handle_timeout(Duration::ZERO);
            node.handle_view(1, &names.iter().cloned().collect::<BTreeSet<_>>());
            std::iter::from_fn(|| node.poll_action())
                .find_map(|a| match a {
                    Action::Send(bytes) => Some(bytes),
                    _ => None,
                })
                .expect("a node announces its State on a new view")
        })
        .collect();
    let start = live_bytes();
    let mut node = Node::new(names[0].clone(), NodeOptions::default(), &config);
    node.handle_timeout(Duration::ZERO);
    node.handle_view(1, &names.iter().cloned().collect::<BTreeSet<_>>());
    for (name, state) in names.iter().zip(&states) {
        node.handle_message(name, state);
    }
    while node.poll_action().is_some() {}
    while node.poll_event().is_some() {}
    assert!(node.is_ready() && !node.plan().addresses.is_empty());
    let node_bytes = live_bytes() - start;
    drop(node);
    (config_bytes, node_bytes)
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    for members in [3, 16] {
        let (config, node) = measure(members);
        println!(
            "node state, 10,240 addresses, {members} members: {:.1} MiB (its configuration alone: {:.1} MiB, ratio {:.1})",
            mib(node),
            mib(config),
            node as f64 / config as f64
        );
    }
}
