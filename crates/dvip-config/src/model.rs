//! The effective model: what a configuration means to dvip, after defaults and upgrades.
//!
//! Owns the types `dvip config check --json` prints and the daemon runs on. It must not parse
//! text; `lower` builds it from the syntax tree.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use dvip_core::{Follow, ManagedAddress, PlumbHint};
use ipnet::IpNet;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::tree::Item;
use crate::values::ListenAddress;

/// Default `cluster_group`: the group the election runs in.
pub const CLUSTER_GROUP_DEFAULT: &str = "ec_cluster";
/// Default `control_group`: the group console commands are broadcast in.
pub const CONTROL_GROUP_DEFAULT: &str = "ec_console";
/// Default `cluster_listener` port, for point-to-point traffic between nodes.
pub const CLUSTER_LISTENER_PORT_DEFAULT: u16 = 4802;
/// Default `mbus_daemon`: where the group bus is reached (kept for old configs; corosync's
/// client socket is found without it).
pub const MBUS_DAEMON_DEFAULT: &str = "4803";
/// The port a listener gets when its address names none.
pub const LISTENER_PORT_DEFAULT: u16 = 25;
/// Default `announce_count`: one announcement can be lost; three rarely all are.
pub const ANNOUNCE_COUNT_DEFAULT: u32 = 3;
/// Default `announce_interval` in milliseconds: far enough apart that a brief burst of loss
/// does not take them all, close enough that the last one comes within a second.
pub const ANNOUNCE_INTERVAL_MS_DEFAULT: u64 = 250;

/// Default `view_mature_time` in milliseconds: how long a view must stand before a node that
/// joined takes its share of addresses back. Short, because a sending IP should come home
/// quickly; long enough that a node flapping in and out of the view does not drag addresses
/// along with it on every flap.
pub const VIEW_MATURE_TIME_MS_DEFAULT: u64 = 1_000;

/// A whole node configuration as dvip understands it.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// This node's name in the cluster.
    pub nodename: String,
    /// Where the node name came from.
    pub nodename_source: NodenameSource,
    /// The node's management address, if configured; it must never be a DuraVIP address.
    pub nodeaddr: Option<IpAddr>,
    /// Options of the cluster stanza.
    pub cluster: ClusterOptions,
    /// Every DuraVIP address, sorted by address.
    pub addresses: Vec<DuravipAddress>,
    /// Listeners whose connections dvipd relays while this node owns their address, sorted.
    pub forwards: Vec<ListenerForward>,
    /// Topology hints, in file order.
    pub topology: Vec<TopologyHint>,
    /// Logs served to subscribers over the cluster listener.
    pub logs: Vec<ClusterLog>,
    /// `cluster://` and `jlog://` destinations written by loggers, in file order.
    pub log_destinations: Vec<LogDestination>,
    /// Data sets replicated across the cluster.
    pub replicate: Vec<Replication>,
    /// Where dvipd takes log lines from (syslog, followed files) and which journal each goes
    /// to; left out of reports when nothing is configured.
    #[serde(skip_serializing_if = "LogInputs::is_empty")]
    pub log_inputs: LogInputs,
    /// The local API's socket (`Replication_Listener`), if dvipd serves one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_listener: Option<ApiSocket>,
    /// The whole file as parsed, stanzas dvip does not use included.
    #[serde(skip)]
    pub document: Vec<Item>,
}

impl Config {
    /// The addresses as the election sees them.
    pub fn managed_addresses(&self) -> impl Iterator<Item = &ManagedAddress> {
        self.addresses.iter().map(|a| &a.managed)
    }
}

/// Where the node name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodenameSource {
    /// The `nodename` option.
    Config,
    /// The host name, up to its first dot.
    Hostname,
    /// Given by the caller (e.g. `--nodename`).
    Override,
}

/// Options of the cluster stanza, defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterOptions {
    /// Where the group bus daemon is reached.
    pub mbus_daemon: String,
    /// The group the election runs in.
    pub cluster_group: String,
    /// The group console commands are broadcast in.
    pub control_group: String,
    /// Where this node listens for other nodes.
    #[serde(serialize_with = "display")]
    pub cluster_listener: ListenAddress,
    /// Announce a moved address to every host on the link (true) or only to known neighbours.
    pub arp_all_hosts: bool,
    /// Keep the interface address list from kernel events instead of re-reading it.
    pub use_iflist_cache: bool,
    /// Re-evaluate queued mail's binding on every move.
    pub unconditional_rebind: bool,
    /// How long a view must stand before rebalancing, in milliseconds.
    pub view_mature_time_ms: u64,
    /// How long a round waits for every member's State before planning around the silent
    /// ones, in milliseconds; `None`: derived from corosync's token timeout at start.
    pub state_deadline_ms: Option<u64>,
    /// How long a held address may fail to plumb before the node gives it up, in
    /// milliseconds.
    pub plumb_deadline_ms: u64,
    /// A program run after this node acquires an address and after it releases one.
    pub duravip_hook: Option<String>,
    /// How many times each acquisition is announced (gratuitous ARP / neighbour advertisement).
    pub announce_count: u32,
    /// How far apart the announcements are, in milliseconds.
    pub announce_interval_ms: u64,
    /// Where dvipd answers Postfix's policy delegation (`None`: it does not).
    pub policy_listener: Option<ListenAddress>,
    /// Limits on connections per client prefix, enforced by the policy server.
    pub inbound_limits: Vec<InboundLimit>,
}

