//! What is counted: one client address, one destination address, one destination domain
//! (each optionally per binding group), or one named throttle.
//!
//! Owns the keys' order, which makes every address of a prefix one range. It must not count.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One thing counted. Ordered by kind, then group, then address: the keys of one CIDR prefix
/// are one range of a sorted map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// Inbound connections from a client address (`inbound_cidr`).
    Inbound(IpAddr),
    /// Outbound connections to a destination address (`outbound_cidr`), per binding group.
    Outbound {
        group: Option<String>,
        address: IpAddr,
    },
    /// Outbound connections to a destination domain (`outbound_domains`), per binding group.
    Domain {
        group: Option<String>,
        domain: String,
    },
    /// Hits of a named throttle shared by the cluster (`N/secs` over the whole fleet).
    Throttle(String),
}
