//! What the daemon does when the kernel reports a change: an interface that cannot carry
//! traffic takes its addresses out of what this node offers (the cluster moves them), an
//! interface that comes back offers them again, and a held address someone removed is put
//! back at once.
//!
//! Owns those reactions. It must not watch the kernel itself ([`crate::watch`] does) nor
//! elect: a change of what the node offers goes to the core like a reload.

use std::collections::BTreeMap;

use dvip_core::ManagedAddress;
use tracing::{info, warn};

use super::Daemon;
use crate::watch::KernelEvent;

/// The configured addresses this node can serve: those whose interface exists and is up.
/// When the kernel's links could not be read at all (`links` empty), every address is
/// offered and a plumb that fails is retried and given up by the core.
pub(super) fn offered(
    addresses: &[ManagedAddress],
    links: &BTreeMap<String, bool>,
) -> Vec<ManagedAddress> {
    addresses
        .iter()
        .filter(|a| links.is_empty() || links.get(&a.plumb.interface) == Some(&true))
        .cloned()
        .collect()
}

/// Interfaces the configuration names that this machine does not have, with how many
/// addresses each carries: said once at start and on every reload, since their addresses
/// are served by other nodes until the interface appears.
pub(super) fn missing_interfaces(
    addresses: &[ManagedAddress],
    links: &BTreeMap<String, bool>,
) -> BTreeMap<String, usize> {
    let mut missing = BTreeMap::new();
    if links.is_empty() {
        return missing;
    }
    for a in addresses {
        if !links.contains_key(&a.plumb.interface) {
            *missing.entry(a.plumb.interface.clone()).or_default() += 1;
        }
    }
    missing
}

/// Logs each interface the configuration names that is missing here.
pub(super) fn warn_missing(addresses: &[ManagedAddress], links: &BTreeMap<String, bool>) {
    for (interface, count) in missing_interfaces(addresses, links) {
        warn!(
            %interface,
            addresses = count,
            "the configuration puts addresses on an interface this machine does not have \
             (a typo, or not created yet): they are not offered here until it appears"
        );
    }
}

impl Daemon {
    pub(super) async fn kernel_event(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::Link { name, usable } => {
                let before = self.links.insert(name.clone(), usable);
                if before == Some(usable) || !self.uses(&name) {
                    return;
                }
                self.link_changed(&name, usable);
                self.offer_again().await;
            }
            KernelEvent::Overrun => self.resync().await,
            KernelEvent::LinkRemoved { name } => {
                self.plumber.forget_interface(&name);
                let before = self.links.remove(&name);
                if before.is_some() && self.uses(&name) {
                    warn!(interface = %name, "interface removed: its addresses go to other nodes");
                    self.emit(dvip_console::Event::Link {
                        interface: name.clone(),
                        usable: false,
                    });
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
                if self.lost_readied(address) {
                    warn!(%address, "a readied address was removed from outside dvip: readying it again");
                    return;
                }
                let Some(hint) = self.plumbed.get(&address).cloned() else {
                    return;
                };
                if !self.node.plumbed().contains(&address) {
                    return;
                }
                warn!(%address, "a held address was removed from outside dvip: putting it back");
                self.put_back(address, hint).await;
            }
        }
    }

    /// Plumbs a held address again that left its interface without dvip removing it.
    async fn put_back(&mut self, address: std::net::IpAddr, hint: dvip_core::PlumbHint) {
        match self
            .plumber
            .plumb(address, hint.cidrmask, &hint.interface)
            .await
        {
            Ok(()) => self.emit(dvip_console::Event::Restored { address }),
            Err(e) => self.plumb_failed(address, "cannot put back", &e),
        }
    }

    /// Says an interface this node uses changed, and offers again what was given up on it
    /// once it is usable.
    fn link_changed(&mut self, name: &str, usable: bool) {
        if usable {
            info!(interface = %name, "interface up: offering its addresses again");
            self.node.handle_interface_ready(name);
        } else {
            warn!(interface = %name, "interface down: its addresses go to other nodes");
        }
        self.emit(dvip_console::Event::Link {
            interface: name.to_owned(),
            usable,
        });
    }

    /// After the kernel dropped notifications: reads every link and this daemon's addresses
    /// again, acts on what changed, and puts back held addresses that went missing.
    async fn resync(&mut self) {
        warn!(
            "kernel notifications were lost (netlink overrun): reading links and addresses again"
        );
        self.metrics.error("netlink_overrun");
        let links = match crate::watch::links().await {
            Ok(links) => links,
            Err(e) => {
                self.error("watch", None, "cannot read the interfaces again", &e);
                return;
            }
        };
        let mut changed = false;
        for (name, usable) in &links {
            if self.links.get(name) != Some(usable) && self.uses(name) {
                self.link_changed(name, *usable);
                changed = true;
            }
        }
        let gone: Vec<String> = self
            .links
            .keys()
            .filter(|name| !links.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.plumber.forget_interface(&name);
            if self.uses(&name) {
                self.link_changed(&name, false);
                changed = true;
            }
        }
        self.links = links;
        if changed {
            self.offer_again().await;
        }
        let present: std::collections::BTreeSet<std::net::IpAddr> = match self.plumber.ours().await
        {
            Ok(ours) => ours.into_iter().map(|p| p.address).collect(),
            Err(e) => {
                self.error("watch", None, "cannot read the addresses again", &e);
                return;
            }
        };
        let missing: Vec<(std::net::IpAddr, dvip_core::PlumbHint)> = self
            .plumbed
            .iter()
            .filter(|(a, _)| !present.contains(*a) && self.node.plumbed().contains(*a))
            .map(|(a, h)| (*a, h.clone()))
            .collect();
        let readied: Vec<std::net::IpAddr> = self
            .pre_plumbing
            .iter()
            .flat_map(|p| p.readied.keys())
            .filter(|a| !present.contains(*a))
            .copied()
            .collect();
        for address in readied {
            self.lost_readied(address);
        }
        for (address, hint) in missing {
            warn!(%address, "a held address went missing while notifications were lost: putting it back");
            self.put_back(address, hint).await;
        }
        self.drive().await;
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
