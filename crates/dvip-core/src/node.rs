//! The node: one member's state machine around the election.
//!
//! Owns what a member knows (the view, what every member announced and holds), when it
//! plans, and the handover protocol. It must not touch sockets, interfaces or clocks: inputs
//! come through `handle_*`, outputs leave through [`Node::poll_action`] and
//! [`Node::poll_event`].
//!
//! # The protocol
//!
//! After every view change each member multicasts a [`State`](crate::wire::State): its
//! entities and what it holds. Once the States of every member of the view are in, every
//! member runs the same election on the same inputs, at the same point of the agreed message
//! order, and reconciles:
//!
//! - An address with no holder is *granted* to its owner: every member records the owner as
//!   holder at once, and the owner plumbs it. No message is needed, since everyone computed
//!   the same grant at the same point.
//! - An address held by a node that is not its owner is *released*: that node stops its
//!   services, unplumbs it, then multicasts `Released`. Everyone drops it from that node's
//!   holdings only when `Released` is delivered, and only then is it granted to the new
//!   owner. A planned move is therefore release-then-acquire, and one view never has two
//!   holders of an address it planned.
//! - A member that leaves the view takes its holdings with it: survivors re-plan at once.
//!
//! Planned moves (preference, rebalance) wait until the view is mature: `view_mature_time`
//! after the view was installed, a member multicasts `Mature`, and its delivery (the same
//! point for everyone) switches the view to mature.
//!
//! # Silent members
//!
//! No member can hold the others' planning hostage. A member whose State does not arrive
//! (a stopped dvipd whose corosync lives on, a build whose messages this one cannot read, a
//! State over the size limit) is waited for `state_deadline` after the round began; then a
//! member multicasts `Silent` naming the members whose State it lacks, and at its delivery
//! every member plans around those as holding and offering nothing. A node that finds
//! itself silent lets go of everything it holds, since the others have just given it away.
//! A silent member's State, whenever it comes, makes it an ordinary member again; one whose
//! State was merely late (ordered just before the `Silent`) is asked for it again in a new
//! round by the sender of the `Silent`, once a view.
//!
//! # Echoes
//!
//! A node multicasts an `Echo` to itself every `echo_interval`. One that has not come back
//! after `bus_deadline` means the bus no longer carries this node's messages (its corosync
//! is stopped while the daemon runs): the others will exclude it and take its addresses, so
//! it lets everything go at once and multicasts its release (delivered if corosync resumes
//! before excluding it, so that nobody waits on a view change that never comes), and takes
//! nothing until a new echo comes back. The same holds after a pause of the node itself: what was
//! delivered while it was stopped may belong to views long gone, and only once it has read
//! all of it does it know what it may hold; then it takes again what the table still says
//! is its own.
//!
//! # Takeovers on leases
//!
//! With dvip's own failure detector (docs/leases.md), a member whose lease is over may lose
//! its addresses before any view change: the `takeover` module owns how the verdicts are
//! acted on and how the table learns of them (`Took`, `EpochSeen`, `Epochs`).
//!
//! # Plumbs that fail
//!
//! The caller reports a plumb it could not carry out ([`Node::handle_plumb_failed`]). The
//! node still holds the address (everyone counts it as here) and asks for it again with a
//! backoff. If it is still not plumbed `plumb_deadline` after the first failure, the node
//! gives up its interface: it releases the address, so that the next candidate takes it, and
//! leaves every address on that interface out of what it offers until the caller says the
//! interface is usable again ([`Node::handle_interface_ready`]). The interface is the unit
//! because that is what fails (missing, renamed, refused by the kernel): giving up one
//! address at a time would let the plan hand the node the next one on the same interface,
//! dark for another deadline each time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::changes::{Changes, OwnerChange};
use crate::election::{elect, Entities, Marks, Member, Plan};
use crate::entity::{Entity, ManagedAddress, NodeName, PlumbHint};
use crate::retry::Retries;
use crate::wire::{self, DecodeError, Message, StandingMove, State};

mod split;
mod takeover;
pub use takeover::TakeoverRefused;

/// How long a round waits for States by default. A healthy member's State is on the bus within
/// a few token rotations of the view. (dvipd uses this as it is; deriving it from corosync's
/// token timeout is open work.)
pub const STATE_DEADLINE_DEFAULT: Duration = Duration::from_secs(2);

/// How long a held address may fail to plumb before the node gives it up, by default: long
/// enough for a bond or VLAN that is being brought up, short enough that the next candidate
/// serves the address within a few seconds.
pub const PLUMB_DEADLINE_DEFAULT: Duration = Duration::from_secs(3);

/// Tunables of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// How long a view stands before planned moves (rebalance, preference) go.
    pub view_mature_time: Duration,
    /// A gap between two `handle_timeout` calls longer than this means the node was paused
    /// long enough to have been excluded; it drops its addresses before doing anything else.
    /// Set it above the bus's failure-detection time.
    pub pause_threshold: Duration,
    /// How long a round waits for the members' States before those still missing are
    /// planned around as silent.
    pub state_deadline: Duration,
    /// How often the node sends itself an echo over the bus.
    pub echo_interval: Duration,
    /// How long an echo may take to come back before the node decides the bus no longer
    /// carries its messages and lets every address go.
    pub bus_deadline: Duration,
    /// How long a held address may fail to plumb before the node gives it up.
    pub plumb_deadline: Duration,
    /// Known bugs to plant, for checking the simulator's checker.
    #[cfg(feature = "planted-bugs")]
    pub planted: PlantedBugs,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            view_mature_time: Duration::from_secs(1),
            pause_threshold: Duration::from_secs(2),
            state_deadline: STATE_DEADLINE_DEFAULT,
            echo_interval: Duration::from_millis(500),
            bus_deadline: Duration::from_secs(2),
            plumb_deadline: PLUMB_DEADLINE_DEFAULT,
            #[cfg(feature = "planted-bugs")]
            planted: PlantedBugs::default(),
        }
    }
}

/// Bugs the simulator's tests plant to prove its checker catches them.
#[cfg(feature = "planted-bugs")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Take an address while its old owner still holds it.
    pub acquire_before_release: bool,
    /// Elect followers on their own, as if nothing followed anything.
    pub forget_follow: bool,
    /// Plan a carried view the moment it is installed, without waiting for the members'
    /// announcements (unsafe when CPG shows a returning member its own view before a merge).
    pub plan_carried_at_once: bool,
    /// Trust a carried view even when another member says it did not carry it (plans on a
    /// table the others never shared when the bus shows members different histories).
    pub ignore_disagreement: bool,
    /// Never stand down from a view that half its members name differently: each side plans
    /// around the other as silent for good.
    pub ignore_split: bool,
    /// Never give up on a member's State: a silent member freezes planning.
    pub wait_forever: bool,
    /// Answer for what it holds as soon as the lease is back, without waiting for the move
    /// of its epoch to settle (a `Took` may still be on its way).
    pub answer_while_held_back: bool,
    /// Plumb what is granted here though a promise about its last holder defers it (a
    /// taker may already have it).
    pub take_deferred: bool,
}

