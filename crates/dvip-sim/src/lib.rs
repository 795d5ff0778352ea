//! A seeded simulator for dvip's core: many clusters, many faults, one checker.
//!
//! Each seed describes a cluster (2 to 6 hosts, up to 24 DuraVIP addresses, configurations
//! that mostly agree) and a run: a safety phase that injects faults (daemon and host
//! crashes, corosync deaths, pauses of a host or of its daemon alone, a stopped corosync
//! under a running daemon, partitions and bridges, heals, config reloads, members whose
//! States never arrive, plumbs that fail and interfaces deleted and created again, a daemon
//! restarted whose corosync names its views unlike the others', `announce view`, standby,
//! online and move commands), then a liveness
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
mod leases;
mod replication;
mod scenario;
mod scripted;
mod world;

use std::net::IpAddr;
use std::time::Duration;

use dvip_core::{Command, NodeOptions};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use scenario::{Dice, Pool};
pub use scripted::{
    cut_off_while_taken_over, epoch_across_a_lost_bus, misnamed_view, CutOff, LostBus, Misnamed,
};
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
    /// Whether a fault breaks the ring at once, as corosync's does: nothing multicast after
    /// a member host died, paused or was cut off is ordered in that view. Off, the bus still
    /// orders it there (no corosync does), an order the core must survive as well.
    pub rings_break: bool,
    /// A bus that loses every snapshot of the replication group: a planted fault for the
    /// checker's own tests, which must see the replicas disagree.
    pub lose_replica_snapshots: bool,
    /// Daemons run dvip's own failure detector and take a silent owner's addresses on its
    /// takeovers (docs/leases.md); heartbeats are delayed, lost and cut one way, clocks drift,
    /// and each kernel answers only while its lease is renewed.
    pub leases: bool,
    /// A flaw planted in every detector (with leases), for the checker's own tests.
    pub lease_flaw: Option<dvip_lease::Flaw>,
    /// A planted flaw (with leases): the daemon enforces the lease, not the kernel, so a
    /// paused daemon's host goes on answering.
    pub lease_in_daemon_only: bool,
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
            rings_break: true,
            lose_replica_snapshots: false,
            leases: false,
            lease_flaw: None,
            lease_in_daemon_only: false,
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
    world.rings_break = options.rings_break;
    world.lose_replica_snapshots = options.lose_replica_snapshots;
    enable_leases(&mut world, seed, options);

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
    heal_links(&mut world);
    for h in 0..hosts {
        // A misnamed host stays stood down until its corosync names views as the others do
        // (a ring change would see to it): mended here, as every other fault is healed.
        if world.misnamed(h) {
            world.rejoin(h);
        }
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
    check::judge_live(&mut world);
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

/// Turns the run's leases on, with their flaws, on dice of their own: the faults a seed
/// injects stay the same.
fn enable_leases(world: &mut World, seed: u64, options: &RunOptions) {
    if !options.leases {
        return;
    }
    let own = Dice(ChaCha8Rng::seed_from_u64(seed ^ 0x4c45_4153_4553));
    let mut leases = leases::Leases::new(world.hosts.len(), own);
    leases.options.flaw = options.lease_flaw;
    leases.daemon_only = options.lease_in_daemon_only;
    world.enable_leases(leases);
}

/// Every link up, and (with leases) no heartbeat cut or lost.
fn heal_links(world: &mut World) {
    let n = world.hosts.len();
    for a in 0..n {
        for b in 0..n {
            world.set_link(a, b, true);
        }
    }
    if let Some(leases) = world.leases.as_mut() {
        leases.cut.clear();
        leases.loss = 0.0;
    }
}

/// With leases on, now and then the heartbeats alone suffer: cut one way between two hosts
/// (until links heal), or lost at a new rate, while the bus carries on.
fn hurt_beats(world: &mut World, dice: &mut Dice) {
    let n = world.hosts.len();
    let Some(leases) = world.leases.as_mut() else {
        return;
    };
    let (from, to) = (dice.below(n), dice.below(n));
    match dice.below(5) {
        0 | 1 => {
            leases.cut.resize(n, vec![false; n]);
            leases.cut[from][to] = true;
            world.record_event(&format!("beats cut {from} -> {to}"));
        }
        2 => {
            leases.loss = dice.between(0, 30) as f64 / 100.0;
            let loss = leases.loss;
            world.record_event(&format!("beats lost at {loss}"));
        }
        _ => {}
    }
}

fn inject(world: &mut World, dice: &mut Dice, pool: &Pool, disjoint: bool) {
    hurt_beats(world, dice);
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
        9 | 10 => heal_links(world),
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
            let pick = dice.below(1000);
            let target = dice.below(n);
            let clear = dice.chance(0.3);
            // Drawn from the same dice as a move, so that every seed's faults stay the ones
            // it had before this fault existed.
            if kind == 19 && pick % 4 == 0 {
                world.restart_misnamed(h);
                return;
            }
            world.touch(h);
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

/// What one host's death did to a settled cluster: when survivors answered for its addresses,
/// against when the bus's view left it out.
#[derive(Debug, Clone)]
pub struct Death {
    /// The seed.
    pub seed: u64,
    /// Hosts in the cluster, the dead one included.
    pub hosts: usize,
    /// For every address a dead host held that a survivor serves in the end, over both
    /// deaths: how long after the death a survivor first answered for it.
    pub answered_after: Vec<Duration>,
    /// How long after a death the bus installed a view without the dead host (the longer of
    /// the two).
    pub view_after: Duration,
    /// Every invariant breach, in order.
    pub violations: Vec<Violation>,
}

/// How long [`host_death`] watches after the death: the bus's view, the survivors' plan, and
/// room to spare.
const DEATH_WATCH: Duration = Duration::from_millis(600);

/// Builds a cluster of 3 to 6 hosts with one configuration, lets it settle and mature, and
/// powers off the host holding the most addresses, watching in steps of a millisecond; then
/// powers it on, lets the cluster settle again, and does it once more.
pub fn host_death(seed: u64, options: &RunOptions) -> Death {
    let mut dice = Dice(ChaCha8Rng::seed_from_u64(seed));
    let hosts = 3 + dice.below(4);
    let mut world = settled_alike(seed, dice, hosts, options);
    let mut now = world.now;
    // Twice: a host that died and came back must be taken over again as fast.
    let mut answered_after = Vec::new();
    let mut view_after = Duration::ZERO;
    for round in 0..2 {
        if round > 0 {
            now += Duration::from_secs(3);
            world.run_until(now, check::settled);
        }
        let (answered, view) = kill_busiest(&mut world, &mut now);
        answered_after.extend(answered);
        view_after = view_after.max(view);
    }
    Death {
        seed,
        hosts,
        answered_after,
        view_after,
        violations: world.violations,
    }
}

/// `hosts` hosts with one configuration drawn from `dice`, powered on and settled for 3 s.
fn settled_alike(seed: u64, mut dice: Dice, hosts: usize, options: &RunOptions) -> World {
    let pool = Pool::new(&mut dice, hosts);
    let config = pool.config_for(&mut dice, false);
    let mut world = World::new(vec![config; hosts], options.node.clone());
    world.verbose = options.verbose;
    enable_leases(&mut world, seed, options);
    for h in 0..hosts {
        world.power_on(h);
    }
    world.run_until(Duration::from_secs(3), check::settled);
    world
}

/// Powers off the host holding the most addresses and watches for [`DEATH_WATCH`], then
/// powers it on again; when survivors answered for its addresses (those served in the end),
/// and when the view left it out.
fn kill_busiest(world: &mut World, now: &mut Duration) -> (Vec<Duration>, Duration) {
    let hosts = world.hosts.len();
    let victim = (0..hosts)
        .max_by_key(|&h| (world.hosts[h].kernel.len(), std::cmp::Reverse(h)))
        .unwrap_or(0);
    let held: Vec<IpAddr> = world.hosts[victim].kernel.iter().copied().collect();
    let died = world.now;
    world.power_off(victim);
    let mut first: Vec<Option<Duration>> = vec![None; held.len()];
    let mut view_after = None;
    let step = Duration::from_millis(1);
    while *now < died + DEATH_WATCH {
        *now += step;
        world.run_until(*now, check::settled);
        for (i, address) in held.iter().enumerate() {
            let answered = (0..hosts).any(|h| h != victim && world.answering(h, address));
            if answered && first[i].is_none() {
                first[i] = Some(*now - died);
            }
        }
        if view_after.is_none() && world.views.values().all(|m| !m.contains(&victim)) {
            view_after = Some(*now - died);
        }
    }
    let served: Vec<Duration> = held
        .iter()
        .zip(first)
        .filter(|(a, _)| (0..hosts).any(|h| world.answering(h, a)))
        .filter_map(|(_, at)| at)
        .collect();
    world.power_on(victim);
    (served, view_after.unwrap_or(DEATH_WATCH))
}
