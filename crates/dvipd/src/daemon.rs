//! The daemon's loop: one task owns the core and carries out what it asks.
//!
//! Owns the order of things: at start, remove every address a previous dvipd left behind;
//! then feed the core its inputs (the clock, the bus, signals) one at a time and, after each,
//! carry its actions out in the order given (they already release before they acquire).
//! Planned addresses are refreshed well within their lifetime. It must not decide anything:
//! every decision is the core's.
//!
//! Two buses: corosync's CPG for a cluster (views and messages in agreed order, node ids
//! turned into node names through corosync's node list), and a standalone one for a single
//! machine (a view of this node alone whose multicasts come back to it in order). When
//! corosync goes away, the node lets every address go (it can no longer know the view) and
//! joins again every second until corosync is back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dvip_config::{load, DiskFiles, LoadOptions, Severity};
use dvip_core::{Action, Event, ManagedAddress, Node, NodeOptions, PlumbHint};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info, warn};

use crate::announce::{Announcer, Audience};
use crate::console::{self, Request};
use crate::corosync::{self, BusEvent, CorosyncBus, Member};
use crate::forward::{Forwards, Route};
use crate::hook::{HookEvent, HookRun, Hooks};
use crate::plumb::{Neighbour, PlumbError, Plumber};

/// What the daemon needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file, read again on SIGHUP.
    pub config: PathBuf,
    /// How the configuration is read (host name, node name override).
    pub load: LoadOptions,
    /// How long a plumbed address lives unless refreshed.
    pub address_lifetime: Duration,
    /// The console socket.
    pub socket: PathBuf,
    /// Which bus to run on.
    pub bus: BusKind,
}

/// Which group bus a daemon runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// corosync's CPG: a cluster.
    Corosync,
    /// A cluster of one.
    Standalone,
}

/// The bus as the loop sees it.
enum Bus {
    /// This node's multicasts, delivered back to it in order.
    Standalone(VecDeque<Vec<u8>>),
    /// Joined (or `None` while corosync is away), with the cluster group's name and node names
    /// by node id.
    Corosync {
        bus: Option<CorosyncBus>,
        group: String,
        names: BTreeMap<u32, String>,
    },
}

