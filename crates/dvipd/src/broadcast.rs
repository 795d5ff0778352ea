//! Broadcast console commands: one operator request run on every node, replies gathered per
//! node.
//!
//! Owns the control group's message format and the bookkeeping of broadcasts in flight: who
//! is expected to answer, who did, and when to give up on the rest. It must not run a
//! request (the daemon does, like any console request) nor touch the bus.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dvip_console::{Answer, ConsoleError, ErrorKind, Gathered, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::console::Reply;

/// How long the origin waits for every node's reply.
pub const BROADCAST_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest reply sent over the control group; a bigger one (a `show` of thousands of
/// addresses) is replaced by an error naming its size.
pub const REPLY_LEN_MAX: usize = 256 * 1024;

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
        /// The console request: one of [`Request::BROADCASTABLE`], or, for the node named
        /// in `to` alone, what [`Request::for_another`] hands on.
        request: Request,
        /// The one node that runs it; `None`: every node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// One node's reply.
    Reply {
        /// The node that asked.
        origin: String,
        /// The origin's number for the broadcast.
        id: u64,
        /// The node that answers.
        node: String,
        /// Its reply line's JSON.
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

/// A reply made small enough for the control group.
pub fn fit(reply: Value) -> Value {
    let len = reply.to_string().len();
    if len <= REPLY_LEN_MAX {
        reply
    } else {
        ConsoleError::new(
            ErrorKind::Unavailable,
            format!("the reply is {len} bytes, too large for the control group; run the command on that node"),
        )
        .to_json()
    }
}

struct InFlight {
    answer: oneshot::Sender<Reply>,
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
        answer: oneshot::Sender<Reply>,
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

/// Answers with every reply that came; the client sees who is missing and decides.
fn finish(flight: InFlight) {
    let missing = flight
        .expected
        .iter()
        .filter(|n| !flight.replies.contains_key(*n))
        .cloned()
        .collect();
    let _ = flight.answer.send(Ok(Answer::Gathered(Gathered {
        replies: flight.replies,
        missing,
    })));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn gathered(rx: &mut oneshot::Receiver<Reply>) -> Gathered {
        match rx.try_recv().expect("answered") {
            Ok(Answer::Gathered(g)) => g,
            other => panic!("not a gathering: {other:?}"),
        }
    }

    #[test]
    fn a_broadcast_answers_when_every_node_replied() {
        let mut b = Broadcasts::default();
        let (tx, mut rx) = oneshot::channel();
        let id = b.start(names(&["n1", "n2"]), tx, Instant::now());
        b.reply(id, "n1".into(), json!({"ok": true}));
        assert!(rx.try_recv().is_err(), "still waiting for n2");
        b.reply(id, "n2".into(), json!({"ok": true, "x": 1}));
        let answer = gathered(&mut rx);
        assert_eq!(answer.replies["n2"]["x"], 1);
        assert!(answer.missing.is_empty());
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
        let answer = gathered(&mut rx);
        assert_eq!(answer.missing, ["n2"]);
        assert!(answer.replies.contains_key("n1"));
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
        let asked = ControlMessage::Request {
            origin: "n1".into(),
            id: 8,
            request: Request::ArpShow,
            to: None,
        };
        assert_eq!(ControlMessage::decode(&asked.encode()), Some(asked));
        let asked = ControlMessage::Request {
            origin: "n1".into(),
            id: 9,
            request: Request::Standby { node: None },
            to: Some("n3".into()),
        };
        assert_eq!(ControlMessage::decode(&asked.encode()), Some(asked));
        assert_eq!(ControlMessage::decode(b"DV\x00\x01junk"), None);
    }
}
