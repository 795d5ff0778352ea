//! The event stream: what a dvipd did, one typed line per event, in the order it did it.
//!
//! Owns the vocabulary of events and the readable line `dvip events` prints for each. It
//! must not decide when an event happens (dvipd does).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::reply::Mark;

/// One event with when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// When, in ms since the Unix epoch, to line events up across nodes.
    pub at_ms: u64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new view was installed.
    View {
        /// Its id.
        view_id: u64,
        /// Its members.
        members: Vec<String>,
    },
    /// Every member's State is in and the view was planned.
    Planned {
        /// The view.
        view_id: u64,
    },
    /// The view has stood long enough for planned moves.
    Matured {
        /// The view.
        view_id: u64,
    },
    /// This node took an address (the kernel has it).
    Acquire {
        /// The address.
        address: IpAddr,
    },
    /// This node let an address go.
    Release {
        /// The address.
        address: IpAddr,
    },
    /// An acquired address was announced to the link.
    Announce {
        /// The address.
        address: IpAddr,
    },
    /// An address's marks changed.
    Mark {
        /// The address.
        address: IpAddr,
        /// Its marks now.
        marks: Vec<Mark>,
    },
    /// A message from another member was ignored.
    Dropped {
        /// Who sent it.
        from: String,
        /// The kind of problem, for counting.
        reason: String,
        /// The problem in detail.
        why: String,
    },
    /// The clock jumped: the node was paused and let its addresses go.
    Paused {
        /// How long the gap was.
        gap_ms: u64,
    },
    /// Members sent no State in time: planned around as holding nothing.
    Silent {
        /// The view.
        view_id: u64,
        /// The silent members.
        members: Vec<String>,
    },
    /// Members of this node's view name it differently (their messages carry a view id this
    /// node never had); with half the view or more, this node let every address go and left
    /// the view until corosync shows it a new one.
    ViewSplit {
        /// The view, as this node names it.
        view_id: u64,
        /// The members naming it differently.
        members: Vec<String>,
        /// Whether this node stood down.
        stood_down: bool,
    },
    /// corosync stopped carrying this node's messages: every address let go.
    BusStalled {
        /// How long its echo had been out.
        waited_ms: u64,
    },
    /// A held address could not be plumbed; it is retried.
    PlumbFailed {
        /// The address.
        address: IpAddr,
        /// Failures in a row.
        failures: u32,
    },
    /// An address failed to plumb past the deadline: released, its interface given up.
    GaveUp {
        /// The address.
        address: IpAddr,
        /// The interface given up.
        interface: String,
    },
    /// An interface in use went down or came back.
    Link {
        /// The interface.
        interface: String,
        /// Whether it can carry addresses now.
        usable: bool,
    },
    /// An address removed from under dvipd was put back.
    Restored {
        /// The address.
        address: IpAddr,
    },
    /// The acquire or release hook ran.
    Hook {
        /// `acquire` or `release`.
        hook: String,
        /// The address it ran for.
        address: IpAddr,
        /// How long it ran.
        ms: u64,
        /// Whether it exited 0.
        ok: bool,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The configuration was read again.
    Reload {
        /// The addresses it defines, when it was applied.
        addresses: Option<usize>,
        /// Why it was not.
        error: Option<String>,
    },
    /// Something failed.
    Error {
        /// The address concerned.
        address: Option<IpAddr>,
        /// What failed.
        error: String,
    },
    /// dvip's own heartbeats have heard nothing from a member for the detector's
    /// `suspect_after`: this node promised never to renew its lease (docs/leases.md).
    Unheard {
        /// The member.
        node: String,
    },
    /// Every other member has stopped hearing a member: its lease is over, and a takeover of
    /// its addresses is allowed (docs/leases.md).
    TakeoverReady {
        /// The member.
        node: String,
    },
    /// This node's lease lapsed: no majority acknowledged its heartbeats in time, and its
    /// kernel stopped answering for its addresses (docs/leases.md).
    LeaseLost,
    /// This node took its share of a member's addresses when that member's lease ended,
    /// before the bus's view (docs/leases.md).
    TookOver {
        /// The member whose lease ended.
        node: String,
        /// How many addresses this node took.
        addresses: usize,
    },
    /// What this node took from a member that left was told again in the new view: the
    /// first telling went out after corosync's ring broke, so no view delivered it
    /// (docs/leases.md). The addresses stay where they are.
    ToldAgain {
        /// The member whose lease ended.
        node: String,
        /// How many addresses this node keeps.
        addresses: usize,
    },
    /// This client was too slow: events it missed.
    Missed {
        /// How many.
        count: u64,
    },
}

