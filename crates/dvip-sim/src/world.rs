//! The simulated world: hosts, their kernels, a virtual clock and an extended-virtual-synchrony
//! bus.
//!
//! Owns everything the real daemon's edges would do, done in memory: carrying out a node's
//! actions (plumbing into a per-host address set, multicasting on the bus), and the bus's
//! guarantees: within a view every member is delivered the same messages in the same order,
//! its own included; before a new view is installed, every message of the old view is
//! delivered to the old members that are still there; view ids only grow. It must not judge
//! whether the cluster behaved; `check` does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use dvip_core::{Action, Event, ManagedAddress, Node, NodeOptions};
use dvip_replicate::Replica;

/// How long the bus takes to notice a host or its corosync is gone, or a link is cut.
pub(crate) const FAILURE_DETECTION: Duration = Duration::from_millis(250);
/// How long the bus takes to notice a daemon left or joined the group.
pub(crate) const GROUP_CHANGE: Duration = Duration::from_millis(10);
/// How long a multicast takes to be delivered.
pub(crate) const DELIVERY: Duration = Duration::from_millis(1);
/// How often each daemon's timer ticks.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// How long dvipd waits before joining the group again after leaving it.
pub(crate) const REJOIN: Duration = Duration::from_secs(1);
/// What a misnamed host's view ids differ from the bus's by.
const MISNAMED: u64 = 0x5eed_0000_0000_0000;
/// How long an address outlives the daemon that stopped refreshing it (dvipd's shortest
/// lifetime).
pub(crate) const ADDRESS_LIFETIME: Duration = dvip_core::ADDRESS_LIFETIME_MIN;

/// What a daemon's multicasts look like to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Voice {
    /// As sent.
    Clear,
    /// States and Carried announcements never arrive (a State over the size limit).
    NoStates,
}

/// What a paused daemon's corosync kept for it.
#[derive(Debug, Clone)]
enum Queued {
    View(u64, BTreeSet<String>),
    Message(u64, String, Vec<u8>),
}

/// What happens at a point of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Happening {
    /// Deliver the next message of a view.
    Deliver { view_id: u64 },
    /// Deliver the next message of a view's replication group.
    DeliverReplica { view_id: u64 },
    /// The bus recomputes its views.
    Membership,
    /// A daemon's timer; `generation` tells a stale chain (from a killed daemon) apart.
    Tick { host: usize, generation: u64 },
    /// A paused host wakes.
    Wake { host: usize },
    /// A stopped corosync continues.
    ContinueCorosync { host: usize },
    /// A host's interface can carry addresses again (re-created, or its errors stopped).
    InterfaceBack { host: usize },
    /// Every daemon's heartbeat (with leases on).
    Beats,
    /// A heartbeat reaches its receiver.
    BeatArrives { id: u64 },
}

/// One machine.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) config: Vec<ManagedAddress>,
    /// The daemon, when running.
    pub(crate) node: Option<Node>,
    /// The daemon's replica of the cluster's counts and caches, which lives and dies with it.
    pub(crate) replica: Option<Replica>,
    pub(crate) powered: bool,
    pub(crate) corosync: bool,
    pub(crate) paused: bool,
    /// Only the daemon is paused (SIGSTOP): corosync keeps the host in the ring and queues
    /// views and messages for it.
    pub(crate) daemon_only: bool,
    /// When the pause began: the kernel drops addresses nobody refreshed for
    /// [`ADDRESS_LIFETIME`].
    paused_at: Duration,
    pub(crate) voice: Voice,
    /// Since when corosync is stopped (SIGSTOP) while the daemon runs: the daemon is told
    /// nothing and its multicasts go nowhere.
    pub(crate) corosync_stopped: Option<Duration>,
    /// The daemon left the group to join again (its echo did not come back) and is out of
    /// it until then.
    away_until: Duration,
    /// Its corosync names the group's views unlike the others' (CPG's process list here
    /// differs from theirs: a zombie of the daemon before), until the daemon joins again.
    misnamed: bool,
    /// Addresses on the host's interfaces.
    pub(crate) kernel: BTreeSet<IpAddr>,
    /// Until when every plumb on this host fails (a netlink error, an interface missing).
    pub(crate) plumbs_fail_until: Duration,
    /// The host's interface is gone: what was on it went with it, and the daemon no longer
    /// offers its addresses (as dvipd does when the kernel reports the link removed).
    pub(crate) interface_gone: bool,
    /// Addresses whose listener services run.
    pub(crate) services: BTreeSet<IpAddr>,
    /// The bus view the daemon is in.
    pub(crate) view: Option<u64>,
    /// Bumped whenever the daemon (re)starts its timer chain.
    tick_generation: u64,
    /// Views and messages delivered while the daemon was paused, kept (as its corosync
    /// would) until it wakes.
    inbox: VecDeque<Queued>,
    /// The last view handed to the daemon and how many of its messages the daemon was given:
    /// members that agree on both came from that view together.
    delivered: Option<(u64, u64)>,
}

impl Host {
    /// What the daemon offers: its configuration, unless its interface is gone.
    pub(crate) fn offered(&self) -> Vec<ManagedAddress> {
        if self.interface_gone {
            Vec::new()
        } else {
            self.config.clone()
        }
    }

    /// The interfaces its configuration names.
    fn interfaces(&self) -> BTreeSet<String> {
        self.config
            .iter()
            .map(|m| m.plumb.interface.clone())
            .collect()
    }

    /// Whether the host takes part in the bus's ring.
    fn on_ring(&self) -> bool {
        self.powered
            && self.corosync
            && self.corosync_stopped.is_none()
            && (!self.paused || self.daemon_only)
    }
}

