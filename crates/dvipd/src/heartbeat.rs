//! dvip's own heartbeats on the cluster network (docs/leases.md): a thread of its own sends
//! dvip-lease's beats over UDP to every member's corosync ring address, feeds the beats it
//! receives to the detector, hands the detector's verdicts to the daemon's loop, and renews
//! the kernel's end of this node's lease while the lease holds and the node may answer.
//!
//! It owns the socket, the peers' addresses, the thread and the renewals; the rules are
//! dvip-lease's, and what the verdicts do to the addresses is the core's (`Node`'s
//! `handle_promised`, `handle_takeover`, `handle_end_epoch`, `handle_lease_lapsed`), driven
//! by the loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dvip_console::{Acknowledged, Event, EventLine, LeaseState, LeaseStatus, Withheld};
use dvip_core::Node;
use dvip_lease::{Agreed, Beat, Detector, Lease, LeaseOptions, Takeover};
use tracing::{info, warn};

use crate::console::{now_ms, EventStream};
use crate::kernel_lease::{KernelLease, Renewer};

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
    #[error(
        "the kernel cannot end this node's lease ({0}): without it a paused dvipd's addresses \
         would answer after the others took them"
    )]
    KernelLease(crate::kernel_lease::KernelLeaseError),
}

/// What the detector concluded, for the daemon's loop to hand to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `about` has been silent for `suspect_after`: the core records what a promise defers,
    /// and the loop answers with [`Order::Promise`] on the plan it holds.
    Due { about: String, epoch: u64 },
    /// Every other member promised about a member, on one plan.
    Takeover(Takeover),
    /// A promise of this node's led to no takeover, or its subject spoke again.
    EndEpoch { about: String, epoch: u64 },
    /// This node's lease ran out: the `count`-th time.
    Lapsed { count: u64 },
    /// The kernel answers for this node's addresses again (a renewal went out) after a time
    /// it did not, or for the first time: what it refused to send meanwhile, announcements
    /// among it, is due again.
    Answering,
}

/// What the daemon's loop tells the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Make the promise, on `plan`.
    Promise {
        about: String,
        epoch: u64,
        plan: u64,
    },
    /// Guard these addresses from now on (a reload).
    Guard(KernelLease),
}

/// Whether the node may answer, as the loop last published it, with how many lapses it had
/// read by then: the thread renews the kernel's lease only when both are current. And the
/// other way, where the kernel's lease stands, for `show`.
#[derive(Debug, Default)]
pub struct Gate {
    may_answer: AtomicU64,
    kernel: AtomicU8,
    /// Who acknowledges this node and whom it does not, as of the last beat.
    seen: Mutex<Seen>,
}

/// What the detector last said of the others, for `show`.
#[derive(Debug, Default)]
struct Seen {
    /// Each member's latest acknowledgement of this node: when the beat it acknowledged went.
    acknowledged: Vec<(String, Instant)>,
    /// Members not acknowledged: in which epoch, and whether by this node's own promise.
    withheld: Vec<(String, u64, bool)>,
}

const MAY_ANSWER: u64 = 1 << 63;

/// The kernel's lease states, in the order they are stored.
const KERNEL_STATES: [LeaseState; 4] = [
    LeaseState::Unknown,
    LeaseState::Lost,
    LeaseState::HeldBack,
    LeaseState::Answering,
];

impl Gate {
    /// The loop publishes what the core says, after every input.
    pub fn publish(&self, may_answer: bool, lapses_read: u64) {
        let bit = if may_answer { MAY_ANSWER } else { 0 };
        self.may_answer.store(bit | lapses_read, Ordering::Release);
    }

    fn open(&self, lapses: u64) -> bool {
        let value = self.may_answer.load(Ordering::Acquire);
        value & MAY_ANSWER != 0 && value & !MAY_ANSWER == lapses
    }

    /// Where the kernel's lease stands, as the thread last found it.
    pub fn kernel(&self) -> LeaseState {
        KERNEL_STATES
            .get(usize::from(self.kernel.load(Ordering::Acquire)))
            .copied()
            .unwrap_or(LeaseState::Unknown)
    }