impl Event {
    /// The event's name on the wire: `view`, `acquire`, `gave_up`...
    pub fn name(&self) -> &'static str {
        match self {
            Self::View { .. } => "view",
            Self::Planned { .. } => "planned",
            Self::Matured { .. } => "matured",
            Self::Acquire { .. } => "acquire",
            Self::Release { .. } => "release",
            Self::Announce { .. } => "announce",
            Self::Mark { .. } => "mark",
            Self::Dropped { .. } => "dropped",
            Self::Paused { .. } => "paused",
            Self::Silent { .. } => "silent",
            Self::ViewSplit { .. } => "view_split",
            Self::BusStalled { .. } => "bus_stalled",
            Self::PlumbFailed { .. } => "plumb_failed",
            Self::GaveUp { .. } => "gave_up",
            Self::Link { .. } => "link",
            Self::Restored { .. } => "restored",
            Self::Hook { .. } => "hook",
            Self::Reload { .. } => "reload",
            Self::Error { .. } => "error",
            Self::Unheard { .. } => "unheard",
            Self::TakeoverReady { .. } => "takeover_ready",
            Self::LeaseLost => "lease_lost",
            Self::TookOver { .. } => "took_over",
            Self::ToldAgain { .. } => "told_again",
            Self::Missed { .. } => "missed",
        }
    }

    /// What happened and why, in an operator's words.
    pub fn describe(&self) -> String {
        let list = |names: &[String]| names.join(", ");
        match self {
            Self::View { view_id, members } => {
                format!("view {view_id}: {} members ({})", members.len(), list(members))
            }
            Self::Planned { view_id } => format!("view {view_id} planned: every State is in"),
            Self::Matured { view_id } => {
                format!("view {view_id} matured: planned moves may go ahead")
            }
            Self::Acquire { address } => format!("acquired {address}"),
            Self::Release { address } => format!("released {address}"),
            Self::Announce { address } => format!("announced {address} to the link"),
            Self::Mark { address, marks } => {
                let names: Vec<&str> = marks.iter().map(|m| m.as_str()).collect();
                if names.is_empty() {
                    format!("{address} is no longer marked")
                } else {
                    format!("{address} marked {}", names.join(" "))
                }
            }
            Self::Dropped { from, why, .. } => format!("dropped a message from {from}: {why}"),
            Self::Paused { gap_ms } => {
                format!("paused for {gap_ms} ms: every address let go until the view is known")
            }
            Self::Silent { view_id, members } => format!(
                "view {view_id}: no State in time from {}: planned around as holding nothing",
                list(members)
            ),
            Self::ViewSplit {
                view_id,
                members,
                stood_down,
            } => {
                if *stood_down {
                    format!(
                        "view {view_id}: {} name it differently, half the view or more: every \
                         address let go until corosync shows a new view",
                        list(members)
                    )
                } else {
                    format!(
                        "view {view_id}: {} name it differently and stand down; planned around \
                         as silent meanwhile",
                        list(members)
                    )
                }
            }
            Self::BusStalled { waited_ms } => format!(
                "corosync carried nothing back for {waited_ms} ms: every address let go"
            ),
            Self::PlumbFailed { address, failures } => {
                format!("{address} held but not plumbed ({failures} failures in a row): retrying")
            }
            Self::GaveUp { address, interface } => format!(
                "{address} could not be plumbed in time: released, {interface} given up until it comes back"
            ),
            Self::Link { interface, usable } => {
                if *usable {
                    format!("{interface} is up: its addresses are offered again")
                } else {
                    format!("{interface} is down: its addresses go to other nodes")
                }
            }
            Self::Restored { address } => {
                format!("{address} was removed by someone else: put back")
            }
            Self::Hook {
                hook,
                address,
                ms,
                error,
                ..
            } => match error {
                None => format!("{hook} hook for {address} done in {ms} ms"),
                Some(e) => format!("{hook} hook for {address} FAILED after {ms} ms: {e}"),
            },
            Self::Reload { addresses, error } => match (addresses, error) {
                (_, Some(e)) => format!("reload refused: {e}"),
                (Some(n), None) => format!("configuration reloaded: {n} addresses"),
                (None, None) => "configuration reloaded".to_owned(),
            },
            Self::Error { address, error } => match address {
                Some(a) => format!("error on {a}: {error}"),
                None => format!("error: {error}"),
            },
            Self::Unheard { node } => {
                format!("no heartbeat from {node} for the detector's time: promised never to renew its lease")
            }
            Self::TakeoverReady { node } => format!(
                "every other member stopped hearing {node}: its lease is over and its addresses may be taken"
            ),
            Self::TookOver { node, addresses } => format!(
                "took {addresses} of {node}'s addresses: its lease is over (before the bus's view)"
            ),
            Self::ToldAgain { node, addresses } => format!(
                "told the new view again that this node took {addresses} of {node}'s addresses: the ring broke before the first telling was delivered; they stay here"
            ),
            Self::LeaseLost => "this node's lease lapsed, no majority acknowledged its heartbeats in time: its kernel stopped answering for its addresses".to_owned(),
            Self::Missed { count } => {
                format!("{count} events missed: this client did not keep up")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_wire_names_and_read_back() {
        let line = EventLine {
            event: Event::GaveUp {
                address: "198.51.100.7".parse().unwrap(),
                interface: "eth1".into(),
            },
            at_ms: 42,
        };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["event"], line.event.name());
        assert_eq!(json["at_ms"], 42);
        assert_eq!(serde_json::from_value::<EventLine>(json).unwrap(), line);
        assert!(line.event.describe().contains("eth1 given up"));
    }
}
