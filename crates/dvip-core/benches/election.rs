//! The election over a node's largest address set.
//!
//! `cargo bench -p dvip-core --bench election`. Goal: a full election over 10,240 addresses
//! takes under 10 ms at 64 nodes. Cases, each at 3, 16 and 64 nodes with identical
//! configurations:
//!
//! - `first_plan_of_a_view`: a new cluster, nothing held (the plan that assigns everything);
//! - `first_plan_of_a_view_then_balance`: the same in a matured view (assignment + balance);
//! - `after_one_node_died`: a settled cluster loses one node; the survivors' failover plan.
//!
//! The baseline, measured in the same run, is copying one member's entity map (10,240
//! entries): about the least any pass over every address can cost.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use dvip_core::{elect, Entity, Member, NodeName};

fn main() {
    divan::main();
}

const ADDRESSES: u32 = 10_240;

fn members(nodes: usize) -> BTreeMap<NodeName, Member> {
    // One map shared by every member, as a node shares the maps of members that announce
    // the same configuration.
    let entities: Arc<BTreeMap<IpAddr, Arc<Entity>>> = (0..ADDRESSES)
        .map(|i| {
            let address = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i));
            let entity = Entity {
                address,
                bindings: [format!("b{i}")].into(),
                listener_ports: if i % 3 == 0 {
                    [25].into()
                } else {
                    Default::default()
                },
                preference: None,
                follow: None,
            };
            (address, Arc::new(entity))
        })
        .collect::<BTreeMap<_, _>>()
        .into();
    (0..nodes)
        .map(|n| {
            (
                format!("node{n:02}"),
                Member {
                    entities: Arc::clone(&entities),
                    ..Member::default()
                },
            )
        })
        .collect()
}

/// A settled cluster with its first node gone.
fn after_death(nodes: usize) -> BTreeMap<NodeName, Member> {
    let mut members = members(nodes);
    let plan = elect(&members, true, &BTreeMap::new());
    for (name, member) in members.iter_mut() {
        member.holdings = plan.owned_by(name).collect();
    }
    members.remove("node00");
    members
}

#[divan::bench(args = [3, 16, 64], sample_count = 20)]
fn first_plan_of_a_view(bencher: divan::Bencher<'_, '_>, nodes: usize) {
    let members = members(nodes);
    bencher.bench(|| elect(divan::black_box(&members), false, &BTreeMap::new()));
}

#[divan::bench(args = [3, 16, 64], sample_count = 20)]
fn first_plan_of_a_view_then_balance(bencher: divan::Bencher<'_, '_>, nodes: usize) {
    let members = members(nodes);
    bencher.bench(|| elect(divan::black_box(&members), true, &BTreeMap::new()));
}

#[divan::bench(args = [3, 16, 64], sample_count = 20)]
fn after_one_node_died(bencher: divan::Bencher<'_, '_>, nodes: usize) {
    let members = after_death(nodes);
    bencher.bench(|| elect(divan::black_box(&members), false, &BTreeMap::new()));
}

#[divan::bench(sample_count = 20)]
fn baseline_copy_one_configuration(bencher: divan::Bencher<'_, '_>) {
    let members = members(1);
    let entities = &members.values().next().expect("one member").entities;
    bencher.bench(|| BTreeMap::clone(divan::black_box(entities)));
}
