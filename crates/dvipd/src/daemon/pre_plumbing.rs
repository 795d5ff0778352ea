//! Pre-plumbing (`dvipd --pre-plumb`, docs/leases.md "Plumbing before it is needed"): with
//! leases on, a node plumbs ahead of need, silent, every IPv4 address it would take were
//! another member to leave ([`dvip_core::Node::next_here`]), so that a takeover lets them
//! answer with one nftables change instead of thousands of netlink adds while corosync forms
//! its new ring on the same cores.
//!
//! Owns which addresses are readied and the order that keeps a readied address silent: it
//! joins the `silent` set before it is plumbed, leaves it only once the core holds it, and one
//! no longer readied is unplumbed before it leaves the set. It must not decide what to hold
//! (the core does) nor write the table's text ([`crate::silence`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use dvip_core::PlumbHint;
use tracing::{debug, info, warn};

use super::{Daemon, PLUMB_CHUNK};

/// An address with where it goes.
type Placed = (IpAddr, PlumbHint);

/// What this node has readied, and when to look again.
pub(super) struct PrePlumbing {
    /// The interfaces the table's chains are on.
    interfaces: Vec<String>,
    /// Plumbed here, silent, with where each was put.
    pub(super) readied: BTreeMap<IpAddr, PlumbHint>,
    /// What the kernel's `silent` set holds: changed only once the kernel acknowledged it.
    silent: BTreeSet<Ipv4Addr>,
    /// The core's plan ([`dvip_core::Node::lease_plan`]) at the last tick, and the one last
    /// readied for: a plan is readied for once it has stood still for a tick, so a view's
    /// burst of States is not followed by a plumb of the whole share at every message.
    seen: Option<u64>,
    done: Option<u64>,
    /// The view is past the budget of successors computed at each plan (said once).
    too_large: bool,
}

/// The interfaces the chains go on: those the configuration plumbs on, as the lease's table.
fn interfaces_of(addresses: &[dvip_core::ManagedAddress]) -> Vec<String> {
    crate::kernel_lease::KernelLease::guarding(addresses).interfaces
}

impl PrePlumbing {
    /// Loads an empty table for the configuration's interfaces; `None` (and said why) when
    /// the kernel refuses it: the node then plumbs on takeover, as without the option.
    pub(super) fn start(addresses: &[dvip_core::ManagedAddress]) -> Option<Self> {
        let interfaces = interfaces_of(addresses);
        match crate::silence::install(&interfaces, &BTreeSet::new()) {
            Ok(()) => {
                info!("pre-plumbing: successors' addresses are plumbed ahead, silent");
                Some(Self {
                    interfaces,
                    readied: BTreeMap::new(),
                    silent: BTreeSet::new(),
                    seen: None,
                    done: None,
                    too_large: false,
                })
            }
            Err(e) => {
                warn!("no pre-plumbing: {e}");
                None
            }
        }
    }

    /// Looks again at the next quiet tick, whatever the plan.
    pub(super) fn look_again(&mut self) {
        self.done = None;
    }
}

