//! What dvipd answers: one typed struct per report, and the line a reply travels as.
//!
//! Owns the shape of `show`, `info`, `arp-show` and broadcast replies, and reading a reply
//! line back into the type its request expects. It must not gather the facts (dvipd does) nor
//! print them (the CLI does).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use dvip_core::{Decision, Marks, Reason};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ConsoleError, ErrorKind};
use crate::request::Request;

/// A mark as an operator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mark {
    /// Nobody may manage the address.
    Broken,
    /// Members name different preferred nodes.
    Conflict,
    /// Members describe the address differently.
    Unsafe,
}

impl Mark {
    /// The marks of an address, in a fixed order.
    pub fn of(marks: &Marks) -> Vec<Self> {
        let mut out = Vec::new();
        if marks.broken {
            out.push(Self::Broken);
        }
        if marks.conflict {
            out.push(Self::Conflict);
        }
        if marks.is_unsafe() {
            out.push(Self::Unsafe);
        }
        out
    }

    /// `BROKEN`, `CONFLICT` or `UNSAFE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "BROKEN",
            Self::Conflict => "CONFLICT",
            Self::Unsafe => "UNSAFE",
        }
    }
}

/// One address of a plan: who owns it, why, and what the members say about it. `dvip plan
/// --json` prints these too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPlan {
    /// The address.
    pub address: IpAddr,
    /// The node that should hold it.
    pub owner: Option<String>,
    /// Why that node.
    pub reason: Reason,
    /// How the members' descriptions disagree.
    pub marks: Vec<Mark>,
    /// The members that could hold it.
    pub candidates: Vec<String>,
    /// Binding names on it.
    pub bindings: BTreeSet<String>,
    /// Listener ports on it.
    pub listener_ports: BTreeSet<u16>,
    /// The binding address it follows.
    pub follows: Option<IpAddr>,
}

impl AddressPlan {
    /// The plan's decision for `address`.
    pub fn new(address: IpAddr, d: &Decision) -> Self {
        Self {
            address,
            owner: d.owner.as_deref().map(str::to_owned),
            reason: d.reason,
            marks: Mark::of(&d.marks),
            candidates: d.candidates.iter().map(|c| c.to_string()).collect(),
            bindings: d.bindings().clone(),
            listener_ports: d.listener_ports().clone(),
            follows: d.follows,
        }
    }
}

/// One address as a running node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// The plan's decision.
    #[serde(flatten)]
    pub plan: AddressPlan,
    /// This node holds it.
    pub held_here: bool,
    /// This node holds it and the kernel has it.
    pub plumbed_here: bool,
    /// This node has it plumbed ahead of need, silent, to take it at once were its holder
    /// to leave (`dvipd --pre-plumb`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readied_here: bool,
    /// Who would take it if its holder failed now (none held, or no other candidate: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_owner: Option<String>,
}

/// The view a node is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewStatus {
    /// Its id; `None` before the first view.
    pub id: Option<u64>,
    /// Its members.
    pub members: Vec<String>,
    /// Members whose State did not come in time: planned around as holding nothing.
    pub silent: BTreeSet<String>,
    /// Every member's State is in.
    pub ready: bool,
    /// The view has stood for `view_mature_time`.
    pub mature: bool,
    /// How long it has stood.
    pub stable_ms: Option<u64>,
}

/// The configuration a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// How many DuraVIP addresses it defines.
    pub addresses: usize,
    /// How long it has stood.
    pub stable_ms: u64,
}

/// A standing move: the address goes to the node whenever that node is a candidate, until
/// `dvip move clear`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingMove {
    /// The address.
    pub address: IpAddr,
    /// The node.
    pub to: String,
}

/// The reply to `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node answering.
    pub node: String,
    /// It is drained for maintenance.
    pub standby: bool,
    /// Its view.
    pub view: ViewStatus,
    /// Every address of the plan.
    pub addresses: Vec<AddressStatus>,
    /// Held here but not yet on an interface (retried).
    pub not_plumbed: BTreeSet<IpAddr>,
    /// Interfaces given up after failing to plumb.
    pub given_up_interfaces: BTreeSet<String>,
    /// The plan as a table, with HERE and NEXT columns.
    pub table: String,
    /// The standing moves this node knows.
    #[serde(default)]
    pub moves: Vec<StandingMove>,
    /// Its configuration.
    pub config: ConfigStatus,
    /// It waits for corosync, holding nothing.
    pub waiting_for_corosync: bool,
    /// Its lease, when it runs leases (docs/leases.md).
    #[serde(default)]
    pub lease: Option<LeaseStatus>,
}

