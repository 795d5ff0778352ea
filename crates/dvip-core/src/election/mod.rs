//! The election: who owns each DuraVIP address, as a pure function of what the members of a
//! view announced.
//!
//! Owns the owner rules, the marks and the balance. It must not keep state between calls,
//! read a clock or know how inputs arrived: every member of a view calls [`elect`] with the
//! same inputs (the bus delivers the same messages in the same order to all of them) and so
//! computes the same [`Plan`] without a leader or a vote.
//!
//! The rules, in order, for each unit (a binding address with the listener addresses that
//! follow it, or a lone address):
//!
//! 1. A BROKEN address (one binding name on different addresses across members) has no
//!    owner.
//! 2. A `move` pin names the owner, if that node is a candidate.
//! 3. The preferred node owns it, if it is a candidate and no two members name different
//!    preferred nodes (CONFLICT). In a view that has not matured yet, the preference only
//!    decides an address nobody holds: a returning node waits for the view to settle.
//! 4. A candidate that holds it keeps it. Of several holders (after a merge), the first by
//!    name keeps it.
//! 5. Otherwise the least-loaded candidate gets it, first by name on ties.
//! 6. In a matured view, units move from a node to another candidate while that lowers the
//!    most loaded node's count by one without raising another above it: loads end within one
//!    of every other candidate of each movable unit.

mod balance;
pub mod check;
mod marks;
mod nodeset;
mod settle;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, NodeName};
pub use marks::Marks;
use nodeset::NodeSet;
pub use settle::{settle, Move};

/// A member's entities by address.
pub type Entities = BTreeMap<IpAddr, Arc<Entity>>;

/// What one member of the view announced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Its DuraVIP addresses as its configuration describes them. Shared: members that
    /// describe an address the same way hold one copy of its description, and members that
    /// announced the very same configuration hold one copy of the whole map (the election
    /// then does their work once).
    pub entities: Arc<Entities>,
    /// The addresses it holds (plumbed, or granted and being plumbed).
    pub holdings: BTreeSet<IpAddr>,
    /// Draining for maintenance: a candidate for nothing.
    pub standby: bool,
}

impl Member {
    /// A member announcing `entities`, holding nothing.
    pub fn new(entities: impl IntoIterator<Item = Entity>) -> Self {
        Self {
            entities: Arc::new(
                entities
                    .into_iter()
                    .map(|e| (e.address, Arc::new(e)))
                    .collect(),
            ),
            ..Self::default()
        }
    }
}

/// Makes members whose configurations are equal share one map, as a node does when States
/// arrive, so the election does their work once. For callers that build members themselves.
pub fn share_equal_configurations(members: &mut BTreeMap<NodeName, Member>) {
    let mut seen: Vec<Arc<Entities>> = Vec::new();
    for member in members.values_mut() {
        match seen.iter().find(|s| **s == member.entities) {
            Some(same) => member.entities = Arc::clone(same),
            None => seen.push(Arc::clone(&member.entities)),
        }
    }
}

/// Why an address has the owner it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// BROKEN: nobody may manage it.
    Broken,
    /// No member of the view can hold it.
    NoCandidate,
    /// An operator moved it there.
    Pinned,
    /// Its preferred node.
    Preferred,
    /// Its holder keeps it.
    Held,
    /// Nobody held it; the least-loaded candidate got it.
    Assigned,
    /// Moved to even out the loads.
    Balanced,
    /// It goes where the binding address it follows goes.
    Follows,
}

impl Reason {
    /// The reason in the words `dvip plan` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::NoCandidate => "no candidate",
            Self::Pinned => "moved",
            Self::Preferred => "preferred",
            Self::Held => "held",
            Self::Assigned => "assigned",
            Self::Balanced => "balanced",
            Self::Follows => "follows",
        }
    }
}

/// The election's answer for one address.
///
/// Names and descriptions are shared (`Arc`) between decisions: a plan has one entry per
/// address, and with identical configurations every one of them names the same candidates
/// and most share their description with the members' own copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The node that should hold it, if any.
    pub owner: Option<Arc<str>>,
    /// Why.
    pub reason: Reason,
    /// Problems with how the members describe it.
    pub marks: Marks,
    /// Members that could hold it (configured for it and not on standby), by name.
    pub candidates: Arc<[Arc<str>]>,
    /// The services on it: the members' description when they agree, else the union of the
    /// binding names and listener ports any of them puts there.
    pub services: Arc<Entity>,
    /// The binding address it follows, when it moves with one.
    pub follows: Option<IpAddr>,
}

impl Decision {
    /// Binding names any member puts on the address.
    pub fn bindings(&self) -> &BTreeSet<String> {
        &self.services.bindings
    }

