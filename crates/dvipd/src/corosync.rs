//! The corosync bus: the cluster group over corosync's CPG (extended virtual synchrony).
//!
//! Owns the CPG connection, its dispatch thread and the translation of CPG's views and
//! deliveries into [`BusEvent`]s; and the names of nodes, read from corosync's node list, so
//! the core sees node names, not numbers. It must not interpret messages.
//!
//! Known traps of the rust-corosync crate, handled here: the context given to `initialize` is
//! not usable (it is set with `context_set` afterwards); its callbacks are plain functions, so
//! they find their channel through that context in a table; and there is no reconnect: when
//! corosync goes away, dispatch fails, [`BusEvent::Lost`] is sent and the caller must join
//! again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rust_corosync::cpg::{
    self, Address, Guarantee, Handle, Model1Data, Model1Flags, ModelData, Reason, RingId,
};
use rust_corosync::{cmap, quorum, CsError, DispatchFlags, NodeId, TrackFlags};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::fragment::{self, FragmentError, Reassembler, FRAGMENT_MAX};
use crate::views::{Ring, View, Views};

/// A member of the group: one process on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// Corosync's node id.
    pub nodeid: u32,
    /// The process id of the member's dvipd.
    pub pid: u32,
}

/// What the bus reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// The group's membership or corosync's ring changed: every member sees the same views,
    /// with the same ids, in the same order (see [`crate::views`]).
    View {
        /// Never the id of an earlier view.
        id: u64,
        /// The members, sorted.
        members: Vec<Member>,
    },
    /// A message, in agreed order (the sender's own included).
    Message {
        /// Who sent it.
        from: Member,
        /// What it says.
        bytes: Vec<u8>,
    },
    /// A piece of a fragmented message was refused and dropped, with the sender's message in
    /// progress.
    Dropped {
        /// Who sent it.
        from: Member,
        /// Why.
        why: FragmentError,
    },
    /// The connection to corosync is gone; join again.
    Lost(String),
}

/// Why the bus could not be joined or written. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Corosync is not running here, or refused the request.
    #[error("corosync: {what}: {source}")]
    Corosync {
        /// What was attempted.
        what: &'static str,
        /// Corosync's answer.
        #[source]
        source: CsError,
    },
}

fn corosync(what: &'static str) -> impl FnOnce(CsError) -> BusError {
    move |source| BusError::Corosync { what, source }
}

/// Where a connection's callbacks send their events, and its views so far.
struct Tap {
    sink: UnboundedSender<BusEvent>,
    views: Views,
}

/// Each connection's tap, by connection context.
static TAPS: Mutex<BTreeMap<u64, Tap>> = Mutex::new(BTreeMap::new());
static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

/// Runs `f` on the tap of `handle`'s connection, if it is still open.
fn with_tap<T>(handle: &Handle, f: impl FnOnce(&mut Tap) -> T) -> Option<T> {
    let context = cpg::context_get(handle).ok()?;
    TAPS.lock().ok()?.get_mut(&context).map(f)
}

fn sink(handle: &Handle) -> Option<UnboundedSender<BusEvent>> {
    with_tap(handle, |tap| tap.sink.clone())
}

fn send_view(tap: &Tap, view: Option<View>) {
    if let Some(View { id, members, ring }) = view {
        // What the id digests, so that two members naming one view differently can be told
        // apart by their logs: another ring, or another process.
        let processes: Vec<String> = members
            .iter()
            .map(|m| format!("{}:{}", m.nodeid, m.pid))
            .collect();
        tracing::info!(
            view_id = id,
            ring = %format_args!("{}.{:x}", ring.nodeid, ring.seq),
            processes = ?processes,
            "corosync view"
        );
        let _ = tap.sink.send(BusEvent::View { id, members });
    }
}

// The signatures of both callbacks are rust-corosync's; they take their arguments by value.
#[allow(clippy::needless_pass_by_value)]
fn on_deliver(handle: &Handle, _group: String, nodeid: NodeId, pid: u32, msg: &[u8], _len: usize) {
    if let Some(sink) = sink(handle) {
        let from = Member {
            nodeid: u32::from(nodeid),
            pid,
        };
        let _ = sink.send(BusEvent::Message {
            from,
            bytes: msg.to_vec(),
        });
    }
}

#[allow(clippy::needless_pass_by_value)]
fn on_confchg(
    handle: &Handle,
    _group: &str,
    members: Vec<Address>,
    left: Vec<Address>,
    joined: Vec<Address>,
) {
    let members = members
        .iter()
        .map(|a| Member {
            nodeid: u32::from(a.nodeid),
            pid: a.pid,
        })
        .collect();
    let with_a_ring = left
        .iter()
        .chain(&joined)
        .any(|a| matches!(a.reason, Reason::NodeDown | Reason::NodeUp));
    with_tap(handle, |tap| {
        let view = tap.views.members_changed(members, with_a_ring);
        send_view(tap, view);
    });
}