/// Where a node's lease stands: whether the kernel answers for its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Not yet known: the heartbeats have not looked since the daemon started.
    Unknown,
    /// Lost or about to end: the others stopped acknowledging this node (or it cannot renew
    /// long enough); the kernel stops answering for its addresses.
    Lost,
    /// Held, but the node holds back (its epoch has not settled, or it is waiting for its echo
    /// after a lapse): the kernel answers for nothing.
    HeldBack,
    /// Held: the kernel answers for the addresses this node holds.
    Answering,
}

impl LeaseState {
    /// What it means, for the log and the console.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unknown => "not known yet",
            Self::Lost => "lease lost or ending: the kernel stops answering",
            Self::HeldBack => "lease held, but the node holds back until its epoch settles",
            Self::Answering => "lease held: the kernel answers",
        }
    }
}

/// A node's lease, in `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// Where it stands.
    pub state: LeaseState,
    /// The node's epoch: it moves when the node's addresses were taken over.
    pub epoch: u64,
    /// The members whose acknowledgements of this node's beats it holds, latest first: its
    /// lease lasts while a majority of the view's (itself included) are recent.
    #[serde(default)]
    pub acknowledged_by: Vec<Acknowledged>,
    /// The members this node does not acknowledge (their leases cannot count on it), and why.
    #[serde(default)]
    pub withholding: Vec<Withheld>,
}

/// Another member's latest acknowledgement of this node's beats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub member: String,
    /// How long ago the acknowledged beat was sent.
    pub age_ms: u64,
}

/// A member this node does not acknowledge: someone promised never to, in its epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    pub member: String,
    /// The epoch the promise was made in; it ends when the table moves the member's epoch.
    pub epoch: u64,
    /// The member's epoch in this node's table: the same, unless a move is on its way.
    pub table_epoch: u64,
    /// Whether this node made the promise (else it adopted another member's).
    pub promised_here: bool,
}

/// How a configured node stands in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// In the view, a candidate for its addresses.
    Online,
    /// In the view, drained for maintenance.
    Standby,
    /// In the view, but its State did not come in time: planned around as holding nothing.
    Silent,
    /// Configured in corosync's node list, not in the view.
    Offline,
}

impl NodeState {
    /// `online`, `standby`, `silent` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Standby => "standby",
            Self::Silent => "silent",
            Self::Offline => "offline",
        }
    }
}

/// One configured node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// How it stands.
    pub state: NodeState,
    /// How many addresses the plan gives it.
    pub owns: usize,
    /// The addresses it holds, as its last State said (empty when offline).
    pub held: BTreeSet<IpAddr>,
}

/// How one member describes an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// Binding names it puts there.
    pub bindings: BTreeSet<String>,
    /// Listener ports it puts there.
    pub listener_ports: BTreeSet<u16>,
    /// The node it prefers.
    pub preference: Option<String>,
    /// The binding address it follows.
    pub follows: Option<IpAddr>,
}

impl Description {
    /// What a member's entity says.
    pub fn of(entity: &dvip_core::Entity) -> Self {
        Self {
            bindings: entity.bindings.clone(),
            listener_ports: entity.listener_ports.clone(),
            preference: entity.preference.clone(),
            follows: entity.follow,
        }
    }
}

/// A marked address and what each member says about it: the reason for its marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedAddress {
    /// The address.
    pub address: IpAddr,
    /// Its marks.
    pub marks: Vec<Mark>,
    /// Its owner, if it has one.
    pub owner: Option<String>,
    /// Each member's description (`None`: that member does not configure it).
    pub said: BTreeMap<String, Option<Description>>,
}

