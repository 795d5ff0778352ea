//! What the daemon does when the kernel reports a change: an interface that cannot carry
//! traffic takes its addresses out of what this node offers (the cluster moves them), an
//! interface that comes back offers them again, and a held address someone removed is put
//! back at once.
//!
//! Owns those reactions. It must not watch the kernel itself ([`crate::watch`] does) nor
//! elect: a change of what the node offers goes to the core like a reload.

use std::collections::BTreeMap;

use dvip_core::ManagedAddress;
use serde_json::json;
use tracing::{info, warn};

use super::Daemon;
use crate::watch::KernelEvent;

/// The configured addresses this node can serve: those whose interface is not known to be
/// down. (An interface that does not exist stays in: plumbing it fails loudly.)
pub(super) fn offered(
    addresses: &[ManagedAddress],
    links: &BTreeMap<String, bool>,
) -> Vec<ManagedAddress> {
    addresses
        .iter()
        .filter(|a| links.get(&a.plumb.interface) != Some(&false))
        .cloned()
        .collect()
}

impl Daemon {
    pub(super) async fn kernel_event(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::Link { name, usable } => {
                let before = self.links.insert(name.clone(), usable);
                if before == Some(usable) || !self.uses(&name) {
                    return;
                }
                if usable {
                    info!(interface = %name, "interface up: offering its addresses again");
                } else {
                    warn!(interface = %name, "interface down: its addresses go to other nodes");
                }
                self.emit(json!({"event": "link", "interface": name, "usable": usable}));
                self.offer_again().await;
            }
            KernelEvent::LinkRemoved { name } => {
                self.plumber.forget_interface(&name);
                let before = self.links.insert(name.clone(), false);
                if before != Some(false) && self.uses(&name) {
                    warn!(interface = %name, "interface removed: its addresses go to other nodes");
                    self.emit(json!({"event": "link", "interface": name, "usable": false}));
                    self.offer_again().await;
                }
            }
            KernelEvent::AddressRemoved { address } => {
                // Our own removals leave `plumbed` first and are counted until their
                // notification comes back (the address may be held again by then); any
                // other removal of a held address was someone else's (or an expiry while
                // the loop was stuck).
                if let Some(own) = self.own_removals.get_mut(&address) {
                    *own -= 1;
                    if *own == 0 {
                        self.own_removals.remove(&address);
                    }
                    return;
                }
                let Some(hint) = self.plumbed.get(&address).cloned() else {
                    return;
                };
                if !self.node.plumbed().contains(&address) {
                    return;
                }
                warn!(%address, "a held address was removed from outside dvip: putting it back");
                match self
                    .plumber
                    .plumb(address, hint.cidrmask, &hint.interface)
                    .await
                {
                    Ok(()) => self.emit(json!({"event": "restored", "address": address})),
                    Err(e) => self.error("plumb", Some(address), "cannot put back", &e),
                }
            }
        }
    }

    /// Whether any configured address lives on `interface`.
    pub(super) fn uses(&self, interface: &str) -> bool {
        self.config
            .addresses
            .iter()
            .any(|a| a.plumb.interface == interface)
    }

    /// Tells the core what this node can serve now.
    async fn offer_again(&mut self) {
        let offered = offered(&self.config.addresses, &self.links);
        self.node.handle_config(&offered);
        self.drive().await;
    }
}