    /// The lease as `show` reports it, with the table's epochs from `node`.
    pub fn status(&self, node: &Node) -> LeaseStatus {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut acknowledged_by: Vec<Acknowledged> = seen
            .acknowledged
            .iter()
            .map(|(member, sent)| Acknowledged {
                member: member.clone(),
                age_ms: u64::try_from(now.saturating_duration_since(*sent).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect();
        acknowledged_by.sort_by_key(|a| a.age_ms);
        LeaseStatus {
            state: self.kernel(),
            epoch: node.epoch_of(node.name()),
            acknowledged_by,
            withholding: seen
                .withheld
                .iter()
                .map(|(member, epoch, promised_here)| Withheld {
                    member: member.clone(),
                    epoch: *epoch,
                    table_epoch: node.epoch_of(member),
                    promised_here: *promised_here,
                })
                .collect(),
        }
    }

    fn set_kernel(&self, state: LeaseState) {
        let index = KERNEL_STATES.iter().position(|s| *s == state).unwrap_or(0);
        self.kernel
            .store(u8::try_from(index).unwrap_or(0), Ordering::Release);
    }
}

/// The loop's ends of the thread.
pub struct Heartbeats {
    pub verdicts: tokio::sync::mpsc::UnboundedReceiver<Verdict>,
    pub orders: mpsc::Sender<Order>,
    pub gate: Arc<Gate>,
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

/// Starts the heartbeats of node `me` on `port`, following the core's view and epochs in
/// `agreed`, guarding `guard` with the kernel's lease and reporting in `events`.
pub fn start(
    me: &str,
    port: u16,
    options: LeaseOptions,
    guard: KernelLease,
    events: &EventStream,
    agreed: tokio::sync::watch::Receiver<Agreed>,
) -> Result<Heartbeats, HeartbeatError> {
    options.check().map_err(HeartbeatError::Options)?;
    let peers = peers(port)?;
    let at = *peers
        .get(me)
        .ok_or_else(|| HeartbeatError::NoAddress(me.to_owned()))?;
    let socket = UdpSocket::bind(at).map_err(|source| HeartbeatError::Bind { at, source })?;
    socket
        .set_nonblocking(true)
        .map_err(|source| HeartbeatError::Bind { at, source })?;
    guard.install().map_err(HeartbeatError::KernelLease)?;
    let (verdicts_tx, verdicts) = tokio::sync::mpsc::unbounded_channel();
    let (orders, orders_rx) = mpsc::channel();
    let gate = Arc::new(Gate::default());
    let (installs, installed) = installer()?;
    let beating = Beating {
        detector: Detector::new(me, options, Duration::ZERO, incarnation()),
        origin: Instant::now(),
        socket,
        peers,
        events: events.clone(),
        verdicts: verdicts_tx,
        orders: orders_rx,
        gate: Arc::clone(&gate),
        lapses: 0,
        guard,
        renewer: Renewer::default(),
        renewal_failed: false,
        answering_told: false,
        installs,
        installed,
    };
    info!(%at, peers = beating.peers.len(), "heartbeats and leases started");
    std::thread::Builder::new()
        .name("dvipd-heartbeat".into())
        .spawn(move || {
            raise_priority();
            beating.run(agreed);
        })
        .map_err(HeartbeatError::Thread)?;
    Ok(Heartbeats {
        verdicts,
        orders,
        gate,
    })
}

/// The thread that loads the lease table again on a reload, in order: `nft` takes tens of
/// milliseconds for thousands of addresses (40 ms at 10,240), as long as a lease, and the
/// heartbeat thread must not stop beating meanwhile. It hands back each table it loaded.
fn installer() -> Result<(mpsc::Sender<KernelLease>, mpsc::Receiver<KernelLease>), HeartbeatError> {
    let (installs, to_install) = mpsc::channel::<KernelLease>();
    let (loaded, installed) = mpsc::channel();
    std::thread::Builder::new()
        .name("dvipd-lease-table".into())
        .spawn(move || {
            for guard in to_install {
                match guard.install() {
                    Ok(()) => {
                        if loaded.send(guard).is_err() {
                            return;
                        }
                    }
                    Err(e) => warn!("the kernel's lease keeps the addresses it had: {e}"),
                }
            }
        })
        .map_err(HeartbeatError::Thread)?;
    Ok((installs, installed))
}

/// This run of the daemon, told apart from the runs before: the wall clock's nanoseconds at
/// start (its monotonic clock, and the beats' send times, start again with each run).
fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::from(std::process::id()), |d| d.as_nanos() as u64)
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
    verdicts: tokio::sync::mpsc::UnboundedSender<Verdict>,
    orders: mpsc::Receiver<Order>,
    gate: Arc<Gate>,
    /// Lapses sent to the loop.
    lapses: u64,
    guard: KernelLease,
    renewer: Renewer,
    /// The last renewal failed (said once until one works again).
    renewal_failed: bool,
    /// The loop has heard that the kernel answers since the last time it did not.
    answering_told: bool,
    /// Tables to load, to the installer thread; and those it loaded.
    installs: mpsc::Sender<KernelLease>,
    installed: mpsc::Receiver<KernelLease>,
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

    fn run(mut self, mut agreed: tokio::sync::watch::Receiver<Agreed>) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match agreed.has_changed() {
                Ok(true) => {
                    let table = agreed.borrow_and_update().clone();
                    let now = self.now();
                    self.detector.set_agreed(&table, now);
                }
                Ok(false) => {}
                // The daemon is gone.
                Err(_) => return,
            }
            self.obey();
            let now = self.now();
            if now >= self.detector.next_beat() {
                let bytes = self.detector.beat(now).encode();
                for (name, at) in &self.peers {
                    if name != self.detector.name() && self.detector.members().contains(name) {
                        let _ = self.socket.send_to(&bytes, at);
                    }
                }
                self.renew();
            }
            let wait = self
                .detector
                .next_deadline()
                .saturating_sub(self.now())
                .clamp(Duration::from_micros(100), Duration::from_millis(5));
            if readable_within(&self.socket, wait) {
                while let Ok((n, from)) = self.socket.recv_from(&mut buffer) {
                    self.heard(&buffer[..n], from);
                }
            }
            self.tick();
        }
    }

