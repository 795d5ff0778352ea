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
//! joins again (after a second, then backing off) until corosync is back.

mod announcing;
mod api;
mod config;
mod control;
mod leasing;
mod pre_plumbing;
mod replication;
mod reports;
mod services;
mod systemd;
mod watching;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_config::LoadOptions;
use dvip_core::{Action, Event, ManagedAddress, Node, PlumbHint};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info, warn};

use self::announcing::Announced;
use self::config::{read_config, Loaded};
use self::control::next_control_event;
use self::replication::{next_replication_event, Replication};
use self::reports::{console_event, log_event};
use crate::announce::Announcer;
use crate::broadcast::Broadcasts;
use crate::console::{self, Reply};
use crate::corosync::{self, BusEvent, CorosyncBus, Member};
use crate::forward::{Counters, Forwards};
use crate::guardian::Guardian;
use crate::hook::Hooks;
use crate::logs::Inputs;
use crate::metrics::Metrics;
use crate::plumb::{Neighbour, PlumbError, Plumber};
use dvip_console::{Answer, ConsoleError, ErrorKind, Request};

/// What the daemon needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file, read again on SIGHUP.
    pub config: PathBuf,
    /// How the configuration is read (host name, node name override).
    pub load: LoadOptions,
    /// How long a plumbed address lives unless refreshed; `None`: [`address_lifetime_for`]
    /// the configuration's address count.
    pub address_lifetime: Option<Duration>,
    /// How many holder interfaces IPv4 addresses are spread over; `None`:
    /// [`crate::spread::holders_for`] the configuration's IPv4 address count.
    pub spread: Option<u16>,
    /// The console socket.
    pub socket: PathBuf,
    /// Where the node keeps what survives a restart (standby).
    pub state_dir: PathBuf,
    /// The log service's certificates.
    pub tls_dir: PathBuf,
    /// Which bus to run on.
    pub bus: BusKind,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Remove configured DuraVIP addresses found plumbed by something else (a migration from
    /// Momentum or keepalived) instead of refusing to start.
    pub migrate: bool,
    /// dvip's own heartbeats: their UDP port and timing, for ownership leases (docs/leases.md).
    pub heartbeats: Option<(u16, dvip_lease::LeaseOptions)>,
    /// With leases: plumb successors' addresses ahead of need, silent until a takeover
    /// (docs/leases.md, "Plumbing before it is needed").
    pub pre_plumb: bool,
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
    /// Another dvipd holds this node's lock; nothing was touched.
    #[error(
        "another dvipd is already running on this node (it holds {path}); stop it first, or \
         give this one its own --socket if it is meant for another network namespace"
    )]
    AlreadyRunning {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened.
    #[error("cannot open the lock file {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
    /// corosync's node list gives this node no `name`; nothing was plumbed.
    #[error(
        "corosync's node list gives this node (nodeid {nodeid}) no name: add `name: {ours}` to \
         its entry in the nodelist of corosync.conf on every node, then reload corosync"
    )]
    Unnamed {
        /// corosync's id of this node.
        nodeid: u32,
        /// dvip's node name.
        ours: String,
    },
    /// A DuraVIP address is already on this machine and dvip did not put it there (a
    /// management or interface address, or one added by hand): dvip would move it away and
    /// could cut the node off. Nothing was plumbed.
    #[error(
        "{} already on this machine and not put there by dvip: if it is a management or \
         interface address, remove it from the DuraVIP configuration; if another failover \
         system (Momentum, keepalived) left it, start once with --migrate to take it over",
        addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    ForeignAddress {
        /// The addresses.
        addresses: Vec<IpAddr>,
    },
    /// `--migrate` was asked to remove the address this node speaks to corosync on.
    #[error(
        "{address} is configured as DuraVIP but is this node's own address in corosync's node \
         list: --migrate never removes it; take it out of the DuraVIP configuration"
    )]
    OwnAddress {
        /// The address.
        address: IpAddr,
    },
    /// corosync could not be joined at start; nothing was plumbed.
    #[error(transparent)]
    Bus(#[from] corosync::BusError),
    /// Plumbing failed in a way the daemon cannot carry on from.
    #[error(transparent)]
    Plumb(#[from] PlumbError),
    /// Kernel notifications (links, addresses) could not be subscribed to.
    #[error("cannot watch the kernel's links and addresses: {0}")]
    Watch(#[source] std::io::Error),
    /// A signal handler could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
    /// The metrics address could not be bound; nothing was plumbed.
    #[error("cannot serve metrics on {at}: {source}")]
    Metrics {
        /// The address.
        at: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A log input could not start; nothing was plumbed.
    #[error(transparent)]
    LogInputs(#[from] crate::logs::InputError),
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

struct Daemon {
    node: Node,
    name: String,
    /// The configuration running now, and when it was loaded.
    config: Loaded,
    config_loaded: Instant,
    /// Where the node keeps what survives a restart.
    state_dir: PathBuf,
    forwards: Forwards,
    hooks: Hooks,
    /// The control group (corosync only; `None` while away).
    control: Option<CorosyncBus>,
    /// The nodes in the control group's current view.
    control_members: BTreeSet<String>,
    /// Broadcasts this node started and has not answered.
    broadcasts: Broadcasts,
    /// The connection counts and their group.
    replication: Replication,
    metrics: Arc<Metrics>,
    /// The members of the last view, and whether the current one lost any (its acquisitions
    /// count as failovers).
    view_members: BTreeSet<String>,
    lost_member: bool,
    /// The status line systemd last heard.
    status_sent: String,
    /// Removes this node's addresses if the process dies.
    guardian: Option<Guardian>,
    /// Whether each interface can carry traffic: the addresses of one that cannot are left out
    /// of what this node offers the cluster.
    links: BTreeMap<String, bool>,
    plumber: Plumber,
    /// What this process plumbed and has not removed, with where it put it.
    plumbed: BTreeMap<IpAddr, PlumbHint>,
    /// Removals this daemon made whose kernel notification has not come back yet: an
    /// address released and taken again at once must not read its own removal as someone
    /// else's.
    own_removals: BTreeMap<IpAddr, u32>,
    /// When the kernel confirmed each address just plumbed (ms since the epoch), for the
    /// stamp of its `acquire` event, which goes out only after the whole batch.
    plumbed_at: BTreeMap<IpAddr, u64>,
    bus: Bus,
    started: Instant,
    announcer: Announcer,
    /// Announcements still to repeat: (when, address, how many more).
    repeats: VecDeque<(Instant, IpAddr, u32)>,
    /// The last announcement was refused by the kernel (said once until one goes out).
    announcements_refused: bool,
    /// Held addresses whose last announcement the kernel refused: announced again as soon
    /// as the kernel answers for them, since the repeats may all have fallen in the refusal.
    refused: BTreeSet<IpAddr>,
    /// What was announced for each held address, for `dvip arp show`.
    announced: BTreeMap<IpAddr, Announced>,
    /// The kernel's neighbours per interface, for unicast announcements, with when each list
    /// was read.
    neighbours: BTreeMap<String, (Instant, Vec<Neighbour>)>,
    /// When the core was last told the time.
    clock_fed: Instant,
    /// The last address refreshed, where the next refresh continues.
    refreshed_up_to: Option<IpAddr>,
    /// Events for console clients that asked for them.
    events: console::EventStream,
    /// The core's view and agreed epochs, for the heartbeats' thread: it always reads the
    /// latest whole, however many changes it missed.
    heartbeat_agreed: tokio::sync::watch::Sender<dvip_lease::Agreed>,
    /// The heartbeat thread, when leases are on.
    leasing: Option<leasing::Leasing>,
    /// What is plumbed ahead of need, when pre-plumbing is on.
    pre_plumbing: Option<pre_plumbing::PrePlumbing>,
    /// A join with corosync under way, off the loop.
    joining: Option<tokio::task::JoinHandle<Result<Joined, DaemonError>>>,
    /// The syslog listener and followed files, replaced off the loop on a reload that
    /// changes them.
    inputs: Arc<std::sync::Mutex<Inputs>>,
    /// The log service, while it runs.
    _log_service: Option<crate::logs::service::Service>,
}

/// A joined group with corosync's node names.
type Joined = (CorosyncBus, BTreeMap<u32, String>);

/// How soon a multicast corosync refused for the moment (`TRY_AGAIN`) is tried again.
const BUS_RETRY: Duration = Duration::from_millis(5);

/// How soon dvipd tries to join corosync again after losing it, and the longest it waits
/// between tries while corosync stays away.
const REJOIN_FIRST: Duration = Duration::from_secs(1);
const REJOIN_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Starts the log service when the configuration names logs. Failover comes first: a missing
/// certificate or a port in use is logged and counted, and the daemon runs without it.
fn start_log_service(
    settings: &Settings,
    config: &Loaded,
    name: &str,
    metrics: &Metrics,
) -> Option<crate::logs::service::Service> {
    if config.journals.is_empty() {
        return None;
    }
    let tls = match dvip_tls::TlsDir::new(&settings.tls_dir).server_config(name) {
        Ok(tls) => tls,
        Err(e) => {
            metrics.error("log_service");
            error!("the log service is not started: {e}");
            return None;
        }
    };
    let at = config.log_listener;
    match crate::logs::service::start(
        at,
        tls,
        name.to_owned(),
        metrics.logs.journals(),
        metrics.logs.clone(),
    ) {
        Ok(service) => {
            info!(at = %service.local, logs = config.journals.len(), "serving logs");
            Some(service)
        }
        Err(e) => {
            metrics.error("log_service");
            error!("the log service is not started: cannot listen on {at}: {e}");
            None
        }
    }
}

/// How long a stopping daemon waits for its log inputs to write what they received.
const INPUTS_AT_STOP: Duration = Duration::from_secs(5);

/// How many addresses are plumbed (or refreshed) between two looks at the clock.
const PLUMB_CHUNK: usize = 256;

/// How often the core hears the time while the daemon is busy carrying out actions.
const CLOCK_FEED_INTERVAL: Duration = Duration::from_millis(100);

impl Daemon {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Carries out every pending action, then delivers what the node multicast, until quiet.
    async fn drive(&mut self) {
        loop {
            // What the core decided on the input just handled (a view, a plan) is stamped with
            // this moment, not with the end of the plumbing it asked for: the event stream's
            // phases must show where the time went.
            let decided_ms = console::now_ms();
            loop {
                let actions: Vec<Action> = std::iter::from_fn(|| self.node.poll_action()).collect();
                if actions.is_empty() {
                    break;
                }
                self.carry_out_all(actions).await;
            }
            while let Some(event) = self.node.poll_event() {
                log_event(&event);
                self.count(&event);
                self.run_hook(&event);
                if let Some(line) = console_event(&event) {
                    let at_ms = match &event {
                        Event::Acquired { address } => self.plumbed_at.remove(address),
                        Event::View { .. }
                        | Event::Planned { .. }
                        | Event::Matured { .. }
                        | Event::Silent { .. }
                        | Event::TookOver { .. }
                        | Event::Dropped { .. } => Some(decided_ms),
                        _ => None,
                    };
                    self.emit_at(line, at_ms.unwrap_or_else(console::now_ms));
                }
            }
            let Bus::Standalone(queue) = &mut self.bus else {
                break;
            };
            let Some(bytes) = queue.pop_front() else {
                break;
            };
            let started = Instant::now();
            self.node.handle_message(&self.name, &bytes);
            self.metrics
                .election_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        // A plumb that was a refresh or a retry has no acquire event to stamp.
        self.plumbed_at.clear();
        self.publish_gate();
        // Held and answering: an address whose plumb failed is not served here.
        let failing = self.node.unplumbed().len();
        self.metrics.held.set(
            i64::try_from(self.node.plumbed().len().saturating_sub(failing)).unwrap_or(i64::MAX),
        );
        self.metrics
            .not_plumbed
            .set(i64::try_from(failing).unwrap_or(i64::MAX));
        self.metrics.standby.set(i64::from(self.node.is_standby()));
    }

    /// Carries out actions in order, except that a run of acquisitions (plumbs with their
    /// announcements and listener starts, up to the next release or multicast) is plumbed
    /// with many netlink requests in flight at once, and so is a run of releases.
    async fn carry_out_all(&mut self, actions: Vec<Action>) {
        let mut actions = actions.into_iter().peekable();
        while let Some(action) = actions.next() {
            if let Action::Unplumb { address, .. } = action {
                // Up to the next multicast (the Released that must follow the removals) or
                // plumb. A service is stopped before its address goes, as the core ordered.
                let mut unplumbs = vec![address];
                while let Some(next) = actions
                    .next_if(|a| matches!(a, Action::Unplumb { .. } | Action::StopService { .. }))
                {
                    match next {
                        Action::Unplumb { address, .. } => unplumbs.push(address),
                        other => self.carry_out(other).await,
                    }
                }
                self.unplumb_all(&unplumbs).await;
                continue;
            }
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
            let started = Instant::now();
            // Readied addresses answer with one change of the silent set, before any add.
            let mut readied = 0;
            match self.speak(&mut plumbs) {
                Ok(ready) => {
                    let done_ms = console::now_ms();
                    readied = ready.len();
                    for (address, hint) in ready {
                        debug!(%address, interface = %hint.interface, "readied address answers");
                        self.plumbed_ok(address, hint, done_ms);
                    }
                }
                Err(failed) => {
                    for (address, _) in failed {
                        self.plumb_failed(
                            address,
                            "cannot let it answer",
                            &"the silent set did not change",
                        );
                    }
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
                let done_ms = console::now_ms();
                for ((address, hint), result) in chunk.iter().zip(results) {
                    match result {
                        Ok(()) => {
                            debug!(%address, interface = %hint.interface, "plumbed");
                            self.plumbed_ok(*address, hint.clone(), done_ms);
                        }
                        Err(e) => self.plumb_failed(*address, "cannot plumb", &e),
                    }
                }
                self.feed_clock();
            }
            self.metrics
                .plumb_seconds
                .observe(started.elapsed().as_secs_f64());
            info!(count = plumbs.len() + readied, readied, "plumbed");
            for other in rest {
                self.carry_out(other).await;
            }
        }
    }

    /// An address is on its interface.
    fn plumbed_ok(&mut self, address: IpAddr, hint: PlumbHint, at_ms: u64) {
        self.plumbed.insert(address, hint);
        self.plumbed_at.insert(address, at_ms);
        self.node.handle_plumb_done(address);
    }

    /// An address the core holds is not on its interface: the core tries again, and gives
    /// it up past its deadline.
    fn plumb_failed(&mut self, address: IpAddr, what: &str, e: &dyn std::fmt::Display) {
        self.plumbed.remove(&address);
        self.error("plumb", Some(address), what, e);
        self.node.handle_plumb_failed(address);
    }

    /// Removes addresses this process plumbed, many requests in flight, in chunks with the
    /// core's clock fed between them. One it never plumbed is left alone.
    async fn unplumb_all(&mut self, addresses: &[IpAddr]) {
        let items: Vec<(IpAddr, u8, String)> = addresses
            .iter()
            .filter_map(|a| {
                let hint = self.plumbed.remove(a)?;
                Some((*a, hint.cidrmask, hint.interface))
            })
            .collect();
        for chunk in items.chunks(PLUMB_CHUNK) {
            let results = self.plumber.unplumb_many(chunk).await;
            for ((address, _, _), result) in chunk.iter().zip(results) {
                match result {
                    Ok(()) => {
                        debug!(%address, "unplumbed");
                        self.announced.remove(address);
                        self.refused.remove(address);
                        *self.own_removals.entry(*address).or_default() += 1;
                    }
                    // Left in place, it expires with its lifetime.
                    Err(e) => self.error(
                        "unplumb",
                        Some(*address),
                        "cannot unplumb (it will expire by itself)",
                        &e,
                    ),
                }
            }
            self.feed_clock();
        }
        if !items.is_empty() {
            info!(count = items.len(), "unplumbed");
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
                Bus::Corosync { bus: Some(bus), .. } => match bus.send(&bytes) {
                    Ok(true) => {}
                    // corosync is forming a membership: the loop sends the rest shortly.
                    Ok(false) => debug!("corosync is busy: the multicast waits"),
                    // The dispatch thread reports the loss; until then the cluster may miss
                    // this message, which a view change makes good.
                    Err(e) => warn!("cannot multicast: {e}"),
                },
                Bus::Corosync { bus: None, .. } => {}
            },
            Action::Plumb { address, hint } => match self
                .plumber
                .plumb(address, hint.cidrmask, &hint.interface)
                .await
            {
                Ok(()) => {
                    info!(%address, interface = %hint.interface, "plumbed");
                    self.plumbed_ok(address, hint, console::now_ms());
                }
                Err(e) => self.plumb_failed(address, "cannot plumb", &e),
            },
            Action::Unplumb { address, .. } => self.unplumb_all(&[address]).await,
            Action::Announce { address } => {
                self.announce_with_repeats(address).await;
                self.emit(dvip_console::Event::Announce { address });
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
                self.emit(dvip_console::Event::Mark {
                    address,
                    marks: dvip_console::Mark::of(&marks),
                });
            }
        }
    }

    /// Translates a bus event into the core's input.
    async fn bus_event(&mut self, event: BusEvent) {
        let started = Instant::now();
        match event {
            BusEvent::View {
                id: view_id,
                members,
            } => {
                let names = self.member_names(&members);
                info!(view_id, ?names, "view");
                self.node.handle_view(view_id, &names);
                self.metrics
                    .election_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            BusEvent::Message { from, bytes } => {
                let name = self.member_name(from);
                debug!(from = %name, bytes = bytes.len(), "delivered");
                self.node.handle_message(&name, &bytes);
                self.metrics
                    .election_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            BusEvent::Dropped { from, why } => {
                let name = self.member_name(from);
                warn!(from = %name, "fragment dropped: {why}");
                self.metrics.dropped("fragment");
                self.emit(dvip_console::Event::Dropped {
                    from: name,
                    reason: "fragment".to_owned(),
                    why: why.to_string(),
                });
            }
            BusEvent::Lost(why) => {
                error!("lost corosync ({why}): releasing every address until it is back");
                self.metrics.error("bus");
                self.node.handle_bus_lost();
                self.leave_bus();
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

    /// Forgets the corosync connection; the loop joins again.
    fn leave_bus(&mut self) {
        self.metrics.bus_joined.set(0);
        if let Bus::Corosync { bus, .. } = &mut self.bus {
            *bus = None;
        }
    }

    /// Whether multicasts wait for corosync to take them.
    fn bus_waiting(&self) -> bool {
        let main = matches!(&self.bus, Bus::Corosync { bus: Some(b), .. } if b.waiting());
        main || self.control.as_ref().is_some_and(CorosyncBus::waiting)
            || self.replication_waiting()
    }

    /// Sends what waits, in order.
    fn flush_bus(&mut self) {
        if let Bus::Corosync { bus: Some(bus), .. } = &mut self.bus {
            if let Err(e) = bus.flush() {
                warn!("cannot multicast: {e}");
            }
        }
        if let Some(control) = &mut self.control {
            if let Err(e) = control.flush() {
                warn!("cannot multicast on the control group: {e}");
            }
        }
        self.flush_replication();
    }

    /// Joins corosync again after it went away; `false` while it is still away.
    /// Starts joining corosync again, if away and not already trying. The join runs off the
    /// loop: connecting waits for corosync's answer, and a stopped corosync gives none until
    /// it continues, while the loop must go on ticking (its echo deadline, the console).
    fn start_rejoin(&mut self) {
        let Bus::Corosync {
            bus: None, group, ..
        } = &self.bus
        else {
            return;
        };
        if self.joining.is_some() {
            return;
        }
        let (group, name) = (group.clone(), self.name.clone());
        self.joining = Some(tokio::task::spawn_blocking(move || {
            let joined = CorosyncBus::join(&group)?;
            let names = identify(&joined, &name)?;
            Ok((joined, names))
        }));
    }

    /// Takes the outcome of a join that has finished. Fails only when corosync is back but
    /// does not know this node by its name: running on would leave the others waiting for a
    /// member they cannot name.
    fn finish_rejoin(&mut self) -> Result<(), DaemonError> {
        use futures_util::FutureExt;
        if !self
            .joining
            .as_ref()
            .is_some_and(tokio::task::JoinHandle::is_finished)
        {
            return Ok(());
        }
        let Some(outcome) = self.joining.take().and_then(FutureExt::now_or_never) else {
            return Ok(());
        };
        let Bus::Corosync { bus, names, .. } = &mut self.bus else {
            return Ok(());
        };
        match outcome {
            Ok(Ok((joined, fresh))) => {
                info!("joined corosync's group");
                *names = fresh;
                *bus = Some(joined);
                self.metrics.bus_joined.set(1);
                Ok(())
            }
            Ok(Err(DaemonError::Bus(e))) => {
                warn!("waiting for corosync: {e}");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                warn!("the join with corosync did not finish: {e}");
                Ok(())
            }
        }
    }

    /// Reads the configuration again and applies it, unless it is invalid, or (without
    /// `force`) defines no address while some are configured now: an empty or cut-short file
    /// would release every address of the node. The reply for the console.
    async fn reload(&mut self, settings: &Settings, force: bool) -> Reply {
        systemd::reloading();
        let answer = match read_config(settings) {
            Some(config)
                if config.addresses.is_empty() && !self.config.addresses.is_empty() && !force =>
            {
                let why = format!(
                    "the new configuration defines no DuraVIP address while {} are running \
                     (an empty or cut-short file?); the old one stays. `dvip reload --force` \
                     applies it and releases them all",
                    self.config.addresses.len()
                );
                error!("{why}");
                Err(ConsoleError::new(ErrorKind::Refused, why))
            }
            Some(config) => {
                watching::warn_missing(&config.addresses, &self.links);
                self.node
                    .handle_config(&watching::offered(&config.addresses, &self.links));
                // A reload is the operator's way to say "try again" on an interface given
                // up after plumbing failed there.
                for interface in self.node.given_up().clone() {
                    self.node.handle_interface_ready(&interface);
                }
                let count = config.addresses.len();
                self.metrics
                    .configured
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                spread_for(settings, &config, &mut self.plumber).await;
                self.guard(&config.addresses);
                self.restart_inputs(&config);
                self.configure_replication(&config);
                self.config = config;
                self.config_loaded = Instant::now();
                self.pre_plumb_reloaded();
                self.drive().await;
                self.reconcile_forwards();
                info!(addresses = count, "configuration reloaded");
                Ok(Answer::Reloaded { addresses: count })
            }
            None => {
                error!("the new configuration is invalid; keeping the old one");
                Err(ConsoleError::new(
                    ErrorKind::Refused,
                    "the new configuration is invalid; the old one stays (see the log)",
                ))
            }
        };
        self.emit(dvip_console::Event::Reload {
            addresses: answer.as_ref().ok().map(|_| self.config.addresses.len()),
            error: answer.as_ref().err().map(|e| e.message.clone()),
        });
        systemd::ready(&self.status_line());
        answer
    }

    /// Replaces the log inputs when `config` changes them, off the loop: the old ones finish
    /// writing what they received before the new ones bind the same sockets.
    fn restart_inputs(&self, config: &Loaded) {
        self.metrics.logs.set_journals(config.journals.clone());
        let wanted = config.log_inputs.clone();
        let (inputs, metrics) = (Arc::clone(&self.inputs), Arc::clone(&self.metrics));
        tokio::task::spawn_blocking(move || {
            let Ok(mut inputs) = inputs.lock() else {
                return;
            };
            if inputs.runs(&wanted) {
                return;
            }
            inputs.stop();
            match Inputs::start(&wanted, &metrics.logs) {
                Ok(started) => {
                    *inputs = started;
                    info!("log inputs restarted with the new configuration");
                }
                Err(e) => {
                    metrics.error("log_input");
                    error!("{e}; the log inputs are stopped until the next reload");
                }
            }
        });
    }

    /// Whether the node waits for corosync (at start, or after losing it).
    fn waiting_for_bus(&self) -> bool {
        matches!(self.bus, Bus::Corosync { bus: None, .. })
    }

    /// Adds the next `count` held addresses again (after the last one refreshed, wrapping
    /// around), which restarts their lifetime. Called every tick with a share sized so every
    /// address is refreshed once per third of its lifetime, so refreshing thousands of
    /// addresses never stalls the loop.
    async fn refresh_some(&mut self, count: usize) {
        let after = self.refreshed_up_to;
        let readied = self.pre_plumbing.iter().flat_map(|p| &p.readied);
        // Held and readied addresses in one order, so the cursor goes round them all.
        let all: BTreeMap<&IpAddr, &PlumbHint> = self.plumbed.iter().chain(readied).collect();
        let mut items: Vec<(IpAddr, u8, String)> = all
            .iter()
            .filter(|(a, _)| after.is_none_or(|last| ***a > last))
            .take(count)
            .map(|(a, h)| (**a, h.cidrmask, h.interface.clone()))
            .collect();
        if items.len() < count {
            let wrapped = all.iter().take(count - items.len());
            items.extend(wrapped.map(|(a, h)| (**a, h.cidrmask, h.interface.clone())));
        }
        self.refreshed_up_to = items.last().map(|(a, ..)| *a);
        for chunk in items.chunks(PLUMB_CHUNK) {
            let results = self.plumber.plumb_many(chunk).await;
            for ((address, ..), result) in chunk.iter().zip(results) {
                if let Err(e) = result {
                    if !self.lost_readied(*address) {
                        self.plumb_failed(*address, "cannot refresh", &e);
                    }
                }
            }
            self.feed_clock();
        }
    }
}

use dvip_core::address_lifetime_for;

/// Tells the plumber how many holders to spread over for `config`: `--spread` if given, else
/// [`crate::spread::holders_for`] its IPv4 address count. Called at start and on every reload,
/// so a configuration that grows past the threshold spreads its new addresses without a
/// restart; addresses already plumbed stay where they are (the plumber remembers). The holders
/// are made here, not when a takeover first needs one.
async fn spread_for(settings: &Settings, config: &Loaded, plumber: &mut Plumber) {
    let holders = settings.spread.unwrap_or_else(|| {
        crate::spread::holders_for(
            config
                .addresses
                .iter()
                .filter(|m| m.address.is_ipv4())
                .count(),
        )
    });
    if holders == plumber.holders() {
        return;
    }
    if holders > 0 {
        info!(
            holders,
            "IPv4 addresses spread over holder interfaces {} to {}",
            crate::spread::holder_name(0),
            crate::spread::holder_name(holders - 1)
        );
    } else {
        info!("IPv4 addresses no longer spread: new ones go on their configured interfaces");
    }
    plumber.spread_over(holders);
    plumber.make_holders().await;
}

/// Raises the soft limit on open files to the hard one (systemd's `LimitNOFILE`, or the
/// shell's) and returns it: forward-mode relays take two descriptors each.
fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

async fn next_bus_event(bus: &mut Bus) -> Option<BusEvent> {
    match bus {
        Bus::Corosync { bus: Some(bus), .. } => bus.next().await,
        _ => std::future::pending().await,
    }
}

/// corosync's node names by id, once it is checked that they name this node as dvip does.
fn identify(joined: &CorosyncBus, name: &str) -> Result<BTreeMap<u32, String>, DaemonError> {
    let names = corosync::node_names()?;
    match names.get(&joined.me.nodeid) {
        Some(theirs) if theirs != name => Err(DaemonError::NameMismatch {
            ours: name.to_owned(),
            theirs: theirs.clone(),
        }),
        Some(_) => Ok(names),
        // Without a name the others would know this node only by its id, never as the
        // member whose State they wait for.
        None => Err(DaemonError::Unnamed {
            nodeid: joined.me.nodeid,
            ours: name.to_owned(),
        }),
    }
}

/// Takes this node's lock, beside the console socket, for as long as the returned file is
/// open: a second dvipd would join the group as a second member of the same name, take the
/// console socket over and remove the first one's addresses as leftovers.
fn lock(socket: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = socket.with_extension("lock");
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(locked),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(DaemonError::AlreadyRunning { path }),
        Err((_, errno)) => Err(DaemonError::Lock {
            path,
            source: errno.into(),
        }),
    }
}

/// Runs a node until SIGTERM or SIGINT, then hands every address over and returns.
pub async fn run(settings: Settings) -> Result<(), DaemonError> {
    // Held until this function returns, and by the kernel until the process is gone.
    let _lock = lock(&settings.socket)?;
    let config = read_config(&settings).ok_or(DaemonError::Config)?;
    let name = config.name.clone();
    let group = config.group.clone();
    let bus = match settings.bus {
        BusKind::Standalone => Bus::Standalone(VecDeque::new()),
        // corosync may not be up yet (a boot where dvipd starts first, a corosync restarting):
        // the loop keeps trying, and systemd hears READY only once joined.
        BusKind::Corosync => match CorosyncBus::join(&group) {
            Ok(joined) => Bus::Corosync {
                names: identify(&joined, &name)?,
                bus: Some(joined),
                group,
            },
            Err(e) => {
                warn!("waiting for corosync: {e}");
                Bus::Corosync {
                    bus: None,
                    group,
                    names: BTreeMap::new(),
                }
            }
        },
    };
    let lifetime = settings
        .address_lifetime
        .unwrap_or_else(|| address_lifetime_for(config.addresses.len()));
    let mut plumber = Plumber::connect(lifetime)?;
    spread_for(&settings, &config, &mut plumber).await;
    let leftovers = plumber.remove_all_ours().await?;
    let foreign = plumber.foreign().await?;
    let clashes: Vec<IpAddr> = config
        .addresses
        .iter()
        .map(|m: &ManagedAddress| m.address)
        .filter(|a| foreign.contains(a))
        .collect();
    if !clashes.is_empty() {
        if !settings.migrate {
            return Err(DaemonError::ForeignAddress { addresses: clashes });
        }
        let own = match &bus {
            Bus::Corosync { bus: Some(b), .. } => corosync::ring_addresses(b.me.nodeid),
            _ => Vec::new(),
        };
        if let Some(&address) = clashes.iter().find(|a| own.contains(a)) {
            return Err(DaemonError::OwnAddress { address });
        }
        // Taken away here and then elected like any other address: the node that wins it
        // plumbs it again as dvip's.
        for address in plumber.remove_foreign(&clashes).await? {
            warn!(%address, "migration: removed a DuraVIP address something else had plumbed");
        }
    }
    if !leftovers.is_empty() {
        info!(
            count = leftovers.len(),
            "removed addresses a previous dvipd left behind"
        );
    }
    // Before anything is plumbed: from here on, however this process ends, its addresses go
    // with it.
    let guardian = match std::env::current_exe().and_then(|me| Guardian::start(&me)) {
        Ok(g) => Some(g),
        Err(e) => {
            warn!(
                "cannot start the guardian (after a crash, addresses stay until their {} s \
                 lifetime runs out): {e}",
                lifetime.as_secs()
            );
            None
        }
    };
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

    let (heartbeat_agreed, agreed) = tokio::sync::watch::channel(dvip_lease::Agreed::default());
    let heartbeats = match (settings.heartbeats, settings.bus) {
        (Some((port, options)), BusKind::Corosync) => {
            if let Some((consensus, join)) = corosync::consensus_and_join() {
                if corosync::consensus_too_close(consensus, join) {
                    warn!(
                        consensus_ms = consensus.as_millis(),
                        join_ms = join.as_millis(),
                        "corosync's consensus leaves less than {} ms past its join timeout: after a death the survivors may each form a ring alone before merging, and a survivor's lease may lapse; raise totem.consensus (docs/leases.md)",
                        corosync::CONSENSUS_PAST_JOIN.as_millis()
                    );
                }
            }
            let guard = crate::kernel_lease::KernelLease::guarding(&config.addresses);
            match crate::heartbeat::start(&name, port, options, guard, &events, agreed) {
                Ok(started) => Some(started),
                Err(e) => {
                    warn!("no heartbeats, no leases: {e}");
                    None
                }
            }
        }
        _ => {
            // A table left by an earlier run with leases would keep the addresses silent.
            crate::kernel_lease::remove();
            None
        }
    };
    let (mut verdicts, leasing) = match heartbeats {
        Some(h) => (
            Some(h.verdicts),
            Some(leasing::Leasing {
                orders: h.orders,
                gate: h.gate,
                lapses_read: 0,
            }),
        ),
        None => (None, None),
    };
    // Without leases nothing keeps a readied address silent, and a table left by an earlier
    // run would silence addresses this run holds.
    let pre_plumbing = if settings.pre_plumb && leasing.is_some() {
        pre_plumbing::PrePlumbing::start(&config.addresses)
    } else {
        if settings.pre_plumb {
            warn!("no pre-plumbing: it needs leases, which are off");
        }
        crate::silence::remove();
        None
    };

    // A firewall flushing the ruleset takes the lease's and the silence's tables with it.
    let mut table_news = match leasing.as_ref().map(|_| crate::nft_watch::start()) {
        Some(Ok(news)) => Some(news),
        Some(Err(e)) => {
            warn!("cannot watch nftables for the loss of dvipd's tables: {e}");
            None
        }
        None => None,
    };

    let metrics = Arc::new(Metrics::default());
    if let Some(at) = settings.metrics {
        crate::metrics::serve(at, Arc::clone(&metrics))
            .await
            .map_err(|source| DaemonError::Metrics { at, source })?;
    }
    metrics
        .configured
        .set(i64::try_from(config.addresses.len()).unwrap_or(i64::MAX));
    let inputs = Inputs::start(&config.log_inputs, &metrics.logs)?;
    metrics.logs.set_journals(config.journals.clone());
    let log_service = start_log_service(&settings, &config, &name, &metrics);
    let links = crate::watch::links().await.unwrap_or_else(|e| {
        warn!("cannot read the interfaces' state (treating all as up): {e}");
        BTreeMap::new()
    });
    let mut kernel = crate::watch::watch().map_err(DaemonError::Watch)?;
    watching::warn_missing(&config.addresses, &links);
    let token = match settings.bus {
        BusKind::Corosync => corosync::token_timeout(),
        BusKind::Standalone => None,
    };
    let options = config.node_options(token);
    info!(
        state_deadline_ms = options.state_deadline.as_millis(),
        plumb_deadline_ms = options.plumb_deadline.as_millis(),
        view_mature_time_ms = options.view_mature_time.as_millis(),
        "timing"
    );
    let mut node = Node::new(
        name.clone(),
        options,
        &watching::offered(&config.addresses, &links),
    );
    match crate::kept::read(&settings.state_dir, &name) {
        Ok(kept) => {
            if kept.standby {
                warn!(
                    file = %crate::kept::path(&settings.state_dir, &name).display(),
                    "on standby, as kept from before: `dvip online` takes a share again"
                );
                node.start_on_standby();
            }
            node.restore_moves(kept.moves);
        }
        Err(e) => error!("cannot read what this node kept ({e}): starting online"),
    }
    let address_count = config.addresses.len();
    let replication = Replication::new(&name, config.replica_options.clone(), &config.caches);
    let relays = crate::forward::relays_for(raise_descriptor_limit());
    let mut daemon = Daemon {
        node,
        name: name.clone(),
        config,
        config_loaded: Instant::now(),
        state_dir: settings.state_dir.clone(),
        forwards: Forwards::new(
            Counters {
                accepted: metrics.forwarded.clone(),
                backend_failures: metrics.backend_failures.clone(),
                refused: metrics.forward_refused.clone(),
                idle_closed: metrics.forward_idle_closed.clone(),
            },
            relays,
        ),
        control: None,
        control_members: BTreeSet::new(),
        broadcasts: Broadcasts::default(),
        replication,
        hooks: Hooks::start(events.clone(), Arc::clone(&metrics)),
        metrics,
        view_members: BTreeSet::new(),
        lost_member: false,
        status_sent: String::new(),
        links,
        guardian,
        plumber,
        plumbed: BTreeMap::new(),
        own_removals: BTreeMap::new(),
        plumbed_at: BTreeMap::new(),
        bus,
        started: Instant::now(),
        announcer: Announcer::default(),
        repeats: VecDeque::new(),
        announcements_refused: false,
        refused: BTreeSet::new(),
        announced: BTreeMap::new(),
        neighbours: BTreeMap::new(),
        clock_fed: Instant::now(),
        refreshed_up_to: None,
        events,
        heartbeat_agreed,
        leasing,
        pre_plumbing,
        joining: None,
        inputs: Arc::new(std::sync::Mutex::new(inputs)),
        _log_service: log_service,
    };
    daemon.rejoin_control();
    daemon.rejoin_replication();
    let (policy_asks, mut policy_questions) = tokio::sync::mpsc::channel(1024);
    if let Some(at) = daemon.config.policy_listener {
        match tokio::net::TcpListener::bind(at).await {
            Ok(listener) => {
                info!(%at, limits = daemon.config.inbound_limits.len(), "policy server listening");
                tokio::spawn(crate::policy::serve(listener, policy_asks));
            }
            // The addresses come first: a node without its policy server still fails over.
            Err(e) => error!(%at, "cannot listen for policy requests: {e}; running without"),
        }
    }
    let (api_asks, mut api_questions) = tokio::sync::mpsc::channel(1024);
    if let Some(socket) = &daemon.config.api_socket {
        match crate::api::bind(socket) {
            Ok(listener) => {
                info!(socket = %socket.path.display(), mode = format!("{:04o}", socket.mode), "local API listening");
                tokio::spawn(crate::api::serve(listener, api_asks));
            }
            // As for the policy server: the addresses come first.
            Err(e) => error!("cannot serve the local API: {e}; running without"),
        }
    }
    daemon.node.handle_timeout(daemon.now());
    daemon.drive().await;
    if matches!(daemon.bus, Bus::Standalone(_)) {
        daemon.node.handle_view(1, &BTreeSet::from([name.clone()]));
        daemon.drive().await;
    }
    let joined = !daemon.waiting_for_bus();
    daemon.metrics.bus_joined.set(i64::from(joined));
    info!(node = %name, addresses = address_count, bus = ?settings.bus, "running");
    daemon.status_sent = daemon.status_line();
    let mut ready_sent = joined;
    if joined {
        systemd::ready(&daemon.status_sent);
    } else {
        systemd::status(&daemon.status_sent);
    }
    let mut fatal = None;
    let watchdog = systemd::watchdog_interval();
    let mut last_watchdog = Instant::now();

    let tick = Duration::from_millis(250);
    let refresh_every = lifetime / 3;
    let mut last_rejoin = Instant::now();
    let mut rejoin_after = REJOIN_FIRST;
    let mut ticker = tokio::time::interval(tick);
    loop {
        let replication_due = daemon.replication_due();
        tokio::select! {
            _ = ticker.tick() => {
                let now = daemon.now();
                daemon.node.handle_timeout(now);
                daemon.drive().await;
                daemon.announce_due().await;
                daemon.ready_ahead().await;
                daemon.broadcasts.expire(Instant::now());
                daemon.replication_tick();
                if let Err(e) = daemon.finish_rejoin() {
                    error!("{e}");
                    fatal = Some(e);
                    break;
                }
                if !ready_sent && !daemon.waiting_for_bus() {
                    systemd::ready(&daemon.status_line());
                    ready_sent = true;
                }
                if last_rejoin.elapsed() >= rejoin_after {
                    // Every second at first, then backing off to REJOIN_BACKOFF_MAX while
                    // corosync stays away; back to every second once joined.
                    rejoin_after = if daemon.waiting_for_bus() {
                        (rejoin_after * 2).min(REJOIN_BACKOFF_MAX)
                    } else {
                        REJOIN_FIRST
                    };
                    daemon.start_rejoin();
                    daemon.rejoin_control();
                    daemon.rejoin_replication();
                    last_rejoin = Instant::now();
                }
                // Each tick refreshes its share, so that every held address is added again
                // once per third of its lifetime.
                let ticks_per_round = (refresh_every.as_millis() / tick.as_millis()).max(1) as usize;
                let readied = daemon.pre_plumbing.as_ref().map_or(0, |p| p.readied.len());
                let share = (daemon.plumbed.len() + readied).div_ceil(ticks_per_round);
                if share > 0 {
                    daemon.refresh_some(share).await;
                }
                // Only a loop that gets round to its ticks pets the watchdog: a stuck daemon
                // is killed and restarted by systemd, and corosync sees it leave.
                if watchdog.is_some_and(|every| last_watchdog.elapsed() >= every) {
                    systemd::watchdog();
                    last_watchdog = Instant::now();
                }
                let status = daemon.status_line();
                if status != daemon.status_sent {
                    systemd::status(&status);
                    daemon.status_sent = status;
                }
            }
            _ = hangup.recv() => {
                info!("SIGHUP: reading the configuration again");
                // Logged and streamed as an event; nobody waits for a reply.
                let _ = daemon.reload(&settings, false).await;
            }
            Some(event) = next_bus_event(&mut daemon.bus) => daemon.bus_event(event).await,
            Some(event) = kernel.recv() => daemon.kernel_event(event).await,
            Some(news) = leasing::next_table_news(&mut table_news) => {
                daemon.table_news(news).await;
            }
            Some(verdict) = leasing::next_verdict(&mut verdicts) => {
                daemon.lease_verdict(verdict).await;
            }
            () = tokio::time::sleep(BUS_RETRY), if daemon.bus_waiting() => daemon.flush_bus(),
            Some(event) = next_control_event(&mut daemon.control) => {
                daemon.control_event(event, &settings).await;
            }
            () = tokio::time::sleep(replication_due.unwrap_or_default()),
                if replication_due.is_some() => daemon.replication_tick(),
            Some(event) = next_replication_event(&mut daemon.replication) => {
                daemon.replication_event(event);
            }
            Some((query, verdict)) = policy_questions.recv() => {
                let _ = verdict.send(daemon.admit(&query));
            }
            Some((command, reply)) = api_questions.recv() => {
                let _ = reply.send(daemon.api_answer(command));
            }
            Some((request, reply)) = requests.recv() => match request {
                Request::Broadcast { request } => {
                    daemon.broadcast(*request, reply, &settings).await;
                }
                Request::Reload { force } => {
                    let answer = daemon.reload(&settings, force).await;
                    let _ = reply.send(answer);
                }
                request => match request.for_another(&daemon.name) {
                    Some((node, own)) => daemon.send_to(node.to_owned(), own, reply),
                    None => {
                        let answer = daemon.answer(request, &settings);
                        daemon.drive().await;
                        let _ = reply.send(answer);
                    }
                },
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping: handing every address over");
    systemd::stopping();
    daemon.node.handle_shutdown();
    daemon.drive().await;
    daemon.unready_all().await;
    if daemon.leasing.is_some() {
        crate::kernel_lease::remove();
    }
    // The release hooks of the hand-over run to their end (within a bound) before the
    // process goes; dropping the runtime would kill them mid-way.
    daemon.hooks.finish(crate::hook::HOOKS_AT_STOP).await;
    // After the hand-over, which must not wait on a disk: the inputs write what they have
    // received and what is still queued on their sockets.
    // A disk that hangs does not hold the stop beyond a bound.
    let inputs = Arc::clone(&daemon.inputs);
    let stopping = tokio::task::spawn_blocking(move || {
        if let Ok(mut inputs) = inputs.lock() {
            inputs.stop();
        }
    });
    if tokio::time::timeout(INPUTS_AT_STOP, stopping)
        .await
        .is_err()
    {
        warn!(
            "the log inputs did not finish writing within {} s; stopping without them",
            INPUTS_AT_STOP.as_secs()
        );
    }
    match daemon.plumber.remove_holders().await {
        Ok(0) => {}
        Ok(count) => info!(count, "holder interfaces deleted"),
        Err(e) => warn!("{e}"),
    }
    let _ = std::fs::remove_file(&settings.socket);
    if let Some(guardian) = daemon.guardian.take() {
        guardian.finish(Duration::from_secs(2));
    }
    fatal.map_or(Ok(()), Err)
}