#[allow(clippy::needless_pass_by_value)]
fn on_ring(handle: &Handle, ring: RingId, _nodes: Vec<NodeId>) {
    let ring = Ring {
        nodeid: u32::from(ring.nodeid),
        seq: ring.seq,
    };
    with_tap(handle, |tap| {
        let view = tap.views.ring_changed(ring);
        send_view(tap, view);
    });
}

/// The ring corosync is on now, from its quorum service (which reports the ring of its last
/// membership even without a quorum provider). CPG itself tells a new connection only of
/// later rings.
fn current_ring() -> Result<Ring, BusError> {
    static RINGS: Mutex<BTreeMap<u64, Ring>> = Mutex::new(BTreeMap::new());
    #[allow(clippy::needless_pass_by_value)]
    fn on_nodelist(
        handle: &quorum::Handle,
        ring: quorum::RingId,
        _members: Vec<NodeId>,
        _joined: Vec<NodeId>,
        _left: Vec<NodeId>,
    ) {
        if let (Ok(context), Ok(mut rings)) = (quorum::context_get(handle), RINGS.lock()) {
            rings.insert(
                context,
                Ring {
                    nodeid: u32::from(ring.nodeid),
                    seq: ring.seq,
                },
            );
        }
    }
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: None,
        nodelist_notification_fn: Some(on_nodelist),
    });
    let (handle, _) =
        quorum::initialize(&model, 0).map_err(corosync("connect to the quorum service"))?;
    let context = NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed);
    quorum::context_set(&handle, context).map_err(corosync("set the quorum context"))?;
    // Corosync queues the current membership before it answers the request.
    quorum::trackstart(&handle, TrackFlags::Current).map_err(corosync("ask for the ring"))?;
    quorum::dispatch(&handle, DispatchFlags::All).map_err(corosync("read the ring"))?;
    let ring = RINGS
        .lock()
        .ok()
        .and_then(|mut rings| rings.remove(&context));
    ring.ok_or(BusError::Corosync {
        what: "read the ring",
        source: CsError::CsErrNoSection,
    })
}

/// A joined CPG group.
pub struct CorosyncBus {
    /// The connection; taken only when the bus is dropped (see `Drop`).
    handle: Option<Handle>,
    context: u64,
    /// This process as a member.
    pub me: Member,
    events: UnboundedReceiver<BusEvent>,
    /// Large messages go out in fragments, numbered; incoming fragments are put back together.
    sent: u32,
    reassembler: Reassembler<Member>,
    /// Pieces not yet accepted by corosync, in order: it refuses multicasts for a moment
    /// while it forms a new membership (`TRY_AGAIN`), and nothing may be lost or reordered.
    outbox: Outbox,
}

/// What corosync answered one multicast.
#[derive(Debug)]
enum Taken {
    Yes,
    /// `TRY_AGAIN`: it forms a membership or its queue is full; the piece waits.
    Later,
}

/// The pieces corosync has not taken yet, in order: a refusal for the moment leaves the piece
/// and everything after it waiting, so nothing is lost or reordered.
#[derive(Debug, Default)]
struct Outbox {
    pieces: VecDeque<Vec<u8>>,
}