impl MarkedAddress {
    /// Every marked address of `plan`, with what each of `members` says about it.
    pub fn all_in(
        plan: &dvip_core::Plan,
        members: &BTreeMap<dvip_core::NodeName, dvip_core::Member>,
    ) -> Vec<Self> {
        plan.addresses
            .iter()
            .filter(|(_, d)| !Mark::of(&d.marks).is_empty())
            .map(|(address, d)| Self {
                address: *address,
                marks: Mark::of(&d.marks),
                owner: d.owner.as_deref().map(str::to_owned),
                said: members
                    .iter()
                    .map(|(n, m)| {
                        (
                            n.clone(),
                            m.entities.get(address).map(|e| Description::of(e)),
                        )
                    })
                    .collect(),
            })
            .collect()
    }
}

/// An address whose owner changed in the agreed plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChange {
    /// When (ms since the epoch, by the answering node's clock).
    pub at_ms: u64,
    /// The view the new plan was made in.
    pub view_id: u64,
    /// The address.
    pub address: IpAddr,
    /// Its owner before.
    pub from: Option<String>,
    /// Its owner now.
    pub to: Option<String>,
    /// Why the new owner has it.
    pub reason: Reason,
}

/// An address its owner does not hold yet: granted while another still lets it go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InTransit {
    /// The address.
    pub address: IpAddr,
    /// Its owner in the plan.
    pub owner: String,
    /// Who holds it now.
    pub held_by: Vec<String>,
}

/// The reply to `status`: the whole cluster on one screen, as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node answering.
    pub node: String,
    /// Its view.
    pub view: ViewStatus,
    /// Its configuration.
    pub config: ConfigStatus,
    /// It waits for corosync, holding nothing.
    pub waiting_for_corosync: bool,
    /// Addresses in the plan.
    pub addresses: usize,
    /// Every configured node: corosync's node list and the view's members.
    pub nodes: Vec<NodeStatus>,
    /// Addresses whose owner does not hold them yet.
    pub in_transit: Vec<InTransit>,
    /// Per node, addresses it holds that the kernel does not have yet (retried). The
    /// answering node reports its own; `dvip status` asks the others.
    pub not_plumbed: BTreeMap<String, BTreeSet<IpAddr>>,
    /// The view's members grouped by the configuration they announce: more than one group
    /// means their configurations differ.
    pub configurations: Vec<Vec<String>>,
    /// Every marked address, with what each member says about it.
    pub marked: Vec<MarkedAddress>,
    /// The last ownership changes, oldest first.
    pub changes: Vec<OwnerChange>,
    /// The standing moves this node knows.
    #[serde(default)]
    pub moves: Vec<StandingMove>,
}

/// The bus a node runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusStatus {
    /// A cluster of one.
    Standalone,
    /// corosync's CPG.
    Corosync {
        /// The group the election runs in.
        group: String,
        /// Whether the node is in it now.
        joined: bool,
    },
}

/// The reply to `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The node answering.
    pub node: String,
    /// dvipd's version.
    pub version: String,
    /// dvipd's process id.
    pub pid: u32,
    /// How long it has run.
    pub uptime_ms: u64,
    /// The configuration file it reads.
    pub config_file: PathBuf,
    /// What that file defines.
    pub config: ConfigStatus,
    /// The bus.
    pub bus: BusStatus,
    /// How long a plumbed address lives unless refreshed.
    pub address_lifetime_s: u64,
    /// Holder interfaces in use.
    pub holders: u16,
    /// Addresses on holder interfaces.
    pub held_on_holders: usize,
    /// The guardian process that removes addresses if dvipd dies.
    pub guardian_pid: Option<u32>,
    /// Announcements go to the whole link (else to known neighbours).
    pub arp_all_hosts: bool,
    /// The program run on acquire and release.
    pub hook: Option<String>,
    /// Addresses held.
    pub held: usize,
    /// Held but not yet on an interface.
    pub not_plumbed: BTreeSet<IpAddr>,
    /// Interfaces given up after failing to plumb.
    pub given_up_interfaces: BTreeSet<String>,
    /// Interfaces in use that are down.
    pub interfaces_down: Vec<String>,
    /// Listener forwards running: `ADDRESS:PORT -> BACKEND`.
    pub forwarding: Vec<String>,
    /// The console socket.
    pub socket: PathBuf,
}

