//! Broadcast console commands: one operator request run on every node, replies gathered per
//! node.
//!
//! Owns the control group's message format and the bookkeeping of broadcasts in flight: who
//! is expected to answer, who did, and when to give up on the rest. It must not run a
//! request (the daemon does, like any console request) nor touch the bus.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// How long the origin waits for every node's reply.
pub const BROADCAST_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest reply sent over the control group; a bigger one (a `show` of thousands of
/// addresses) is replaced by an error naming its size.
pub const REPLY_LEN_MAX: usize = 256 * 1024;

/// The console requests a broadcast may carry: reports, and `announce-view` (the spec's
/// `broadcast cluster duravip announce view`). Standby, online and move act on one node or
/// on the cluster already; sending them to every node would be a mistake.
pub const BROADCASTABLE: &[&str] = &["show", "info", "arp-show", "announce-view"];

/// What travels on the control group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Run `request` and reply.
    Request {
        /// The node that asked.
        origin: String,
        /// The origin's number for this broadcast.
        id: u64,
        /// The console request, as a client sent it.
        request: Value,
    },
    /// One node's reply.
    Reply {
        /// The node that asked.
        origin: String,
        /// The origin's number for the broadcast.
        id: u64,
        /// The node that answers.
        node: String,
        /// Its reply.
        reply: Value,
    },
}

impl ControlMessage {
    /// The bytes on the bus.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for bytes that are not a control message (they are ignored).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The inner request of a broadcast, checked: `{"command": "broadcast", "request": {...}}`.
pub fn inner_request(request: &Value) -> Result<Value, String> {
    let inner = request
        .get("request")
        .filter(|r| r.is_object())
        .ok_or("broadcast needs a \"request\" object")?;
    let command = inner["command"].as_str().unwrap_or_default();
    if BROADCASTABLE.contains(&command) {
        Ok(inner.clone())
    } else {
        Err(format!(
            "`{command}` cannot be broadcast; these can: {}",
            BROADCASTABLE.join(", ")
        ))
    }
}

/// A reply made small enough for the control group.
pub fn fit(reply: Value) -> Value {
    let len = reply.to_string().len();
    if len <= REPLY_LEN_MAX {
        reply
    } else {
        json!({"ok": false, "error": format!("the reply is {len} bytes, too large for the control group; run the command on that node")})
    }
}

struct InFlight {
    answer: oneshot::Sender<Value>,
    expected: BTreeSet<String>,
    replies: BTreeMap<String, Value>,
    deadline: Instant,
}

/// Broadcasts this node started and has not answered yet.
#[derive(Default)]
pub struct Broadcasts {
    next_id: u64,
    in_flight: BTreeMap<u64, InFlight>,
}

impl Broadcasts {
    /// Registers a broadcast expecting replies from `expected`; returns its id.
    pub fn start(
        &mut self,
        expected: BTreeSet<String>,
        answer: oneshot::Sender<Value>,
        now: Instant,
    ) -> u64 {
        self.next_id += 1;
        self.in_flight.insert(
            self.next_id,
            InFlight {
                answer,
                expected,
                replies: BTreeMap::new(),
                deadline: now + BROADCAST_TIMEOUT,
            },
        );
        self.next_id
    }

    /// Records `node`'s reply; answers the client once every expected node replied.
    pub fn reply(&mut self, id: u64, node: String, reply: Value) {
        let Some(flight) = self.in_flight.get_mut(&id) else {
            return;
        };
        flight.replies.insert(node, reply);
        if flight
            .expected
            .iter()
            .all(|n| flight.replies.contains_key(n))
        {
            if let Some(flight) = self.in_flight.remove(&id) {
                finish(flight);
            }
        }
    }

    /// A node left the control group: stop waiting for it.
    pub fn left(&mut self, members: &BTreeSet<String>) {
        let done: Vec<u64> = self
            .in_flight
            .iter_mut()
            .filter_map(|(&id, f)| {
                f.expected
                    .retain(|n| members.contains(n) || f.replies.contains_key(n));
                f.expected
                    .iter()
                    .all(|n| f.replies.contains_key(n))
                    .then_some(id)
            })
            .collect();
        for id in done {
            if let Some(flight) = self.in_flight.remove(&id) {
                finish(flight);
            }
        }
    }

    /// Answers the broadcasts past their deadline with what arrived, naming who did not reply.
    pub fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            if let Some(flight) = self.in_flight.remove(&id) {
                finish(flight);
            }
        }
    }
}

fn finish(flight: InFlight) {
    let missing: Vec<&String> = flight
        .expected
        .iter()
        .filter(|n| !flight.replies.contains_key(*n))
        .collect();
    let _ = flight.answer.send(json!({
        "ok": missing.is_empty(),
        "replies": flight.replies,
        "missing": missing,
        "error": (!missing.is_empty()).then(|| format!("no reply within {} s from {}", BROADCAST_TIMEOUT.as_secs(), missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_broadcast_answers_when_every_node_replied() {
        let mut b = Broadcasts::default();
        let (tx, mut rx) = oneshot::channel();
        let id = b.start(names(&["n1", "n2"]), tx, Instant::now());
        b.reply(id, "n1".into(), json!({"ok": true}));
        assert!(rx.try_recv().is_err(), "still waiting for n2");
        b.reply(id, "n2".into(), json!({"ok": true, "x": 1}));
        let answer = rx.try_recv().expect("answered");
        assert_eq!(answer["ok"], true);
        assert_eq!(answer["replies"]["n2"]["x"], 1);
        assert_eq!(answer["missing"], json!([]));
    }

    #[test]
    fn a_silent_node_is_named_at_the_deadline_and_a_departed_one_is_not_awaited() {
        let mut b = Broadcasts::default();
        let start = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        let id = b.start(names(&["n1", "n2", "n3"]), tx, start);
        b.reply(id, "n1".into(), json!({"ok": true}));
        b.left(&names(&["n1", "n2"]));
        b.expire(start + BROADCAST_TIMEOUT / 2);
        assert!(rx.try_recv().is_err(), "n2 may still answer");
        b.expire(start + BROADCAST_TIMEOUT);
        let answer = rx.try_recv().expect("answered at the deadline");
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["missing"], json!(["n2"]));
        assert!(answer["error"].as_str().unwrap().contains("n2"));
    }

    #[test]
    fn only_reports_and_announce_view_are_broadcast() {
        let ok = json!({"command": "broadcast", "request": {"command": "announce-view"}});
        assert_eq!(inner_request(&ok).unwrap()["command"], "announce-view");
        let standby = json!({"command": "broadcast", "request": {"command": "standby"}});
        assert!(inner_request(&standby)
            .unwrap_err()
            .contains("cannot be broadcast"));
        assert!(inner_request(&json!({"command": "broadcast"})).is_err());
    }

    #[test]
    fn control_messages_round_trip_and_garbage_is_ignored() {
        let m = ControlMessage::Reply {
            origin: "n1".into(),
            id: 7,
            node: "n2".into(),
            reply: json!({"ok": true}),
        };
        assert_eq!(ControlMessage::decode(&m.encode()), Some(m));
        assert_eq!(ControlMessage::decode(b"DV\x00\x01junk"), None);
    }
}
