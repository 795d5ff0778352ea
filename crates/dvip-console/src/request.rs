//! What an operator can ask a dvipd: one enum, and its line on the wire.
//!
//! Owns the vocabulary of console commands, which of them may be broadcast, and the
//! versioned JSON line a request travels as. It must not answer a request (dvipd does) nor
//! know how a reply is shown (the CLI does).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{ConsoleError, ErrorKind};

/// The protocol version this build speaks. A request without `"v"` is version 1, so scripts
/// written against the first protocol keep working.
pub const PROTOCOL_VERSION: u32 = 1;

/// A console request. Adding one is a variant here, a handler in dvipd and a subcommand in
/// `dvip`; every `match` on it says where else it must be taught.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// The view, the plan and what this node holds.
    Show,
    /// The whole cluster on one screen: every node, holdings, marks and their reasons, the
    /// last ownership changes.
    Status,
    /// The daemon itself: version, configuration, bus, uptime.
    Info,
    /// How each held address was announced.
    ArpShow,
    /// Every event from now on, one line each, until the client goes away.
    Events,
    /// Every member announces again and the cluster re-plans.
    AnnounceView,
    /// Drain a node (this one, or the one named) for maintenance: its addresses go to the
    /// others, and it stays drained across a restart of its dvipd until put online.
    Standby {
        /// The node, when not the one asked; reached over the control group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// Undo `Standby`.
    Online {
        /// The node, when not the one asked; reached over the control group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// Move an address to a node until the move is cleared.
    Move {
        /// The address.
        address: IpAddr,
        /// The node that should own it.
        to: String,
    },
    /// Clear an address's standing move: the election places it again.
    MoveClear {
        /// The address.
        address: IpAddr,
    },
    /// Read the configuration again, as SIGHUP does.
    Reload {
        /// Apply a configuration that defines no address although some run now.
        #[serde(default)]
        force: bool,
    },
    /// The cluster's connection counts under a prefix, grouped by prefix length
    /// (`cidr_server`'s `count for PREFIX in inbound ...`).
    Cidr {
        /// What to count and how to show it.
        query: dvip_replicate::PrefixQuery,
    },
    /// Outbound connections open and made lately to each domain, the cluster's (or one
    /// node's), in total or for one binding group.
    Domains {
        /// One binding group's connections (`None`: every binding's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// One node's connections instead of the cluster's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The window of the recent counts, in seconds.
        window_s: u64,
    },
    /// The throttles asked so far and their hits in their windows.
    Throttles,
    /// The named caches and how many keys each holds.
    Caches,
    /// One key of a cache.
    CacheGet { cache: String, key: String },
    /// Writes one key of a cache, for the whole cluster.
    CacheSet {
        cache: String,
        key: String,
        value: String,
        /// Seconds until it expires (`None`: never).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_s: Option<u64>,
    },
    /// Deletes one key of a cache, for the whole cluster.
    CacheDelete { cache: String, key: String },
    /// Run `request` on every node of the control group and gather the replies.
    Broadcast {
        /// What each node runs: one of [`Request::BROADCASTABLE`].
        request: Box<Self>,
    },
}

impl Request {
    /// The requests a broadcast may carry: reports, and `announce-view` (the spec's
    /// `broadcast cluster duravip announce view`). Standby, online and move act on one node or
    /// on the cluster already; sending them to every node would be a mistake.
    pub const BROADCASTABLE: &'static [Self] =
        &[Self::Show, Self::Info, Self::ArpShow, Self::AnnounceView];

    /// The command's name on the wire: `show`, `arp-show`, `move`...
    pub fn name(&self) -> &'static str {
        match self {
            Self::Show => "show",
            Self::Status => "status",
            Self::Info => "info",
            Self::ArpShow => "arp-show",
            Self::Events => "events",
            Self::AnnounceView => "announce-view",
            Self::Standby { .. } => "standby",
            Self::Online { .. } => "online",
            Self::Move { .. } => "move",
            Self::MoveClear { .. } => "move-clear",
            Self::Reload { .. } => "reload",
            Self::Cidr { .. } => "cidr",
            Self::Domains { .. } => "domains",
            Self::Throttles => "throttles",
            Self::Caches => "caches",
            Self::CacheGet { .. } => "cache-get",
            Self::CacheSet { .. } => "cache-set",
            Self::CacheDelete { .. } => "cache-delete",
            Self::Broadcast { .. } => "broadcast",
        }
    }

    /// Whether it changes the cluster: those are logged with who asked.
    pub fn changes_something(&self) -> bool {
        match self {
            Self::Show
            | Self::Status
            | Self::Info
            | Self::ArpShow
            | Self::Events
            | Self::Cidr { .. }
            | Self::Domains { .. }
            | Self::Throttles
            | Self::Caches
            | Self::CacheGet { .. } => false,
            Self::AnnounceView
            | Self::Standby { .. }
            | Self::Online { .. }
            | Self::Move { .. }
            | Self::MoveClear { .. }
            | Self::Reload { .. }
            | Self::CacheSet { .. }
            | Self::CacheDelete { .. } => true,
            Self::Broadcast { request } => request.changes_something(),
        }
    }

    /// The node a request is meant for when it is not the node asked (`dvip standby node3`
    /// from node1), and the request that node runs: the same, meant for itself.
    pub fn for_another(&self, me: &str) -> Option<(&str, Self)> {
        match self {
            Self::Standby { node: Some(n) } if n != me => Some((n, Self::Standby { node: None })),
            Self::Online { node: Some(n) } if n != me => Some((n, Self::Online { node: None })),
            _ => None,
        }
    }

    /// Refuses what a node may not run for another node that sent it over the control group:
    /// anything but what [`Request::BROADCASTABLE`] lists or what [`Request::for_another`]
    /// hands on.
    pub fn may_run_for_another(&self) -> Result<(), ConsoleError> {
        match self {
            Self::Standby { node: None } | Self::Online { node: None } => Ok(()),
            other => other.may_broadcast(),
        }
    }

    /// Refuses a request that may not be broadcast, naming those that may.
    pub fn may_broadcast(&self) -> Result<(), ConsoleError> {
        if Self::BROADCASTABLE.contains(self) {
            return Ok(());
        }
        let names: Vec<&str> = Self::BROADCASTABLE.iter().map(Self::name).collect();
        Err(ConsoleError::new(
            ErrorKind::NotBroadcastable,
            format!(
                "`{}` cannot be broadcast; these can: {}",
                self.name(),
                names.join(", ")
            ),
        ))
    }

    /// A broadcast of `request`, refused unless it may be broadcast.
    pub fn broadcast(request: Self) -> Result<Self, ConsoleError> {
        request.may_broadcast()?;
        Ok(Self::Broadcast {
            request: Box::new(request),
        })
    }

    /// The request as one line on the wire, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(&Envelope {
            v: PROTOCOL_VERSION,
            request: self.clone(),
        })
        .expect("a request holds only strings, addresses and flags");
        line.push('\n');
        line
    }

    /// Reads a request line; a broadcast of what may not be broadcast is refused here, so no
    /// node ever runs one.
    pub fn from_line(line: &str) -> Result<Self, ConsoleError> {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            ConsoleError::new(ErrorKind::BadRequest, format!("not a JSON request: {e}"))
        })?;
        let version = match value.get("v") {
            None => 1,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ConsoleError::new(ErrorKind::BadRequest, "\"v\" is not a number"))?,
        };
        if version != u64::from(PROTOCOL_VERSION) {
            return Err(ConsoleError::new(
                ErrorKind::Version,
                format!(
                    "this dvipd speaks console protocol {PROTOCOL_VERSION}, the request is version {version}"
                ),
            ));
        }
        if value
            .get("command")
            .and_then(serde_json::Value::as_str)
            .is_none()
        {
            return Err(ConsoleError::new(
                ErrorKind::BadRequest,
                "the request has no \"command\"",
            ));
        }
        let request: Self = serde_json::from_value(value).map_err(|e| {
            ConsoleError::new(
                ErrorKind::BadRequest,
                e.to_string().replace("variant", "command"),
            )
        })?;
        match request {
            Self::Broadcast { request } => Self::broadcast(*request),
            other => Ok(other),
        }
    }
}

