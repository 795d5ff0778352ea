//! What is counted: one client address, one destination address, one destination domain
//! (each optionally per binding group), or one named throttle.
//!
//! Owns the keys' order, which makes every address of a prefix one range, and the kinds that
//! the configuration turns sharing on for. It must not count.

use std::net::IpAddr;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// One thing counted. Ordered by kind, then group, then address: the keys of one CIDR prefix
/// are one range of a sorted map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// Inbound connections from a client address (`inbound_cidr`).
    Inbound(IpAddr),
    /// Outbound connections to a destination address (`outbound_cidr`): `group: None` counts
    /// every binding group's, `Some` one group's.
    Outbound {
        group: Option<String>,
        address: IpAddr,
    },
    /// Outbound connections to a destination domain (`outbound_domains`): `group: None`
    /// counts every binding group's, `Some` one group's.
    Domain {
        group: Option<String>,
        domain: String,
    },
    /// Hits of a named throttle shared by the cluster (`N/secs` over the whole fleet).
    Throttle(String),
}

/// The kinds of key, one per replicated data set of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `inbound_cidr`.
    Inbound,
    /// `outbound_cidr`.
    Outbound,
    /// `outbound_domains`.
    Domain,
    /// `shared_named_throttles`.
    Throttle,
}

impl Kind {
    pub const ALL: [Self; 4] = [Self::Inbound, Self::Outbound, Self::Domain, Self::Throttle];

    /// The configuration's name of the data set (`replicate [ type = ... ]`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Inbound => "inbound_cidr",
            Self::Outbound => "outbound_cidr",
            Self::Domain => "outbound_domains",
            Self::Throttle => "shared_named_throttles",
        }
    }

    /// The kind a `type` names, if it is one of these.
    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.type_name().eq_ignore_ascii_case(name))
    }

    /// Every key of this kind, as bounds of a sorted map's range.
    pub fn range(self) -> (Bound<Key>, Bound<Key>) {
        let first = |kind: Self| match kind {
            Self::Inbound => Key::Inbound(IpAddr::V4(0.into())),
            Self::Outbound => Key::Outbound {
                group: None,
                address: IpAddr::V4(0.into()),
            },
            Self::Domain => Key::Domain {
                group: None,
                domain: String::new(),
            },
            Self::Throttle => Key::Throttle(String::new()),
        };
        let end = match self {
            Self::Inbound => Bound::Excluded(first(Self::Outbound)),
            Self::Outbound => Bound::Excluded(first(Self::Domain)),
            Self::Domain => Bound::Excluded(first(Self::Throttle)),
            Self::Throttle => Bound::Unbounded,
        };
        (Bound::Included(first(self)), end)
    }
}

impl Key {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Inbound(_) => Kind::Inbound,
            Self::Outbound { .. } => Kind::Outbound,
            Self::Domain { .. } => Kind::Domain,
            Self::Throttle(_) => Kind::Throttle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_kind_s_range_holds_its_keys_and_no_others() {
        let keys: BTreeSet<Key> = [
            Key::Inbound("::1".parse().expect("ip")),
            Key::Inbound("0.0.0.0".parse().expect("ip")),
            Key::Outbound {
                group: Some("g".into()),
                address: "2001:db8::1".parse().expect("ip"),
            },
            Key::Outbound {
                group: None,
                address: "198.51.100.1".parse().expect("ip"),
            },
            Key::Domain {
                group: Some("g".into()),
                domain: "example.com".into(),
            },
            Key::Domain {
                group: None,
                domain: String::new(),
            },
            Key::Throttle(String::new()),
            Key::Throttle("bulk".into()),
        ]
        .into();
        for kind in Kind::ALL {
            let inside: Vec<&Key> = keys.range(kind.range()).collect();
            assert_eq!(inside.len(), 2, "{kind:?}: {inside:?}");
            assert!(inside.iter().all(|k| k.kind() == kind));
            assert_eq!(Kind::from_type_name(kind.type_name()), Some(kind));
        }
    }
}