/// Something the caller must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Multicast these bytes on the cluster group.
    Send(Vec<u8>),
    /// Add the address to the interface.
    Plumb {
        /// The address.
        address: IpAddr,
        /// Where and with which prefix length.
        hint: PlumbHint,
    },
    /// Remove the address (it may not be there: removing an absent address is not an error).
    Unplumb {
        /// The address.
        address: IpAddr,
        /// Where it would be, when known.
        hint: Option<PlumbHint>,
    },
    /// Tell the link the address moved here (gratuitous ARP, unsolicited NA).
    Announce {
        /// The address.
        address: IpAddr,
    },
    /// Start answering the listener ports on the address.
    StartService {
        /// The address.
        address: IpAddr,
        /// The ports.
        ports: Vec<u16>,
    },
    /// Stop answering the listener ports on the address.
    StopService {
        /// The address.
        address: IpAddr,
        /// The ports.
        ports: Vec<u16>,
    },
    /// The marks of an address changed: show them to the operator.
    Mark {
        /// The address.
        address: IpAddr,
        /// Its marks now.
        marks: Marks,
    },
}

/// Something that happened, for logs, metrics and the console's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new view was installed.
    View {
        /// Its id.
        view_id: u64,
        /// Its members.
        members: Vec<NodeName>,
    },
    /// Every member's State is in; the first plan of the view (or of a new round) was made.
    Planned {
        /// The view.
        view_id: u64,
    },
    /// The view matured.
    Matured {
        /// The view.
        view_id: u64,
    },
    /// This node took an address.
    Acquired {
        /// The address.
        address: IpAddr,
    },
    /// This node let an address go.
    Released {
        /// The address.
        address: IpAddr,
    },
    /// A message was ignored; nothing changed.
    Dropped {
        /// Who sent it.
        from: NodeName,
        /// Why.
        why: DropReason,
    },
    /// The clock jumped: the node was paused and dropped its addresses.
    Paused {
        /// How long the gap was.
        gap: Duration,
    },
    /// This node's echo did not come back in time: the bus no longer carries its messages, so
    /// it let every address go and takes nothing until a new echo comes back.
    BusStalled {
        /// How long the echo had been out.
        waited: Duration,
    },
    /// Members of this node's view name it differently: their messages carry a view id this
    /// node never had. Where they are at least half of the view, this node let every address
    /// go and left the view until corosync shows it another (see `node/split.rs`).
    ViewSplit {
        /// The view, as this node names it.
        view_id: u64,
        /// Each member heard naming another view, with the id it named last.
        named: Vec<(NodeName, u64)>,
        /// Whether this node stood down.
        stood_down: bool,
    },
    /// These members sent no State of the round within the deadline: they are planned around
    /// as holding and offering nothing until they speak.
    Silent {
        /// The view.
        view_id: u64,
        /// The members found silent.
        members: Vec<NodeName>,
    },
    /// A held address could not be plumbed.
    PlumbFailed {
        /// The address.
        address: IpAddr,
        /// How many times in a row.
        failures: u32,
    },
    /// A held address could not be plumbed within the deadline: this node released it and no
    /// longer offers any address on its interface until the interface is usable again.
    GaveUp {
        /// The address.
        address: IpAddr,
        /// The interface it was to go on.
        interface: String,
    },
    /// The standing moves this node knows changed: the caller keeps them across a restart
    /// ([`Node::kept_moves`]).
    MovesChanged,
    /// Every other member promised about `about` and this node took its share of its
    /// addresses, before the bus's view (docs/leases.md).
    TookOver {
        /// The member whose lease ended.
        about: NodeName,
        /// How many addresses this node took.
        addresses: usize,
    },
    /// What this node took from `about`, which left, was told again in the new view: the
    /// `Took` went out after corosync's ring had broken, so the view after never delivered
    /// it (docs/leases.md).
    ToldAgain {
        /// The member whose lease ended.
        about: NodeName,
        /// How many addresses this node keeps.
        addresses: usize,
    },
    /// `member`'s epoch moved (a takeover of it, or a promise about it ended): the caller
    /// tells its detector ([`Node::epoch_of`]).
    EpochMoved {
        /// Whose epoch.
        member: NodeName,
        /// The new epoch.
        epoch: u64,
    },
}

/// Why a message was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// It does not decode.
    Decode(DecodeError),
    /// It belongs to another view or announcement round.
    Stale,
    /// Its sender is not a member of the view.
    NotMember,
    /// There is no view yet.
    NoView,
    /// A `Carried` announcement in a view this node did not carry, or a State saying the
    /// opposite of what this node did: the members disagree on whether the view continues
    /// the one before (the bus broke its promise). This node asks for a recount: every member
    /// announces a full State again.
    NotCarried,
}

impl DropReason {
    /// A short name for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Decode(_) => "decode",
            Self::Stale => "stale",
            Self::NotMember => "not_member",
            Self::NoView => "no_view",
            Self::NotCarried => "not_carried",
        }
    }
}

/// A console command this node's operator gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Every member announces again and the cluster re-plans.
    AnnounceView,
    /// Move an address to a node until the move is cleared: it goes there whenever that node
    /// is a candidate, across views.
    Move {
        /// The address.
        address: IpAddr,
        /// The node.
        to: NodeName,
    },
    /// Clear the standing move of an address: the election places it again.
    ClearMove {
        /// The address.
        address: IpAddr,
    },
    /// Drain this node: it becomes a candidate for nothing.
    Standby,
    /// Undo `Standby`.
    Online,
}

/// Why a command was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The node is in no view, so nobody would hear it.
    NoView,
    /// The address is not managed by any member of the view.
    UnknownAddress(IpAddr),
    /// The node is not a candidate for the address.
    NotCandidate {
        /// The address.
        address: IpAddr,
        /// The node asked for.
        node: NodeName,
    },
    /// No standing move of the address to clear.
    NotMoved(IpAddr),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoView => f.write_str("this node is in no view yet"),
            Self::UnknownAddress(a) => write!(f, "no member of the view manages {a}"),
            Self::NotCandidate { address, node } => {
                write!(f, "{node} is not a candidate for {address}")
            }
            Self::NotMoved(a) => write!(f, "{a} has no standing move to clear"),
        }
    }
}

impl std::error::Error for CommandError {}

/// The current view as this node knows it.
#[derive(Debug, Clone)]
struct ViewState {
    id: u64,
    round: u32,
    /// Every member, with what it announced (empty until its State arrives).
    table: BTreeMap<NodeName, Member>,
    /// Members whose State of the current round arrived.
    announced: BTreeSet<NodeName>,
    /// Members whose State missed the round's deadline and has not come since (never in
    /// `announced`).
    silent: BTreeSet<NodeName>,
    /// When the current round began, for its State deadline.
    round_started_at: Duration,
    /// This node multicast `Silent` for the current round (once is enough).
    silent_sent: bool,
    /// Members whose holdings are known (from their first State of the view).
    holdings_known: BTreeSet<NodeName>,
    mature: bool,
    mature_sent: bool,
    installed_at: Duration,
    /// The standing moves delivered in this view (from each member before its announcement,
    /// and from operators' commands), merged: the same on every member at every point.
    moves: BTreeMap<IpAddr, StandingMove>,
    /// This node carried the view before's table into this one (until a recount).
    carried: bool,
    /// This node asked for a recount in this view (once is enough).
    recount_sent: bool,
    /// This node asked for a new round for a member its own `Silent` found silent though
    /// that member's State had arrived meanwhile (once a view: see [`Node::mark_silent`]).
    late_round_sent: bool,
    /// The view ids its members were heard naming (see `node/split.rs`).
    heard: split::Heard,
}

