//! Settling: where a cluster ends up when nothing else happens.
//!
//! Owns the offline replay of what a view goes through: the plan when the view forms
//! (failover only: holders keep what they hold, orphans find owners), carried out, then the
//! plans once the view has matured (preferences and balance), carried out, until nothing
//! moves. It runs the same [`elect`](super::elect) the nodes run; handovers are taken to
//! complete instantly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::{elect, Member, Plan, Reason};
use crate::entity::NodeName;

/// One change of owner on the way to the settled plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The address.
    pub address: IpAddr,
    /// Who held it before (several after a partition heals, none for a new address).
    pub from: Vec<NodeName>,
    /// Who holds it after (none when nobody may).
    pub to: Option<NodeName>,
    /// Why, as the plan that moved it said.
    pub reason: Reason,
    /// Whether it moved only once the view matured (a planned move, release-then-acquire).
    pub after_maturity: bool,
}

/// The plan a view of `members` settles on, and every move on the way there.
pub fn settle(members: &BTreeMap<NodeName, Member>) -> (Plan, Vec<Move>) {
    let mut members = members.clone();
    let pins = BTreeMap::new();
    let mut moves = Vec::new();
    let mut plan = elect(&members, false, &pins);
    let mut mature = false;
    // A carried-out matured plan is stable, so this ends after the first matured round in
    // practice; the bound guards against a bug.
    for _ in 0..16 {
        let changed = carry_out(&mut members, &plan, mature, &mut moves);
        let next = elect(&members, true, &pins);
        if mature && !changed && next == plan {
            break;
        }
        plan = next;
        mature = true;
    }
    (plan, moves)
}

/// Gives every member exactly what the plan says it owns, noting each change of owner.
fn carry_out(
    members: &mut BTreeMap<NodeName, Member>,
    plan: &Plan,
    mature: bool,
    moves: &mut Vec<Move>,
) -> bool {
    for (address, decision) in &plan.addresses {
        let from: Vec<NodeName> = members
            .iter()
            .filter(|(_, m)| m.holdings.contains(address))
            .map(|(n, _)| n.clone())
            .collect();
        let stays = match (from.as_slice(), decision.owner.as_deref()) {
            ([only], Some(owner)) => only == owner,
            ([], None) => true,
            _ => false,
        };
        if !stays {
            moves.push(Move {
                address: *address,
                from,
                to: decision.owner.as_deref().map(str::to_owned),
                reason: decision.reason,
                after_maturity: mature,
            });
        }
    }
    let mut changed = false;
    for (name, member) in members.iter_mut() {
        let owned: BTreeSet<IpAddr> = plan.owned_by(name).collect();
        if member.holdings != owned {
            member.holdings = owned;
            changed = true;
        }
    }
    changed
}
