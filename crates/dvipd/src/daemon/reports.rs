//! What the daemon tells operators: console replies, the event stream, errors.
//!
//! Owns the shape of `show`, `info` and the other reports and of every event line. It must
//! not change state: a command that acts goes to the core.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dvip_console::{
    Answer, BusStatus, ConfigStatus, ConsoleError, ErrorKind, EventLine, Info, Request,
};
use dvip_core::Event;
use tracing::{error, info, warn};

use super::{Bus, Daemon, Settings};
use crate::console::{self, millis, Reply};

impl Daemon {
    /// Sends an event to console clients that follow the stream.
    pub(super) fn emit(&self, event: dvip_console::Event) {
        self.emit_at(event, console::now_ms());
    }

    /// Sends an event that happened at `at_ms` (ms since the epoch).
    pub(super) fn emit_at(&self, event: dvip_console::Event, at_ms: u64) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(EventLine { event, at_ms });
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
        self.emit(dvip_console::Event::Error {
            address,
            error: format!("{what}: {e}"),
        });
    }

    /// The configuration part of `show`: where it came from and how long it has stood.
    pub(super) fn config_report(&self) -> ConfigStatus {
        ConfigStatus {
            addresses: self.config.addresses.len(),
            stable_ms: millis(self.config_loaded.elapsed()),
        }
    }

    /// What must survive a restart: standby and the standing moves this node knows.
    fn kept(&self) -> crate::kept::Kept {
        crate::kept::Kept {
            node: self.name.clone(),
            standby: self.node.is_standby(),
            moves: self.node.kept_moves().cloned().collect(),
        }
    }

    /// Keeps [`Daemon::kept`] for a restart.
    pub(super) fn keep(&self) {
        if let Err(e) = crate::kept::write(&self.state_dir, &self.kept()) {
            error!("cannot keep this node's state for a restart: {e}");
            self.metrics.error("state");
        }
    }

    /// Drains this node (or puts it online again) and keeps that across a restart.
    fn set_standby(&mut self, on: bool) -> Reply {
        let command = if on {
            dvip_core::Command::Standby
        } else {
            dvip_core::Command::Online
        };
        info!(?command, "console command");
        self.node
            .handle_command(command)
            .map_err(|e| ConsoleError::new(ErrorKind::Refused, e.to_string()))?;
        crate::kept::write(&self.state_dir, &self.kept()).map_err(|e| {
            error!("{e}");
            ConsoleError::new(
                ErrorKind::Refused,
                format!(
                    "{} now, but a restart of dvipd would forget it: {e}",
                    if on { "on standby" } else { "online" }
                ),
            )
        })?;
        Ok(Answer::Done)
    }

    /// Every node corosync's node list names (this node alone on the standalone bus).
    fn configured_nodes(&self) -> BTreeSet<String> {
        match &self.bus {
            Bus::Corosync { names, .. } => names.values().cloned().collect(),
            Bus::Standalone(_) => [self.name.clone()].into(),
        }
    }

    /// The reply to `info`.
    pub(super) fn info(&self, settings: &Settings) -> Info {
        Info {
            node: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_ms: millis(self.started.elapsed()),
            config_file: settings.config.clone(),
            config: self.config_report(),
            bus: match &self.bus {
                Bus::Standalone(_) => BusStatus::Standalone,
                Bus::Corosync { bus, group, .. } => BusStatus::Corosync {
                    group: group.clone(),
                    joined: bus.is_some(),
                },
            },
            address_lifetime_s: self.plumber.lifetime().as_secs(),
            holders: self.plumber.holders(),
            held_on_holders: self.plumber.on_holders(),
            guardian_pid: self.guardian.as_ref().map(crate::guardian::Guardian::pid),
            arp_all_hosts: self.config.arp_all_hosts,
            hook: self.config.hook.clone(),
            held: self.plumbed.len(),
            not_plumbed: self.node.unplumbed(),
            given_up_interfaces: self.node.given_up().clone(),
            interfaces_down: self
                .links
                .iter()
                .filter(|(name, usable)| !**usable && self.uses(name))
                .map(|(name, _)| name.clone())
                .collect(),
            forwarding: self
                .forwards
                .running()
                .map(|(at, route)| format!("{at} -> {}", route.backend))
                .collect(),
            socket: settings.socket.clone(),
        }
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
            Event::Acquired { address } => {
                m.own(*address, true);
                m.acquisitions.inc();
                if self.lost_member {
                    m.failovers.inc();
                }
            }
            Event::Released { address } => {
                m.own(*address, false);
                m.releases.inc();
            }
            Event::MovesChanged => self.keep(),
            Event::Planned { .. } => {
                m.planned();
                let groups = self.node.configuration_groups().len();
                m.configurations
                    .set(i64::try_from(groups).unwrap_or(i64::MAX));
            }
            Event::Dropped { why, .. } => m.dropped(why.name()),
            Event::Silent { members, .. } => {
                m.silent.inc_by(members.len() as u64);
            }
            Event::BusStalled { .. } => m.error("bus"),
            Event::ViewSplit { .. } => m.error("view_split"),
            Event::GaveUp { .. } => {
                m.plumb_give_ups.inc();
            }
            _ => {}
        }
    }

    /// The reply to a console request that the loop does not run itself (a broadcast, a
    /// reload and the event stream are the loop's).
    pub(super) fn answer(&mut self, request: Request, settings: &Settings) -> Reply {
        let command = match request {
            Request::Show => {
                let status = console::status(
                    &self.node,
                    self.config_report(),
                    self.waiting_for_bus(),
                    self.leasing.as_ref().map(|l| l.gate.status(&self.node)),
                    &self.readied(),
                );
                return Ok(Answer::Status(Box::new(status)));
            }
            Request::Status => {
                let status = console::cluster_status(
                    &self.node,
                    &self.configured_nodes(),
                    self.config_report(),
                    self.waiting_for_bus(),
                    console::now_ms(),
                );
                return Ok(Answer::Cluster(Box::new(status)));
            }
            Request::Info => return Ok(Answer::Info(Box::new(self.info(settings)))),
            Request::ArpShow => return Ok(Answer::Arp(self.arp_report())),
            Request::Cidr { .. }
            | Request::Domains { .. }
            | Request::Throttles
            | Request::Caches
            | Request::CacheGet { .. }
            | Request::CacheSet { .. }
            | Request::CacheDelete { .. } => return self.replication_answer(request),
            Request::Events | Request::Broadcast { .. } | Request::Reload { .. } => {
                return Err(ConsoleError::new(
                    ErrorKind::BadRequest,
                    format!(
                        "`{}` is not a request this node answers by itself",
                        request.name()
                    ),
                ))
            }
            Request::Standby { node: Some(n) } | Request::Online { node: Some(n) }
                if n != self.name =>
            {
                return Err(ConsoleError::new(
                    ErrorKind::BadRequest,
                    format!("meant for {n}: it goes over the control group"),
                ))
            }
            Request::Standby { .. } => return self.set_standby(true),
            Request::Online { .. } => return self.set_standby(false),
            Request::AnnounceView => dvip_core::Command::AnnounceView,
            Request::Move { address, to } => dvip_core::Command::Move { address, to },
            Request::MoveClear { address } => dvip_core::Command::ClearMove { address },
        };
        info!(?command, "console command");
        self.node
            .handle_command(command)
            .map(|()| Answer::Done)
            .map_err(|e| ConsoleError::new(ErrorKind::Refused, e.to_string()))
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
        Event::ViewSplit {
            view_id,
            named,
            stood_down,
        } => {
            // Both ids of every member, so the two sides' logs can be matched.
            let named: Vec<String> = named.iter().map(|(m, id)| format!("{m}:{id}")).collect();
            if *stood_down {
                error!(
                    view_id,
                    ?named,
                    "half this view or more names it differently: every address released until \
                     corosync shows a new view (if none comes, or this repeats, corosync's \
                     process list here differs from the others': compare `corosync-cpgtool` on \
                     each node, and restart corosync on the odd one)"
                );
            } else {
                warn!(
                    view_id,
                    ?named,
                    "these members name this view differently: they stand down, and are planned \
                     around as silent"
                );
            }
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

/// A core event as the console streams it; [`Daemon::emit`] adds when.
pub(super) fn console_event(event: &Event) -> Option<dvip_console::Event> {
    use dvip_console::Event as E;
    Some(match event {
        Event::View { view_id, members } => E::View {
            view_id: *view_id,
            members: members.clone(),
        },
        Event::Planned { view_id } => E::Planned { view_id: *view_id },
        Event::Matured { view_id } => E::Matured { view_id: *view_id },
        Event::Acquired { address } => E::Acquire { address: *address },
        Event::Released { address } => E::Release { address: *address },
        Event::Dropped { from, why } => E::Dropped {
            from: from.clone(),
            reason: why.name().to_owned(),
            why: format!("{why:?}"),
        },
        Event::Paused { gap } => E::Paused {
            gap_ms: millis(*gap),
        },
        Event::Silent { view_id, members } => E::Silent {
            view_id: *view_id,
            members: members.clone(),
        },
        Event::ViewSplit {
            view_id,
            named,
            stood_down,
        } => E::ViewSplit {
            view_id: *view_id,
            members: named.iter().map(|(m, _)| m.clone()).collect(),
            stood_down: *stood_down,
        },
        Event::BusStalled { waited } => E::BusStalled {
            waited_ms: millis(*waited),
        },
        Event::PlumbFailed { address, failures } => E::PlumbFailed {
            address: *address,
            failures: *failures,
        },
        Event::GaveUp { address, interface } => E::GaveUp {
            address: *address,
            interface: interface.clone(),
        },
        Event::TookOver { about, addresses } => E::TookOver {
            node: about.clone(),
            addresses: *addresses,
        },
        Event::ToldAgain { about, addresses } => E::ToldAgain {
            node: about.clone(),
            addresses: *addresses,
        },
        _ => return None,
    })
}