/// [`Node::successors`] in `view`, with its standing moves as `pins`.
fn successors_in(
    view: &ViewState,
    pins: &BTreeMap<IpAddr, NodeName>,
    departing: &str,
) -> BTreeMap<IpAddr, Option<NodeName>> {
    let Some(leaving) = view.table.get(departing) else {
        return BTreeMap::new();
    };
    let mut survivors = view.table.clone();
    survivors.remove(departing);
    let plan = elect(&survivors, false, pins);
    leaving
        .holdings
        .iter()
        .map(|a| (*a, plan.owner(a).map(NodeName::from)))
        .collect()
}

impl ViewState {
    /// The standing moves in force, as the election takes them.
    fn pins(&self) -> BTreeMap<IpAddr, NodeName> {
        self.moves
            .values()
            .filter_map(|m| m.to.clone().map(|to| (m.address, to)))
            .collect()
    }

    fn ready(&self) -> bool {
        self.announced.len() + self.silent.len() == self.table.len()
    }

    /// A new announcement round: everyone's State is awaited again, from now.
    fn next_round(&mut self, now: Duration) {
        self.round += 1;
        self.announced.clear();
        self.silent.clear();
        self.round_started_at = now;
        self.silent_sent = false;
    }

    /// `name` is planned around as holding and offering nothing from here, until its next
    /// State; whether it was not silent already.
    fn silence(&mut self, name: &str) -> bool {
        if !self.table.contains_key(name) || !self.silent.insert(name.to_owned()) {
            return false;
        }
        self.announced.remove(name);
        self.holdings_known.remove(name);
        if let Some(member) = self.table.get_mut(name) {
            *member = Member::default();
        }
        true
    }

    /// When this node gives up waiting for the round's States, if it is still waiting.
    fn state_deadline(&self, deadline: Duration) -> Option<Duration> {
        (!self.ready() && !self.silent_sent).then(|| self.round_started_at + deadline)
    }
}