/// A breach of an invariant, with when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time.
    pub at: Duration,
    /// What went wrong.
    pub what: String,
}

pub(crate) struct World {
    pub(crate) now: Duration,
    pub(crate) hosts: Vec<Host>,
    /// `links[i][j]`: i and j can reach each other.
    pub(crate) links: Vec<Vec<bool>>,
    queue: BinaryHeap<Reverse<(Duration, u64, Happening)>>,
    sequence: u64,
    next_view_id: u64,
    /// Current views: id → member hosts.
    pub(crate) views: BTreeMap<u64, BTreeSet<usize>>,
    /// Every view ever installed, transitional ones included: id → member hosts.
    pub(crate) history: BTreeMap<u64, BTreeSet<usize>>,
    /// The view each host was in when it last plumbed each address it has, and when.
    pub(crate) plumbed_in: BTreeMap<(usize, IpAddr), (u64, Duration)>,
    pending: BTreeMap<u64, VecDeque<(usize, Vec<u8>)>>,
    /// The replication group's messages, a group of its own as in dvipd: its traffic never
    /// delays the election's. Its views are the cluster group's.
    replica_pending: BTreeMap<u64, VecDeque<(usize, Vec<u8>)>>,
    /// Views whose ring broke (a member host powered off or paused, its corosync killed or
    /// stopped, a link between two members cut): corosync orders nothing more in them, so
    /// what is multicast into one waits for its sender's next view, where the core finds it
    /// stale (a `Took` sent on a lease after a host death is one).
    broken: BTreeSet<u64>,
    /// What was multicast into a broken view: (sender, bytes).
    unordered: Vec<(usize, Vec<u8>)>,
    /// Hosts whose plan changed for reasons of their own while their view's ring was broken:
    /// what they said of it reaches the others only in the next view, which is then more
    /// than departures.
    touched_broken: BTreeSet<usize>,
    pub(crate) options: NodeOptions,
    pub(crate) violations: Vec<Violation>,
    /// FNV-1a over everything that happened, to prove a seed replays identically.
    pub(crate) trace: u64,
    pub(crate) stats: Stats,
    /// Print what happens, for replaying a failing seed.
    pub(crate) verbose: bool,
    /// Show members that came together from one view a view of their own first, as CPG does.
    pub(crate) transitional_views: bool,
    /// A fault breaks its view's ring at once (see `broken`).
    pub(crate) rings_break: bool,
    /// Lose the replication group's snapshots (a planted fault).
    pub(crate) lose_replica_snapshots: bool,
    /// For a view formed only by departures from one earlier view: that view's owners when
    /// it ended, so the checker can tell whether anything but the departed nodes' addresses
    /// moved.
    pub(crate) origins: BTreeMap<u64, BTreeMap<IpAddr, Option<String>>>,
    /// Detectors, heartbeats and kernel leases, when the run turns leases on.
    pub(crate) leases: Option<crate::leases::Leases>,
}

/// Counts of what a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Views installed.
    pub views: u64,
    /// Messages delivered (one per receiver).
    pub deliveries: u64,
    /// Plumb actions carried out.
    pub plumbs: u64,
    /// Faults injected.
    pub faults: u64,
    /// Settled states checked.
    pub settles: u64,
    /// Replication's operations (connections, throttle hits, cache writes) made.
    pub replica_ops: u64,
    /// Replication messages delivered (one per receiver).
    pub replica_deliveries: u64,
    /// Takeovers a node acted on (with leases), and the addresses they moved.
    pub takeovers: u64,
    /// Addresses taken over.
    pub taken: u64,
    /// Leases that ran out.
    pub lapses: u64,
    /// Takeovers told again in the view after a broken ring (with leases).
    pub told_again: u64,
    /// Daemons that stood down from a view half its members named differently.
    pub stood_down: u64,
}

