//! The checker: invariants of a settled cluster, judged from outside the nodes.
//!
//! Owns what "behaved" means. Wherever it can, it recomputes the expected answer from the
//! hosts' configurations and kernels instead of trusting what the nodes report, so a bug in
//! the election cannot hide itself. Checked in every view once the bus is quiet:
//!
//! - every member of the view computed the same plan;
//! - what each node decided is what its host has plumbed, and its listeners run exactly on
//!   its plumbed listener addresses (no orphans, after restarts too);
//! - every address has exactly the planned owner among the view's members, and none when it
//!   has no owner;
//! - marks are right: BROKEN, CONFLICT and UNSAFE recomputed from the configurations;
//! - in a matured view, loads are within one, uncontested preferred nodes hold their
//!   addresses, and followers sit with their binding (until then a held follower may stay
//!   put, so that a departure moves nothing but the departed node's addresses);
//! - when members only left, nobody else's address moved.
//!
//! The one rule that must hold at every instant (nobody plumbs what another member of its
//! view has plumbed) is checked by `world` as each action is carried out.
//!
//! Members found silent (their State never came) offer nothing, so they are left out of what
//! the configurations say. And since a cluster that never plans passes every check above,
//! [`live`] judges the end of a run from the kernels alone: every address that a running,
//! audible node offers is plumbed on exactly one host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use dvip_core::election::check::balance_violation;
use dvip_core::{ManagedAddress, Plan, Reason};

use crate::world::{Voice, World, FAILURE_DETECTION, TICK};

pub(crate) fn settled(world: &mut World) {
    // A daemon whose corosync has been stopped past its echo deadline has let everything go:
    // the others have taken its addresses by now.
    // (Its last echo may have come back just before the ring excluded it; the next goes out
    // an interval later, on a tick, and is missed on a tick after the deadline.)
    let deadline =
        FAILURE_DETECTION + world.options.echo_interval + world.options.bus_deadline + 3 * TICK;
    for h in 0..world.hosts.len() {
        let host = &world.hosts[h];
        if host
            .corosync_stopped
            .is_some_and(|since| world.now.saturating_sub(since) > deadline)
            && !host.paused
            && host.node.is_some()
            && !host.kernel.is_empty()
        {
            let what = format!(
                "{}'s corosync is stopped but it still has {:?}",
                host.name, host.kernel
            );
            world.violation(what);
        }
    }
    let views: Vec<(u64, BTreeSet<usize>)> =
        world.views.iter().map(|(id, m)| (*id, m.clone())).collect();
    for (view_id, members) in views {
        // A member whose daemon is paused is frozen where it stopped: the view settles when
        // it has caught up.
        let ready = members.iter().all(|&h| {
            !world.hosts[h].paused
                && world.hosts[h]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.is_ready() && n.view_id() == Some(view_id))
        });
        if !ready {
            continue;
        }
        world.stats.settles += 1;
        if world.verbose {
            let h = *members.iter().next().expect("a view has members");
            let node = world.hosts[h].node.as_ref().expect("ready, so running");
            let owners: Vec<String> = node
                .plan()
                .addresses
                .iter()
                .map(|(a, d)| {
                    format!(
                        "{}={}({})",
                        a,
                        d.owner.as_deref().unwrap_or("-"),
                        d.reason.as_str()
                    )
                })
                .collect();
            let mature = if node.is_mature() {
                "mature"
            } else {
                "immature"
            };
            eprintln!(
                "{:>10.3} settled view {view_id} ({mature}): {}",
                world.now.as_secs_f64(),
                owners.join(" ")
            );
        }
        let problems = check_view(world, view_id, &members);
        for p in problems {
            world.violation(format!("view {view_id}: {p}"));
        }
    }
}