    /// Listener ports any member puts on the address.
    pub fn listener_ports(&self) -> &BTreeSet<u16> {
        &self.services.listener_ports
    }

    /// Whether `node` could hold the address.
    pub fn is_candidate(&self, node: &str) -> bool {
        self.candidates.iter().any(|c| &**c == node)
    }
}

/// Owners for every address any member configures or holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One decision per address, in address order.
    pub addresses: BTreeMap<IpAddr, Decision>,
}

impl Plan {
    /// The owner of `address`, if any.
    pub fn owner(&self, address: &IpAddr) -> Option<&str> {
        self.addresses.get(address).and_then(|d| d.owner.as_deref())
    }

    /// The addresses `node` should hold.
    pub fn owned_by<'p>(&'p self, node: &'p str) -> impl Iterator<Item = IpAddr> + 'p {
        self.addresses
            .iter()
            .filter(move |(_, d)| d.owner.as_deref() == Some(node))
            .map(|(a, _)| *a)
    }
}

/// One address while the election works on it.
struct Slot<'m> {
    address: IpAddr,
    /// (first member of the class, what the class announced), one per class of members
    /// announcing the same configuration.
    ads: Vec<(usize, &'m Arc<Entity>)>,
    holders: Vec<usize>,
    candidates: NodeSet,
    marks: Marks,
    /// The preferred member, if the preference holds (no conflict, a candidate).
    preferred: Option<usize>,
    /// The leader slot this one follows, once attached.
    leader: Option<usize>,
}

/// A group that moves as one: a leader slot and the slots attached to it.
pub(crate) struct Unit {
    leader: usize,
    followers: Vec<usize>,
    candidates: NodeSet,
    owner: Option<usize>,
    reason: Reason,
}

impl Unit {
    /// A unit of one slot, not yet decided.
    fn alone(slot_index: usize, slot: &Slot<'_>) -> Self {
        Self {
            leader: slot_index,
            followers: Vec::new(),
            candidates: slot.candidates.clone(),
            owner: None,
            reason: Reason::NoCandidate,
        }
    }

    /// Whether balancing may move it.
    pub(crate) fn movable(&self) -> bool {
        matches!(
            self.reason,
            Reason::Held | Reason::Assigned | Reason::Balanced
        )
    }
}

/// Computes the plan. `mature` says the view has stood for `view_mature_time`; `pins` are
/// operator moves still in force.
pub fn elect(
    members: &BTreeMap<NodeName, Member>,
    mature: bool,
    pins: &BTreeMap<IpAddr, NodeName>,
) -> Plan {
    let names: Vec<Arc<str>> = members.keys().map(|n| Arc::from(n.as_str())).collect();
    let index = |name: &str| names.binary_search_by(|n| (**n).cmp(name)).ok();
    let mut slots = gather(members, names.len());
    let broken = marks::broken_addresses(&slots);
    for slot in &mut slots {
        slot.marks = marks::marks_of(slot, &broken);
        slot.preferred = if slot.marks.conflict {
            None
        } else {
            slot.ads
                .iter()
                .find_map(|(_, e)| e.preference.as_deref())
                .and_then(index)
                .filter(|&p| slot.candidates.contains(p))
        };
    }
    let mut units = form_units(&mut slots);
    let mut loads = vec![0usize; names.len()];
    decide(&mut units, &slots, mature, pins, &index, &mut loads);
    if mature {
        balance::balance(&mut units, &mut loads);
    } else {
        keep_held_followers(&mut units, &mut slots);
    }
    let mut decisions = Vec::with_capacity(slots.len());
    let mut lists = CandidateLists::default();
    for unit in &units {
        for (position, &s) in std::iter::once(&unit.leader)
            .chain(&unit.followers)
            .enumerate()
        {
            let slot = &slots[s];
            let reason = if position == 0 {
                unit.reason
            } else {
                Reason::Follows
            };
            let decision = Decision {
                owner: unit.owner.map(|i| Arc::clone(&names[i])),
                reason,
                marks: slot.marks,
                candidates: lists.get(&slot.candidates, &names),
                services: services(slot),
                follows: slot.leader.map(|l| slots[l].address),
            };
            decisions.push((slot.address, decision));
        }
    }
    decisions.sort_unstable_by_key(|(address, _)| *address);
    Plan {
        addresses: decisions.into_iter().collect(),
    }
}

/// Candidate lists built once per distinct set: with identical configurations, one list
/// serves every address. Consecutive addresses almost always share a set, so the last one is
/// checked before the map.
#[derive(Default)]
struct CandidateLists {
    built: BTreeMap<NodeSet, Arc<[Arc<str>]>>,
    last: Option<(NodeSet, Arc<[Arc<str>]>)>,
}

