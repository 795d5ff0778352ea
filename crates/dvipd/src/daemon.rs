//! The daemon's loop: one task owns the core and carries out what it asks.
//!
//! Owns the order of things: at start, remove every address a previous dvipd left behind;
//! then feed the core its inputs (the clock, the bus, signals) one at a time and, after each,
//! carry its actions out in the order given (they already release before they acquire).
//! Planned addresses are refreshed well within their lifetime. It must not decide anything:
//! every decision is the core's.
//!
//! The bus today is the standalone one: a view of this node alone whose multicasts come back
//! to it in order, which is what a cluster of one needs. The corosync bus plugs in at the
//! same two points (views in, messages in and out).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dvip_config::{load, DiskFiles, LoadOptions, Severity};
use dvip_core::{Action, Event, ManagedAddress, Node, NodeOptions, PlumbHint};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::announce::Announcer;
use crate::console::{self, Request};
use crate::plumb::{PlumbError, Plumber};

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
}

/// Why the daemon stopped early. Addresses it plumbed are released where it could.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is invalid at start; nothing was plumbed.
    #[error("the configuration is invalid")]
    Config,
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

/// Reads and validates the configuration, logging every diagnostic.
fn read_config(settings: &Settings) -> Option<(String, Vec<ManagedAddress>)> {
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
        let addresses = checked.config.managed_addresses().cloned().collect();
        (checked.config.nodename, addresses)
    })
}

struct Daemon {
    node: Node,
    name: String,
    plumber: Plumber,
    /// What this process plumbed and has not removed, with where it put it.
    plumbed: BTreeMap<IpAddr, PlumbHint>,
    /// The standalone bus: this node's multicasts, delivered back to it in order.
    bus: VecDeque<Vec<u8>>,
    started: Instant,
    announcer: Announcer,
    /// Announcements still to repeat: (when, address, how many more).
    repeats: VecDeque<(Instant, IpAddr, u32)>,
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
            while let Some(action) = self.node.poll_action() {
                self.carry_out(action).await;
            }
            while let Some(event) = self.node.poll_event() {
                log_event(&event);
            }
            let Some(bytes) = self.bus.pop_front() else {
                break;
            };
            self.node.handle_message(&self.name, &bytes);
        }
    }

    async fn carry_out(&mut self, action: Action) {
        match action {
            Action::Send(bytes) => self.bus.push_back(bytes),
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
                Err(e) => error!(%address, "cannot plumb: {e}"),
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
                    Ok(()) => info!(%address, "unplumbed"),
                    // Left in place, it expires with its lifetime.
                    Err(e) => error!(%address, "cannot unplumb (it will expire by itself): {e}"),
                }
            }
            Action::Announce { address } => {
                self.announce(address);
                self.repeats.push_back((
                    Instant::now() + ANNOUNCE_INTERVAL,
                    address,
                    ANNOUNCE_COUNT - 1,
                ));
            }
            Action::StartService { address, ports } => {
                info!(%address, ?ports, "listeners may answer here");
            }
            Action::StopService { address, ports } => {
                info!(%address, ?ports, "listeners must stop here");
            }
            Action::Mark { address, marks } => {
                warn!(%address, marks = ?marks.names(), "marks changed");
            }
        }
    }

    /// One gratuitous ARP for a held IPv4 address.
    fn announce(&mut self, address: IpAddr) {
        let Some(hint) = self.plumbed.get(&address) else {
            return;
        };
        match address {
            IpAddr::V4(v4) => {
                if let Err(e) = self.announcer.announce(&hint.interface, v4) {
                    warn!(%address, "cannot announce: {e}");
                }
            }
            IpAddr::V6(_) => {
                info!(%address, "unsolicited neighbour advertisement is not built yet");
            }
        }
    }

    /// Sends the repeats that are due.
    fn announce_due(&mut self) {
        let now = Instant::now();
        while self.repeats.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, address, left)) = self.repeats.pop_front() else {
                break;
            };
            self.announce(address);
            if left > 1 {
                self.repeats
                    .push_back((now + ANNOUNCE_INTERVAL, address, left - 1));
            }
        }
    }

    /// Adds every held address again, which restarts its lifetime.
    async fn refresh(&mut self) {
        let held: Vec<(IpAddr, PlumbHint)> =
            self.plumbed.iter().map(|(a, h)| (*a, h.clone())).collect();
        for (address, hint) in held {
            if let Err(e) = self
                .plumber
                .plumb(address, hint.cidrmask, &hint.interface)
                .await
            {
                error!(%address, "cannot refresh: {e}");
            }
        }
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Dropped { from, why } => warn!(%from, ?why, "message dropped"),
        Event::Paused { gap } => warn!(?gap, "the clock jumped: addresses released"),
        other => info!(?other, "event"),
    }
}

/// Runs a node on the standalone bus until SIGTERM or SIGINT, then hands every address back
/// (removes it) and returns.
pub async fn run_standalone(settings: Settings) -> Result<(), DaemonError> {
    let (name, addresses) = read_config(&settings).ok_or(DaemonError::Config)?;
    let mut plumber = Plumber::connect(settings.address_lifetime)?;
    let leftovers = plumber.remove_all_ours().await?;
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
    console::listen(&settings.socket, requests_tx).map_err(|source| DaemonError::Console {
        path: settings.socket.clone(),
        source,
    })?;

    let node = Node::new(name.clone(), NodeOptions::default(), &addresses);
    let mut daemon = Daemon {
        node,
        name: name.clone(),
        plumber,
        plumbed: BTreeMap::new(),
        bus: VecDeque::new(),
        started: Instant::now(),
        announcer: Announcer::default(),
        repeats: VecDeque::new(),
    };
    daemon.node.handle_timeout(daemon.now());
    daemon.drive().await;
    daemon.node.handle_view(1, &BTreeSet::from([name.clone()]));
    daemon.drive().await;
    info!(node = %name, addresses = addresses.len(), "running on the standalone bus");

    let tick = Duration::from_millis(250);
    let refresh_every = settings.address_lifetime / 3;
    let mut last_refresh = Instant::now();
    let mut ticker = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = daemon.now();
                daemon.node.handle_timeout(now);
                daemon.drive().await;
                daemon.announce_due();
                if last_refresh.elapsed() >= refresh_every {
                    daemon.refresh().await;
                    last_refresh = Instant::now();
                }
            }
            _ = hangup.recv() => {
                info!("SIGHUP: reading the configuration again");
                match read_config(&settings) {
                    Some((_, addresses)) => {
                        daemon.node.handle_config(&addresses);
                        daemon.drive().await;
                        info!(addresses = addresses.len(), "configuration reloaded");
                    }
                    None => error!("the new configuration is invalid; keeping the old one"),
                }
            }
            Some((request, reply)) = requests.recv() => {
                let answer = match request {
                    Request::Show => console::status(&daemon.node),
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