impl Daemon {
    /// Every tick: once the plan has stood still since the last tick, readies what it gives
    /// this node and lets go of what it no longer does.
    pub(super) async fn ready_ahead(&mut self) {
        let plan = self.node.lease_plan();
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return;
        };
        let quiet = pre.seen == Some(plan);
        pre.seen = Some(plan);
        if !quiet || pre.done == Some(plan) {
            return;
        }
        // One election per member: past the budget `show` keeps to, the loop would stall
        // for longer than a failover at every plan. What is readied stays, refreshed.
        let members = self.node.table().map_or(0, BTreeMap::len);
        let addresses = self.config.addresses.len();
        let too_large = members.saturating_mul(addresses) > crate::console::NEXT_OWNERS_BUDGET;
        if too_large != pre.too_large {
            pre.too_large = too_large;
            if too_large {
                warn!(members, addresses, "pre-plumbing waits: the view is too large to compute every member's successors at each plan");
            }
        }
        if too_large {
            return;
        }
        // Not planned yet (a view's States still coming): keep what is readied.
        let Some(next) = self.node.next_here() else {
            return;
        };
        let hints: HashMap<IpAddr, PlumbHint> =
            super::watching::offered(&self.config.addresses, &self.links)
                .into_iter()
                .map(|m| (m.address, m.plumb))
                .collect();
        let wanted: BTreeMap<IpAddr, PlumbHint> = next
            .into_iter()
            .filter(IpAddr::is_ipv4)
            .filter_map(|a| hints.get(&a).map(|h| (a, h.clone())))
            .collect();
        // A set the kernel would not change is tried again at the next tick.
        if self.ready(wanted).await {
            if let Some(pre) = self.pre_plumbing.as_mut() {
                pre.done = Some(plan);
            }
        }
    }

    /// Makes what is readied `wanted`: unplumbs what is no longer wanted, changes the set once,
    /// then plumbs what is new. False if the set could not be changed.
    async fn ready(&mut self, wanted: BTreeMap<IpAddr, PlumbHint>) -> bool {
        let unplumbed = self.take_off(|a, h| wanted.get(a) != Some(h)).await;
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return true;
        };
        // One whose unplumb failed waits, silent in its old place, for the next look.
        let new: Vec<Placed> = wanted
            .into_iter()
            .filter(|(a, _)| !pre.readied.contains_key(a))
            .collect();
        let (hush, speak) = set_change(&pre.silent, &unplumbed, new.iter().map(|(a, _)| a));
        if let Err(e) = crate::silence::change(&hush, &speak) {
            self.error("pre_plumb", None, "cannot change the silent set", &e);
            return false;
        }
        for a in &speak {
            pre.silent.remove(a);
        }
        pre.silent.extend(hush);
        let mut readied = 0;
        for chunk in new.chunks(PLUMB_CHUNK) {
            let items: Vec<(IpAddr, u8, String)> = chunk
                .iter()
                .map(|(a, h)| (*a, h.cidrmask, h.interface.clone()))
                .collect();
            let results = self.plumber.plumb_many(&items).await;
            let Some(pre) = self.pre_plumbing.as_mut() else {
                return true;
            };
            for ((address, hint), result) in chunk.iter().zip(results) {
                match result {
                    Ok(()) => {
                        pre.readied.insert(*address, hint.clone());
                        readied += 1;
                    }
                    // Taken over, it is plumbed then as without pre-plumbing.
                    Err(e) => debug!(%address, "cannot ready: {e}"),
                }
            }
            self.feed_clock();
        }
        if readied > 0 || !unplumbed.is_empty() {
            info!(readied, let_go = unplumbed.len(), "pre-plumbed");
        }
        self.count_readied();
        true
    }

    /// Takes out of `plumbs` the addresses already readied where the core wants them, and
    /// lets every address of `plumbs` (readied or not) leave the silent set, in one change.
    /// Returns the readied ones, now answering; `Err` with them all if the set could not be
    /// changed (they must not be counted as plumbed: they would stay silent).
    pub(super) fn speak(&mut self, plumbs: &mut Vec<Placed>) -> Result<Vec<Placed>, Vec<Placed>> {
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return Ok(Vec::new());
        };
        let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(plumbs)
            .into_iter()
            .partition(|(a, h)| pre.readied.get(a) == Some(h));
        let speak: Vec<Ipv4Addr> = v4(ready.iter().chain(&rest).map(|(a, _)| a))
            .filter(|a| pre.silent.contains(a))
            .collect();
        if let Err(e) = crate::silence::change(&[], &speak) {
            let failed: Vec<_> = ready.into_iter().chain(rest).collect();
            self.error("pre_plumb", None, "cannot let readied addresses answer", &e);
            return Err(failed);
        }
        for a in &speak {
            pre.silent.remove(a);
        }
        // One readied in another place (a reload moved it) is forgotten too, not unplumbed
        // later: with spreading both places are one holder, and that would take the held
        // address off. Elsewhere, unrefreshed, its old copy expires with its lifetime.
        for (a, _) in ready.iter().chain(&rest) {
            pre.readied.remove(a);
        }
        *plumbs = rest;
        self.count_readied();
        Ok(ready)
    }

    /// A readied address left the kernel without dvip removing it (or its refresh failed):
    /// it is readied again at the next look.
    pub(super) fn lost_readied(&mut self, address: IpAddr) -> bool {
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return false;
        };
        if pre.readied.remove(&address).is_none() {
            return false;
        }
        pre.look_again();
        self.count_readied();
        true
    }

    /// A reload: the chains follow the configuration's interfaces, the set kept as it is.
    pub(super) fn pre_plumb_reloaded(&mut self) {
        let interfaces = interfaces_of(&self.config.addresses);
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return;
        };
        pre.look_again();
        if pre.interfaces == interfaces {
            return;
        }
        match crate::silence::install(&interfaces, &pre.silent) {
            Ok(()) => pre.interfaces = interfaces,
            Err(e) => self.error(
                "pre_plumb",
                None,
                "cannot move the silent set's chains to the new interfaces",
                &e,
            ),
        }
    }

    /// `dvip_silence` went from under dvipd (a firewall flushed the ruleset): every readied
    /// address answers until the table is back. It is loaded again with the set as dvipd
    /// knows it; if that fails, the readied addresses come off their interfaces.
    pub(super) async fn silence_lost(&mut self) {
        let Some(pre) = self.pre_plumbing.as_mut() else {
            return;
        };
        let Err(e) = crate::silence::install(&pre.interfaces, &pre.silent) else {
            return;
        };
        self.error(
            "pre_plumb",
            None,
            "cannot load the silence table again; unplumbing the readied addresses",
            &e,
        );
        self.take_off(|_, _| true).await;
        // Readied again only once a change of the set works: the table is missing.
        if let Some(pre) = self.pre_plumbing.as_mut() {
            pre.silent.clear();
            pre.look_again();
        }
        self.count_readied();
    }

    /// Unplumbs the readied addresses `which` picks, in chunks with the core's clock fed
    /// between them; returns those that came off (and are readied no more). One that did not
    /// stays, silent, for the next look.
    async fn take_off(&mut self, which: impl Fn(&IpAddr, &PlumbHint) -> bool) -> Vec<IpAddr> {
        let items: Vec<(IpAddr, u8, String)> = self
            .pre_plumbing
            .iter()
            .flat_map(|p| &p.readied)
            .filter(|(a, h)| which(a, h))
            .map(|(a, h)| (*a, h.cidrmask, h.interface.clone()))
            .collect();
        let mut off = Vec::new();
        for chunk in items.chunks(PLUMB_CHUNK) {
            let results = self.plumber.unplumb_many(chunk).await;
            for ((address, ..), result) in chunk.iter().zip(results) {
                match result {
                    Ok(()) => {
                        *self.own_removals.entry(*address).or_default() += 1;
                        off.push(*address);
                    }
                    Err(e) => warn!(%address, "cannot unplumb a readied address: {e}"),
                }
            }
            self.feed_clock();
        }
        if let Some(pre) = self.pre_plumbing.as_mut() {
            for address in &off {
                pre.readied.remove(address);
            }
        }
        off
    }

    /// At stop: every readied address off its interface, then the table gone.
    pub(super) async fn unready_all(&mut self) {
        let Some(pre) = self.pre_plumbing.as_ref() else {
            return;
        };
        let readied = pre.readied.len();
        let left = readied - self.take_off(|_, _| true).await.len();
        if left > 0 {
            // Still silent until they expire or the guardian removes them.
            warn!(
                left,
                "readied addresses left plumbed; the table stays to keep them silent"
            );
            return;
        }
        crate::silence::remove();
    }

    /// What is readied here, for `show`.
    pub(super) fn readied(&self) -> BTreeSet<IpAddr> {
        self.pre_plumbing
            .iter()
            .flat_map(|p| p.readied.keys().copied())
            .collect()
    }

    fn count_readied(&self) {
        let readied = self.pre_plumbing.as_ref().map_or(0, |p| p.readied.len());
        self.metrics
            .readied
            .set(i64::try_from(readied).unwrap_or(i64::MAX));
    }
}

