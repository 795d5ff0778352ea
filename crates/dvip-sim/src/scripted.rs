//! Scripted runs: one sequence of faults, chosen by hand, for a fault the seeds reach only
//! rarely. Each returns what it needs to show the fault happened and was survived.
//!
//! Owns the scripts. It must not judge beyond the checker: the violations are `check`'s.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::scenario::{host_name, Dice};
use crate::world::{Violation, World};
use crate::{check, settled_alike, RunOptions};

/// What [`epoch_across_a_lost_bus`] did.
#[derive(Debug, Clone)]
pub struct LostBus {
    /// Every member's agreed epoch of the paused host after the first takeover of it.
    pub epochs_before: Vec<u64>,
    /// Takeovers of the paused host's addresses on its second pause.
    pub second_takeovers: u64,
    /// Every member's agreed epoch of the paused host at the end.
    pub epochs_after: Vec<u64>,
    /// Every invariant breach, liveness included.
    pub violations: Vec<Violation>,
}

/// How long a daemon is paused: past the detector's `suspect_after`, short of the node's
/// pause threshold and of the bus's failure detection (its corosync runs on).
const PAUSE: Duration = Duration::from_millis(300);

/// Three hosts with leases. Host 0's daemon pauses and is taken over, which moves its epoch;
/// then the other two lose corosync and join again, keeping that epoch in their tables while
/// their detectors start over; then host 0 pauses again. Its addresses must be taken over
/// again, and its lease must come back after: a detector that lost the epoch promises in the
/// old one, which no takeover can end, and withholds its acknowledgements for good.
pub fn epoch_across_a_lost_bus(seed: u64, options: &RunOptions) -> LostBus {
    let hosts = 3;
    let dice = Dice(ChaCha8Rng::seed_from_u64(seed));
    let mut world = settled_alike(seed, dice, hosts, options);
    let mut until = world.now;
    let subject = host_name(0);
    let epochs = |world: &World| -> Vec<u64> {
        world
            .hosts
            .iter()
            .map(|h| h.node.as_ref().map_or(0, |n| n.epoch_of(&subject)))
            .collect()
    };

    world.pause_daemon(0, PAUSE);
    until += Duration::from_secs(3);
    world.run_until(until, check::settled);
    let epochs_before = epochs(&world);

    for h in 1..hosts {
        world.kill_corosync(h);
    }
    until += Duration::from_millis(100);
    world.run_until(until, check::settled);
    for h in 1..hosts {
        world.start_corosync(h);
    }
    until += Duration::from_secs(4);
    world.run_until(until, check::settled);

    let takeovers = world.stats.takeovers;
    world.pause_daemon(0, PAUSE);
    until += Duration::from_secs(4);
    world.run_until(until, check::settled);
    let second_takeovers = world.stats.takeovers - takeovers;
    let epochs_after = epochs(&world);
    check::judge_live(&mut world);
    LostBus {
        epochs_before,
        second_takeovers,
        epochs_after,
        violations: world.violations,
    }
}

/// What [`misnamed_view`] did.
#[derive(Debug, Clone)]
pub struct Misnamed {
    /// Daemons that stood down from the split view.
    pub stood_down: u64,
    /// What the misnamed host had in its kernel while the split stood.
    pub held_while_split: usize,
    /// Addresses the other three had between them, counted once, while the split stood.
    pub served_while_split: usize,
    /// Addresses served before the fault.
    pub addresses: usize,
    /// Each running daemon's view id at the end.
    pub view_ids: Vec<Option<u64>>,
    /// Every invariant breach, liveness included.
    pub violations: Vec<Violation>,
}

/// Four hosts settle; then host 0's daemon is killed and started again, and its corosync names
/// every view after unlike the others' (what chaos seed 47 met at round 146). Host 0 must stand
/// down, holding nothing, while the other three serve every address. Then its corosync's
/// names are mended (a ring change does that), and the cluster must end on one view, every
/// address on one host.
pub fn misnamed_view(seed: u64, options: &RunOptions) -> Misnamed {
    let dice = Dice(ChaCha8Rng::seed_from_u64(seed));
    let mut world = settled_alike(seed, dice, 4, options);
    let mut until = world.now;
    let addresses = answered_by(&world, 0..4);
    world.restart_misnamed(0);
    until += Duration::from_secs(5);
    world.run_until(until, check::settled);
    let held_while_split = world.hosts[0].kernel.len();
    let served = answered_by(&world, 1..4);
    world.rejoin(0);
    until += Duration::from_secs(5);
    world.run_until(until, check::settled);
    check::judge_live(&mut world);
    Misnamed {
        stood_down: world.stats.stood_down,
        held_while_split,
        served_while_split: served.len(),
        addresses: addresses.len(),
        view_ids: world
            .hosts
            .iter()
            .map(|h| h.node.as_ref().and_then(dvip_core::Node::view_id))
            .collect(),
        violations: world.violations,
    }
}

/// The addresses on the kernels of `hosts`, each once.
fn answered_by(world: &World, hosts: std::ops::Range<usize>) -> BTreeSet<IpAddr> {
    world.hosts[hosts]
        .iter()
        .flat_map(|h| h.kernel.iter().copied())
        .collect()
}

/// What [`cut_off_while_taken_over`] did.
#[derive(Debug, Clone)]
pub struct CutOff {
    /// Takeovers of the cut-off host's addresses on its lease.
    pub takeovers: u64,
    /// Every invariant breach, liveness included.
    pub violations: Vec<Violation>,
}

/// Three hosts with leases. Host 1 is cut off from both others: they take its addresses on
/// its lease, before corosync's view, while host 1, alone in its own view, keeps them all
/// and takes the rest. The links come back after `apart`. Back with its takers, host 1 holds
/// back until the merged view has settled; it must then answer again, and every address
/// from one host.
pub fn cut_off_while_taken_over(seed: u64, apart: Duration, options: &RunOptions) -> CutOff {
    let hosts = 3;
    let dice = Dice(ChaCha8Rng::seed_from_u64(seed));
    let mut world = settled_alike(seed, dice, hosts, options);
    let mut until = world.now;
    let takeovers = world.stats.takeovers;
    for other in [0, 2] {
        world.set_link(1, other, false);
    }
    until += apart;
    world.run_until(until, check::settled);
    for other in [0, 2] {
        world.set_link(1, other, true);
    }
    until += Duration::from_secs(4);
    world.run_until(until, check::settled);
    check::judge_live(&mut world);
    CutOff {
        takeovers: world.stats.takeovers - takeovers,
        violations: world.violations,
    }
}
