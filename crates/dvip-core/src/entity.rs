//! Entities: the addresses dvip manages and what one node's configuration says about each.
//!
//! Owns the shape of a managed address. It must not know how a configuration file is written
//! (that is `dvip-config`) nor who owns an address (that is the election).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The most DuraVIP addresses one node may manage.
///
/// Kept from the product dvip re-creates; beyond it the kernel's per-interface address list
/// makes plumbing slow enough to hurt failover.
pub const DURAVIP_ADDRESS_COUNT_MAX: usize = 10_240;

/// One DuraVIP address as seen by one node's configuration.
///
/// The address, not the binding or the listener, is the unit of ownership: every binding name
/// and listener port on it moves with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedAddress {
    /// The virtual address itself.
    pub address: IpAddr,
    /// Names of the bindings (outbound sending identities) on this address, sorted.
    pub bindings: BTreeSet<String>,
    /// Ports of the listeners (inbound services) on this address, sorted.
    pub listener_ports: BTreeSet<u16>,
    /// The node this configuration names as the preferred owner, if any.
    pub preference: Option<String>,
    /// The binding this address follows, if its listeners follow one.
    pub follow: Option<Follow>,
    /// Where the address goes when this node plumbs it.
    #[serde(flatten)]
    pub plumb: PlumbHint,
}

/// A listener address that goes wherever a binding goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    /// The follow target as the configuration wrote it: a binding name or an address.
    pub target: String,
    /// The address of the binding it names, which decides where the follower lives.
    pub address: IpAddr,
}

/// How to put an address on this node: which interface and which prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlumbHint {
    /// The interface that receives the address.
    pub interface: String,
    /// The prefix length to plumb it with (32 or 128 in almost every deployment).
    pub cidrmask: u8,
}

impl ManagedAddress {
    /// A follow group is led by a binding address; a follower belongs to its leader's group.
    pub fn group_leader(&self) -> IpAddr {
        self.follow.as_ref().map_or(self.address, |f| f.address)
    }
}

/// A node's name in the cluster.
pub type NodeName = String;

/// What one node announces about one address: the part of its configuration the election
/// compares across nodes. Plumbing hints stay local; they never cross the wire.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// The address.
    pub address: IpAddr,
    /// Binding names on it.
    pub bindings: BTreeSet<String>,
    /// Listener ports on it.
    pub listener_ports: BTreeSet<u16>,
    /// The preferred owner this node's configuration names.
    pub preference: Option<NodeName>,
    /// The leader address this address follows, if any.
    pub follow: Option<IpAddr>,
}

impl From<&ManagedAddress> for Entity {
    fn from(m: &ManagedAddress) -> Self {
        Self {
            address: m.address,
            bindings: m.bindings.clone(),
            listener_ports: m.listener_ports.clone(),
            preference: m.preference.clone(),
            follow: m.follow.as_ref().map(|f| f.address),
        }
    }
}

impl Entity {
    /// Whether two nodes describe the same services on the address.
    pub fn same_services(&self, other: &Self) -> bool {
        self.bindings == other.bindings && self.listener_ports == other.listener_ports
    }
}