/// Why the daemon stopped early. Addresses it plumbed are released where it could.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is invalid at start; nothing was plumbed.
    #[error("the configuration is invalid")]
    Config,
    /// This node's name is not the name corosync's node list gives this node; nothing was
    /// plumbed.
    #[error(
        "this node is `{ours}` in dvip's configuration but `{theirs}` in corosync's node list"
    )]
    NameMismatch {
        /// dvip's node name.
        ours: String,
        /// corosync's.
        theirs: String,
    },
    /// A DuraVIP address is already on this machine and dvip did not put it there (a
    /// management or interface address, or one added by hand): dvip would move it away and
    /// could cut the node off. Nothing was plumbed.
    #[error(
        "{} already on this machine and not put there by dvip (a management or interface \
         address?); remove it from the DuraVIP configuration",
        addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    ForeignAddress {
        /// The addresses.
        addresses: Vec<IpAddr>,
    },
    /// corosync could not be joined at start; nothing was plumbed.
    #[error(transparent)]
    Bus(#[from] corosync::BusError),
    /// Plumbing failed in a way the daemon cannot carry on from.
    #[error(transparent)]
    Plumb(#[from] PlumbError),
    /// A signal handler could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
    /// The console socket could not be made; nothing was plumbed.
    #[error("cannot listen on the console socket {path}: {source}")]
    Console {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What the daemon takes from a valid configuration.
struct Loaded {
    name: String,
    addresses: Vec<ManagedAddress>,
    group: String,
    forwards: BTreeMap<(IpAddr, u16), Route>,
    hook: Option<String>,
    arp_all_hosts: bool,
}

impl Loaded {
    fn managed(&self, address: IpAddr) -> Option<&ManagedAddress> {
        self.addresses
            .binary_search_by_key(&address, |m| m.address)
            .ok()
            .map(|i| &self.addresses[i])
    }
}

/// Reads and validates the configuration, logging every diagnostic.
fn read_config(settings: &Settings) -> Option<Loaded> {
    let checked = load(&settings.config, &settings.load, &DiskFiles);
    for d in &checked.diagnostics {
        let text = d.render(&checked.sources);
        match d.severity {
            Severity::Error => error!("{}", text.trim_end()),
            Severity::Warning => warn!("{}", text.trim_end()),
            Severity::Note => info!("{}", text.trim_end()),
        }
    }
    checked.is_valid().then(|| {
        let config = checked.config;
        Loaded {
            addresses: config.managed_addresses().cloned().collect(),
            forwards: config
                .forwards
                .iter()
                .map(|f| {
                    let route = Route {
                        backend: f.backend,
                        proxy_protocol: f.proxy_protocol,
                    };
                    ((f.address, f.port), route)
                })
                .collect(),
            hook: config.cluster.duravip_hook,
            arp_all_hosts: config.cluster.arp_all_hosts,
            group: config.cluster.cluster_group,
            name: config.nodename,
        }
    })
}

struct Daemon {
    node: Node,
    name: String,
    /// The configuration running now, and when it was loaded.
    config: Loaded,
    config_loaded: Instant,
    forwards: Forwards,
    hooks: Hooks,
    plumber: Plumber,
    /// What this process plumbed and has not removed, with where it put it.
    plumbed: BTreeMap<IpAddr, PlumbHint>,
    bus: Bus,
    started: Instant,
    announcer: Announcer,
    /// Announcements still to repeat: (when, address, how many more).
    repeats: VecDeque<(Instant, IpAddr, u32)>,
    /// What was announced for each held address, for `dvip arp show`.
    announced: BTreeMap<IpAddr, Announced>,
    /// The kernel's neighbours per interface, read at most once per
    /// [`NEIGHBOURS_MAX_AGE`], for unicast announcements.
    neighbours: BTreeMap<String, (Instant, Vec<Neighbour>)>,
    /// When the core was last told the time.
    clock_fed: Instant,
    /// The last address refreshed, where the next refresh continues.
    refreshed_up_to: Option<IpAddr>,
    /// Events for console clients that asked for them.
    events: console::EventStream,
}

/// How many addresses are plumbed (or refreshed) between two looks at the clock.
const PLUMB_CHUNK: usize = 256;

/// How often the core hears the time while the daemon is busy carrying out actions.
const CLOCK_FEED_INTERVAL: Duration = Duration::from_millis(100);

/// How old a neighbour list may be before a unicast announcement reads it again.
const NEIGHBOURS_MAX_AGE: Duration = Duration::from_secs(1);

/// The announcements made for one held address.
#[derive(Debug, Clone, Copy, Default)]
struct Announced {
    /// Announcements sent (each to the whole link or to every known neighbour).
    rounds: u32,
    /// Frames sent in the last one.
    frames: usize,
    /// When the last one went out (wall clock, ms since the epoch).
    last_ms: u64,
}

/// How many gratuitous ARPs announce one acquisition, and how far apart.
const ANNOUNCE_COUNT: u32 = 3;
const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(250);

impl Daemon {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Carries out every pending action, then delivers what the node multicast, until quiet.
    async fn drive(&mut self) {
        loop {
            loop {
                let actions: Vec<Action> = std::iter::from_fn(|| self.node.poll_action()).collect();
                if actions.is_empty() {
                    break;
                }
                self.carry_out_all(actions).await;
            }
            while let Some(event) = self.node.poll_event() {
                log_event(&event);
                self.run_hook(&event);
                if let Some(line) = event_json(&event) {
                    self.emit(line);
                }
            }
            let Bus::Standalone(queue) = &mut self.bus else {
                break;
            };
            let Some(bytes) = queue.pop_front() else {
                break;
            };
            self.node.handle_message(&self.name, &bytes);
        }
    }

    /// Carries out actions in order, except that a run of acquisitions (plumbs with their
    /// announcements and listener starts, up to the next release or multicast) is plumbed
    /// with many netlink requests in flight at once.
    async fn carry_out_all(&mut self, actions: Vec<Action>) {
        let mut actions = actions.into_iter().peekable();
        while let Some(action) = actions.next() {
            let Action::Plumb { address, hint } = action else {
                self.carry_out(action).await;
                self.feed_clock();
                continue;
            };
            let mut plumbs = vec![(address, hint)];
            let mut rest = Vec::new();
            while let Some(next) = actions.next_if(|a| {
                !matches!(
                    a,
                    Action::Unplumb { .. } | Action::StopService { .. } | Action::Send(_)
                )
            }) {
                match next {
                    Action::Plumb { address, hint } => plumbs.push((address, hint)),
                    other => rest.push(other),
                }
            }
            // In chunks, telling the core the time between them: with thousands of addresses
            // on one interface every add costs the kernel a walk of the list.
            for chunk in plumbs.chunks(PLUMB_CHUNK) {
                let items: Vec<(IpAddr, u8, String)> = chunk
                    .iter()
                    .map(|(a, h)| (*a, h.cidrmask, h.interface.clone()))
                    .collect();
                let results = self.plumber.plumb_many(&items).await;
                for ((address, hint), result) in chunk.iter().zip(results) {
                    match result {
                        Ok(()) => {
                            debug!(%address, interface = %hint.interface, "plumbed");
                            self.plumbed.insert(*address, hint.clone());
                        }
                        // The core believes it holds the address; the next refresh tries again.
                        Err(e) => self.error(Some(*address), "cannot plumb", &e),
                    }
                }
                self.feed_clock();
            }
            info!(count = plumbs.len(), "plumbed");
            for other in rest {
                self.carry_out(other).await;
            }
        }
    }

    /// Sends an event to console clients that follow the stream.
    fn emit(&self, mut line: serde_json::Value) {
        if self.events.receiver_count() > 0 {
            line["at_ms"] = console::now_ms().into();
            let _ = self.events.send(line.to_string());
        }
    }

    /// Reports an error to the log and the event stream.
    fn error(&self, address: Option<IpAddr>, what: &str, e: &dyn std::fmt::Display) {
        match address {
            Some(address) => error!(%address, "{what}: {e}"),
            None => error!("{what}: {e}"),
        }
        self.emit(serde_json::json!({"event": "error", "address": address, "error": format!("{what}: {e}")}));
    }

    /// Queues the operator's hook after an acquisition or a release.
    fn run_hook(&self, event: &Event) {
        let (hook_event, address) = match *event {
            Event::Acquired { address } => (HookEvent::Acquire, address),
            Event::Released { address } => (HookEvent::Release, address),
            _ => return,
        };
        let Some(program) = &self.config.hook else {
            return;
        };
        let managed = self.config.managed(address);
        self.hooks.run(HookRun {
            program: program.clone(),
            event: hook_event,
            address,
            bindings: managed
                .map(|m| m.bindings.iter().cloned().collect())
                .unwrap_or_default(),
            ports: managed
                .map(|m| m.listener_ports.iter().copied().collect())
                .unwrap_or_default(),
            node: self.name.clone(),
        });
    }

    /// Starts the forward-mode listeners configured on `address` for `ports`.
    fn start_forwards<'p>(&mut self, address: IpAddr, ports: impl IntoIterator<Item = &'p u16>) {
        for &port in ports {
            let Some(&route) = self.config.forwards.get(&(address, port)) else {
                continue;
            };
            if let Err(e) = self.forwards.start(address, port, route) {
                self.error(Some(address), &format!("cannot listen on port {port}"), &e);
            }
        }
    }

    /// After a reload: stops forwards that are no longer configured (or changed) and starts
    /// the configured ones on addresses this node holds.
    fn reconcile_forwards(&mut self) {
        let running: Vec<(SocketAddr, Route)> = self.forwards.running().collect();
        for (at, route) in running {
            if self.config.forwards.get(&(at.ip(), at.port())) != Some(&route) {
                self.forwards.stop(at.ip(), at.port());
            }
        }
        let held: Vec<IpAddr> = self.node.plumbed().iter().copied().collect();
        for address in held {
            let ports = self
                .config
                .managed(address)
                .map(|m| m.listener_ports.clone())
                .unwrap_or_default();
            self.start_forwards(address, &ports);
        }
    }

    /// A long batch (thousands of plumbs) is work, not a pause: keep the core's clock current
    /// so it does not mistake the batch for having been frozen.
    fn feed_clock(&mut self) {
        if self.clock_fed.elapsed() >= CLOCK_FEED_INTERVAL {
            self.node.handle_timeout(self.now());
            self.clock_fed = Instant::now();
        }
    }

    async fn carry_out(&mut self, action: Action) {
        match action {
            Action::Send(bytes) => match &mut self.bus {
                Bus::Standalone(queue) => queue.push_back(bytes),
                Bus::Corosync { bus: Some(bus), .. } => {
                    if let Err(e) = bus.send(&bytes) {
                        // The dispatch thread reports the loss; until then the cluster may
                        // miss this message, which a view change makes good.
                        warn!("cannot multicast: {e}");
                    }
                }
                Bus::Corosync { bus: None, .. } => {}
            },
            Action::Plumb { address, hint } => match self
                .plumber
                .plumb(address, hint.cidrmask, &hint.interface)
                .await
            {
                Ok(()) => {
                    info!(%address, interface = %hint.interface, "plumbed");
                    self.plumbed.insert(address, hint);
                }
                // The core believes it holds the address; the next refresh tries again.
                Err(e) => self.error(Some(address), "cannot plumb", &e),
            },
            Action::Unplumb { address, .. } => {
                let Some(hint) = self.plumbed.remove(&address) else {
                    return;
                };
                match self
                    .plumber
                    .unplumb_known(address, hint.cidrmask, &hint.interface)
                    .await
                {
                    Ok(()) => {
                        info!(%address, "unplumbed");
                        self.announced.remove(&address);
                    }
                    // Left in place, it expires with its lifetime.
                    Err(e) => self.error(
                        Some(address),
                        "cannot unplumb (it will expire by itself)",
                        &e,
                    ),
                }
            }
            Action::Announce { address } => {
                self.announced.remove(&address);
                self.announce(address).await;
                self.emit(serde_json::json!({"event": "announce", "address": address}));
                self.repeats.push_back((
                    Instant::now() + ANNOUNCE_INTERVAL,
                    address,
                    ANNOUNCE_COUNT - 1,
                ));
            }
            Action::StartService { address, ports } => {
                debug!(%address, ?ports, "listeners may answer here");
                self.start_forwards(address, &ports);
            }
            Action::StopService { address, ports } => {
                debug!(%address, ?ports, "listeners must stop here");
                for port in ports {
                    self.forwards.stop(address, port);
                }
            }
            Action::Mark { address, marks } => {
                warn!(%address, marks = ?marks.names(), "marks changed");
                self.emit(serde_json::json!({"event": "mark", "address": address, "marks": marks.names()}));
            }
        }
    }

    /// Translates a bus event into the core's input.
    async fn bus_event(&mut self, event: BusEvent) {
        match event {
            BusEvent::View { members } => {
                let names = self.member_names(&members);
                let view_id = view_id(&members);
                info!(view_id, ?names, "view");
                self.node.handle_view(view_id, &names);
            }
            BusEvent::Message { from, bytes } => {
                let name = self.member_name(from);
                self.node.handle_message(&name, &bytes);
            }
            BusEvent::Lost(why) => {
                error!("lost corosync ({why}): releasing every address until it is back");
                self.node.handle_bus_lost();
                if let Bus::Corosync { bus, .. } = &mut self.bus {
                    *bus = None;
                }
            }
        }
        self.drive().await;
    }

    fn member_name(&mut self, member: Member) -> String {
        let Bus::Corosync { names, .. } = &mut self.bus else {
            return self.name.clone();
        };
        if !names.contains_key(&member.nodeid) {
            // A node added to corosync's node list since we read it.
            if let Ok(fresh) = corosync::node_names() {
                *names = fresh;
            }
        }
        names
            .get(&member.nodeid)
            .cloned()
            .unwrap_or_else(|| format!("nodeid-{}", member.nodeid))
    }

    fn member_names(&mut self, members: &[Member]) -> BTreeSet<String> {
        members.iter().map(|&m| self.member_name(m)).collect()
    }

    /// Joins corosync again after it went away.
    fn rejoin(&mut self) {
        let Bus::Corosync { bus, group, .. } = &mut self.bus else {
            return;
        };
        if bus.is_some() {
            return;
        }
        match CorosyncBus::join(group) {
            Ok(joined) => {
                info!("corosync is back: joined the group again");
                *bus = Some(joined);
            }
            Err(e) => warn!("corosync still away: {e}"),
        }
    }

    /// One announcement (gratuitous ARP or unsolicited neighbour advertisement) for a held
    /// address, to the whole link or, with `arp_all_hosts = false`, to the known neighbours.
    async fn announce(&mut self, address: IpAddr) {
        let Some(interface) = self.plumbed.get(&address).map(|h| h.interface.clone()) else {
            return;
        };
        let sent = if self.config.arp_all_hosts {
            self.announcer
                .announce(&interface, address, Audience::Everyone)
        } else {
            let neighbours = self.neighbours_of(&interface).await;
            self.announcer
                .announce(&interface, address, Audience::Neighbours(&neighbours))
        };
        match sent {
            Ok(frames) => {
                let record = self.announced.entry(address).or_default();
                record.rounds += 1;
                record.frames = frames;
                record.last_ms = console::now_ms();
            }
            Err(e) => warn!(%address, "cannot announce: {e}"),
        }
    }

    /// The kernel's neighbours on `interface`, from a list at most [`NEIGHBOURS_MAX_AGE`] old.
    async fn neighbours_of(&mut self, interface: &str) -> Vec<Neighbour> {
        if let Some((read, list)) = self.neighbours.get(interface) {
            if read.elapsed() < NEIGHBOURS_MAX_AGE {
                return list.clone();
            }
        }
        match self.plumber.neighbours(interface).await {
            Ok(list) => {
                self.neighbours
                    .insert(interface.to_owned(), (Instant::now(), list.clone()));
                list
            }
            Err(e) => {
                warn!(interface, "cannot read the neighbour table: {e}");
                Vec::new()
            }
        }
    }

    /// The configuration part of `show`: where it came from and how long it has stood.
    fn config_report(&self) -> serde_json::Value {
        serde_json::json!({
            "addresses": self.config.addresses.len(),
            "stable_ms": u64::try_from(self.config_loaded.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The reply to `info`.
    fn info(&self, settings: &Settings) -> serde_json::Value {
        let forwards: Vec<String> = self
            .forwards
            .running()
            .map(|(at, route)| format!("{at} -> {}", route.backend))
            .collect();
        serde_json::json!({
            "ok": true,
            "node": self.name,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "config_file": settings.config,
            "config": self.config_report(),
            "bus": match &self.bus {
                Bus::Standalone(_) => serde_json::json!({"kind": "standalone"}),
                Bus::Corosync { bus, group, .. } => serde_json::json!({
                    "kind": "corosync",
                    "group": group,
                    "joined": bus.is_some(),
                }),
            },
            "address_lifetime_s": settings.address_lifetime.as_secs(),
            "arp_all_hosts": self.config.arp_all_hosts,
            "hook": self.config.hook,
            "held": self.plumbed.len(),
            "forwarding": forwards,
            "socket": settings.socket,
        })
    }

    /// The reply to `arp show`: every held address with where and how it was announced.
    fn arp_report(&self) -> serde_json::Value {
        let addresses: Vec<serde_json::Value> = self
            .plumbed
            .iter()
            .map(|(address, hint)| {
                let a = self.announced.get(address).copied().unwrap_or_default();
                serde_json::json!({
                    "address": address,
                    "interface": hint.interface,
                    "announcements": a.rounds,
                    "frames_last": a.frames,
                    "last_at_ms": (a.rounds > 0).then_some(a.last_ms),
                })
            })
            .collect();
        serde_json::json!({
            "ok": true,
            "node": self.name,
            "mode": if self.config.arp_all_hosts { "all-hosts" } else { "neighbours" },
            "addresses": addresses,
        })
    }

    /// Sends the repeats that are due.
    async fn announce_due(&mut self) {
        let now = Instant::now();
        while self.repeats.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, address, left)) = self.repeats.pop_front() else {
                break;
            };
            self.announce(address).await;
            if left > 1 {
                self.repeats
                    .push_back((now + ANNOUNCE_INTERVAL, address, left - 1));
            }
        }
    }

    /// Adds the next `count` held addresses again (after the last one refreshed, wrapping
    /// around), which restarts their lifetime. Called every tick with a share sized so every
    /// address is refreshed once per third of its lifetime, so refreshing thousands of
    /// addresses never stalls the loop.
    async fn refresh_some(&mut self, count: usize) {
        let after = self.refreshed_up_to;
        let mut items: Vec<(IpAddr, u8, String)> = self
            .plumbed
            .iter()
            .filter(|(a, _)| after.is_none_or(|last| **a > last))
            .take(count)
            .map(|(a, h)| (*a, h.cidrmask, h.interface.clone()))
            .collect();
        if items.len() < count {
            let wrapped = self.plumbed.iter().take(count - items.len());
            items.extend(wrapped.map(|(a, h)| (*a, h.cidrmask, h.interface.clone())));
        }
        self.refreshed_up_to = items.last().map(|(a, ..)| *a);
        for chunk in items.chunks(PLUMB_CHUNK) {
            let results = self.plumber.plumb_many(chunk).await;
            for ((address, ..), result) in chunk.iter().zip(results) {
                if let Err(e) = result {
                    error!(%address, "cannot refresh: {e}");
                }
            }
            self.feed_clock();
        }
    }
}

/// A view's id, the same on every member: the members (node id and process id) hashed.
/// Consecutive views always differ in membership, so their ids differ.
fn view_id(members: &[Member]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in members {
        for b in m
            .nodeid
            .to_le_bytes()
            .into_iter()
            .chain(m.pid.to_le_bytes())
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

async fn next_bus_event(bus: &mut Bus) -> Option<BusEvent> {
    match bus {
        Bus::Corosync { bus: Some(bus), .. } => bus.next().await,
        _ => std::future::pending().await,
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Dropped { from, why } => warn!(%from, ?why, "message dropped"),
        Event::Paused { gap } => warn!(?gap, "the clock jumped: addresses released"),
        other => info!(?other, "event"),
    }
}

/// A core event as the console streams it: `{"event": ..., ...}`; [`Daemon::emit`] adds
/// `at_ms`.
fn event_json(event: &Event) -> Option<serde_json::Value> {
    let value = match event {
        Event::View { view_id, members } => {
            serde_json::json!({"event": "view", "view_id": view_id, "members": members})
        }
        Event::Planned { view_id } => serde_json::json!({"event": "planned", "view_id": view_id}),
        Event::Matured { view_id } => serde_json::json!({"event": "matured", "view_id": view_id}),
        Event::Acquired { address } => serde_json::json!({"event": "acquire", "address": address}),
        Event::Released { address } => serde_json::json!({"event": "release", "address": address}),
        Event::Dropped { from, why } => {
            serde_json::json!({"event": "dropped", "from": from, "why": format!("{why:?}")})
        }
        Event::Paused { gap } => {
            serde_json::json!({"event": "paused", "gap_ms": u64::try_from(gap.as_millis()).unwrap_or(u64::MAX)})
        }
        _ => return None,
    };
    Some(value)
}

/// Runs a node until SIGTERM or SIGINT, then hands every address over and returns.
pub async fn run(settings: Settings) -> Result<(), DaemonError> {
    let config = read_config(&settings).ok_or(DaemonError::Config)?;
    let name = config.name.clone();
    let group = config.group.clone();
    let bus = match settings.bus {
        BusKind::Standalone => Bus::Standalone(VecDeque::new()),
        BusKind::Corosync => {
            let joined = CorosyncBus::join(&group)?;
            let names = corosync::node_names()?;
            match names.get(&joined.me.nodeid) {
                Some(theirs) if *theirs != name => {
                    return Err(DaemonError::NameMismatch {
                        ours: name,
                        theirs: theirs.clone(),
                    })
                }
                _ => {}
            }
            Bus::Corosync {
                bus: Some(joined),
                group,
                names,
            }
        }
    };
    let mut plumber = Plumber::connect(settings.address_lifetime)?;
    let leftovers = plumber.remove_all_ours().await?;
    let foreign = plumber.foreign().await?;
    let clashes: Vec<IpAddr> = config
        .addresses
        .iter()
        .map(|m: &ManagedAddress| m.address)
        .filter(|a| foreign.contains(a))
        .collect();
    if !clashes.is_empty() {
        return Err(DaemonError::ForeignAddress { addresses: clashes });
    }
    if !leftovers.is_empty() {
        info!(
            count = leftovers.len(),
            "removed addresses a previous dvipd left behind"
        );
    }
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let (requests_tx, mut requests) = tokio::sync::mpsc::channel::<console::Pending>(64);
    let events: console::EventStream = tokio::sync::broadcast::channel(4096).0;
    console::listen(&settings.socket, requests_tx, events.clone()).map_err(|source| {
        DaemonError::Console {
            path: settings.socket.clone(),
            source,
        }
    })?;

    let node = Node::new(name.clone(), NodeOptions::default(), &config.addresses);
    let address_count = config.addresses.len();
    let mut daemon = Daemon {
        node,
        name: name.clone(),
        config,
        config_loaded: Instant::now(),
        forwards: Forwards::default(),
        hooks: Hooks::start(events.clone()),
        plumber,
        plumbed: BTreeMap::new(),
        bus,
        started: Instant::now(),
        announcer: Announcer::default(),
        repeats: VecDeque::new(),
        announced: BTreeMap::new(),
        neighbours: BTreeMap::new(),
        clock_fed: Instant::now(),
        refreshed_up_to: None,
        events,
    };
    daemon.node.handle_timeout(daemon.now());
    daemon.drive().await;
    if matches!(daemon.bus, Bus::Standalone(_)) {
        daemon.node.handle_view(1, &BTreeSet::from([name.clone()]));
        daemon.drive().await;
    }
    info!(node = %name, addresses = address_count, bus = ?settings.bus, "running");

    let tick = Duration::from_millis(250);
    let refresh_every = settings.address_lifetime / 3;
    let mut last_rejoin = Instant::now();
    let mut ticker = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = daemon.now();
                daemon.node.handle_timeout(now);
                daemon.drive().await;
                daemon.announce_due().await;
                if last_rejoin.elapsed() >= Duration::from_secs(1) {
                    daemon.rejoin();
                    last_rejoin = Instant::now();
                }
                // Each tick refreshes its share, so that every held address is added again
                // once per third of its lifetime.
                let ticks_per_round = (refresh_every.as_millis() / tick.as_millis()).max(1) as usize;
                let share = daemon.plumbed.len().div_ceil(ticks_per_round);
                if share > 0 {
                    daemon.refresh_some(share).await;
                }
            }
            _ = hangup.recv() => {
                info!("SIGHUP: reading the configuration again");
                match read_config(&settings) {
                    Some(config) => {
                        daemon.node.handle_config(&config.addresses);
                        let count = config.addresses.len();
                        daemon.config = config;
                        daemon.config_loaded = Instant::now();
                        daemon.drive().await;
                        daemon.reconcile_forwards();
                        info!(addresses = count, "configuration reloaded");
                        daemon.emit(serde_json::json!({"event": "reload", "ok": true, "addresses": count}));
                    }
                    None => {
                        error!("the new configuration is invalid; keeping the old one");
                        daemon.emit(serde_json::json!({"event": "reload", "ok": false, "error": "the new configuration is invalid; the old one stays (see the log)"}));
                    }
                }
            }
            Some(event) = next_bus_event(&mut daemon.bus) => daemon.bus_event(event).await,
            Some((request, reply)) = requests.recv() => {
                let answer = match request {
                    Request::Show => {
                        let mut status = console::status(&daemon.node);
                        status["config"] = daemon.config_report();
                        status
                    }
                    Request::Info => daemon.info(&settings),
                    Request::Arp => daemon.arp_report(),
                    // The console streams events itself; it never forwards this request.
                    Request::Events => serde_json::json!({"ok": false, "error": "events are streamed by the console"}),
                    Request::Command(command) => {
                        info!(?command, "console command");
                        match daemon.node.handle_command(command) {
                            Ok(()) => serde_json::json!({"ok": true}),
                            Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
                        }
                    }
                };
                daemon.drive().await;
                let _ = reply.send(answer);
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping: handing every address over");
    daemon.node.handle_shutdown();
    daemon.drive().await;
    let _ = std::fs::remove_file(&settings.socket);
    Ok(())
}