/// The change of the silent set that goes with a readying: the addresses unplumbed leave it,
/// the new ones join it. An address whose place changed is in both (unplumbed from the old,
/// to be plumbed in the new): it leaves and joins again in the one transaction, so it is never
/// plumbed in its new place unsilenced. Returns (hush, speak).
fn set_change<'a>(
    silent: &BTreeSet<Ipv4Addr>,
    unplumbed: &[IpAddr],
    new: impl IntoIterator<Item = &'a IpAddr>,
) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let speak: Vec<Ipv4Addr> = v4(unplumbed).filter(|a| silent.contains(a)).collect();
    let hush = v4(new)
        .filter(|a| !silent.contains(a) || speak.contains(a))
        .collect();
    (hush, speak)
}

fn v4<'a, I: IntoIterator<Item = &'a IpAddr>>(
    addresses: I,
) -> impl Iterator<Item = Ipv4Addr> + use<'a, I> {
    addresses.into_iter().filter_map(|a| match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
    }

    fn v(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, last)
    }

    #[test]
    fn an_address_readied_again_in_a_new_place_stays_in_the_silent_set() {
        // .10 moved interface (unplumbed and new), .11 is no longer readied, .12 is new,
        // .13 was already silent (a readying that failed before) and is new again.
        let silent = BTreeSet::from([v(10), v(11), v(13)]);
        let (hush, speak) = set_change(&silent, &[a(10), a(11)], &[a(10), a(12), a(13)]);
        assert_eq!(speak, [v(10), v(11)]);
        assert_eq!(hush, [v(10), v(12)]);
        let mut after = silent;
        for s in &speak {
            after.remove(s);
        }
        after.extend(hush);
        assert_eq!(after, BTreeSet::from([v(10), v(12), v(13)]));
    }
}