/// Where announcements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArpMode {
    /// To the whole link.
    AllHosts,
    /// To each neighbour the kernel knows.
    Neighbours,
}

/// How one held address was announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// The address.
    pub address: IpAddr,
    /// The interface it is on.
    pub interface: String,
    /// Rounds of announcements made.
    pub announcements: u32,
    /// Frames sent in the last round.
    pub frames_last: usize,
    /// When the last round went out (ms since the epoch).
    pub last_at_ms: Option<u64>,
}

/// The reply to `arp-show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arp {
    /// The node answering.
    pub node: String,
    /// Where announcements go.
    pub mode: ArpMode,
    /// Every held address.
    pub addresses: Vec<Announced>,
}

/// The reply to a broadcast: each node's own reply, and who did not answer in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gathered {
    /// Each node's reply line, as that node sent it.
    pub replies: BTreeMap<String, serde_json::Value>,
    /// Nodes that did not answer.
    pub missing: Vec<String>,
}

impl Gathered {
    /// Each node's reply read as what `request` answers.
    pub fn answers(&self, request: &Request) -> BTreeMap<String, Result<Answer, ConsoleError>> {
        self.replies
            .iter()
            .map(|(node, reply)| (node.clone(), Answer::from_json(request, reply.clone())))
            .collect()
    }
}

/// A successful reply, of the kind its request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// To `show`.
    Status(Box<Status>),
    /// To `status`.
    Cluster(Box<ClusterStatus>),
    /// To `info`.
    Info(Box<Info>),
    /// To `arp-show`.
    Arp(Arp),
    /// To a command: done.
    Done,
    /// To `reload`: the configuration now in force.
    Reloaded {
        /// How many DuraVIP addresses it defines.
        addresses: usize,
    },
    /// To a broadcast.
    Gathered(Gathered),
    /// To `events`: the stream follows, one [`crate::EventLine`] per line.
    Following,
    /// To `cidr`.
    Cidr(CidrReport),
    /// To `domains`.
    Domains(DomainsReport),
    /// To `throttles`.
    Throttles(ThrottlesReport),
    /// To `caches`.
    Caches(CachesReport),
    /// To `cache-get`.
    CacheValue(CacheValueReport),
}

/// Outbound connections per domain, as this node's replica knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainsReport {
    /// The node answering.
    pub node: String,
    /// Whether the counts are the cluster's (`outbound_domains` replicated) or this node's.
    pub shared: bool,
    /// The binding group asked about (`None`: all bindings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The node whose counts alone were asked for, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The window of the recent counts, in seconds.
    pub window_s: u64,
    pub rows: Vec<dvip_replicate::DomainCount>,
}

/// The throttles and their hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlesReport {
    pub node: String,
    /// Whether hits are the cluster's (`shared_named_throttles` replicated).
    pub shared: bool,
    pub rows: Vec<dvip_replicate::ThrottleCount>,
}

/// The caches this node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachesReport {
    pub node: String,
    pub caches: Vec<dvip_replicate::CacheSummary>,
}

/// One key of a cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheValueReport {
    pub node: String,
    pub cache: String,
    pub key: String,
    /// The value and its time left (`None`: no such key, or expired).
    pub value: Option<dvip_replicate::CacheValue>,
}

/// The cluster's connection counts under a prefix, as this node's replica knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrReport {
    /// The node answering.
    pub node: String,
    /// Whether the counts are the cluster's (`inbound_cidr` replicated) or this node's alone.
    pub shared: bool,
    /// The node whose counts alone were asked for (`from NODE`), if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The window of the recent counts, in seconds.
    pub window_s: u64,
    pub rows: Vec<dvip_replicate::PrefixCount>,
}