impl CandidateLists {
    fn get(&mut self, set: &NodeSet, names: &[Arc<str>]) -> Arc<[Arc<str>]> {
        if let Some((last, list)) = &self.last {
            if last == set {
                return Arc::clone(list);
            }
        }
        let list = match self.built.get(set) {
            Some(list) => Arc::clone(list),
            None => {
                let list: Arc<[Arc<str>]> = set.iter().map(|i| Arc::clone(&names[i])).collect();
                self.built.insert(set.clone(), Arc::clone(&list));
                list
            }
        };
        self.last = Some((set.clone(), Arc::clone(&list)));
        list
    }
}

/// The members' description of the address when they agree; else the union of services.
fn services(slot: &Slot<'_>) -> Arc<Entity> {
    match slot.ads.split_first() {
        Some(((_, first), rest))
            if rest
                .iter()
                .all(|(_, e)| Arc::ptr_eq(e, first) || e.same_services(first)) =>
        {
            Arc::clone(first)
        }
        _ => {
            let mut union = Entity {
                address: slot.address,
                bindings: BTreeSet::new(),
                listener_ports: BTreeSet::new(),
                preference: None,
                follow: None,
            };
            for (_, e) in &slot.ads {
                union.bindings.extend(e.bindings.iter().cloned());
                union
                    .listener_ports
                    .extend(e.listener_ports.iter().copied());
            }
            Arc::new(union)
        }
    }
}

/// Every address any member configures or holds, with who says what about it.
///
/// Members whose nodes share one entity map (they announced the very same configuration)
/// form a class and are merged once: with identical configurations the work is one pass over
/// the addresses, however many members there are. Classes' maps are sorted, so the pass is a
/// merge, not a lookup per entity.
fn gather(members: &BTreeMap<NodeName, Member>, count: usize) -> Vec<Slot<'_>> {
    let mut classes: Vec<(&Arc<Entities>, NodeSet, usize)> = Vec::new();
    for (i, member) in members.values().enumerate() {
        let class = match classes
            .iter_mut()
            .position(|(e, ..)| Arc::ptr_eq(e, &member.entities))
        {
            Some(c) => c,
            None => {
                classes.push((&member.entities, NodeSet::with_capacity(count), i));
                classes.len() - 1
            }
        };
        if !member.standby {
            classes[class].1.insert(i);
        }
    }
    let mut cursors: Vec<_> = classes
        .iter()
        .map(|(e, ..)| e.values().peekable())
        .collect();
    let capacity = classes.iter().map(|(e, ..)| e.len()).max().unwrap_or(0);
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(capacity);
    while let Some(address) = cursors
        .iter_mut()
        .filter_map(|c| c.peek().map(|e| e.address))
        .min()
    {
        let mut slot = Slot {
            address,
            ads: Vec::with_capacity(classes.len()),
            holders: Vec::new(),
            candidates: NodeSet::with_capacity(count),
            marks: Marks::default(),
            preferred: None,
            leader: None,
        };
        for (cursor, (_, candidates, first)) in cursors.iter_mut().zip(&classes) {
            if let Some(entity) = cursor.next_if(|e| e.address == address) {
                slot.ads.push((*first, entity));
                slot.candidates.union_with(candidates);
            }
        }
        slots.push(slot);
    }
    // Holdings: mostly of configured addresses; an address held but configured by nobody
    // (after a reload removed it) gets a slot with no candidates, so its holder lets it go.
    let mut orphans: BTreeSet<IpAddr> = BTreeSet::new();
    for (i, member) in members.values().enumerate() {
        for address in &member.holdings {
            match slots.binary_search_by(|s| s.address.cmp(address)) {
                Ok(s) => slots[s].holders.push(i),
                Err(_) => {
                    orphans.insert(*address);
                }
            }
        }
    }
    if !orphans.is_empty() {
        for address in orphans {
            let holders = members
                .values()
                .enumerate()
                .filter(|(_, m)| m.holdings.contains(&address))
                .map(|(i, _)| i)
                .collect();
            slots.push(Slot {
                address,
                ads: Vec::new(),
                holders,
                candidates: NodeSet::with_capacity(count),
                marks: Marks::default(),
                preferred: None,
                leader: None,
            });
        }
        slots.sort_by_key(|s| s.address);
    }
    slots
}

