//! dvip's own heartbeats on the cluster network (issue 22, docs/leases.md): a thread of its
//! own sends dvip-lease's beats over UDP to every member's corosync ring address, feeds the
//! beats it receives to the detector, and reports what the detector concludes as events.
//!
//! Observed only, for now: nothing is moved on its word, and an owner's lease is not
//! enforced. It owns the socket, the peers' addresses and the thread; the rules are
//! dvip-lease's, and what to do with them is the daemon's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dvip_console::{Event, EventLine};
use dvip_lease::{Beat, Detector, Lease, LeaseOptions};
use tracing::{info, warn};

use crate::console::{now_ms, EventStream};

/// Why the heartbeats could not start.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("corosync's node list gives no ring address for this node ({0})")]
    NoAddress(String),
    #[error("cannot read corosync's node list: {0}")]
    NodeList(String),
    #[error("cannot listen for heartbeats on {at}: {source}")]
    Bind {
        at: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Options(String),
    #[error("cannot start the heartbeat thread: {0}")]
    Thread(std::io::Error),
}

/// Every node's heartbeat address: its first ring address in corosync's node list, at `port`.
fn peers(port: u16) -> Result<BTreeMap<String, SocketAddr>, HeartbeatError> {
    let names =
        crate::corosync::node_names().map_err(|e| HeartbeatError::NodeList(e.to_string()))?;
    Ok(names
        .into_iter()
        .filter_map(|(id, name)| {
            let address: IpAddr = *crate::corosync::ring_addresses(id).first()?;
            Some((name, SocketAddr::new(address, port)))
        })
        .collect())
}

/// Starts the heartbeats of node `me` on `port`, following the views' members in `views`
/// and reporting in `events`.
pub fn start(
    me: &str,
    port: u16,
    options: LeaseOptions,
    events: &EventStream,
    views: tokio::sync::watch::Receiver<BTreeSet<String>>,
) -> Result<(), HeartbeatError> {
    options.check().map_err(HeartbeatError::Options)?;
    let peers = peers(port)?;
    let at = *peers
        .get(me)
        .ok_or_else(|| HeartbeatError::NoAddress(me.to_owned()))?;
    let socket = UdpSocket::bind(at).map_err(|source| HeartbeatError::Bind { at, source })?;
    let me = me.to_owned();
    let events = events.clone();
    info!(%at, peers = peers.len(), "heartbeats started (observed only)");
    std::thread::Builder::new()
        .name("dvipd-heartbeat".into())
        .spawn(move || {
            raise_priority();
            Beating {
                detector: Detector::new(me, options, Duration::ZERO),
                origin: Instant::now(),
                socket,
                peers,
                events,
                held: false,
            }
            .run(views);
        })
        .map(|_| ())
        .map_err(HeartbeatError::Thread)
}

/// The beats must go out on time when the machine is busy, as corosync's do: the thread asks
/// for a real-time priority below corosync's.
fn raise_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let Ok(value) = ThreadPriorityValue::try_from(10u8) else {
        return;
    };
    let raised = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    );
    if let Err(e) = raised {
        warn!("heartbeats run at normal priority ({e:?}): a busy machine may delay them");
    }
}

struct Beating {
    detector: Detector,
    origin: Instant,
    socket: UdpSocket,
    peers: BTreeMap<String, SocketAddr>,
    events: EventStream,
    /// Whether the lease held when last looked at.
    held: bool,
}

impl Beating {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(EventLine {
            event,
            at_ms: now_ms(),
        });
    }

    fn run(mut self, mut views: tokio::sync::watch::Receiver<BTreeSet<String>>) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match views.has_changed() {
                Ok(true) => {
                    let members = views.borrow_and_update().clone();
                    let now = self.now();
                    self.detector.set_members(&members, now);
                }
                Ok(false) => {}
                // The daemon is gone.
                Err(_) => return,
            }
            let now = self.now();
            if now >= self.detector.next_beat() {
                let bytes = self.detector.beat(now).encode();
                for (name, at) in &self.peers {
                    if name != self.detector.name() && self.detector.members().contains(name) {
                        let _ = self.socket.send_to(&bytes, at);
                    }
                }
            }
            let wait = self
                .detector
                .next_deadline()
                .saturating_sub(self.now())
                .clamp(Duration::from_micros(200), Duration::from_millis(5));
            let _ = self.socket.set_read_timeout(Some(wait));
            if let Ok((n, from)) = self.socket.recv_from(&mut buffer) {
                self.heard(&buffer[..n], from);
            }
            let ticked = self.detector.tick(self.now());
            for node in ticked.promised {
                self.emit(Event::Unheard { node });
            }
            for takeover in ticked.takeovers {
                self.emit(Event::TakeoverReady {
                    node: takeover.about,
                });
            }
            self.watch_lease();
        }
    }

    /// Reports this node's lease lapsing, once per lapse.
    fn watch_lease(&mut self) {
        let held = matches!(self.detector.lease(self.now()), Lease::Held { .. });
        if self.held && !held {
            self.emit(Event::LeaseLost);
        }
        self.held = held;
    }

    /// A datagram arrived: a beat from the member whose address it came from, or nothing.
    fn heard(&mut self, bytes: &[u8], from: SocketAddr) {
        let Ok(beat) = Beat::decode(bytes) else {
            return;
        };
        if self.peers.get(&beat.from).map(SocketAddr::ip) != Some(from.ip()) {
            return;
        }
        let now = self.now();
        // Observed only, no agreed order moves epochs yet: a member's say-so does. It moves
        // its own when it hears a promise about itself, and the others follow its beats.
        if self
            .detector
            .epoch_of(&beat.from)
            .is_some_and(|e| beat.epoch > e)
        {
            self.detector.set_epoch(&beat.from, beat.epoch, now);
        }
        let mine = self.detector.epoch();
        let about_me = |p: &dvip_lease::Promise| p.about == self.detector.name() && p.epoch == mine;
        if beat.promises.iter().any(about_me) {
            let me = self.detector.name().to_owned();
            self.detector.set_epoch(&me, mine + 1, now);
        }
        self.detector.receive(&beat, now);
    }
}