/// A request on the wire: the version beside the command's fields.
#[derive(Serialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    request: Request,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_survives_its_line() {
        let all = [
            Request::Show,
            Request::Status,
            Request::Info,
            Request::ArpShow,
            Request::Events,
            Request::AnnounceView,
            Request::Standby { node: None },
            Request::Online {
                node: Some("node3".into()),
            },
            Request::Move {
                address: "198.51.100.1".parse().unwrap(),
                to: "node2".into(),
            },
            Request::Reload { force: true },
            Request::MoveClear {
                address: "198.51.100.1".parse().unwrap(),
            },
            Request::Broadcast {
                request: Box::new(Request::ArpShow),
            },
            Request::Domains {
                group: Some("warm".into()),
                from: None,
                window_s: 60,
            },
            Request::Throttles,
            Request::Caches,
            Request::CacheGet {
                cache: "greylist".into(),
                key: "198.51.100.7".into(),
            },
            Request::CacheSet {
                cache: "greylist".into(),
                key: "198.51.100.7".into(),
                value: "seen".into(),
                ttl_s: Some(300),
            },
            Request::CacheDelete {
                cache: "greylist".into(),
                key: "198.51.100.7".into(),
            },
        ];
        for request in all {
            let line = request.to_line();
            assert!(line.ends_with('\n') && line.contains("\"v\":1"), "{line}");
            assert_eq!(Request::from_line(&line), Ok(request));
        }
    }

    #[test]
    fn the_first_protocols_lines_still_parse() {
        assert_eq!(
            Request::from_line(r#"{"command":"show"}"#),
            Ok(Request::Show)
        );
        assert_eq!(
            Request::from_line(r#"{"command":"reload"}"#),
            Ok(Request::Reload { force: false })
        );
        assert_eq!(
            Request::from_line(r#"{"command":"broadcast","request":{"command":"arp-show"}}"#),
            Ok(Request::Broadcast {
                request: Box::new(Request::ArpShow)
            })
        );
    }

    #[test]
    fn standby_for_another_node_is_handed_on_as_that_node_s_own() {
        let asked = Request::Standby {
            node: Some("node3".into()),
        };
        assert_eq!(
            asked.for_another("node1"),
            Some(("node3", Request::Standby { node: None }))
        );
        assert_eq!(asked.for_another("node3"), None, "node3 runs it itself");
        let (_, handed) = asked.for_another("node1").unwrap();
        assert!(handed.may_run_for_another().is_ok());
        assert!(Request::Reload { force: true }
            .may_run_for_another()
            .is_err());
        assert!(asked.may_run_for_another().is_err(), "no relaying onwards");
    }

    #[test]
    fn mistakes_are_typed_and_say_what_is_wrong() {
        let kind = |line: &str| Request::from_line(line).unwrap_err().kind;
        assert_eq!(kind("show"), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"to":"n2"}"#), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"v":2,"command":"show"}"#), ErrorKind::Version);
        let dance = Request::from_line(r#"{"command":"dance"}"#).unwrap_err();
        assert_eq!(dance.kind, ErrorKind::BadRequest);
        assert!(dance.message.contains("unknown command `dance`"), "{dance}");
        let moved = Request::from_line(r#"{"command":"move","to":"n2"}"#).unwrap_err();
        assert!(moved.message.contains("address"), "{moved}");
        assert_eq!(
            kind(r#"{"command":"broadcast","request":{"command":"standby"}}"#),
            ErrorKind::NotBroadcastable
        );
    }
}