    /// Carries out what the loop asked.
    fn obey(&mut self) {
        while let Ok(order) = self.orders.try_recv() {
            let now = self.now();
            match order {
                Order::Promise { about, epoch, plan } => {
                    self.detector.promise(&about, epoch, plan, now);
                    self.emit(Event::Unheard { node: about });
                }
                Order::Guard(guard) => {
                    let _ = self.installs.send(guard);
                }
            }
        }
        // Renewals go to the interfaces of the table the kernel has.
        while let Ok(guard) = self.installed.try_recv() {
            self.guard = guard;
        }
    }

    /// Hands the detector's verdicts to the loop.
    fn tick(&mut self) {
        let ticked = self.detector.tick(self.now());
        let mut verdicts: Vec<Verdict> = ticked
            .due
            .into_iter()
            .map(|d| Verdict::Due {
                about: d.about,
                epoch: d.epoch,
            })
            .collect();
        for takeover in ticked.takeovers {
            self.emit(Event::TakeoverReady {
                node: takeover.about.clone(),
            });
            verdicts.push(Verdict::Takeover(takeover));
        }
        verdicts.extend(ticked.to_end.into_iter().map(|p| Verdict::EndEpoch {
            about: p.about,
            epoch: p.epoch,
        }));
        if self.detector.take_lapsed() {
            self.lapses += 1;
            self.emit(Event::LeaseLost);
            verdicts.push(Verdict::Lapsed { count: self.lapses });
        }
        for verdict in verdicts {
            let _ = self.verdicts.send(verdict);
        }
    }

    /// Leaves what the detector says of the others where `show` reads it.
    fn tell_seen(&self) {
        let seen = Seen {
            acknowledged: self
                .detector
                .acknowledged()
                .map(|(m, sent)| (m.clone(), self.origin + sent))
                .collect(),
            withheld: self
                .detector
                .withheld()
                .map(|(m, epoch, own)| (m.clone(), epoch, own))
                .collect(),
        };
        // Never waits on `show`: the next beat tells it again.
        if let Ok(mut told) = self.gate.seen.try_lock() {
            *told = seen;
        }
    }

    /// Renews the kernel's lease if the detector holds the lease with more than the kernel's
    /// timeout (and its tick) to run, and the core may answer having read every lapse: the
    /// kernel's end never passes the lease's.
    fn renew(&mut self) {
        let now = self.now();
        let tick = Duration::from_millis(4);
        let long_enough = match self.detector.lease(now) {
            Lease::Held { until: None } => true,
            Lease::Held { until: Some(until) } => until > now + self.guard.timeout + tick,
            Lease::Lost => false,
        };
        self.tell_seen();
        let held_back = !self.gate.open(self.lapses);
        let state = match (long_enough, held_back) {
            (false, _) => LeaseState::Lost,
            (true, true) => LeaseState::HeldBack,
            (true, false) => LeaseState::Answering,
        };
        // The gate keeps what the log last said: it starts `Unknown`, never said here.
        if self.gate.kernel() != state {
            self.gate.set_kernel(state);
            let ages: Vec<String> = self
                .detector
                .acknowledged()
                .map(|(m, sent)| format!("{m}:{:.1}", now.saturating_sub(sent).as_secs_f64() * 1e3))
                .collect();
            info!(lease = state.describe(), acks = ?ages, "kernel lease");
        }
        if !long_enough || held_back {
            self.answering_told = false;
            return;
        }
        match self.renewer.renew(&self.guard.interfaces) {
            Ok(()) => {
                self.renewal_failed = false;
                // The renewal has passed the table (it is sent synchronously): from here on
                // an announcement goes out.
                if !std::mem::replace(&mut self.answering_told, true) {
                    let _ = self.verdicts.send(Verdict::Answering);
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.renewal_failed, true) {
                    warn!("cannot renew the kernel's lease: {e}");
                }
            }
        }
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
        self.detector.receive(&beat, now);
    }
}

/// Waits up to `wait` for a datagram on `socket`. ppoll's timer is a high-resolution one: a
/// socket timeout counts in the kernel's ticks (4 ms at 250 Hz), which stretched the beats'
/// interval from 5 ms to 12.
fn readable_within(socket: &UdpSocket, wait: Duration) -> bool {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None).is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The beats' clock: a wait of a millisecond must not become a kernel tick (4 ms at
    /// 250 Hz), or beats due every 5 ms go out every 8 to 12.
    #[test]
    fn a_wait_for_beats_ends_on_time_not_on_the_kernel_s_tick() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        let wait = Duration::from_millis(1);
        let mut took: Vec<Duration> = (0..41)
            .map(|_| {
                let start = Instant::now();
                assert!(!readable_within(&socket, wait), "nothing was sent");
                start.elapsed()
            })
            .collect();
        took.sort();
        let median = took[took.len() / 2];
        assert!(took[0] >= wait, "it returned early: {took:?}");
        assert!(
            median < Duration::from_micros(2_500),
            "waits of 1 ms took {median:?} (median): {took:?}"
        );
    }
}