/// Groups followers with their leader. A follower joins its leader's unit when every member
/// agrees on what it follows, the leader is a healthy lone address, and the follower can go
/// wherever the leader can (a follower configured on fewer nodes must not pull its binding
/// away from its preferred node); otherwise it is elected on its own.
fn form_units(slots: &mut [Slot<'_>]) -> Vec<Unit> {
    let mut unit_of: Vec<Option<usize>> = vec![None; slots.len()];
    let mut units: Vec<Unit> = Vec::new();
    let follow_target = |slot: &Slot<'_>| -> Option<IpAddr> {
        if slot.marks.unsafe_follow {
            return None;
        }
        slot.ads.first().and_then(|(_, e)| e.follow)
    };
    // Leaders first, so followers can find their unit.
    for s in 0..slots.len() {
        if follow_target(&slots[s]).is_none() {
            unit_of[s] = Some(units.len());
            units.push(Unit::alone(s, &slots[s]));
        }
    }
    for s in 0..slots.len() {
        let Some(target) = follow_target(&slots[s]) else {
            continue;
        };
        let attached = slots
            .binary_search_by(|l| l.address.cmp(&target))
            .ok()
            // Only a lone address leads: a chain (following a follower) is not followed.
            .filter(|&l| !slots[l].marks.broken && follow_target(&slots[l]).is_none())
            .and_then(|l| unit_of[l].map(|u| (l, u)))
            .filter(|&(_, u)| {
                let leader = &units[u].candidates;
                !leader.is_empty() && leader.is_subset(&slots[s].candidates)
            });
        match attached {
            Some((l, u)) => {
                units[u].followers.push(s);
                slots[s].leader = Some(l);
                unit_of[s] = Some(u);
            }
            None => {
                unit_of[s] = Some(units.len());
                units.push(Unit::alone(s, &slots[s]));
            }
        }
    }
    units.sort_by_key(|u| slots[u.leader].address);
    units
}

/// Until the view matures, a follower that a live candidate holds stays there even if its
/// group now goes elsewhere (a departure can change which followers can join their binding's
/// group): a node leaving moves only its own addresses. It rejoins its group once the view
/// matures.
fn keep_held_followers(units: &mut Vec<Unit>, slots: &mut [Slot<'_>]) {
    let mut detached = Vec::new();
    for unit in units.iter_mut() {
        let owner = unit.owner;
        unit.followers.retain(|&f| {
            let slot = &slots[f];
            let holder = slot
                .holders
                .iter()
                .copied()
                .find(|&h| slot.candidates.contains(h));
            match holder {
                Some(h) if Some(h) != owner => {
                    detached.push((f, h));
                    false
                }
                _ => true,
            }
        });
    }
    for (f, holder) in detached {
        slots[f].leader = None;
        units.push(Unit {
            owner: Some(holder),
            reason: Reason::Held,
            ..Unit::alone(f, &slots[f])
        });
    }
}

/// Rules 1 to 5: fixed owners first, then the least-loaded candidate for the rest.
fn decide(
    units: &mut [Unit],
    slots: &[Slot<'_>],
    mature: bool,
    pins: &BTreeMap<IpAddr, NodeName>,
    index: &impl Fn(&str) -> Option<usize>,
    loads: &mut [usize],
) {
    let mut open = Vec::new();
    for (u, unit) in units.iter_mut().enumerate() {
        let leader = &slots[unit.leader];
        let holders: Vec<usize> = leader
            .holders
            .iter()
            .copied()
            .filter(|&h| unit.candidates.contains(h))
            .collect();
        let preferred = leader.preferred.filter(|&p| unit.candidates.contains(p));
        let pinned = pins
            .get(&leader.address)
            .and_then(|n| index(n))
            .filter(|&p| unit.candidates.contains(p));
        let fixed = if leader.marks.broken {
            Some((None, Reason::Broken))
        } else if unit.candidates.is_empty() {
            Some((None, Reason::NoCandidate))
        } else if let Some(p) = pinned {
            Some((Some(p), Reason::Pinned))
        } else if let Some(p) =
            preferred.filter(|p| mature || holders.is_empty() || holders.contains(p))
        {
            Some((Some(p), Reason::Preferred))
        } else {
            holders.first().map(|&h| (Some(h), Reason::Held))
        };
        match fixed {
            Some((owner, reason)) => {
                unit.owner = owner;
                unit.reason = reason;
                // A held unit whose preferred node waits for the view to mature will be that
                // node's load soon: count it there, so orphans placed now are not moved again
                // for balance once the preference takes it home.
                let counted = match (reason, preferred) {
                    (Reason::Held, Some(p)) => Some(p),
                    _ => owner,
                };
                if let Some(o) = counted {
                    loads[o] += 1;
                }
            }
            None => open.push(u),
        }
    }
    for u in open {
        let unit = &mut units[u];
        let owner = unit
            .candidates
            .iter()
            .min_by_key(|&c| (loads[c], c))
            .expect("a unit with no candidate was fixed above");
        unit.owner = Some(owner);
        unit.reason = Reason::Assigned;
        loads[owner] += 1;
    }
}
