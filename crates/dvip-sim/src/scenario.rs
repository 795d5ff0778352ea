//! Scenarios: the cluster a seed describes, node configurations included.
//!
//! Owns turning a seed into hosts and their DuraVIP addresses: mostly identical
//! configurations (as the spec recommends), sometimes overlapping ones, preferences (some
//! conflicting), listeners that follow bindings, and now and then a binding name put on
//! different addresses on different nodes. It must not run anything.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use dvip_core::{Follow, ManagedAddress, PlumbHint};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// A seeded random source with the few draws the simulator needs.
pub(crate) struct Dice(pub(crate) ChaCha8Rng);

impl Dice {
    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.0.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// A number in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

/// Host names: `n1`, `n2`, ...
pub(crate) fn host_name(i: usize) -> String {
    format!("n{}", i + 1)
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i as u32,
    ))
}

/// The address pool of a scenario, each slot describing what nodes normally say about it.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub(crate) slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub(crate) struct Slot {
    address: IpAddr,
    binding: Option<String>,
    ports: BTreeSet<u16>,
    preference: Option<String>,
    follows: Option<usize>,
}

impl Pool {
    pub(crate) fn new(dice: &mut Dice, hosts: usize) -> Self {
        let count = 1 + dice.below(24);
        let mut slots = Vec::with_capacity(count);
        for i in 0..count {
            // A listener-only address may follow an earlier binding address.
            let follows = if i > 0 && dice.chance(0.2) {
                let leader = dice.below(i);
                slots
                    .get(leader)
                    .and_then(|s: &Slot| s.binding.as_ref())
                    .map(|_| leader)
            } else {
                None
            };
            let binding = follows.is_none().then(|| format!("b{i}"));
            let mut ports = BTreeSet::new();
            if follows.is_some() || dice.chance(0.4) {
                ports.insert(25);
            }
            let preference =
                (follows.is_none() && dice.chance(0.25)).then(|| host_name(dice.below(hosts + 1)));
            slots.push(Slot {
                address: address(i),
                binding,
                ports,
                preference,
                follows,
            });
        }
        Self { slots }
    }

    /// One host's configuration. Most hosts configure every address the same way; some
    /// leave addresses out, name another preferred node, drop a listener, or put a binding
    /// name on the wrong address.
    pub(crate) fn config_for(&self, dice: &mut Dice, disjoint: bool) -> Vec<ManagedAddress> {
        let mut out: Vec<ManagedAddress> = Vec::new();
        for slot in &self.slots {
            if disjoint && dice.chance(0.3) {
                continue;
            }
            // A valid configuration never follows a binding it does not have.
            if let Some(l) = slot.follows {
                if !out.iter().any(|m| m.address == self.slots[l].address) {
                    continue;
                }
            }
            let mut preference = slot.preference.clone();
            if dice.chance(0.03) {
                preference = Some(host_name(dice.below(4)));
            }
            let mut ports = slot.ports.clone();
            if dice.chance(0.03) {
                ports.insert(587);
            }
            let mut bindings: BTreeSet<String> = slot.binding.iter().cloned().collect();
            if slot.binding.is_some() && dice.chance(0.02) {
                // The name of another slot's binding: a name/address mismatch (BROKEN).
                bindings = [format!("b{}", dice.below(self.slots.len()))].into();
            }
            let follow = slot.follows.map(|l| Follow {
                target: format!("b{l}"),
                address: self.slots[l].address,
            });
            out.push(ManagedAddress {
                address: slot.address,
                bindings,
                listener_ports: ports,
                preference,
                follow,
                plumb: PlumbHint {
                    interface: "eth0".into(),
                    cidrmask: 32,
                },
            });
        }
        out
    }
}