impl Outbox {
    /// Offers the waiting pieces in order to `multicast` until it refuses one for the
    /// moment (`Ok(false)`) or they are all taken (`Ok(true)`); a hard error stops it.
    fn flush<E>(
        &mut self,
        mut multicast: impl FnMut(&[u8]) -> Result<Taken, E>,
    ) -> Result<bool, E> {
        while let Some(piece) = self.pieces.front() {
            match multicast(piece)? {
                Taken::Yes => {
                    self.pieces.pop_front();
                }
                Taken::Later => {
                    tracing::debug!(waiting = self.pieces.len(), "corosync: try again");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

impl CorosyncBus {
    /// Connects to the local corosync and joins `group`; a thread dispatches its callbacks.
    pub fn join(group: &str) -> Result<Self, BusError> {
        let model = ModelData::ModelV1(Model1Data {
            flags: Model1Flags::None,
            deliver_fn: Some(on_deliver),
            confchg_fn: Some(on_confchg),
            totem_confchg_fn: Some(on_ring),
        });
        let handle = cpg::initialize(&model, 0).map_err(corosync("connect to CPG"))?;
        let context = NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = unbounded_channel();
        // Read after connecting, so that no ring is missed between the two; a ring that forms
        // meanwhile is reported again by CPG before this process's join.
        let ring = current_ring()?;
        if let Ok(mut taps) = TAPS.lock() {
            taps.insert(
                context,
                Tap {
                    sink: tx.clone(),
                    views: Views::new(Some(ring)),
                },
            );
        }
        cpg::context_set(&handle, context).map_err(corosync("set the connection context"))?;
        let nodeid = cpg::local_get(&handle).map_err(corosync("ask for the local node id"))?;
        cpg::join(&handle, group).map_err(corosync("join the group"))?;
        let dispatcher = handle.clone();
        std::thread::Builder::new()
            .name("corosync-dispatch".into())
            .spawn(move || {
                // Blocking dispatch returns only when the connection ends.
                let why = match cpg::dispatch(&dispatcher, DispatchFlags::Blocking) {
                    Ok(()) => "the connection ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                let _ = tx.send(BusEvent::Lost(why));
            })
            .map_err(|_| BusError::Corosync {
                what: "start the dispatch thread",
                source: CsError::CsErrLibrary,
            })?;
        Ok(Self {
            handle: Some(handle),
            context,
            me: Member {
                nodeid: u32::from(nodeid),
                pid: std::process::id(),
            },
            events,
            sent: 0,
            reassembler: Reassembler::new(dvip_core::wire::MESSAGE_SIZE_MAX),
            outbox: Outbox::default(),
        })
    }

    /// Multicasts `bytes` to the group in agreed order, in fragments of at most
    /// [`FRAGMENT_MAX`] bytes when larger. `Ok(false)` when corosync asked to try again
    /// later: what it did not take waits, in order, for [`CorosyncBus::flush`].
    pub fn send(&mut self, bytes: &[u8]) -> Result<bool, BusError> {
        self.sent = self.sent.wrapping_add(1);
        self.outbox
            .pieces
            .extend(fragment::split(self.sent, bytes, FRAGMENT_MAX));
        self.flush()
    }

    /// Sends what waits; `Ok(true)` once nothing does.
    pub fn flush(&mut self) -> Result<bool, BusError> {
        let Some(handle) = &self.handle else {
            return Ok(self.outbox.pieces.is_empty());
        };
        self.outbox.flush(
            |piece| match cpg::mcast_joined(handle, Guarantee::TypeAgreed, piece) {
                Ok(()) => Ok(Taken::Yes),
                Err(CsError::CsErrTryAgain) => Ok(Taken::Later),
                Err(source) => Err(BusError::Corosync {
                    what: "multicast",
                    source,
                }),
            },
        )
    }

    /// Whether pieces wait for corosync to take them.
    pub fn waiting(&self) -> bool {
        !self.outbox.pieces.is_empty()
    }

    /// The next event, with fragmented messages whole again; `None` only if the dispatch
    /// thread is gone without a word.
    pub async fn next(&mut self) -> Option<BusEvent> {
        loop {
            match self.events.recv().await? {
                BusEvent::Message { from, bytes } => match self.reassembler.push(&from, bytes) {
                    Ok(Some(bytes)) => return Some(BusEvent::Message { from, bytes }),
                    Ok(None) => {}
                    Err(why) => return Some(BusEvent::Dropped { from, why }),
                },
                BusEvent::View { id, members } => {
                    self.reassembler.keep_only(|m| members.contains(m));
                    return Some(BusEvent::View { id, members });
                }
                other @ (BusEvent::Lost(_) | BusEvent::Dropped { .. }) => return Some(other),
            }
        }
    }
}

impl Drop for CorosyncBus {
    /// Leaves the group: without it, a bus dropped while corosync still runs (or is only
    /// stopped) would leave this process a member that never speaks, and its next join would
    /// find it still there. Finalizing waits for corosync's answer, which a stopped corosync
    /// gives only when it continues: on a thread of its own, never the caller's.
    fn drop(&mut self) {
        if let Ok(mut taps) = TAPS.lock() {
            taps.remove(&self.context);
        }
        // rust-corosync finalizes the connection when its original handle is dropped.
        if let Some(handle) = self.handle.take() {
            let _ = std::thread::Builder::new()
                .name("corosync-leave".into())
                .spawn(move || drop(handle));
        }
    }
}

/// Node names by node id, from corosync's node list (`nodelist.node.N.nodeid` and `.name`).
pub fn node_names() -> Result<BTreeMap<u32, String>, BusError> {
    let handle =
        cmap::initialize(cmap::Map::Icmap).map_err(corosync("open the configuration map"))?;
    let mut names = BTreeMap::new();
    for n in 0.. {
        let Ok(cmap::Data::UInt32(nodeid)) =
            cmap::get(&handle, &format!("nodelist.node.{n}.nodeid"))
        else {
            break;
        };
        if let Ok(cmap::Data::String(name)) = cmap::get(&handle, &format!("nodelist.node.{n}.name"))
        {
            names.insert(nodeid, name);
        }
    }
    let _ = cmap::finalize(&handle);
    Ok(names)
}

/// corosync's token timeout as it runs now (`runtime.config.totem.token`), if it can be read.
pub fn token_timeout() -> Option<std::time::Duration> {
    let handle = cmap::initialize(cmap::Map::Icmap).ok()?;
    let token = match cmap::get(&handle, "runtime.config.totem.token") {
        Ok(cmap::Data::UInt32(ms)) => Some(std::time::Duration::from_millis(u64::from(ms))),
        _ => None,
    };
    let _ = cmap::finalize(&handle);
    token
}

/// corosync's `consensus` and `join` timeouts as it runs now (`runtime.config.totem.*`), if
/// both can be read.
pub fn consensus_and_join() -> Option<(std::time::Duration, std::time::Duration)> {
    let handle = cmap::initialize(cmap::Map::Icmap).ok()?;
    let read = |key: &str| match cmap::get(&handle, key) {
        Ok(cmap::Data::UInt32(ms)) => Some(std::time::Duration::from_millis(u64::from(ms))),
        _ => None,
    };
    let both = read("runtime.config.totem.consensus").zip(read("runtime.config.totem.join"));
    let _ = cmap::finalize(&handle);
    both
}

/// How much longer than its join timeout corosync's consensus must be for leases: at
/// consensus equal to join (token 40, consensus 50 on the lab) the two survivors of a death
/// each gave up on the other and formed a ring alone before merging, and the load of that
/// ended a survivor's own lease in some runs (docs/leases.md).
pub const CONSENSUS_PAST_JOIN: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether corosync's `consensus` leaves too little room past its `join` timeout for leases.
pub fn consensus_too_close(consensus: std::time::Duration, join: std::time::Duration) -> bool {
    consensus < join + CONSENSUS_PAST_JOIN
}

/// The addresses corosync's node list gives node `nodeid` for its rings (`ring0_addr` and
/// up), those written as addresses: what this node speaks to the others on.
pub fn ring_addresses(nodeid: u32) -> Vec<std::net::IpAddr> {
    let Ok(handle) = cmap::initialize(cmap::Map::Icmap) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in 0.. {
        let Ok(cmap::Data::UInt32(id)) = cmap::get(&handle, &format!("nodelist.node.{n}.nodeid"))
        else {
            break;
        };
        if id != nodeid {
            continue;
        }
        for ring in 0..8 {
            if let Ok(cmap::Data::String(text)) =
                cmap::get(&handle, &format!("nodelist.node.{n}.ring{ring}_addr"))
            {
                out.extend(text.parse::<std::net::IpAddr>());
            }
        }
    }
    let _ = cmap::finalize(&handle);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consensus_at_the_join_timeout_is_too_close_for_leases() {
        let ms = std::time::Duration::from_millis;
        assert!(consensus_too_close(ms(50), ms(50)));
        assert!(consensus_too_close(ms(59), ms(50)));
        assert!(!consensus_too_close(ms(60), ms(50)));
        assert!(!consensus_too_close(ms(150), ms(50)));
    }

    #[test]
    fn pieces_corosync_refuses_for_the_moment_wait_and_go_in_order_nothing_lost() {
        let mut outbox = Outbox::default();
        outbox
            .pieces
            .extend((0u8..6).map(|n| vec![n; usize::from(n) + 1]));
        let mut taken: Vec<Vec<u8>> = Vec::new();
        // corosync takes two, then asks to try again three times, then takes the rest.
        let mut answers = [true, true, false, false, false].into_iter();
        let mut offer = |piece: &[u8], taken: &mut Vec<Vec<u8>>| {
            if answers.next().unwrap_or(true) {
                taken.push(piece.to_vec());
                Ok::<_, ()>(Taken::Yes)
            } else {
                Ok(Taken::Later)
            }
        };
        let mut tries = 0;
        while !outbox
            .flush(|p| offer(p, &mut taken))
            .expect("no hard error")
        {
            tries += 1;
            assert!(tries < 10, "never all taken");
        }
        assert_eq!(tries, 3, "one try per refusal");
        let expected: Vec<Vec<u8>> = (0u8..6).map(|n| vec![n; usize::from(n) + 1]).collect();
        assert_eq!(taken, expected);
        // A hard error stops the flush and keeps the piece.
        outbox.pieces.push_back(vec![9]);
        assert_eq!(outbox.flush(|_| Err::<Taken, _>("gone")), Err("gone"));
        assert_eq!(outbox.pieces.len(), 1);
    }
}
