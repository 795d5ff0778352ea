//! What the daemon tells operators: console replies, the event stream, errors.
//!
//! Owns the shape of `show`, `info` and the other reports and of every event line. It must
//! not change state: a command that acts goes to the core.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dvip_core::Event;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use super::{Bus, Daemon, Settings};
use crate::console::{self, Request};

impl Daemon {
    /// Sends an event to console clients that follow the stream.
    pub(super) fn emit(&self, line: Value) {
        self.emit_at(line, console::now_ms());
    }

    /// Sends an event that happened at `at_ms` (ms since the epoch).
    pub(super) fn emit_at(&self, mut line: Value, at_ms: u64) {
        if self.events.receiver_count() > 0 {
            line["at_ms"] = at_ms.into();
            let _ = self.events.send(line.to_string());
        }
    }

    /// Reports an error to the log and the event stream.
    pub(super) fn error(
        &self,
        kind: &'static str,
        address: Option<IpAddr>,
        what: &str,
        e: &dyn std::fmt::Display,
    ) {
        self.metrics.error(kind);
        match address {
            Some(address) => error!(%address, "{what}: {e}"),
            None => error!("{what}: {e}"),
        }
        self.emit(json!({"event": "error", "address": address, "error": format!("{what}: {e}")}));
    }

    /// The configuration part of `show`: where it came from and how long it has stood.
    pub(super) fn config_report(&self) -> Value {
        json!({
            "addresses": self.config.addresses.len(),
            "stable_ms": u64::try_from(self.config_loaded.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The reply to `info`.
    pub(super) fn info(&self, settings: &Settings) -> Value {
        let forwards: Vec<String> = self
            .forwards
            .running()
            .map(|(at, route)| format!("{at} -> {}", route.backend))
            .collect();
        json!({
            "ok": true,
            "node": self.name,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "config_file": settings.config,
            "config": self.config_report(),
            "bus": match &self.bus {
                Bus::Standalone(_) => json!({"kind": "standalone"}),
                Bus::Corosync { bus, group, .. } => json!({
                    "kind": "corosync",
                    "group": group,
                    "joined": bus.is_some(),
                }),
            },
            "address_lifetime_s": self.plumber.lifetime().as_secs(),
            "holders": self.plumber.holders(),
            "held_on_holders": self.plumber.on_holders(),
            "guardian_pid": self.guardian.as_ref().map(crate::guardian::Guardian::pid),
            "arp_all_hosts": self.config.arp_all_hosts,
            "hook": self.config.hook,
            "held": self.plumbed.len(),
            "not_plumbed": self.node.unplumbed(),
            "given_up_interfaces": self.node.given_up(),
            "interfaces_down": self
                .links
                .iter()
                .filter(|(name, usable)| !**usable && self.uses(name))
                .map(|(name, _)| name)
                .collect::<Vec<_>>(),
            "forwarding": forwards,
            "socket": settings.socket,
        })
    }

    /// One line for `systemctl status`: what the node holds and the view it is in.
    pub(super) fn status_line(&self) -> String {
        let joined = if self.waiting_for_bus() {
            " (waiting for corosync: nothing held)"
        } else {
            ""
        };
        format!(
            "holding {} of {} addresses, view of {}{}{joined}",
            self.node.plumbed().len(),
            self.config.addresses.len(),
            self.node.members().len(),
            if self.node.is_standby() {
                ", standby"
            } else {
                ""
            },
        )
    }

    /// Counts an event of the core in the metrics.
    pub(super) fn count(&mut self, event: &Event) {
        let m = &self.metrics;
        match event {
            Event::View { members, .. } => {
                let now: BTreeSet<String> = members.iter().cloned().collect();
                self.lost_member = !self.view_members.is_subset(&now);
                self.view_members = now;
                m.view_changes.inc();
                m.members
                    .set(i64::try_from(members.len()).unwrap_or(i64::MAX));
            }
            Event::Acquired { .. } => {
                m.acquisitions.inc();
                if self.lost_member {
                    m.failovers.inc();
                }
            }
            Event::Released { .. } => {
                m.releases.inc();
            }
            Event::Dropped { why, .. } => m.dropped(why.name()),
            Event::Silent { members, .. } => {
                m.silent.inc_by(members.len() as u64);
            }
            Event::BusStalled { .. } => m.error("bus"),
            Event::GaveUp { .. } => {
                m.plumb_give_ups.inc();
            }
            _ => {}
        }
    }

    /// The reply to a console request that is not a broadcast.
    pub(super) fn answer(&mut self, request: Request, settings: &Settings) -> Value {
        match request {
            Request::Show => {
                let mut status = console::status(&self.node);
                status["config"] = self.config_report();
                status["waiting_for_corosync"] = self.waiting_for_bus().into();
                status
            }
            Request::Info => self.info(settings),
            Request::Arp => self.arp_report(),
            // The console streams events itself, and a broadcast is the loop's to run.
            Request::Events | Request::Broadcast(_) | Request::Reload { .. } => {
                json!({"ok": false, "error": "not a request this node answers by itself"})
            }
            Request::Command(command) => {
                info!(?command, "console command");
                match self.node.handle_command(command) {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                }
            }
        }
    }
}

pub(super) fn log_event(event: &Event) {
    match event {
        Event::Dropped { from, why } => warn!(%from, ?why, "message dropped"),
        Event::Paused { gap } => warn!(?gap, "the clock jumped: addresses released"),
        Event::Silent { members, .. } => {
            warn!(
                ?members,
                "no State from these members in time: planned around as silent"
            );
        }
        Event::BusStalled { waited } => {
            error!(?waited, "corosync no longer carries this node's messages: every address released until it does again");
        }
        Event::PlumbFailed { address, failures } => {
            warn!(%address, failures, "held but not plumbed: trying again");
        }
        Event::GaveUp { address, interface } => {
            error!(
                %address,
                %interface,
                "could not plumb within the deadline: released, and the interface's addresses \
                 are no longer offered until it comes up (or the configuration is reloaded)"
            );
        }
        other => info!(?other, "event"),
    }
}

/// A core event as the console streams it: `{"event": ..., ...}`; [`Daemon::emit`] adds
/// `at_ms`.
pub(super) fn event_json(event: &Event) -> Option<Value> {
    let value = match event {
        Event::View { view_id, members } => {
            json!({"event": "view", "view_id": view_id, "members": members})
        }
        Event::Planned { view_id } => json!({"event": "planned", "view_id": view_id}),
        Event::Matured { view_id } => json!({"event": "matured", "view_id": view_id}),
        Event::Acquired { address } => json!({"event": "acquire", "address": address}),
        Event::Released { address } => json!({"event": "release", "address": address}),
        Event::Dropped { from, why } => {
            json!({"event": "dropped", "from": from, "reason": why.name(), "why": format!("{why:?}")})
        }
        Event::Paused { gap } => {
            json!({"event": "paused", "gap_ms": u64::try_from(gap.as_millis()).unwrap_or(u64::MAX)})
        }
        Event::Silent { view_id, members } => {
            json!({"event": "silent", "view_id": view_id, "members": members})
        }
        Event::BusStalled { waited } => {
            json!({"event": "bus_stalled", "waited_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)})
        }
        Event::PlumbFailed { address, failures } => {
            json!({"event": "plumb_failed", "address": address, "failures": failures})
        }
        Event::GaveUp { address, interface } => {
            json!({"event": "gave_up", "address": address, "interface": interface})
        }
        _ => return None,
    };
    Some(value)
}