fn check_view(world: &World, view_id: u64, members: &BTreeSet<usize>) -> Vec<String> {
    let mut problems = Vec::new();
    let node = |h: usize| {
        world.hosts[h]
            .node
            .as_ref()
            .expect("checked ready, so running")
    };
    let first = *members.iter().next().expect("a view has members");
    let plan: &Plan = node(first).plan();
    for &h in members {
        if node(h).plan() != plan {
            problems.push(format!(
                "{} and {} computed different plans",
                world.hosts[first].name, world.hosts[h].name
            ));
        }
        let host = &world.hosts[h];
        // Held but failing to plumb is dark, not wrong: bounded by the plumb deadline.
        let answering: BTreeSet<IpAddr> = node(h)
            .plumbed()
            .difference(&node(h).unplumbed())
            .copied()
            .collect();
        if host.kernel != answering {
            problems.push(format!(
                "{} decided {:?} but has {:?} plumbed",
                host.name,
                node(h).plumbed(),
                host.kernel
            ));
        }
        let listening: BTreeSet<IpAddr> = host
            .kernel
            .iter()
            .copied()
            .filter(|a| {
                host.config
                    .iter()
                    .any(|m| m.address == *a && !m.listener_ports.is_empty())
            })
            .collect();
        if host.services != listening {
            problems.push(format!(
                "{} runs listeners on {:?}, should on {:?}",
                host.name, host.services, listening
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let name = |h: usize| world.hosts[h].name.clone();
    let silent = node(first).silent();
    // What each member offers: its configuration, less a deleted interface and what it
    // gave up.
    let offered: BTreeMap<String, Vec<ManagedAddress>> = members
        .iter()
        .filter(|&&h| !silent.contains(&world.hosts[h].name))
        .map(|&h| {
            let given_up = node(h).given_up();
            let offered = world.hosts[h]
                .offered()
                .into_iter()
                .filter(|m| !given_up.contains(&m.plumb.interface))
                .collect();
            (name(h), offered)
        })
        .collect();
    let configs: BTreeMap<String, &Vec<ManagedAddress>> =
        offered.iter().map(|(n, c)| (n.clone(), c)).collect();
    let standby: BTreeSet<String> = members
        .iter()
        .filter(|&&h| node(h).is_standby())
        .map(|&h| name(h))
        .collect();
    let expected = Expected::new(&configs, &standby);

    for (address, decision) in &plan.addresses {
        let holders: Vec<String> = members
            .iter()
            .filter(|&&h| world.hosts[h].kernel.contains(address))
            .map(|&h| name(h))
            .collect();
        let want: Vec<String> = decision.owner.iter().map(|o| o.to_string()).collect();
        let failing = members
            .iter()
            .any(|&h| node(h).unplumbed().contains(address));
        // Held off by a promise about its last holder: dark, bounded by the promise's end.
        let deferred = members.iter().any(|&h| node(h).defers(address));
        if holders != want && !((failing || deferred) && holders.is_empty()) {
            problems.push(format!(
                "{address} is plumbed on {holders:?} but planned for {want:?}"
            ));
        }
        let marks = expected.marks(address);
        let got = (
            decision.marks.broken,
            decision.marks.conflict,
            decision.marks.is_unsafe(),
        );
        if marks != got {
            problems.push(format!(
                "{address} marked (broken, conflict, unsafe) = {got:?}, expected {marks:?}"
            ));
        }
        if decision.owner.is_none() && !marks.0 && !expected.candidates(address).is_empty() {
            problems.push(format!(
                "{address} has candidates {:?} but no owner",
                expected.candidates(address)
            ));
        }
    }

    let mature = node(first).is_mature();
    if mature {
        if let Some(p) = balance_violation(plan) {
            problems.push(p);
        }
        for (address, decision) in &plan.addresses {
            if let Some(p) = expected.preferred(address) {
                // A standing move (`dvip move`) rules over the preference until it is cleared.
                if decision.reason != Reason::Pinned
                    && decision.follows.is_none()
                    && decision.owner.as_deref() != Some(p.as_str())
                {
                    problems.push(format!(
                        "{address} is on {:?}, not its preferred {p}",
                        decision.owner
                    ));
                }
            }
        }
    }
    // Followers rejoin their group when the view matures (see the election's
    // `keep_held_followers`), so they are judged in matured views.
    for (address, decision) in plan.addresses.iter().filter(|_| mature) {
        if let Some(leader) = expected.leader(address) {
            if decision.owner.is_some() && plan.owner(&leader) != decision.owner.as_deref() {
                problems.push(format!(
                    "follower {address} is on {:?} but its binding {leader} on {:?}",
                    decision.owner,
                    plan.owner(&leader)
                ));
            }
        }
    }

    // A view formed only by departures from one earlier view: nothing but the departed
    // nodes' addresses may have moved (until the view matures and rebalances).
    if let (false, Some(before)) = (mature, world.origins.get(&view_id)) {
        let names: BTreeSet<String> = members.iter().map(|&h| name(h)).collect();
        for (address, owner) in before {
            let Some(owner) = owner.as_ref().filter(|o| names.contains(*o)) else {
                continue;
            };
            let now = plan.owner(address);
            if now != Some(owner.as_str()) {
                problems.push(format!(
                    "{address} moved from {owner} to {now:?} though only other nodes left"
                ));
            }
        }
    }
    problems
}

/// Judges liveness at the end of a run, unless an earlier violation stopped the run where it
/// was (nothing to judge then); with `verbose`, prints where each lease stands.
pub(crate) fn judge_live(world: &mut World) {
    if world.violations.is_empty() {
        for problem in live(world) {
            world.violation(problem);
        }
    }
    if world.verbose {
        for line in world.describe_leases() {
            eprintln!("{:>10.3} {line}", world.now.as_secs_f64());
        }
    }
}

/// Liveness, judged at the end of a run from the hosts alone: every address that a running
/// node whose States arrive offers (not BROKEN, not on standby) is answered for (plumbed, and
/// with leases its kernel lease alive) on exactly one host, and nothing is answered for where
/// nobody offers it.
pub(crate) fn live(world: &World) -> Vec<String> {
    let audible: Vec<&crate::world::Host> = world
        .hosts
        .iter()
        .filter(|h| h.node.is_some() && h.powered && h.voice == Voice::Clear)
        .collect();
    let configs: BTreeMap<String, &Vec<ManagedAddress>> = audible
        .iter()
        .map(|h| (h.name.clone(), &h.config))
        .collect();
    let standby: BTreeSet<String> = audible
        .iter()
        .filter(|h| h.node.as_ref().is_some_and(dvip_core::Node::is_standby))
        .map(|h| h.name.clone())
        .collect();
    let expected = Expected::new(&configs, &standby);
    let every: BTreeSet<IpAddr> = world
        .hosts
        .iter()
        .flat_map(|h| {
            h.config
                .iter()
                .map(|m| m.address)
                .chain(h.kernel.iter().copied())
        })
        .collect();
    let mut problems = Vec::new();
    // A member that speaks, found silent once, must be heard again: else it serves nothing
    // for as long as the view lasts.
    for host in &audible {
        let Some(node) = &host.node else { continue };
        for name in node.silent() {
            if audible.iter().any(|h| h.name == name) {
                problems.push(format!(
                    "liveness: {} still counts {name} as silent though it speaks",
                    host.name
                ));
            }
        }
    }
    for address in every {
        // Plumbed is not enough with leases: the kernel must answer for it too.
        let on: Vec<&str> = (0..world.hosts.len())
            .filter(|&h| world.answering(h, &address))
            .map(|h| world.hosts[h].name.as_str())
            .collect();
        let candidates = expected.candidates(&address);
        let served = !candidates.is_empty() && !expected.broken(&address);
        if served && on.len() != 1 {
            problems.push(format!(
                "liveness: {address} is offered by {candidates:?} but plumbed on {on:?}"
            ));
        }
        if !served && !on.is_empty() {
            problems.push(format!(
                "liveness: {address} is offered by nobody that can have it but plumbed on {on:?}"
            ));
        }
    }
    problems
}

/// What the configurations of a view's members say, recomputed without the election.
struct Expected<'c> {
    configs: &'c BTreeMap<String, &'c Vec<ManagedAddress>>,
    standby: &'c BTreeSet<String>,
    /// Binding name → addresses it is on, across members.
    names: BTreeMap<&'c str, BTreeSet<IpAddr>>,
}

impl<'c> Expected<'c> {
    fn new(
        configs: &'c BTreeMap<String, &'c Vec<ManagedAddress>>,
        standby: &'c BTreeSet<String>,
    ) -> Self {
        let mut names: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for config in configs.values() {
            for m in config.iter() {
                for b in &m.bindings {
                    names.entry(b).or_default().insert(m.address);
                }
            }
        }
        Self {
            configs,
            standby,
            names,
        }
    }

    fn ads(&self, address: &IpAddr) -> Vec<(&'c str, &'c ManagedAddress)> {
        self.configs
            .iter()
            .filter_map(|(n, c)| {
                c.iter()
                    .find(|m| m.address == *address)
                    .map(|m| (n.as_str(), m))
            })
            .collect()
    }

    fn candidates(&self, address: &IpAddr) -> BTreeSet<&'c str> {
        self.ads(address)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !self.standby.contains(*n))
            .collect()
    }

    /// A binding name on it sits on another address somewhere, or two members name different
    /// bindings on it.
    fn broken(&self, address: &IpAddr) -> bool {
        let ads = self.ads(address);
        let named: BTreeSet<&BTreeSet<String>> = ads
            .iter()
            .map(|(_, m)| &m.bindings)
            .filter(|b| !b.is_empty())
            .collect();
        named.len() > 1
            || ads
                .iter()
                .any(|(_, m)| m.bindings.iter().any(|b| self.names[b.as_str()].len() > 1))
    }

    /// (broken, conflict, unsafe)
    fn marks(&self, address: &IpAddr) -> (bool, bool, bool) {
        let ads = self.ads(address);
        let preferences: BTreeSet<&str> = ads
            .iter()
            .filter_map(|(_, m)| m.preference.as_deref())
            .collect();
        let unsafe_ = ads.windows(2).any(|w| {
            let (a, b) = (w[0].1, w[1].1);
            a.bindings != b.bindings
                || a.listener_ports != b.listener_ports
                || a.follow.as_ref().map(|f| f.address) != b.follow.as_ref().map(|f| f.address)
        });
        (self.broken(address), preferences.len() > 1, unsafe_)
    }

    /// The preferred node, when the preference is uncontested and can be honoured.
    fn preferred(&self, address: &IpAddr) -> Option<String> {
        let (broken, conflict, _) = self.marks(address);
        if broken || conflict {
            return None;
        }
        let preference = self
            .ads(address)
            .iter()
            .find_map(|(_, m)| m.preference.clone())?;
        self.candidates(address)
            .contains(preference.as_str())
            .then_some(preference)
    }

    /// The binding address a follower must sit with, when every member agrees on it and the
    /// follower can go wherever the binding can.
    fn leader(&self, address: &IpAddr) -> Option<IpAddr> {
        let ads = self.ads(address);
        let target = ads.first()?.1.follow.as_ref()?.address;
        if ads
            .iter()
            .any(|(_, m)| m.follow.as_ref().map(|f| f.address) != Some(target))
            || self.broken(&target)
        {
            return None;
        }
        let theirs = self.candidates(&target);
        (!theirs.is_empty() && theirs.is_subset(&self.candidates(address))).then_some(target)
    }
}