impl World {
    pub(crate) fn new(configs: Vec<Vec<ManagedAddress>>, options: NodeOptions) -> Self {
        let n = configs.len();
        let hosts = configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| Host {
                name: crate::scenario::host_name(i),
                config,
                node: None,
                replica: None,
                powered: false,
                corosync: false,
                paused: false,
                daemon_only: false,
                paused_at: Duration::ZERO,
                voice: Voice::Clear,
                corosync_stopped: None,
                away_until: Duration::ZERO,
                misnamed: false,
                kernel: BTreeSet::new(),
                plumbs_fail_until: Duration::ZERO,
                interface_gone: false,
                services: BTreeSet::new(),
                view: None,
                tick_generation: 0,
                inbox: VecDeque::new(),
                delivered: None,
            })
            .collect();
        Self {
            now: Duration::ZERO,
            hosts,
            links: vec![vec![true; n]; n],
            queue: BinaryHeap::new(),
            sequence: 0,
            next_view_id: 1,
            views: BTreeMap::new(),
            history: BTreeMap::new(),
            plumbed_in: BTreeMap::new(),
            pending: BTreeMap::new(),
            replica_pending: BTreeMap::new(),
            broken: BTreeSet::new(),
            unordered: Vec::new(),
            touched_broken: BTreeSet::new(),
            options,
            violations: Vec::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            stats: Stats::default(),
            verbose: false,
            transitional_views: true,
            rings_break: true,
            lose_replica_snapshots: false,
            origins: BTreeMap::new(),
            leases: None,
        }
    }

    pub(crate) fn record(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.trace ^= u64::from(b);
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn record_event(&mut self, text: &str) {
        if self.verbose {
            eprintln!("{:>10.3} {text}", self.now.as_secs_f64());
        }
        let stamp = self.now.as_micros().to_le_bytes();
        self.record(&stamp);
        self.record(text.as_bytes());
    }

    pub(crate) fn violation(&mut self, what: String) {
        self.violations.push(Violation { at: self.now, what });
    }

    pub(crate) fn schedule(&mut self, after: Duration, happening: Happening) {
        self.sequence += 1;
        self.queue
            .push(Reverse((self.now + after, self.sequence, happening)));
    }

    /// Whether anything but timers is still in flight on the bus.
    pub(crate) fn bus_quiet(&self) -> bool {
        self.pending.values().all(VecDeque::is_empty)
            && self.replica_pending.values().all(VecDeque::is_empty)
            && !self
                .queue
                .iter()
                .any(|Reverse((_, _, h))| *h == Happening::Membership)
    }

    /// Runs until `until`, processing everything due.
    pub(crate) fn run_until(&mut self, until: Duration, mut on_quiet: impl FnMut(&mut Self)) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, happening))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            let beat = matches!(happening, Happening::Beats | Happening::BeatArrives { .. });
            self.happen(happening);
            // A heartbeat that moved nothing leaves what was checked as it was.
            if !beat && self.bus_quiet() {
                on_quiet(self);
            }
            if !self.violations.is_empty() {
                return;
            }
        }
        self.now = self.now.max(until);
    }

    fn happen(&mut self, happening: Happening) {
        match happening {
            Happening::Deliver { view_id } => self.deliver_one(view_id, false),
            Happening::DeliverReplica { view_id } => self.deliver_one(view_id, true),
            Happening::Membership => self.membership(),
            Happening::Tick { host, generation } => {
                let h = &self.hosts[host];
                if h.node.is_some() && h.powered && !h.paused && h.tick_generation == generation {
                    self.tick(host);
                    self.schedule(TICK, Happening::Tick { host, generation });
                }
            }
            Happening::ContinueCorosync { host } => self.continue_corosync(host),
            Happening::Beats => self.beats(),
            Happening::BeatArrives { id } => self.beat_arrives(id),
            Happening::InterfaceBack { host } => {
                if self.now >= self.hosts[host].plumbs_fail_until {
                    self.interface_back(host);
                }
            }
            Happening::Wake { host } => {
                let h = &mut self.hosts[host];
                if !h.paused {
                    return;
                }
                let daemon_only = std::mem::replace(&mut h.daemon_only, false);
                h.paused = false;
                if self.now.saturating_sub(h.paused_at) >= ADDRESS_LIFETIME {
                    // Nobody refreshed them: the kernel let them expire.
                    h.kernel.clear();
                }
                self.record_event(&format!("wake {host}"));
                if self.hosts[host].node.is_some() {
                    // The daemon's first input after a pause is the clock, then what its
                    // corosync kept for it: everything, in order, when only the daemon was
                    // paused; only the current view's messages when the host was cut off.
                    self.start_ticking(host);
                    for queued in std::mem::take(&mut self.hosts[host].inbox) {
                        match queued {
                            Queued::View(view_id, names) => {
                                self.hand_view(host, view_id, &names);
                            }
                            Queued::Message(view_id, from, bytes) => {
                                if daemon_only || self.hosts[host].view == Some(view_id) {
                                    if !bytes.starts_with(b"DR") {
                                        self.stats.deliveries += 1;
                                    }
                                    self.hand_message(host, &from, &bytes);
                                }
                            }
                        }
                    }
                }
                if daemon_only {
                    // It let go of what it held if the pause was long: a move of its own.
                    self.touch(host);
                }
                // What the kernel reported while it slept (an interface deleted or created
                // again), read now.
                if self.hosts[host].interface_gone {
                    self.interface_went(host);
                } else if self.now >= self.hosts[host].plumbs_fail_until {
                    self.interface_ready(host, true);
                }
                self.schedule(GROUP_CHANGE, Happening::Membership);
            }
        }
    }

    fn start_ticking(&mut self, host: usize) {
        self.hosts[host].tick_generation += 1;
        let generation = self.hosts[host].tick_generation;
        self.tick(host);
        self.schedule(TICK, Happening::Tick { host, generation });
    }

    fn tick(&mut self, host: usize) {
        let now = self.now;
        if let Some(node) = self.hosts[host].node.as_mut() {
            node.handle_timeout(now);
        }
        if let Some(replica) = self.hosts[host].replica.as_mut() {
            replica.tick(now);
        }
        self.drain(host);
    }

    // ---- daemon lifecycle ----

    pub(crate) fn start_daemon(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        if !h.powered || h.node.is_some() {
            return;
        }
        // The daemon's edge removes every address it marked as its own before the core
        // starts (a crashed predecessor's, even ones the new configuration dropped); the
        // core then unplumbs its configured addresses again, which finds nothing.
        h.kernel.clear();
        h.delivered = None;
        h.misnamed = false;
        let node = Node::new(h.name.clone(), self.options.clone(), &h.offered());
        h.node = Some(node);
        h.replica = Some(crate::replication::replica(&h.name));
        self.start_detector(host);
        self.record_event(&format!("start {host}"));
        self.start_ticking(host);
        self.schedule(GROUP_CHANGE, Happening::Membership);
    }

    pub(crate) fn kill_daemon(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        if h.node.take().is_some() {
            h.replica = None;
            // kill -9: the kernel keeps the addresses; services die with the process.
            h.services.clear();
            h.view = None;
            h.inbox.clear();
            h.delivered = None;
            self.stop_detector(host, false);
            self.record_event(&format!("kill {host}"));
            self.schedule(GROUP_CHANGE, Happening::Membership);
        }
    }

    pub(crate) fn power_off(&mut self, host: usize) {
        self.break_ring(host);
        let h = &mut self.hosts[host];
        h.node = None;
        h.replica = None;
        h.powered = false;
        h.kernel.clear();
        h.services.clear();
        h.view = None;
        h.paused = false;
        h.inbox.clear();
        h.delivered = None;
        self.stop_detector(host, true);
        self.record_event(&format!("power off {host}"));
        self.schedule(FAILURE_DETECTION, Happening::Membership);
    }

    pub(crate) fn power_on(&mut self, host: usize) {
        if self.hosts[host].powered {
            return;
        }
        let h = &mut self.hosts[host];
        h.powered = true;
        h.corosync = true;
        // Its corosync and daemon are new members of the ring and the group, even if it
        // comes back before the ring noticed it go: the others see it leave first.
        h.away_until = self.now + REJOIN;
        self.record_event(&format!("power on {host}"));
        self.start_daemon(host);
        self.schedule(REJOIN, Happening::Membership);
    }

    pub(crate) fn kill_corosync(&mut self, host: usize) {
        if !self.hosts[host].corosync {
            return;
        }
        self.break_ring(host);
        let h = &mut self.hosts[host];
        h.corosync = false;
        h.view = None;
        h.delivered = None;
        // The daemon's group membership died with corosync: it is a new member when it
        // joins again, a second later, even if corosync is back before the ring noticed.
        h.away_until = self.now + REJOIN;
        if let Some(node) = h.node.as_mut() {
            node.handle_bus_lost();
        }
        // Its detector learns at the drain below that there is no group: nobody to beat to.
        let h = &mut self.hosts[host];
        if let Some(replica) = h.replica.as_mut() {
            // As dvipd's replica when its group is lost: alone until joined again.
            replica.handle_view(0, &BTreeSet::from([h.name.clone()]));
        }
        self.record_event(&format!("corosync down {host}"));
        self.drain(host);
        self.schedule(FAILURE_DETECTION, Happening::Membership);
        self.schedule(REJOIN, Happening::Membership);
    }

    pub(crate) fn start_corosync(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        if h.corosync || !h.powered {
            return;
        }
        h.corosync = true;
        self.record_event(&format!("corosync up {host}"));
        self.schedule(GROUP_CHANGE, Happening::Membership);
    }

    pub(crate) fn pause(&mut self, host: usize, length: Duration) {
        if !self.hosts[host].powered || self.hosts[host].paused {
            return;
        }
        self.break_ring(host);
        let h = &mut self.hosts[host];
        h.paused = true;
        h.paused_at = self.now;
        self.record_event(&format!("pause {host}"));
        self.schedule(length, Happening::Wake { host });
        self.schedule(FAILURE_DETECTION, Happening::Membership);
    }

    /// SIGSTOP of the daemon alone: its corosync stays in the ring and keeps what is delivered
    /// for it; its addresses stay in the kernel until their lifetime runs out.
    pub(crate) fn pause_daemon(&mut self, host: usize, length: Duration) {
        let h = &mut self.hosts[host];
        if !h.powered || h.paused || h.node.is_none() {
            return;
        }
        h.paused = true;
        h.daemon_only = true;
        h.paused_at = self.now;
        self.record_event(&format!("pause daemon {host}"));
        self.schedule(length, Happening::Wake { host });
    }

    /// SIGSTOP of corosync alone: the ring excludes the host, and its daemon, which runs on,
    /// hears nothing and is heard by nobody until corosync continues and joins again.
    pub(crate) fn stop_corosync(&mut self, host: usize, length: Duration) {
        let h = &self.hosts[host];
        if !h.powered || !h.corosync || h.corosync_stopped.is_some() {
            return;
        }
        self.break_ring(host);
        let h = &mut self.hosts[host];
        // Until the ring excludes it, what it would have been delivered is only late, which
        // the model leaves out; after, its view is over and its multicasts go nowhere.
        h.corosync_stopped = Some(self.now);
        self.record_event(&format!("corosync stopped {host}"));
        self.schedule(length, Happening::ContinueCorosync { host });
        self.schedule(FAILURE_DETECTION, Happening::Membership);
    }

    /// The daemon is killed and started again, and its corosync names every view after
    /// unlike the others (what CPG's process lists diverging around a dvipd restarted during
    /// a merge did: chaos seed 47, round 146), until the daemon leaves the group and joins
    /// again.
    pub(crate) fn restart_misnamed(&mut self, host: usize) {
        if self.hosts[host].paused || !self.hosts[host].powered {
            return;
        }
        self.touch(host);
        self.kill_daemon(host);
        self.start_daemon(host);
        self.hosts[host].misnamed = true;
        self.record_event(&format!("restart {host}, its views misnamed"));
        self.hosts[host].away_until = self.now + 2 * GROUP_CHANGE;
        self.schedule(2 * GROUP_CHANGE, Happening::Membership);
    }

    /// Whether its corosync names views unlike the others'.
    pub(crate) fn misnamed(&self, host: usize) -> bool {
        self.hosts[host].misnamed
    }

    /// The daemon leaves the group and joins it again, as a restart would: the others see it
    /// leave, then join as a new member, whose views its corosync names as theirs (the
    /// liveness phase's repair of a misnamed host, and the scripts').
    pub(crate) fn rejoin(&mut self, host: usize) {
        self.touch(host);
        let h = &mut self.hosts[host];
        h.misnamed = false;
        h.view = None;
        h.delivered = None;
        h.away_until = self.now + 2 * GROUP_CHANGE;
        self.record_event(&format!("rejoin {host}"));
        self.schedule(GROUP_CHANGE, Happening::Membership);
        self.schedule(2 * GROUP_CHANGE, Happening::Membership);
    }

    /// The daemon is restarted (a clean stop, then a start) as a build whose multicasts
    /// arrive as `voice` says.
    pub(crate) fn restart_daemon(&mut self, host: usize, voice: Voice) {
        if self.hosts[host].paused {
            return;
        }
        self.touch(host);
        self.with_node(host, Node::handle_shutdown);
        self.kill_daemon(host);
        self.hosts[host].voice = voice;
        self.record_event(&format!("restart {host} as {voice:?}"));
        self.start_daemon(host);
        // The new process is a new member: the group sees the old one leave first.
        self.hosts[host].away_until = self.now + 2 * GROUP_CHANGE;
        self.schedule(2 * GROUP_CHANGE, Happening::Membership);
    }

    /// Every plumb on `host` fails for `length`: a netlink error, or (`removed`) its interface
    /// is deleted, taking its addresses along, and created again after `length`.
    pub(crate) fn fail_plumbs(&mut self, host: usize, length: Duration, removed: bool) {
        let h = &mut self.hosts[host];
        if !h.powered {
            return;
        }
        h.plumbs_fail_until = h.plumbs_fail_until.max(self.now + length);
        self.record_event(&format!("plumbs fail {host} removed={removed}"));
        if removed && !self.hosts[host].interface_gone {
            let h = &mut self.hosts[host];
            h.interface_gone = true;
            h.kernel.clear();
            self.interface_went(host);
        }
        self.schedule(length, Happening::InterfaceBack { host });
    }

    /// What dvipd does when the kernel reports an interface deleted: it tries to put back each
    /// held address that went with it (which fails), and stops offering the interface's
    /// addresses.
    fn interface_went(&mut self, host: usize) {
        self.touch(host);
        let h = &self.hosts[host];
        let offered = h.offered();
        let lost: Vec<IpAddr> = h
            .node
            .as_ref()
            .map(|n| n.plumbed().difference(&h.kernel).copied().collect())
            .unwrap_or_default();
        self.with_node(host, |node| {
            for address in lost {
                node.handle_plumb_failed(address);
            }
            node.handle_config(&offered);
        });
    }

    /// A stopped corosync continues (SIGCONT).
    pub(crate) fn continue_corosync(&mut self, host: usize) {
        if self.hosts[host].corosync_stopped.take().is_some() {
            self.record_event(&format!("corosync continues {host}"));
            self.schedule(GROUP_CHANGE, Happening::Membership);
        }
    }

    /// Plumbs on `host` work again, and a deleted interface is created again.
    pub(crate) fn interface_back(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        h.plumbs_fail_until = h.plumbs_fail_until.min(self.now);
        let recreated = std::mem::replace(&mut h.interface_gone, false);
        self.record_event(&format!("interface back {host}"));
        self.interface_ready(host, recreated);
    }

    /// The host's interfaces are usable again: the daemon offers what it gave up, and
    /// (`recreated`) what it stopped offering when the interface went.
    fn interface_ready(&mut self, host: usize, recreated: bool) {
        if recreated {
            self.touch(host);
            let offered = self.hosts[host].offered();
            self.with_node(host, |node| node.handle_config(&offered));
        }
        for interface in self.hosts[host].interfaces() {
            self.with_node(host, |node| node.handle_interface_ready(&interface));
        }
    }

    pub(crate) fn set_link(&mut self, a: usize, b: usize, up: bool) {
        if a == b || self.links[a][b] == up {
            return;
        }
        self.links[a][b] = up;
        self.links[b][a] = up;
        if !up && self.rings_break {
            let both: Vec<u64> = self
                .views
                .iter()
                .filter(|(_, m)| m.contains(&a) && m.contains(&b))
                .map(|(id, _)| *id)
                .collect();
            self.broken.extend(both);
        }
        self.record_event(&format!("link {a} {b} {up}"));
        self.schedule(FAILURE_DETECTION, Happening::Membership);
    }

    /// A reload or a command on `host` changes its view's plan for reasons of its own: the
    /// view no longer counts as formed by departures alone.
    pub(crate) fn touch(&mut self, host: usize) {
        if let Some(view_id) = self.hosts[host].view {
            self.origins.remove(&view_id);
            if self.broken.contains(&view_id) {
                self.touched_broken.insert(host);
            }
        }
    }

    /// Runs `f` on a host's replica (if its daemon runs and is awake), then carries out what
    /// it sends.
    pub(crate) fn with_replica(&mut self, host: usize, f: impl FnOnce(&mut Replica, Duration)) {
        let now = self.now;
        let h = &mut self.hosts[host];
        if h.paused || !h.powered {
            return;
        }
        if let Some(replica) = h.replica.as_mut() {
            f(replica, now);
        }
        self.drain(host);
    }

    /// A view for the daemon and its replica.
    fn hand_view(&mut self, host: usize, view_id: u64, names: &BTreeSet<String>) {
        // Each misnamed host its own way: two of them name a view unlike each other too.
        let view_id = if self.hosts[host].misnamed {
            view_id ^ MISNAMED.wrapping_mul(host as u64 + 1)
        } else {
            view_id
        };
        if let Some(replica) = self.hosts[host].replica.as_mut() {
            replica.handle_view(view_id, names);
        }
        self.with_node(host, |node| node.handle_view(view_id, names));
    }

    /// A message for the daemon, or for its replica (told apart by the wire's magic, `DR`).
    fn hand_message(&mut self, host: usize, from: &str, bytes: &[u8]) {
        if bytes.starts_with(b"DR") {
            self.stats.replica_deliveries += 1;
            self.with_replica(host, |replica, _| {
                // A message that does not decode is counted by the replica; the checker
                // judges the counts it leads to.
                let _ = replica.handle_message(from, bytes);
            });
        } else {
            self.with_node(host, |node| node.handle_message(from, bytes));
            self.took_here(host, from, bytes);
        }
    }

    /// A taker delivered its own `Took`, current: what it took counts as placed in that view.
    /// That is the view it took in, unless the ring broke first (the `Took` is then told
    /// again in the next view, where the subject is missing: a partition's other side, whose
    /// return is the election's to settle, as for any address the plan placed while it was
    /// away).
    fn took_here(&mut self, host: usize, from: &str, bytes: &[u8]) {
        if self.hosts[host].name != from {
            return;
        }
        let Ok(dvip_core::wire::Message::Took {
            view_id, addresses, ..
        }) = dvip_core::wire::decode(bytes)
        else {
            return;
        };
        // One sent in a view that is over (a transitional view's) is stale: not taken here.
        if self.hosts[host].view != Some(view_id) {
            return;
        }
        for address in addresses {
            if self.hosts[host].kernel.contains(&address) {
                self.plumbed_in.insert((host, address), (view_id, self.now));
            }
        }
    }

    /// Runs `f` on a host's daemon (if running and awake), then carries out its actions.
    pub(crate) fn with_node(&mut self, host: usize, f: impl FnOnce(&mut Node)) {
        let h = &mut self.hosts[host];
        if h.paused || !h.powered {
            return;
        }
        if let Some(node) = h.node.as_mut() {
            f(node);
        }
        self.drain(host);
    }

    // ---- the bus ----

    /// Components of the ring: hosts that are up and can all reach each other. With links
    /// that do not form cliques (a host bridging two groups), hosts join the first component
    /// they fully reach, in host order, as a membership protocol would settle on some split.
    fn components(&self) -> Vec<BTreeSet<usize>> {
        let mut components: Vec<BTreeSet<usize>> = Vec::new();
        for h in (0..self.hosts.len()).filter(|&h| self.hosts[h].on_ring()) {
            match components
                .iter_mut()
                .find(|c| c.iter().all(|&o| self.links[h][o]))
            {
                Some(c) => {
                    c.insert(h);
                }
                None => components.push([h].into()),
            }
        }
        components
    }

    fn membership(&mut self) {
        let groups: Vec<BTreeSet<usize>> = self
            .components()
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .filter(|&h| {
                        self.hosts[h].node.is_some() && self.hosts[h].away_until <= self.now
                    })
                    .collect::<BTreeSet<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        // Views that no longer match a group end; their messages are flushed first.
        let ending: Vec<u64> = self
            .views
            .iter()
            .filter(|(_, members)| !groups.contains(members))
            .map(|(id, _)| *id)
            .collect();
        for id in &ending {
            self.flush(*id);
        }
        // Each ending view's holders (its messages all delivered) and the view each daemon
        // was in.
        let mut ended: BTreeMap<u64, BTreeMap<IpAddr, Option<String>>> = BTreeMap::new();
        for id in &ending {
            let owners = self.views[id].iter().find_map(|&h| {
                let host = &self.hosts[h];
                // A member planned around as silent (fenced by a takeover) announces again in
                // the next view: that view is more than departures.
                let node = host.node.as_ref().filter(|n| {
                    !host.paused && host.view == Some(*id) && n.is_ready() && n.silent().is_empty()
                })?;
                // Who holds what, not who was planned: a plan can wait on a release that a
                // node cut off from the bus never sends.
                let mut owners = BTreeMap::new();
                for (holder, addresses) in node.holdings() {
                    for a in addresses {
                        owners.insert(a, Some(holder.clone()));
                    }
                }
                Some(owners)
            });
            if let Some(owners) = owners {
                ended.insert(*id, owners);
            }
        }
        let was_in: Vec<Option<u64>> = self.hosts.iter().map(|h| h.view).collect();
        let ended_members: BTreeMap<u64, BTreeSet<usize>> = ending
            .iter()
            .map(|id| (*id, self.views[id].clone()))
            .collect();
        for id in ending {
            self.views.remove(&id);
            self.pending.remove(&id);
            self.replica_pending.remove(&id);
            for host in &mut self.hosts {
                if host.view == Some(id) {
                    host.view = None;
                }
            }
        }
        for group in groups {
            if self.views.values().any(|m| *m == group) {
                continue;
            }
            let id = self.next_view_id;
            self.next_view_id += 1;
            self.stats.views += 1;
            self.views.insert(id, group.clone());
            let previous: BTreeSet<Option<u64>> = group.iter().map(|&h| was_in[h]).collect();
            if let [Some(old)] = previous.into_iter().collect::<Vec<_>>()[..] {
                let shrunk = ended_members
                    .get(&old)
                    .is_some_and(|m| group.is_subset(m) && *m != group);
                let told_late = group.iter().any(|h| self.touched_broken.contains(h));
                if let (true, false, Some(owners)) = (shrunk, told_late, ended.get(&old)) {
                    self.origins.insert(id, owners.clone());
                }
            }
            self.history.insert(id, group.clone());
            let names = self.names(&group);
            self.record_event(&format!("view {id} {names:?}"));
            for &h in &group {
                // What a daemon sends from here on, even in answer to a transitional view, is
                // delivered in this one.
                self.hosts[h].view = Some(id);
            }
            self.order_unordered(Some(&group));
            for class in self.transitional_sets(&group) {
                let transitional = self.next_view_id;
                self.next_view_id += 1;
                self.history.insert(transitional, class.clone());
                let names = self.names(&class);
                self.record_event(&format!("transitional view {transitional} {names:?}"));
                for &h in &class {
                    self.hosts[h].delivered = Some((transitional, 0));
                    self.show_view(h, transitional, &names);
                }
            }
            for &h in &group {
                self.hosts[h].delivered = Some((id, 0));
                self.show_view(h, id, &names);
            }
        }
        // A broken view still standing had its fault heal before the ring noticed (a short
        // pause): what waited is delivered in it now, late. The rest went with its sender.
        self.broken.clear();
        self.touched_broken.clear();
        self.order_unordered(None);
        self.unordered.clear();
    }

    /// Hands a view to a host's daemon, or keeps it for the daemon if it is paused.
    fn show_view(&mut self, host: usize, view_id: u64, names: &BTreeSet<String>) {
        if self.hosts[host].paused {
            self.hosts[host]
                .inbox
                .push_back(Queued::View(view_id, names.clone()));
        } else {
            self.hand_view(host, view_id, names);
        }
    }

    fn names(&self, hosts: &BTreeSet<usize>) -> BTreeSet<String> {
        hosts.iter().map(|&h| self.hosts[h].name.clone()).collect()
    }

    fn count_delivery(&mut self, host: usize) {
        if let Some((_, count)) = &mut self.hosts[host].delivered {
            *count += 1;
        }
    }

    /// The members of a new view that must first be shown a view of their own, as CPG does:
    /// those that came together from one earlier view (same view, same messages delivered),
    /// when some of that view are gone and the new view also has members from elsewhere. They
    /// see the departures, then the joins; a view that only lost members, or only gained
    /// some, is shown as it is.
    fn transitional_sets(&self, group: &BTreeSet<usize>) -> Vec<BTreeSet<usize>> {
        if !self.transitional_views {
            return Vec::new();
        }
        let mut classes: BTreeMap<(u64, u64), BTreeSet<usize>> = BTreeMap::new();
        for &h in group {
            if let Some(came_from) = self.hosts[h].delivered {
                classes.entry(came_from).or_default().insert(h);
            }
        }
        classes
            .into_iter()
            .filter(|((view, _), class)| {
                class != group && self.history.get(view).is_some_and(|old| old != class)
            })
            .map(|(_, class)| class)
            .collect()
    }

    /// Delivers every pending message of a view that is ending, to its members still there.
    fn flush(&mut self, view_id: u64) {
        // Each delivery may send more; the cap only guards against a runaway bug.
        for _ in 0..100_000 {
            if let Some(replica) = [false, true].into_iter().find(|&r| {
                self.queue_of(r)
                    .get(&view_id)
                    .is_some_and(|q| !q.is_empty())
            }) {
                self.deliver_one(view_id, replica);
            } else {
                return;
            }
        }
        self.violation(format!("view {view_id} never stops sending"));
    }

    fn queue_of(&mut self, replica: bool) -> &mut BTreeMap<u64, VecDeque<(usize, Vec<u8>)>> {
        if replica {
            &mut self.replica_pending
        } else {
            &mut self.pending
        }
    }

    fn deliver_one(&mut self, view_id: u64, replica: bool) {
        let Some((sender, bytes)) = self
            .queue_of(replica)
            .get_mut(&view_id)
            .and_then(VecDeque::pop_front)
        else {
            return;
        };
        let Some(members) = self.views.get(&view_id).cloned() else {
            return;
        };
        let from = self.hosts[sender].name.clone();
        self.record(&bytes);
        for h in members {
            let host = &mut self.hosts[h];
            if host.view != Some(view_id) || host.node.is_none() {
                continue;
            }
            if host.paused {
                host.inbox
                    .push_back(Queued::Message(view_id, from.clone(), bytes.clone()));
                if host.daemon_only && !replica {
                    // Its corosync was delivered the message: that counts for its history.
                    self.count_delivery(h);
                }
                continue;
            }
            // The replication group's messages are another group's history.
            if !replica {
                self.stats.deliveries += 1;
                self.count_delivery(h);
            }
            self.hand_message(h, &from, &bytes);
        }
    }

    fn multicast(&mut self, sender: usize, bytes: Vec<u8>) {
        let Some(view_id) = self.hosts[sender].view else {
            return;
        };
        match self.hosts[sender].voice {
            Voice::Clear => {}
            Voice::NoStates => {
                if matches!(
                    dvip_core::wire::decode(&bytes),
                    Ok(dvip_core::wire::Message::State(_)
                        | dvip_core::wire::Message::Carried { .. })
                ) {
                    return;
                }
            }
        }
        if !self.views.contains_key(&view_id) {
            return;
        }
        let replica = bytes.starts_with(b"DR");
        if replica
            && self.lose_replica_snapshots
            && matches!(
                dvip_replicate::wire::decode(&bytes),
                Ok(dvip_replicate::wire::Message::Snapshot { .. })
            )
        {
            return;
        }
        if self.broken.contains(&view_id) {
            self.unordered.push((sender, bytes));
            return;
        }
        self.enqueue(view_id, sender, bytes);
    }

    fn enqueue(&mut self, view_id: u64, sender: usize, bytes: Vec<u8>) {
        let replica = bytes.starts_with(b"DR");
        self.queue_of(replica)
            .entry(view_id)
            .or_default()
            .push_back((sender, bytes));
        let happening = if replica {
            Happening::DeliverReplica { view_id }
        } else {
            Happening::Deliver { view_id }
        };
        self.schedule(DELIVERY, happening);
    }

    /// The ring of `host`'s view broke at this moment.
    fn break_ring(&mut self, host: usize) {
        if !self.rings_break {
            return;
        }
        if let Some(view_id) = self.hosts[host].view {
            self.broken.insert(view_id);
        }
    }

    /// What was multicast into a broken view goes, in the order sent, into the sender's
    /// view now (`only`: of those senders), ahead of anything sent in answer to that view.
    fn order_unordered(&mut self, only: Option<&BTreeSet<usize>>) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unordered)
            .into_iter()
            .partition(|(sender, _)| only.is_none_or(|g| g.contains(sender)));
        self.unordered = later;
        for (sender, bytes) in now {
            if let Some(view_id) = self.hosts[sender].view {
                self.enqueue(view_id, sender, bytes);
            }
        }
    }

    /// Carries out a host's pending actions, checking the one safety rule that must hold at
    /// every instant: nobody plumbs an address another member of its view has plumbed.
    fn drain(&mut self, host: usize) {
        while let Some(action) = self.hosts[host].node.as_mut().and_then(Node::poll_action) {
            self.drain_events(host);
            match action {
                Action::Send(bytes) => self.multicast(host, bytes),
                Action::Plumb { address, .. } if self.now < self.hosts[host].plumbs_fail_until => {
                    self.stats.plumbs += 1;
                    self.record_event(&format!("plumb failed {host} {address}"));
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.handle_plumb_failed(address);
                    }
                }
                Action::Plumb { address, .. } => {
                    self.stats.plumbs += 1;
                    if let Some(node) = self.hosts[host].node.as_mut() {
                        node.handle_plumb_done(address);
                    }
                    self.record_event(&format!("plumb {host} {address}"));
                    self.hosts[host].kernel.insert(address);
                    if let Some(view_id) = self.hosts[host].view {
                        self.plumbed_in.insert((host, address), (view_id, self.now));
                    }
                    self.check_alone(host, address, "plumbed");
                }
                Action::Unplumb { address, .. } => {
                    self.record_event(&format!("unplumb {host} {address}"));
                    self.hosts[host].kernel.remove(&address);
                }
                Action::StartService { address, .. }
                    if !self.hosts[host].kernel.contains(&address)
                        && self.hosts[host]
                            .node
                            .as_ref()
                            .is_some_and(|n| n.unplumbed().contains(&address)) =>
                {
                    // Its plumb failed: the listener cannot bind until a retry works, and the
                    // retry starts it again.
                }
                Action::StartService { address, .. } => {
                    if !self.hosts[host].kernel.contains(&address) {
                        let me = self.hosts[host].name.clone();
                        self.violation(format!(
                            "{me} started a listener on {address}, which it has not plumbed"
                        ));
                    }
                    self.hosts[host].services.insert(address);
                }
                Action::StopService { address, .. } => {
                    self.hosts[host].services.remove(&address);
                }
                Action::Announce { .. } | Action::Mark { .. } => {}
            }
        }
        self.drain_events(host);
        // Once per input, whole, as dvipd hands its heartbeat thread the table after each.
        self.tell_detector(host);
        let sent = self.hosts[host]
            .replica
            .as_mut()
            .map(Replica::take_actions)
            .unwrap_or_default();
        for dvip_replicate::Action::Send(bytes) in sent {
            self.multicast(host, bytes);
        }
    }

    /// The one safety rule that must hold at every instant: `host`, answering for `address`
    /// (plumbed, its kernel lease alive), is the only member of its view that does. A silent
    /// member's addresses were given away while it may still have them: the window the
    /// address lifetime bounds (see the node's docs).
    pub(crate) fn check_alone(&mut self, host: usize, address: IpAddr, verb: &str) {
        let Some(view_id) = self.hosts[host].view else {
            return;
        };
        if !self.answering(host, &address) {
            return;
        }
        let members = self.views.get(&view_id).cloned().unwrap_or_default();
        let silent = self.hosts[host]
            .node
            .as_ref()
            .map(Node::silent)
            .unwrap_or_default();
        if let Some(&other) = members.iter().find(|&&o| {
            o != host && self.answering(o, &address) && !silent.contains(&self.hosts[o].name)
        }) {
            let (me, them) = (
                self.hosts[host].name.clone(),
                self.hosts[other].name.clone(),
            );
            self.violation(format!(
                "{me} {verb} {address} while {them}, in the same view {view_id}, still had it"
            ));
        }
    }

    /// Takes a host's events, printing them when verbose.
    fn drain_events(&mut self, host: usize) {
        while let Some(event) = self.hosts[host].node.as_mut().and_then(Node::poll_event) {
            if self.verbose {
                eprintln!("{:>10.3} event {host} {event:?}", self.now.as_secs_f64());
            }
            if let Event::GaveUp { .. } = event {
                // Its addresses move for a reason of its own.
                self.touch(host);
            }
            if let Event::BusStalled { .. } | Event::TookOver { .. } = event {
                // It let go of what it held, or took what a silent member held: a move of
                // its own.
                self.touch(host);
            }
            if let Event::TookOver { addresses, .. } = event {
                self.stats.takeovers += 1;
                self.stats.taken += addresses as u64;
            }
            if let Event::ToldAgain { .. } = event {
                self.stats.told_again += 1;
            }
            if let Event::ViewSplit {
                stood_down: true, ..
            } = event
            {
                self.stats.stood_down += 1;
            }
        }
    }
}
