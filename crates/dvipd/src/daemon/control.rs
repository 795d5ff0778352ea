//! The control group: console commands broadcast to every node.
//!
//! Owns the daemon's side of `dvip broadcast`: joining `control_group` next to the cluster
//! group, sending a request, running the requests other nodes broadcast, and sending the
//! replies back. Bookkeeping of what is in flight is [`crate::broadcast`]; this file only
//! wires it to the bus and the console.

use std::collections::BTreeSet;
use std::time::Instant;

use dvip_console::{Answer, ConsoleError, ErrorKind, Gathered, Request};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Bus, Daemon, Settings};
use crate::broadcast::{self, ControlMessage};
use crate::console::{reply_line, Reply};
use crate::corosync::{BusEvent, CorosyncBus};

impl Daemon {
    /// Runs `inner` on every node in the control group and answers `reply` with each node's
    /// reply (or, past the deadline, with who did not answer).
    pub(super) async fn broadcast(
        &mut self,
        inner: Request,
        reply: oneshot::Sender<Reply>,
        settings: &Settings,
    ) {
        if matches!(self.bus, Bus::Standalone(_)) {
            let answer = self.answer_remote(inner, false, settings).await;
            let _ = reply.send(Ok(Answer::Gathered(Gathered {
                replies: [(self.name.clone(), answer)].into(),
                missing: Vec::new(),
            })));
            return;
        }
        let Some(control) = &mut self.control else {
            let _ = reply.send(Err(ConsoleError::new(
                ErrorKind::Unavailable,
                format!(
                    "not joined to the control group `{}` (is corosync running?)",
                    self.config.control_group
                ),
            )));
            return;
        };
        let mut expected = self.control_members.clone();
        expected.insert(self.name.clone());
        let id = self.broadcasts.start(expected, reply, Instant::now());
        let message = ControlMessage::Request {
            origin: self.name.clone(),
            id,
            request: inner,
            to: None,
        };
        if let Err(e) = control.send(&message.encode()) {
            warn!("cannot broadcast: {e}");
            // Nobody will answer; the deadline reports every node as silent.
        }
    }

    /// Runs `request` on `node` alone, over the control group, and answers `reply` with that
    /// node's own reply.
    pub(super) fn send_to(
        &mut self,
        node: String,
        request: Request,
        reply: oneshot::Sender<Reply>,
    ) {
        let unavailable = |why: String| Err(ConsoleError::new(ErrorKind::Unavailable, why));
        let Some(control) = &mut self.control else {
            let _ = reply.send(unavailable(format!(
                "not joined to the control group `{}` (is corosync running?)",
                self.config.control_group
            )));
            return;
        };
        if !self.control_members.contains(&node) {
            let _ = reply.send(unavailable(format!(
                "{node} is not in the control group: is its dvipd running? (members: {})",
                self.control_members
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            return;
        }
        let (gathered, answer) = oneshot::channel();
        let id = self
            .broadcasts
            .start([node.clone()].into(), gathered, Instant::now());
        let message = ControlMessage::Request {
            origin: self.name.clone(),
            id,
            request: request.clone(),
            to: Some(node.clone()),
        };
        if let Err(e) = control.send(&message.encode()) {
            warn!("cannot send to {node}: {e}");
        }
        // The node's reply is the client's reply.
        tokio::spawn(async move {
            let own = match answer.await {
                Ok(Ok(Answer::Gathered(g))) => match g.replies.get(&node) {
                    Some(value) => Answer::from_json(&request, value.clone()),
                    None => unavailable(format!(
                        "{node} did not answer within {} s",
                        broadcast::BROADCAST_TIMEOUT.as_secs()
                    )),
                },
                Ok(other) => other,
                Err(_) => unavailable("dvipd is stopping".to_owned()),
            };
            let _ = reply.send(own);
        });
    }

    /// A control group view or message.
    pub(super) async fn control_event(&mut self, event: BusEvent, settings: &Settings) {
        match event {
            BusEvent::View { members, .. } => {
                self.control_members = self.member_names(&members);
                self.broadcasts.left(&self.control_members);
            }
            BusEvent::Message { bytes, .. } => match ControlMessage::decode(&bytes) {
                Some(ControlMessage::Request { to: Some(to), .. }) if to != self.name => {}
                Some(ControlMessage::Request {
                    origin,
                    id,
                    request,
                    to,
                }) => {
                    info!(%origin, id, command = request.name(), "request from the control group");
                    let reply =
                        broadcast::fit(self.answer_remote(request, to.is_some(), settings).await);
                    let message = ControlMessage::Reply {
                        origin,
                        id,
                        node: self.name.clone(),
                        reply,
                    };
                    if let Some(control) = &mut self.control {
                        if let Err(e) = control.send(&message.encode()) {
                            warn!("cannot send a broadcast reply: {e}");
                        }
                    }
                }
                Some(ControlMessage::Reply {
                    origin,
                    id,
                    node,
                    reply,
                }) if origin == self.name => self.broadcasts.reply(id, node, reply),
                Some(ControlMessage::Reply { .. }) => {}
                None => warn!("ignored a control group message that is not one"),
            },
            BusEvent::Dropped { why, .. } => {
                warn!("dropped a control group fragment: {why}");
                self.metrics.dropped("fragment");
            }
            BusEvent::Lost(why) => {
                warn!("lost the control group ({why}); joining again");
                self.control = None;
                self.control_members = BTreeSet::new();
            }
        }
    }

    /// Runs a request another node (or this one) sent over the control group, only if it
    /// may be (a node of another version could send anything): a broadcast's, or one meant
    /// for this node alone (`for_me`); the reply line's JSON.
    async fn answer_remote(
        &mut self,
        request: Request,
        for_me: bool,
        settings: &Settings,
    ) -> serde_json::Value {
        let allowed = if for_me {
            request.may_run_for_another()
        } else {
            request.may_broadcast()
        };
        let answer = match allowed {
            Ok(()) => self.answer(request, settings),
            Err(e) => Err(e),
        };
        self.drive().await;
        serde_json::from_str(&reply_line(&answer)).expect("a reply line is JSON")
    }

    /// Joins the control group again after losing it (or when it failed at start).
    pub(super) fn rejoin_control(&mut self) {
        if self.control.is_some() || !matches!(self.bus, Bus::Corosync { bus: Some(_), .. }) {
            return;
        }
        match CorosyncBus::join(&self.config.control_group) {
            Ok(joined) => self.control = Some(joined),
            Err(e) => warn!("cannot join the control group: {e}"),
        }
    }
}

/// The control group's next event, or never when not joined.
pub(super) async fn next_control_event(control: &mut Option<CorosyncBus>) -> Option<BusEvent> {
    match control {
        Some(bus) => bus.next().await,
        None => std::future::pending().await,
    }
}