impl Answer {
    /// The reply line's JSON: the report's fields beside `"ok": true`.
    pub fn to_json(&self) -> serde_json::Value {
        let fields = match self {
            Self::Status(s) => serde_json::to_value(s),
            Self::Cluster(c) => serde_json::to_value(c),
            Self::Info(i) => serde_json::to_value(i),
            Self::Arp(a) => serde_json::to_value(a),
            Self::Gathered(g) => serde_json::to_value(g),
            Self::Cidr(c) => serde_json::to_value(c),
            Self::Domains(d) => serde_json::to_value(d),
            Self::Throttles(t) => serde_json::to_value(t),
            Self::Caches(c) => serde_json::to_value(c),
            Self::CacheValue(v) => serde_json::to_value(v),
            Self::Reloaded { addresses } => Ok(serde_json::json!({ "addresses": addresses })),
            Self::Done | Self::Following => Ok(serde_json::json!({})),
        };
        let mut value = fields.expect("reports hold only strings, numbers, addresses and maps");
        value["ok"] = true.into();
        value
    }

    /// Reads a reply line's JSON as what `request` answers: its report, or its error.
    pub fn from_json(request: &Request, value: serde_json::Value) -> Result<Self, ConsoleError> {
        if value.get("ok") != Some(&serde_json::Value::Bool(true)) {
            return Err(error_of(&value));
        }
        Ok(match request {
            Request::Show => Self::Status(Box::new(report(value)?)),
            Request::Status => Self::Cluster(Box::new(report(value)?)),
            Request::Info => Self::Info(Box::new(report(value)?)),
            Request::ArpShow => Self::Arp(report(value)?),
            Request::Cidr { .. } => Self::Cidr(report(value)?),
            Request::Domains { .. } => Self::Domains(report(value)?),
            Request::Throttles => Self::Throttles(report(value)?),
            Request::Caches => Self::Caches(report(value)?),
            Request::CacheGet { .. } => Self::CacheValue(report(value)?),
            Request::Broadcast { .. } => Self::Gathered(report(value)?),
            Request::Events => Self::Following,
            Request::Reload { .. } => Self::Reloaded {
                addresses: report::<Reloaded>(value)?.addresses,
            },
            Request::AnnounceView
            | Request::Standby { .. }
            | Request::Online { .. }
            | Request::Move { .. }
            | Request::MoveClear { .. }
            | Request::CacheSet { .. }
            | Request::CacheDelete { .. } => Self::Done,
        })
    }
}

/// The fields of a reload's reply.
#[derive(Deserialize)]
struct Reloaded {
    addresses: usize,
}

/// The error a refusing reply carries; a reply from before errors had kinds is `refused`.
fn error_of(value: &serde_json::Value) -> ConsoleError {
    let message = value["error"]
        .as_str()
        .unwrap_or("dvipd refused the request")
        .to_owned();
    let kind = serde_json::from_value(value["kind"].clone()).unwrap_or(ErrorKind::Refused);
    ConsoleError::new(kind, message)
}

fn report<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ConsoleError> {
    serde_json::from_value(value).map_err(|e| {
        ConsoleError::new(
            ErrorKind::BadReply,
            format!("dvipd's reply is not what this dvip reads ({e}): are both the same version?"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_read_as_its_request_expects_and_errors_keep_their_kind() {
        let arp = Arp {
            node: "node1".into(),
            mode: ArpMode::AllHosts,
            addresses: vec![Announced {
                address: "198.51.100.7".parse().unwrap(),
                interface: "eth0".into(),
                announcements: 3,
                frames_last: 1,
                last_at_ms: Some(5),
            }],
        };
        let line = Answer::Arp(arp.clone()).to_json();
        assert_eq!(line["ok"], true);
        assert_eq!(line["mode"], "all-hosts");
        assert_eq!(
            Answer::from_json(&Request::ArpShow, line.clone()),
            Ok(Answer::Arp(arp))
        );
        let wrong = Answer::from_json(&Request::Info, line).unwrap_err();
        assert_eq!(wrong.kind, ErrorKind::BadReply);
        let refused = ConsoleError::new(ErrorKind::Refused, "node3 is not a candidate");
        assert_eq!(
            Answer::from_json(&Request::Standby { node: None }, refused.to_json()),
            Err(refused)
        );
        let old = serde_json::json!({"ok": false, "error": "no"});
        assert_eq!(
            Answer::from_json(&Request::Online { node: None }, old)
                .unwrap_err()
                .kind,
            ErrorKind::Refused
        );
    }
}