/// One member of the cluster. See the module documentation for the protocol.
#[derive(Debug, Clone)]
pub struct Node {
    me: NodeName,
    options: NodeOptions,
    /// What the caller says this node can serve (its configuration, less interfaces down),
    /// sorted by address.
    configured: Vec<ManagedAddress>,
    /// This node's own entities (`configured` less what it gave up); members announcing the
    /// same share these copies.
    entities: Arc<Entities>,
    /// Where each configured address goes.
    hints: BTreeMap<IpAddr, PlumbHint>,
    /// Held addresses whose plumb failed, waiting to be tried again.
    retries: Retries,
    /// Interfaces given up because an address on them could not be plumbed: their addresses
    /// are not offered until the interface is reported usable.
    given_up: BTreeSet<String>,
    standby: bool,
    now: Duration,
    clock_started: bool,
    view: Option<ViewState>,
    /// Addresses this node has told its caller to plumb and not yet to unplumb.
    plumbed: BTreeSet<IpAddr>,
    /// Unplumbed, `Released` sent, not yet delivered.
    releasing: BTreeSet<IpAddr>,
    /// The last echo sent: its nonce and when.
    echo: Option<(u64, Duration)>,
    echo_sent: u64,
    echo_last_back: Duration,
    /// After a pause: takes nothing until the echo with this nonce is back.
    catching_up: Option<u64>,
    plan: Plan,
    /// The last addresses whose owner changed from one plan to the next.
    changes: Changes,
    /// Every standing move and clearing this node knows, kept across views (and, by the
    /// caller, across restarts): what it announces in each new view.
    standing: BTreeMap<IpAddr, StandingMove>,
    /// Epochs, promises and takeovers (docs/leases.md).
    leases: takeover::Leases,
    /// The ids of this node's latest views, the current one last (see `node/split.rs`).
    recent_views: VecDeque<u64>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Node {
    /// A node called `me` with its configured addresses. Its first actions unplumb every one of
    /// them, so an address a crashed predecessor left behind does not answer next to its new
    /// owner.
    pub fn new(
        me: impl Into<NodeName>,
        options: NodeOptions,
        addresses: &[ManagedAddress],
    ) -> Self {
        let mut node = Self {
            me: me.into(),
            options,
            configured: Vec::new(),
            entities: Arc::default(),
            hints: BTreeMap::new(),
            retries: Retries::default(),
            given_up: BTreeSet::new(),
            standby: false,
            now: Duration::ZERO,
            clock_started: false,
            view: None,
            plumbed: BTreeSet::new(),
            releasing: BTreeSet::new(),
            echo: None,
            echo_sent: 0,
            echo_last_back: Duration::ZERO,
            catching_up: None,
            plan: Plan::default(),
            changes: Changes::default(),
            standing: BTreeMap::new(),
            leases: takeover::Leases::default(),
            recent_views: VecDeque::with_capacity(split::RECENT_VIEWS),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        node.set_config(addresses);
        for (address, hint) in &node.hints {
            node.actions.push_back(Action::Unplumb {
                address: *address,
                hint: Some(hint.clone()),
            });
        }
        node
    }

    // ---- getters ----

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.me
    }

    /// The last plan made in the current view (empty before the first).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Who would take each address `departing` holds, were it to leave the view now: the
    /// first plan of the view its departure leaves (the table without it, not matured, the
    /// same standing moves), as every survivor computes it. Every member computes the same
    /// map at the same point of the message order, so it can be ready before it is needed
    /// (docs/leases.md). `None` as a successor: no survivor is a candidate. Empty before the
    /// view's States are all in.
    pub fn successors(&self, departing: &str) -> BTreeMap<IpAddr, Option<NodeName>> {
        self.view
            .as_ref()
            .filter(|v| v.ready())
            .map(|view| successors_in(view, &view.pins(), departing))
            .unwrap_or_default()
    }

    /// For every held address, who would take it were its holder to leave now
    /// ([`Node::successors`] of every member).
    pub fn next_owners(&self) -> BTreeMap<IpAddr, Option<NodeName>> {
        let Some(view) = self.view.as_ref().filter(|v| v.ready()) else {
            return BTreeMap::new();
        };
        let pins = view.pins();
        view.table
            .keys()
            .flat_map(|name| successors_in(view, &pins, name))
            .collect()
    }

    /// The addresses another member holds that would come to this node were their holder to
    /// leave the view now ([`Node::successors`]): what pre-plumbing readies here, silent,
    /// before it is needed (docs/leases.md). `None` until the view's States are all in, so
    /// that a caller keeps what it readied through a view change instead of dropping it
    /// while the new table fills.
    pub fn next_here(&self) -> Option<BTreeSet<IpAddr>> {
        let view = self.view.as_ref().filter(|v| v.ready())?;
        let pins = view.pins();
        Some(
            view.table
                .keys()
                .filter(|name| **name != self.me)
                .flat_map(|name| successors_in(view, &pins, name))
                .filter(|(address, next)| {
                    next.as_deref() == Some(self.me.as_str()) && !self.plumbed.contains(address)
                })
                .map(|(address, _)| address)
                .collect(),
        )
    }

    /// The current view id, if any.
    pub fn view_id(&self) -> Option<u64> {
        self.view.as_ref().map(|v| v.id)
    }

    /// Every member of the current view with what it announced (its entities, holdings and
    /// standby), as the replicated table says.
    pub fn table(&self) -> Option<&BTreeMap<NodeName, Member>> {
        self.view.as_ref().map(|v| &v.table)
    }

    /// The view's members grouped by the configuration they announce, in name order: one
    /// group when they all agree. A member whose State has not come yet announces nothing.
    pub fn configuration_groups(&self) -> Vec<Vec<NodeName>> {
        let mut groups: Vec<(&Arc<Entities>, Vec<NodeName>)> = Vec::new();
        for (name, member) in self.table().into_iter().flatten() {
            // Members with equal configurations share one map: most compare by pointer.
            let same =
                |e: &Arc<Entities>| Arc::ptr_eq(e, &member.entities) || *e == member.entities;
            match groups.iter_mut().find(|(e, _)| same(e)) {
                Some((_, names)) => names.push(name.clone()),
                None => groups.push((&member.entities, vec![name.clone()])),
            }
        }
        groups.into_iter().map(|(_, names)| names).collect()
    }

    /// The last addresses whose agreed owner changed, oldest first, at most
    /// [`crate::CHANGES_KEPT`].
    pub fn changes(&self) -> impl Iterator<Item = &OwnerChange> {
        self.changes.iter()
    }

    /// The time the node was last given.
    pub fn clock(&self) -> Duration {
        self.now
    }

    /// The standing moves in force as this node knows them: address and node.
    pub fn standing_moves(&self) -> impl Iterator<Item = (IpAddr, &NodeName)> {
        self.standing
            .values()
            .filter_map(|m| m.to.as_ref().map(|to| (m.address, to)))
    }

    /// Every standing move and clearing this node knows, for the caller to keep across a
    /// restart ([`Node::restore_moves`]). A clearing is kept too: it must still win over the
    /// move it cleared when another member announces that move.
    pub fn kept_moves(&self) -> impl Iterator<Item = &StandingMove> {
        self.standing.values()
    }

    /// Gives back the moves kept from before a restart; they are announced in the next view.
    pub fn restore_moves(&mut self, moves: impl IntoIterator<Item = StandingMove>) {
        for m in moves {
            merge(&mut self.standing, m);
        }
    }

    /// The members of the current view.
    pub fn members(&self) -> Vec<NodeName> {
        self.view
            .as_ref()
            .map(|v| v.table.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How long the current view has stood, by the clock the node was last given.
    pub fn view_age(&self) -> Option<Duration> {
        self.view
            .as_ref()
            .map(|v| self.now.saturating_sub(v.installed_at))
    }

    /// Whether the current view has matured.
    pub fn is_mature(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.mature)
    }

    /// Whether every member's State of the current round is in (or given up on).
    pub fn is_ready(&self) -> bool {
        self.view.as_ref().is_some_and(ViewState::ready)
    }

    /// Members of the view planned around because their State did not arrive.
    pub fn silent(&self) -> BTreeSet<NodeName> {
        self.view
            .as_ref()
            .map(|v| v.silent.clone())
            .unwrap_or_default()
    }

    /// What this node has plumbed (told its caller to plumb and not to unplumb).
    pub fn plumbed(&self) -> &BTreeSet<IpAddr> {
        &self.plumbed
    }

    /// Addresses this node holds whose plumb failed and is being tried again: owned here, but
    /// not answering.
    pub fn unplumbed(&self) -> BTreeSet<IpAddr> {
        self.retries.addresses().collect()
    }

    /// Interfaces this node gave up because an address could not be plumbed on them: it does
    /// not offer their addresses until they are reported usable.
    pub fn given_up(&self) -> &BTreeSet<String> {
        &self.given_up
    }

    /// What every member holds, as the replicated table says.
    pub fn holdings(&self) -> BTreeMap<NodeName, BTreeSet<IpAddr>> {
        self.view
            .as_ref()
            .map(|v| {
                v.table
                    .iter()
                    .map(|(n, m)| (n.clone(), m.holdings.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this node is on standby.
    pub fn is_standby(&self) -> bool {
        self.standby
    }

    // ---- outputs ----

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next at the latest, if a timer is armed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let view = self.view.as_ref()?;
        let mature = (!view.mature && !view.mature_sent)
            .then(|| view.installed_at + self.options.view_mature_time);
        let states = view.state_deadline(self.options.state_deadline);
        let echo = Some(match self.echo {
            Some((_, sent)) => sent + self.options.bus_deadline,
            None => self.now + self.options.echo_interval,
        });
        let retry = self.retries.next_due(self.options.plumb_deadline);
        [mature, states, echo, retry].into_iter().flatten().min()
    }

    // ---- inputs ----

    /// Time passes. Call it before the other inputs of each wake-up, and whenever
    /// [`Node::poll_timeout`] is due. `now` is time since any fixed origin.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.clock_started && now.saturating_sub(self.now) > self.options.pause_threshold {
            let gap = now - self.now;
            self.events.push_back(Event::Paused { gap });
            // Others may have taken our addresses while we were gone: let go first, and take
            // nothing until everything delivered meanwhile has been read.
            self.release_all();
            self.now = self.now.max(now);
            self.catching_up = self.send_echo();
        }
        self.now = self.now.max(now);
        self.clock_started = true;
        if let Some((_, sent)) = self.echo {
            let waited = self.now.saturating_sub(sent);
            if waited > self.options.bus_deadline {
                self.events.push_back(Event::BusStalled { waited });
                self.stalled();
            }
        }
        if self.echo.is_none() {
            let due =
                self.echo_sent == 0 || self.now >= self.echo_last_back + self.options.echo_interval;
            if due {
                self.send_echo();
            }
        }
        // Before the State deadline: a node that stands down is then free of what the others
        // plan around it.
        self.judge_split();
        self.give_up_on_states();
        self.retry_plumbs();
        let view_id = match &mut self.view {
            Some(v)
                if !v.mature
                    && !v.mature_sent
                    && self.now >= v.installed_at + self.options.view_mature_time =>
            {
                v.mature_sent = true;
                v.id
            }
            _ => return,
        };
        self.send(&Message::Mature { view_id });
    }

    /// The bus installed a new view. `view_id` names the view the same way on every member
    /// (consecutive views have different ids; the bus delivers views in order, so an id need
    /// not grow). A view with the current id is a repeat and is ignored.
    ///
    /// A view that only lost members of a view whose States were all in is *carried*: the
    /// members keep the old table (the departed members' holdings dropped) and announce with a
    /// small `Carried` instead of a State, so the survivors plan as soon as those arrive. This
    /// relies on the bus's virtual synchrony as corosync's CPG gives it: a view is reported as
    /// a pure departure only to members that came from the same view together, having
    /// delivered the same messages in it; a member that did not (one excluded and returning)
    /// is first shown a view of those that came with it, then the joins.
    pub fn handle_view(&mut self, view_id: u64, members: &BTreeSet<NodeName>) {
        if !members.contains(&self.me) || self.view.as_ref().is_some_and(|v| v.id == view_id) {
            return;
        }
        self.hold_back_for_the_returning(members);
        let old = self.view.take().filter(|old| {
            old.ready()
                && members.len() < old.table.len()
                && members.iter().all(|m| old.table.contains_key(m))
        });
        let carried = old.is_some();
        self.leases.new_view(members);
        let table = match old {
            Some(old) => old
                .table
                .into_iter()
                .filter(|(name, _)| members.contains(name))
                .collect(),
            None => {
                // A Released still in flight belongs to the old view; what is unplumbed stays
                // so, and this node's State says so.
                self.releasing.clear();
                members
                    .iter()
                    .map(|m| (m.clone(), Member::default()))
                    .collect()
            }
        };
        self.view = Some(ViewState {
            id: view_id,
            round: 0,
            table,
            announced: BTreeSet::new(),
            silent: BTreeSet::new(),
            round_started_at: self.now,
            silent_sent: false,
            holdings_known: if carried {
                members.clone()
            } else {
                BTreeSet::new()
            },
            mature: false,
            mature_sent: false,
            installed_at: self.now,
            moves: BTreeMap::new(),
            carried,
            recount_sent: false,
            late_round_sent: false,
            heard: split::Heard::default(),
        });
        self.remember_view(view_id);
        self.events.push_back(Event::View {
            view_id,
            members: members.iter().cloned().collect(),
        });
        // An echo sent before the view may have gone with the old one: send another here.
        if self.echo.is_some() || self.catching_up.is_some() || self.leases.lapse_echo.is_some() {
            let nonce = self.send_echo();
            if self.catching_up.is_some() {
                self.catching_up = nonce;
            }
            if self.leases.lapse_echo.is_some() {
                self.leases.lapse_echo = Some(nonce);
            }
        }
        if carried {
            self.let_go_of_untold_takeovers();
            self.announce_carried(view_id);
            #[cfg(feature = "planted-bugs")]
            if self.options.planted.plan_carried_at_once {
                if let Some(view) = self.view.as_mut() {
                    view.announced = members.clone();
                }
                self.reconcile();
            }
        } else {
            // Its State says what it holds, what it took included: nothing to tell again.
            self.leases.taken.clear();
            self.announce();
        }
    }

    /// A message from `from` was delivered (including this node's own).
    pub fn handle_message(&mut self, from: &str, bytes: &[u8]) {
        let drop = |node: &mut Self, why| {
            node.events.push_back(Event::Dropped {
                from: from.to_owned(),
                why,
            });
        };
        let message = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => return drop(self, DropReason::Decode(e)),
        };
        self.hear_view_named(from, message.view_id());
        if let Message::Echo { nonce, .. } = message {
            // Whatever view it was sent in: it proves the bus carries this node's messages.
            if from == self.me {
                self.echo_back(nonce);
            }
            return;
        }
        let Some(view) = self.view.as_mut() else {
            return drop(self, DropReason::NoView);
        };
        if message.view_id() != view.id {
            return drop(self, DropReason::Stale);
        }
        if !view.table.contains_key(from) {
            return drop(self, DropReason::NotMember);
        }
        if let Message::State(state) = &message {
            if state.round != view.round {
                return drop(self, DropReason::Stale);
            }
        }
        let continues = match &message {
            Message::State(state) => Some(state.carried),
            Message::Carried { .. } => Some(true),
            _ => None,
        };
        #[cfg(feature = "planted-bugs")]
        let continues = continues.filter(|_| !self.options.planted.ignore_disagreement);
        if continues.is_some_and(|c| c != view.carried) {
            // The sender and this node disagree on whether the view continues the one before
            // (the bus showed them different histories): either would plan on a table the
            // other never shared. Everyone starts over from full States, at the same place
            // in the agreed order.
            if !std::mem::replace(&mut view.recount_sent, true) {
                let view_id = view.id;
                self.send(&Message::Recount { view_id });
            }
            return drop(self, DropReason::NotCarried);
        }
        // Only what can change the table moves the plan the detector's promises name.
        let moves_plan = match &message {
            Message::EpochSeen { .. } | Message::Epochs { .. } => false,
            Message::Took { addresses, .. } => !addresses.is_empty(),
            _ => true,
        };
        if moves_plan {
            self.leases.accepted += 1;
        }
        match &message {
            Message::Took {
                about,
                epoch,
                addresses,
                ..
            } => {
                self.took_delivered(from, about, *epoch, addresses);
                return self.reconcile();
            }
            Message::EpochSeen { about, epoch, .. } => {
                self.epoch_seen_delivered(from, about, *epoch);
                return self.reconcile();
            }
            Message::Epochs { epochs, .. } => return self.epochs_delivered(epochs),
            _ => {}
        }
        let shared = match &message {
            Message::State(state) => Some(share(&self.entities, &view.table, &state.entities)),
            _ => None,
        };
        let member = view.table.get_mut(from).expect("checked a member above");
        match message {
            Message::State(state) => {
                member.entities = shared.expect("made for a State above");
                member.standby = state.standby;
                // A silent member's holdings were forgotten: what it says it holds now counts.
                if view.silent.remove(from) {
                    view.holdings_known.remove(from);
                }
                // Holdings count only from the first State of the view: later ones (config
                // reloads, `announce view`) were sent before grants the table already has.
                if view.holdings_known.insert(from.to_owned()) {
                    member.holdings = state.holdings.into_iter().collect();
                }
                let first_plan = view.announced.insert(from.to_owned()) && view.ready();
                if first_plan {
                    let view_id = view.id;
                    self.events.push_back(Event::Planned { view_id });
                }
            }
            Message::Released { addresses, .. } => {
                for a in &addresses {
                    member.holdings.remove(a);
                }
                if from == self.me {
                    for a in &addresses {
                        self.releasing.remove(a);
                    }
                } else {
                    // Another node let go of an address this node holds too: the two sides
                    // of a healed partition. Hosts on the link may still send to the one that
                    // let go, so tell them again who has it.
                    for &address in addresses.iter().filter(|a| self.plumbed.contains(a)) {
                        self.actions.push_back(Action::Announce { address });
                    }
                }
            }
            Message::Mature { .. } => {
                if !view.mature {
                    view.mature = true;
                    let view_id = view.id;
                    self.events.push_back(Event::Matured { view_id });
                }
            }
            Message::AnnounceView { .. } => {
                view.next_round(self.now);
                self.announce();
                return;
            }
            Message::Recount { .. } => {
                // As a view that continues nothing: holdings only from the States to come.
                // Until they are all in, nothing is planned and nothing held is let go.
                view.next_round(self.now);
                view.holdings_known.clear();
                view.carried = false;
                for member in view.table.values_mut() {
                    *member = Member::default();
                }
                self.releasing.clear();
                self.announce();
                return;
            }
            Message::Move { address, to, .. } => {
                // From a build before standing moves: stamped from what this view has seen, so
                // every member stamps it alike.
                let counter = 1 + view.moves.values().map(|m| m.counter).max().unwrap_or(0);
                let m = StandingMove {
                    address,
                    to: Some(to),
                    counter,
                    origin: from.to_owned(),
                };
                merge(&mut view.moves, m.clone());
                if merge(&mut self.standing, m) {
                    self.events.push_back(Event::MovesChanged);
                }
            }
            Message::Moves { moves, .. } => {
                let mut changed = false;
                for m in moves {
                    merge(&mut view.moves, m.clone());
                    changed |= merge(&mut self.standing, m);
                }
                if changed {
                    self.events.push_back(Event::MovesChanged);
                }
            }
            Message::Standby { on, .. } => member.standby = on,
            Message::Carried { .. } if view.silent.contains(from) => {
                // Its table entry was emptied when it was found silent, and a Carried does not
                // say what it offers: everyone announces in full again.
                if !std::mem::replace(&mut view.recount_sent, true) {
                    let view_id = view.id;
                    self.send(&Message::Recount { view_id });
                }
                return;
            }
            // Taken before the view checks above.
            Message::Echo { .. }
            | Message::Took { .. }
            | Message::EpochSeen { .. }
            | Message::Epochs { .. } => return,
            Message::Silent { round, members, .. } => {
                if round != view.round {
                    return drop(self, DropReason::Stale);
                }
                self.mark_silent(from, &members);
            }
            Message::Carried { standby, .. } => {
                member.standby = standby;
                if view.announced.insert(from.to_owned()) && view.ready() {
                    let view_id = view.id;
                    self.events.push_back(Event::Planned { view_id });
                }
            }
        }
        self.reconcile();
    }

    /// An operator's command. Its effect arrives through the bus, so every member applies it
    /// at the same point.
    pub fn handle_command(&mut self, command: Command) -> Result<(), CommandError> {
        let view_id = self
            .view
            .as_ref()
            .map(|v| v.id)
            .ok_or(CommandError::NoView)?;
        let message = match command {
            Command::AnnounceView => Message::AnnounceView { view_id },
            Command::Move { address, to } => {
                let decision = self
                    .plan
                    .addresses
                    .get(&address)
                    .ok_or(CommandError::UnknownAddress(address))?;
                if !decision.is_candidate(&to) {
                    return Err(CommandError::NotCandidate { address, node: to });
                }
                Message::Moves {
                    view_id,
                    moves: vec![self.stamp(address, Some(to))],
                }
            }
            Command::ClearMove { address } => {
                let moved = self.standing.get(&address).is_some_and(|m| m.to.is_some());
                if !moved {
                    return Err(CommandError::NotMoved(address));
                }
                Message::Moves {
                    view_id,
                    moves: vec![self.stamp(address, None)],
                }
            }
            Command::Standby | Command::Online => {
                self.standby = command == Command::Standby;
                Message::Standby {
                    view_id,
                    on: self.standby,
                }
            }
        };
        self.send(&message);
        Ok(())
    }

    /// Puts the node on standby before its first view, as a state file kept across a restart
    /// says: its first State announces it, so it never takes an address in between. In a
    /// view, `handle_command(Command::Standby)` is the way.
    pub fn start_on_standby(&mut self) {
        self.standby = true;
    }

    /// The caller could not plumb `address` (an interface missing, a netlink error). If this
    /// node holds it, it is tried again with a backoff and given up after `plumb_deadline`.
    pub fn handle_plumb_failed(&mut self, address: IpAddr) {
        if !self.plumbed.contains(&address) {
            return;
        }
        let failures = self.retries.failed(address, self.now);
        self.events
            .push_back(Event::PlumbFailed { address, failures });
    }

    /// A plumb of `address` worked (a retry, or a refresh of one that failed).
    pub fn handle_plumb_done(&mut self, address: IpAddr) {
        self.retries.forget(address);
    }

    /// `interface` became usable (it appeared or came up), or the operator asked to try
    /// again: the addresses given up on it are offered again.
    pub fn handle_interface_ready(&mut self, interface: &str) {
        let hints = &self.hints;
        let now = self.retries.retry_now(self.options.plumb_deadline, |a| {
            hints.get(&a).is_some_and(|h| h.interface == interface)
        });
        for address in now {
            self.plumb_again(address);
        }
        if self.given_up.remove(interface) {
            self.apply_offer();
            if self.view.is_some() {
                self.announce();
            }
        }
    }

    /// The configuration was reloaded: announce the new entities.
    pub fn handle_config(&mut self, addresses: &[ManagedAddress]) {
        let before: Vec<(IpAddr, Vec<u16>)> = self
            .plumbed
            .iter()
            .map(|&a| (a, self.ports_of(a)))
            .collect();
        self.set_config(addresses);
        // Listeners on held addresses follow the new configuration at once; the addresses
        // themselves move (or not) when the cluster has seen the new State.
        for (address, old) in before {
            let new = self.ports_of(address);
            if old != new {
                if !old.is_empty() {
                    self.actions.push_back(Action::StopService {
                        address,
                        ports: old,
                    });
                }
                if !new.is_empty() {
                    self.actions.push_back(Action::StartService {
                        address,
                        ports: new,
                    });
                }
            }
        }
        if self.view.is_some() {
            self.announce();
        }
    }

    /// The daemon is stopping: hand every address over. Survivors take them when `Released`
    /// is delivered; the caller should leave the group after that (or after a short wait).
    pub fn handle_shutdown(&mut self) {
        self.standby = true;
        if let Some(view_id) = self.view_id() {
            self.send(&Message::Standby { view_id, on: true });
        }
        self.release_all();
    }

    /// The bus is gone (corosync died): this node can no longer know the view, so it lets
    /// every address go at once, without telling anyone (nobody could hear).
    pub fn handle_bus_lost(&mut self) {
        for address in std::mem::take(&mut self.plumbed) {
            self.stop(address);
        }
        self.retries.clear();
        self.releasing.clear();
        self.echo = None;
        self.catching_up = None;
        self.view = None;
        self.plan = Plan::default();
    }

    // ---- internals ----

    /// The bus has not carried this node's echo within the deadline. The others may have
    /// excluded it and taken its addresses, so it lets everything go at once, and says so in
    /// the current view: were it not excluded (corosync stopped for less than its token
    /// timeout), the others take the addresses when the release arrives, and nothing waits
    /// on a view change that will not come. It takes nothing until an echo sent now comes
    /// back, as after a pause; it stays in the group, whose next view (if it was excluded)
    /// starts over as usual.
    fn stalled(&mut self) {
        self.release_all();
        self.echo = None;
        self.catching_up = self.send_echo();
    }

    /// Sends an echo in the current view; its nonce, or `None` with no view to send in.
    fn send_echo(&mut self) -> Option<u64> {
        let view_id = self.view_id()?;
        self.echo_sent += 1;
        let nonce = self.echo_sent;
        self.echo = Some((nonce, self.now));
        self.send(&Message::Echo { view_id, nonce });
        Some(nonce)
    }

    /// This node's echo came back.
    fn echo_back(&mut self, nonce: u64) {
        if self.echo.is_some_and(|(n, _)| n == nonce) {
            self.echo = None;
            self.echo_last_back = self.now;
        }
        if self.catching_up.is_some_and(|n| n <= nonce) {
            self.catching_up = None;
            self.take_what_is_mine();
        }
        self.lapse_echo_back(nonce);
    }

    /// After catching up: what the plan gives this node and the table counts as here, but
    /// that it let go (on waking, or granted while it caught up). The others count it as
    /// here, so nobody else will take it. The plan itself stays as every member computed it.
    fn take_what_is_mine(&mut self) {
        let Some(view) = self.view.as_ref().filter(|v| v.ready()) else {
            return;
        };
        let Some(me) = view.table.get(&self.me) else {
            return;
        };
        let missing: Vec<IpAddr> = self
            .plan
            .addresses
            .iter()
            .filter(|(a, d)| {
                d.owner.as_deref() == Some(self.me.as_str())
                    && me.holdings.contains(*a)
                    && !self.plumbed.contains(*a)
                    && !self.releasing.contains(*a)
                    && !self.defers(a)
            })
            .map(|(a, _)| *a)
            .collect();
        for address in missing {
            self.acquire(address);
        }
    }

    /// Past the round's State deadline with States missing: asks everyone to plan around the
    /// members that sent none.
    fn give_up_on_states(&mut self) {
        #[cfg(feature = "planted-bugs")]
        if self.options.planted.wait_forever {
            return;
        }
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if view
            .state_deadline(self.options.state_deadline)
            .is_none_or(|due| self.now < due)
        {
            return;
        }
        view.silent_sent = true;
        let (view_id, round) = (view.id, view.round);
        let members = view
            .table
            .keys()
            .filter(|m| !view.announced.contains(*m) && !view.silent.contains(*m))
            .cloned()
            .collect();
        self.send(&Message::Silent {
            view_id,
            round,
            members,
        });
    }

    /// A `Silent` from `from` was delivered: the members it names hold and offer nothing
    /// from here, for everyone at once, even where their State was read (the sender could
    /// not read it).
    ///
    /// A member whose State was only late (sent as the deadline passed, ordered before the
    /// `Silent`) would then stay silent, serving nothing, until the next view. Only the
    /// sender can tell late from unreadable: by this point it has read every State that was
    /// ordered before its `Silent` and that it can read. If it read the State of one it
    /// named, it asks for a new round, in which that member announces again. It asks once a
    /// view, so that a member read by the sender but not by others cannot keep the cluster
    /// in rounds; that member stays silent until the next view, as before.
    fn mark_silent(&mut self, from: &str, named: &[NodeName]) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let found: Vec<NodeName> = named
            .iter()
            .filter(|m| view.table.contains_key(*m) && !view.silent.contains(*m))
            .cloned()
            .collect();
        if found.is_empty() {
            return;
        }
        let late = from == self.me && found.iter().any(|m| view.announced.contains(m));
        let ask_again = late && !std::mem::replace(&mut view.late_round_sent, true);
        // The member itself must not ask for a new round: its request would change the
        // rounds only of those who can read it.
        for name in &found {
            view.silence(name);
        }
        let view_id = view.id;
        let me_silent = found.contains(&self.me);
        self.events.push_back(Event::Silent {
            view_id,
            members: found,
        });
        if me_silent {
            // The others have given what this node holds away at this very point.
            self.release_all();
        }
        self.events.push_back(Event::Planned { view_id });
        if ask_again {
            self.send(&Message::AnnounceView { view_id });
        }
    }

    fn set_config(&mut self, addresses: &[ManagedAddress]) {
        self.configured = addresses.to_vec();
        self.configured.sort_by_key(|m| m.address);
        self.hints = addresses
            .iter()
            .map(|m| (m.address, m.plumb.clone()))
            .collect();
        self.apply_offer();
    }

    /// This node's entities: what it is configured to serve, less what it gave up.
    fn apply_offer(&mut self) {
        self.entities = Arc::new(
            self.configured
                .iter()
                .filter(|m| !self.given_up.contains(&m.plumb.interface))
                .map(|m| (m.address, Arc::new(Entity::from(m))))
                .collect(),
        );
    }

    /// Asks for a held address whose plumb failed to be plumbed again, announced and its
    /// listeners started (they could not bind without it).
    fn plumb_again(&mut self, address: IpAddr) {
        let Some(hint) = self.hints.get(&address).cloned() else {
            return;
        };
        if !self.plumbed.contains(&address) {
            return;
        }
        // Two sides of a healed partition may both hold it until the plan settles which one
        // keeps it; the other side answers meanwhile, and plumbing here would make two. Before
        // every State is in, this node cannot know: it waits for the plan.
        let shared = self.view.as_ref().is_none_or(|v| {
            !v.ready()
                || v.table
                    .iter()
                    .any(|(n, m)| *n != self.me && m.holdings.contains(&address))
        });
        if shared {
            self.retries.failed(address, self.now);
            return;
        }
        self.actions.push_back(Action::Plumb { address, hint });
        self.actions.push_back(Action::Announce { address });
        let ports = self.ports_of(address);
        if !ports.is_empty() {
            self.actions
                .push_back(Action::StartService { address, ports });
        }
    }

    /// Tries failed plumbs again when their wait is over, and gives up those past the
    /// deadline: released, so the next candidate takes them, with their interfaces no longer
    /// offered (what else this node holds there moves by the plan, release before acquire).
    fn retry_plumbs(&mut self) {
        // Not before the view is planned (see `plumb_again`), and without counting the wait
        // towards giving the interface up.
        if !self.view.as_ref().is_some_and(ViewState::ready) {
            return;
        }
        let due = self.retries.due(self.now, self.options.plumb_deadline);
        for address in due.retry {
            self.plumb_again(address);
        }
        let give_up: Vec<IpAddr> = due
            .give_up
            .into_iter()
            .filter(|a| self.plumbed.contains(a))
            .collect();
        if give_up.is_empty() {
            return;
        }
        for &address in &give_up {
            let Some(interface) = self.hints.get(&address).map(|h| h.interface.clone()) else {
                continue;
            };
            self.given_up.insert(interface.clone());
            self.events.push_back(Event::GaveUp { address, interface });
        }
        self.apply_offer();
        // The State first: were the Released delivered before it, the plan would still name
        // this node and grant the addresses straight back to it.
        if self.view.is_some() {
            self.announce();
        }
        self.release(&give_up);
    }

    fn send(&mut self, message: &Message) {
        self.actions.push_back(Action::Send(wire::encode(message)));
    }

    /// A move of `address` by an operator here, stamped after every one this node knows.
    fn stamp(&self, address: IpAddr, to: Option<NodeName>) -> StandingMove {
        let seen = self
            .standing
            .values()
            .chain(self.view.iter().flat_map(|v| v.moves.values()))
            .map(|m| m.counter)
            .max()
            .unwrap_or(0);
        StandingMove {
            address,
            to,
            counter: seen + 1,
            origin: self.me.clone(),
        }
    }

    /// Multicasts the standing moves this node knows, ahead of its announcement, so the view
    /// plans with them once every announcement is in.
    fn send_moves(&mut self, view_id: u64) {
        if !self.standing.is_empty() {
            let moves = self.standing.values().cloned().collect();
            self.send(&Message::Moves { view_id, moves });
        }
    }

    /// Multicasts this node's State for the current round.
    fn announce(&mut self) {
        if let Some(view_id) = self.view_id() {
            self.send_moves(view_id);
            self.send_epochs(view_id);
        }
        let Some(view) = &self.view else { return };
        let state = State {
            view_id: view.id,
            round: view.round,
            config_digest: wire::config_digest(self.entities.values().map(|e| &**e)),
            entities: self.entities.values().map(|e| Entity::clone(e)).collect(),
            holdings: self.plumbed.iter().copied().collect(),
            standby: self.standby,
            carried: view.carried,
        };
        self.send(&Message::State(state));
    }

    /// Announces in a carried view: first what this node let go that the old view never
    /// delivered (the others still count it as held), then `Carried`, or a State when its
    /// configuration changed since its last delivered one.
    fn announce_carried(&mut self, view_id: u64) {
        self.send_moves(view_id);
        if !self.releasing.is_empty() {
            let addresses = self.releasing.iter().copied().collect();
            self.send(&Message::Released { view_id, addresses });
        }
        let current = self
            .view
            .as_ref()
            .and_then(|v| v.table.get(&self.me))
            .is_some_and(|m| {
                Arc::ptr_eq(&m.entities, &self.entities) || *m.entities == *self.entities
            });
        if current {
            self.send(&Message::Carried {
                view_id,
                standby: self.standby,
            });
        } else {
            self.announce();
        }
    }

    /// Stops services and unplumbs, without telling the cluster.
    fn stop(&mut self, address: IpAddr) {
        let ports = self.ports_of(address);
        if !ports.is_empty() {
            self.actions
                .push_back(Action::StopService { address, ports });
        }
        self.actions.push_back(Action::Unplumb {
            address,
            hint: self.hints.get(&address).cloned(),
        });
        self.events.push_back(Event::Released { address });
    }

    /// Lets go of everything this node holds and tells the cluster.
    fn release_all(&mut self) {
        let held: Vec<IpAddr> = self.plumbed.iter().copied().collect();
        self.release(&held);
    }

    /// Lets addresses go and tells the cluster, so their new owners may take them.
    fn release(&mut self, addresses: &[IpAddr]) {
        if addresses.is_empty() {
            return;
        }
        for &address in addresses {
            self.let_go(address);
            self.releasing.insert(address);
        }
        if let Some(view_id) = self.view_id() {
            self.send(&Message::Released {
                view_id,
                addresses: addresses.to_vec(),
            });
        }
    }

    /// Stops holding an address here (services, plumbing, retries), without telling anyone.
    fn let_go(&mut self, address: IpAddr) {
        self.plumbed.remove(&address);
        self.retries.forget(address);
        self.stop(address);
    }

    fn acquire(&mut self, address: IpAddr) {
        let Some(hint) = self.hints.get(&address).cloned() else {
            // The plan only gives a node addresses its own State announced, which come from
            // its configuration, which has a hint for each.
            debug_assert!(false, "granted {address} without a plumbing hint");
            return;
        };
        self.plumbed.insert(address);
        self.actions.push_back(Action::Plumb { address, hint });
        self.actions.push_back(Action::Announce { address });
        let ports = self.ports_of(address);
        if !ports.is_empty() {
            self.actions
                .push_back(Action::StartService { address, ports });
        }
        self.events.push_back(Event::Acquired { address });
    }

    /// The listener ports of a configured address, offered or given up: a listener started
    /// before its interface was given up must still be stopped.
    fn ports_of(&self, address: IpAddr) -> Vec<u16> {
        self.configured
            .binary_search_by_key(&address, |m| m.address)
            .map(|i| self.configured[i].listener_ports.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Plans, grants free addresses to their owners and releases what this node should not
    /// hold. Every member runs this at the same points of the message order.
    fn reconcile(&mut self) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if !view.ready() {
            return;
        }
        let view_id = view.id;
        #[cfg(feature = "planted-bugs")]
        let forgetful;
        #[cfg(feature = "planted-bugs")]
        let table = if self.options.planted.forget_follow {
            forgetful = forget_follow(&view.table);
            &forgetful
        } else {
            &view.table
        };
        #[cfg(not(feature = "planted-bugs"))]
        let table = &view.table;
        let pins = view.pins();
        let plan = elect(table, view.mature, &pins);
        #[cfg(feature = "planted-bugs")]
        let steal = self.options.planted.acquire_before_release;
        #[cfg(not(feature = "planted-bugs"))]
        let steal = false;
        let mut to_release = Vec::new();
        for (address, decision) in &plan.addresses {
            let holders: Vec<&NodeName> = view
                .table
                .iter()
                .filter(|(_, m)| m.holdings.contains(address))
                .map(|(n, _)| n)
                .collect();
            let mine = holders.iter().any(|h| **h == self.me);
            if mine
                && decision.owner.as_deref() != Some(self.me.as_str())
                && !self.releasing.contains(address)
            {
                to_release.push(*address);
            }
            let stolen = steal
                && !holders
                    .iter()
                    .any(|h| Some(h.as_str()) == decision.owner.as_deref());
            if let (Some(owner), true) = (&decision.owner, holders.is_empty() || stolen) {
                if let Some(member) = view.table.get_mut(&**owner) {
                    member.holdings.insert(*address);
                }
            }
        }
        let changed_marks: Vec<(IpAddr, Marks)> = plan
            .addresses
            .iter()
            .filter(|(a, d)| {
                self.plan
                    .addresses
                    .get(a)
                    .map_or(d.marks != Marks::default(), |old| old.marks != d.marks)
            })
            .map(|(a, d)| (*a, d.marks))
            .collect();
        self.changes.record(&self.plan, &plan, view_id, self.now);
        self.plan = plan;
        // Order: let go before taking, so the link never sees this node grow first.
        self.release(&to_release);
        // What the table now counts as here and the plan gives here: the grants above, and
        // grants made while this node caught up whose echo came back before the view was
        // ready (nothing else would take them: everyone counts them as here).
        if self.catching_up.is_none() {
            self.take_what_is_mine();
        }
        for (address, marks) in changed_marks {
            self.actions.push_back(Action::Mark { address, marks });
        }
        self.settle_hold_back();
    }
}

/// A member's announced entities, sharing this node's copies (or another member's) wherever
/// they describe the same thing, down to the whole map when the configurations match.
/// Takes `m` into `moves` unless a move of the same address with a greater stamp is there;
/// whether it changed anything.
fn merge(moves: &mut BTreeMap<IpAddr, StandingMove>, m: StandingMove) -> bool {
    match moves.get(&m.address) {
        Some(known) if !m.supersedes(known) => false,
        _ => {
            moves.insert(m.address, m);
            true
        }
    }
}

fn share(
    own: &Arc<Entities>,
    table: &BTreeMap<NodeName, Member>,
    announced: &[Entity],
) -> Arc<Entities> {
    let map: Entities = announced
        .iter()
        .map(|e| match own.get(&e.address) {
            Some(mine) if **mine == *e => (e.address, Arc::clone(mine)),
            _ => (e.address, Arc::new(e.clone())),
        })
        .collect();
    if map == **own {
        return Arc::clone(own);
    }
    match table.values().find(|m| *m.entities == map) {
        Some(other) => Arc::clone(&other.entities),
        None => Arc::new(map),
    }
}

#[cfg(feature = "planted-bugs")]
fn forget_follow(table: &BTreeMap<NodeName, Member>) -> BTreeMap<NodeName, Member> {
    let mut table = table.clone();
    for member in table.values_mut() {
        for entity in Arc::make_mut(&mut member.entities).values_mut() {
            Arc::make_mut(entity).follow = None;
        }
    }
    table
}