/// Default `policy_listener` port.
pub const POLICY_PORT_DEFAULT: u16 = 10031;

/// At most `connections` in `window_s` seconds from one client prefix (over the cluster
/// when `inbound_cidr` is replicated, else on this node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundLimit {
    /// Bits of an IPv4 client's prefix (default 24).
    pub prefix: u8,
    /// Bits of an IPv6 client's prefix (default 64).
    pub prefix6: u8,
    pub connections: u32,
    /// Seconds (default 60).
    pub window_s: u64,
}

impl Default for InboundLimit {
    fn default() -> Self {
        Self {
            prefix: 24,
            prefix6: 64,
            connections: 0,
            window_s: 60,
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            mbus_daemon: MBUS_DAEMON_DEFAULT.to_owned(),
            cluster_group: CLUSTER_GROUP_DEFAULT.to_owned(),
            control_group: CONTROL_GROUP_DEFAULT.to_owned(),
            cluster_listener: ListenAddress {
                address: None,
                port: CLUSTER_LISTENER_PORT_DEFAULT,
                ipv6_wildcard: false,
            },
            arp_all_hosts: true,
            use_iflist_cache: true,
            unconditional_rebind: true,
            view_mature_time_ms: VIEW_MATURE_TIME_MS_DEFAULT,
            state_deadline_ms: None,
            plumb_deadline_ms: millis(dvip_core::PLUMB_DEADLINE_DEFAULT),
            duravip_hook: None,
            announce_count: ANNOUNCE_COUNT_DEFAULT,
            announce_interval_ms: ANNOUNCE_INTERVAL_MS_DEFAULT,
            policy_listener: None,
            inbound_limits: Vec::new(),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// One DuraVIP address with what this configuration says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuravipAddress {
    /// The address as the election sees it.
    pub managed: ManagedAddress,
    /// True when a service on it was made DuraVIP because another service on it is.
    pub upgraded: bool,
}

impl Serialize for DuravipAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = &self.managed;
        let mut st = s.serialize_struct("DuravipAddress", 9)?;
        st.serialize_field("address", &m.address)?;
        st.serialize_field("bindings", &m.bindings)?;
        st.serialize_field("listener_ports", &m.listener_ports)?;
        st.serialize_field("preference", &m.preference)?;
        st.serialize_field("follow", &m.follow.as_ref().map(|f| &f.target))?;
        st.serialize_field("follow_address", &m.follow.as_ref().map(|f| f.address))?;
        st.serialize_field("upgraded", &self.upgraded)?;
        st.serialize_field("interface", &m.plumb.interface)?;
        st.serialize_field("cidrmask", &m.plumb.cidrmask)?;
        st.end()
    }
}

/// A listener dvipd serves itself: while this node owns `address`, connections to
/// `address:port` are relayed to `backend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerForward {
    /// The DuraVIP address.
    pub address: IpAddr,
    /// The listener's port.
    pub port: u16,
    /// Where connections are relayed.
    pub backend: SocketAddr,
    /// Whether each relayed connection starts with a PROXY protocol v2 header naming the client.
    pub proxy_protocol: bool,
}

/// Where addresses of one network are plumbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyHint {
    /// The network the hint covers.
    pub cidr: IpNet,
    /// The interface its addresses go on.
    pub interface: String,
    /// The prefix length they are plumbed with.
    pub cidrmask: u8,
}

impl TopologyHint {
    pub(crate) fn plumb(&self) -> PlumbHint {
        PlumbHint {
            interface: self.interface.clone(),
            cidrmask: self.cidrmask,
        }
    }
}

/// A log served to subscribers: its key and the node-local directory holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterLog {
    /// The key subscribers ask for.
    pub name: String,
    /// The node-local journal directory.
    pub path: String,
}

