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
            let answer = self.answer_remote(inner, settings).await;
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
        };
        if let Err(e) = control.send(&message.encode()) {
            warn!("cannot broadcast: {e}");
            // Nobody will answer; the deadline reports every node as silent.
        }
    }

    /// A control group view or message.
    pub(super) async fn control_event(&mut self, event: BusEvent, settings: &Settings) {
        match event {
            BusEvent::View { members } => {
                self.control_members = self.member_names(&members);
                self.broadcasts.left(&self.control_members);
            }
            BusEvent::Message { bytes, .. } => match ControlMessage::decode(&bytes) {
                Some(ControlMessage::Request {
                    origin,
                    id,
                    request,
                }) => {
                    info!(%origin, id, command = request.name(), "broadcast request");
                    let reply = broadcast::fit(self.answer_remote(request, settings).await);
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

    /// Runs a request another node (or this one) broadcast, only if it may be broadcast
    /// (a node of another version could send anything); the reply line's JSON.
    async fn answer_remote(&mut self, request: Request, settings: &Settings) -> serde_json::Value {
        let answer = match request.may_broadcast() {
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
