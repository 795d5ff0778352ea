//! A seeded simulator for dvip's core: many clusters, many faults, one checker.
//!
//! Each seed describes a cluster (2 to 6 hosts, up to 24 DuraVIP addresses, configurations
//! that mostly agree) and a run: a safety phase that injects faults (daemon and host
//! crashes, corosync deaths, pauses of a host or of its daemon alone, a stopped corosync
//! under a running daemon, partitions and bridges, heals, config reloads, members whose
//! States never arrive, plumbs that fail and interfaces deleted and created again,
//! `announce view`, standby, online and move commands), then a liveness
//! phase that heals everything (but, in some seeds, one member whose States never arrive),
//! lets the cluster settle, and checks every offered address is plumbed
//! on exactly one host. The bus is simulated with extended virtual
//! synchrony's guarantees and a virtual clock, so a seed replays exactly: the trace hash of
//! two runs of one seed is the same.
//!
//! Every daemon runs a replica of the cluster's counts and caches too, exercised through the
//! faults by dice of their own; `replication` judges them at the end.
//!
//! `check` holds the invariants; a run returns every violation with its virtual time. The
//! `dvip-sim` binary runs ranges of seeds and prints the command that replays a failure.

mod check;
mod replication;
mod scenario;
mod world;

use std::net::IpAddr;
use std::time::Duration;

use dvip_core::{Command, NodeOptions};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use scenario::{Dice, Pool};
pub use world::{Stats, Violation};
use world::{Voice, World};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Faults injected in the safety phase.
    pub faults: usize,
    /// Node options (planted bugs included, for the checker's own tests).
    pub node: NodeOptions,
    /// Print every event to stderr.
    pub verbose: bool,
    /// Whether the bus shows transitional views as CPG does (see the world). Off, it breaks
    /// that promise, to show dvip still converges on a bus that does not keep it.
    pub transitional_views: bool,
    /// A bus that loses every snapshot of the replication group: a planted fault for the
    /// checker's own tests, which must see the replicas disagree.
    pub lose_replica_snapshots: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            faults: 30,
            node: NodeOptions {
                view_mature_time: Duration::from_secs(1),
                // Above the bus's failure detection, so a pause long enough to be
                // excluded is also long enough to drop addresses.
                pause_threshold: Duration::from_millis(400),
                ..NodeOptions::default()
            },
            verbose: false,
            transitional_views: true,
            lose_replica_snapshots: false,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Hosts in the cluster.
    pub hosts: usize,
    /// Hash of everything that happened: equal for two runs of one seed.
    pub trace: u64,
    /// Every invariant breach, in order.
    pub violations: Vec<Violation>,
    /// Counts.
    pub stats: Stats,
    /// Virtual time simulated.
    pub simulated: Duration,
}

/// Runs one seed.
pub fn run(seed: u64, options: &RunOptions) -> Outcome {
    let mut dice = Dice(ChaCha8Rng::seed_from_u64(seed));
    let hosts = 2 + dice.below(5);
    let pool = Pool::new(&mut dice, hosts);
    let disjoint = dice.chance(0.2);
    let configs = (0..hosts)
        .map(|_| pool.config_for(&mut dice, disjoint))
        .collect();
    let mut world = World::new(configs, options.node.clone());
    // Replication's workload has dice of its own: the faults a seed injects stay the same.
    let mut workload = Dice(ChaCha8Rng::seed_from_u64(seed ^ 0x5245_504c_4943_4154));
    world.verbose = options.verbose;
    world.transitional_views = options.transitional_views;
    world.lose_replica_snapshots = options.lose_replica_snapshots;

    for h in 0..hosts {
        world.power_on(h);
    }
    let mut until = Duration::from_secs(2);
    world.run_until(until, check::settled);

    // Safety phase.
    for _ in 0..options.faults {
        replication::exercise(&mut world, &mut workload);
        inject(&mut world, &mut dice, &pool, disjoint);
        world.stats.faults += 1;
        until += Duration::from_millis(dice.between(20, 2500));
        world.run_until(until, check::settled);
        if !world.violations.is_empty() {
            break;
        }
    }

    // Liveness phase: heal everything, bring everyone back, let it settle and mature. In some
    // seeds one host's States never arrive to the end, and the others must serve without it.
    let mute = dice.chance(0.3).then(|| dice.below(hosts));
    for h in 0..hosts {
        let voice = if Some(h) == mute {
            Voice::NoStates
        } else {
            Voice::Clear
        };
        if world.hosts[h].voice != voice {
            world.restart_daemon(h, voice);
        }
    }
    for a in 0..hosts {
        for b in 0..hosts {
            world.set_link(a, b, true);
        }
    }
    for h in 0..hosts {
        world.power_on(h);
        world.start_corosync(h);
        world.continue_corosync(h);
        if world.hosts[h].interface_gone || world.now < world.hosts[h].plumbs_fail_until {
            world.interface_back(h);
        }
        world.start_daemon(h);
        world.with_node(h, |n| {
            if n.is_standby() {
                let _ = n.handle_command(Command::Online);
            }
        });
    }
    until += Duration::from_secs(6);
    world.run_until(until, check::settled);
    let healed = world.views.len() == 1 && world.views.values().all(|m| m.len() == hosts);
    if !healed {
        world.violation(format!("after healing, views are {:?}", world.views));
    }
    check::settled(&mut world);
    let all_standby_off = world
        .hosts
        .iter()
        .all(|h| h.node.as_ref().is_some_and(|n| !n.is_standby()));
    if !all_standby_off {
        // An `online` lost in a view change: say it again and settle.
        for h in 0..hosts {
            world.with_node(h, |n| {
                if n.is_standby() {
                    let _ = n.handle_command(Command::Online);
                }
            });
        }
        until += Duration::from_secs(3);
        world.run_until(until, check::settled);
    }

    // Quiet: nothing may move without a cause.
    let kernels: Vec<_> = world.hosts.iter().map(|h| h.kernel.clone()).collect();
    let plumbs = world.stats.plumbs;
    until += Duration::from_secs(10);
    world.run_until(until, check::settled);
    if world.stats.plumbs != plumbs || world.hosts.iter().map(|h| &h.kernel).ne(kernels.iter()) {
        world.violation("addresses moved during 10 s with no fault, command or reload".to_owned());
    }
    // After an earlier violation the run stopped where it was: nothing to judge.
    if world.violations.is_empty() {
        for problem in check::live(&world) {
            world.violation(problem);
        }
    }
    // Replication agrees, and still works: a probe written now reaches every node.
    if world.violations.is_empty() {
        replication::probe(&mut world);
        until += replication::PROBE_WITHIN;
        world.run_until(until, check::settled);
        for problem in replication::agree(&world) {
            world.violation(problem);
        }
    }

    Outcome {
        seed,
        hosts,
        trace: world.trace,
        violations: world.violations,
        stats: world.stats,
        simulated: until,
    }
}