/// A logger writing to a clustered (`cluster://`) or journal (`jlog://`) destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogDestination {
    /// `cluster` or `jlog`.
    pub scheme: String,
    /// The journal directory.
    pub path: String,
    /// The subscribers created with the journal: `=>name`, or `?subscribers=a,b,c`.
    pub subscribers: Vec<String>,
    /// The option that names it, e.g. `mainlog`.
    pub option: String,
    /// The URI as written.
    pub uri: String,
}

/// The subscriber a journal that dvipd fills is created with when no logger's URI names any:
/// the name an aggregator subscribes with unless told otherwise.
pub const INPUT_SUBSCRIBER_DEFAULT: &str = "master";

/// Log lines dvipd takes in and where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogInputs {
    /// Sockets the syslog listener receives on.
    pub syslog: Vec<SyslogListen>,
    /// Syslog routes in file order: a message goes to the first that takes it.
    pub routes: Vec<LogRoute>,
    /// Files followed into journals.
    pub follows: Vec<LogFollow>,
    /// Every journal a route or a follow writes, once each, in the order first named.
    pub journals: Vec<InputJournal>,
}

impl LogInputs {
    /// True when no input is configured.
    pub fn is_empty(&self) -> bool {
        self.syslog.is_empty() && self.routes.is_empty() && self.follows.is_empty()
    }

    /// The journal a route or follow writes, by its log key.
    pub fn journal(&self, log: &str) -> Option<&InputJournal> {
        self.journals.iter().find(|j| j.log == log)
    }
}

/// A socket the syslog listener receives datagrams on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogListen {
    /// A unix datagram socket at this path (as `/dev/log` is).
    Unix(std::path::PathBuf),
    /// UDP on a loopback address.
    Udp(SocketAddr),
}

impl std::fmt::Display for SyslogListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Udp(at) => write!(f, "udp:{at}"),
        }
    }
}

/// A syslog route: the messages it takes go to one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRoute {
    /// The route's name, for reports and metrics.
    pub name: String,
    /// Which messages it takes.
    #[serde(flatten)]
    pub matches: crate::syslog::RouteMatch,
    /// The log key (from the cluster `logs`) its messages go to.
    pub log: String,
}

/// A file followed into a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogFollow {
    /// The file an MTA writes.
    pub file: std::path::PathBuf,
    /// The log key its lines go to.
    pub log: String,
}

/// A journal dvipd writes into, as the cluster `logs` and the loggers' URIs describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputJournal {
    /// The log key.
    pub log: String,
    /// The journal directory.
    pub path: std::path::PathBuf,
    /// Subscribers it is created with.
    pub subscribers: Vec<String>,
}

/// A data set replicated across the cluster (`inbound_cidr`, `outbound_domains`, a cache...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replication {
    /// The name of the data set: a cache's `replication_name` (2.x) or the stanza's name
    /// (3.x); otherwise its type.
    pub name: String,
    /// What is replicated: `inbound_cidr`, `cache`...; the name when no `type` is given.
    #[serde(rename = "type")]
    pub kind: String,
    /// `max_delay`: how long a change may wait before it is sent, in milliseconds.
    pub max_delay_ms: Option<u64>,
    /// `max_pending`: how many changed keys send a batch at once.
    pub max_pending: Option<u32>,
    /// A cache's `max_size`: at most this many keys (`None`: no bound, Momentum's `-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// A cache's `parameters` include `snapshot`: a joining node is sent every key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Its options as written, names lower-cased.
    pub options: BTreeMap<String, String>,
}

/// The unix socket of the local API, and who may use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiSocket {
    pub path: std::path::PathBuf,
    /// Permission bits (default [`API_SOCKET_MODE_DEFAULT`]).
    pub mode: u32,
    /// The socket's owner (default: dvipd's user).
    pub user: Option<String>,
    /// The socket's group (default: dvipd's group).
    pub group: Option<String>,
}

/// The local API socket's mode when none is written: its owner and group may connect.
pub const API_SOCKET_MODE_DEFAULT: u32 = 0o660;

/// The replicated data sets dvip acts on (`type`, or `class` in 3.x): the replica's kinds of
/// key, and caches.
pub(crate) fn replicate_types() -> Vec<&'static str> {
    dvip_replicate::Kind::ALL
        .iter()
        .map(|k| k.type_name())
        .chain([dvip_replicate::CACHE_TYPE])
        .collect()
}

/// Momentum's other data sets, which dvip reads and does not replicate.
pub(crate) const REPLICATE_TYPES_MTA: &[&str] = &[
    "outbound_binding_domains",
    "obtm",
    "obtc",
    "metrics",
    "eccmgr_metrics",
];

/// Both sides of a follow, for building [`Follow`] in one place.
pub(crate) fn follow(target: &str, address: IpAddr) -> Follow {
    Follow {
        target: target.to_owned(),
        address,
    }
}
