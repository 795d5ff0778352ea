//! What runs on a held address besides the address itself: forward-mode listeners and the
//! operator's hook.
//!
//! Owns starting and stopping forwards as the core acquires and releases, and queuing hook
//! runs. It must not decide anything about ownership.

use std::net::{IpAddr, SocketAddr};

use dvip_core::Event;

use super::Daemon;
use crate::forward::Route;
use crate::hook::{HookEvent, HookRun};

impl Daemon {
    /// Queues the operator's hook after an acquisition or a release.
    pub(super) fn run_hook(&self, event: &Event) {
        let (hook_event, address) = match *event {
            Event::Acquired { address } => (HookEvent::Acquire, address),
            Event::Released { address } => (HookEvent::Release, address),
            _ => return,
        };
        let Some(program) = &self.config.hook else {
            return;
        };
        let managed = self.config.managed(address);
        self.hooks.run(HookRun {
            program: program.clone(),
            event: hook_event,
            address,
            bindings: managed
                .map(|m| m.bindings.iter().cloned().collect())
                .unwrap_or_default(),
            ports: managed
                .map(|m| m.listener_ports.iter().copied().collect())
                .unwrap_or_default(),
            node: self.name.clone(),
        });
    }

    /// Starts the forward-mode listeners configured on `address` for `ports`.
    pub(super) fn start_forwards<'p>(
        &mut self,
        address: IpAddr,
        ports: impl IntoIterator<Item = &'p u16>,
    ) {
        for &port in ports {
            let Some(&route) = self.config.forwards.get(&(address, port)) else {
                continue;
            };
            if let Err(e) = self.forwards.start(address, port, route) {
                self.error(
                    "forward",
                    Some(address),
                    &format!("cannot listen on port {port}"),
                    &e,
                );
            }
        }
    }

    /// After a reload: stops forwards that are no longer configured (or changed) and starts
    /// the configured ones on addresses this node holds.
    pub(super) fn reconcile_forwards(&mut self) {
        let running: Vec<(SocketAddr, Route)> = self.forwards.running().collect();
        for (at, route) in running {
            if self.config.forwards.get(&(at.ip(), at.port())) != Some(&route) {
                self.forwards.stop(at.ip(), at.port());
            }
        }
        let held: Vec<IpAddr> = self.node.plumbed().iter().copied().collect();
        for address in held {
            let ports = self
                .config
                .managed(address)
                .map(|m| m.listener_ports.clone())
                .unwrap_or_default();
            self.start_forwards(address, &ports);
        }
    }
}