fn inject(world: &mut World, dice: &mut Dice, pool: &Pool, disjoint: bool) {
    let n = world.hosts.len();
    let h = dice.below(n);
    let kind = dice.below(20);
    world.record_event(&format!("fault {kind} on host {h}"));
    match kind {
        0 => world.kill_daemon(h),
        1 => world.start_daemon(h),
        2 => world.power_off(h),
        3 => world.power_on(h),
        4 => world.kill_corosync(h),
        5 => world.start_corosync(h),
        6 => {
            let length = Duration::from_millis(dice.between(100, 3000));
            world.pause(h, length);
        }
        7 => {
            // Partition: a random side cut off from the rest.
            let side: Vec<bool> = (0..n).map(|_| dice.chance(0.5)).collect();
            for a in 0..n {
                for b in 0..n {
                    if side[a] != side[b] {
                        world.set_link(a, b, false);
                    }
                }
            }
        }
        8 => {
            // One link down (what an asymmetric fault looks like to a ring protocol), or a
            // bridge: two groups that only one host connects.
            let other = dice.below(n);
            world.set_link(h, other, false);
        }
        9 | 10 => {
            for a in 0..n {
                for b in 0..n {
                    world.set_link(a, b, true);
                }
            }
        }
        11 => {
            let partial = disjoint || dice.chance(0.3);
            let config = pool.config_for(dice, partial);
            // A paused daemon would read the new file when it wakes; keep the model simple
            // and reload only hosts that can act on it at once (or whose daemon is down, and
            // will read it at start). A host whose States do not arrive keeps its file: a
            // reload the others can never see is one `config check` refuses.
            if !world.hosts[h].paused && world.hosts[h].voice == Voice::Clear {
                world.touch(h);
                world.hosts[h].config.clone_from(&config);
                let offered = world.hosts[h].offered();
                world.with_node(h, |node| node.handle_config(&offered));
            }
        }
        15 => {
            // The whole host (a VM paused), or dvipd alone (SIGSTOP while its corosync runs
            // on, so the others keep delivering to it and it wakes to a backlog).
            let length = Duration::from_millis(dice.between(100, 4000));
            if dice.between(0, 1) == 0 {
                world.pause_daemon(h, length);
            } else {
                world.pause(h, length);
            }
        }
        17 => {
            let length = Duration::from_millis(dice.between(100, 5000));
            world.stop_corosync(h, length);
        }
        18 => {
            // Plumbs fail for a while: a netlink error, or the interface deleted and created
            // again (a udev rename, a bond rebuilt). Past the plumb deadline the host gives
            // its addresses up to the others.
            let length = Duration::from_millis(dice.between(100, 5000));
            let removed = dice.chance(0.5);
            world.fail_plumbs(h, length, removed);
        }
        16 => {
            // A daemon restarted as one whose States never arrive (a State over the size
            // limit), or back to normal.
            let voice = if dice.chance(0.5) {
                Voice::NoStates
            } else {
                Voice::Clear
            };
            world.restart_daemon(h, voice);
        }
        12 => {
            world.touch(h);
            world.with_node(h, |node| {
                let _ = node.handle_command(Command::AnnounceView);
            });
        }
        13 => {
            world.touch(h);
            let standby = dice.chance(0.5);
            world.with_node(h, |node| {
                let _ = node.handle_command(if standby {
                    Command::Standby
                } else {
                    Command::Online
                });
            });
        }
        _ => {
            world.touch(h);
            let pick = dice.below(1000);
            let target = dice.below(n);
            let clear = dice.chance(0.3);
            world.with_node(h, |node| {
                // Now and then an operator clears a standing move this node knows.
                let standing: Vec<IpAddr> = node.standing_moves().map(|(a, _)| a).collect();
                if clear && !standing.is_empty() {
                    let address = standing[pick % standing.len()];
                    let _ = node.handle_command(Command::ClearMove { address });
                    return;
                }
                let addresses: Vec<IpAddr> = node.plan().addresses.keys().copied().collect();
                if addresses.is_empty() {
                    return;
                }
                let address = addresses[pick % addresses.len()];
                let to = scenario::host_name(target);
                let _ = node.handle_command(Command::Move { address, to });
            });
        }
    }
}
