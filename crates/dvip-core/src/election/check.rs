//! Checks of a finished plan that tests and the simulator share.
//!
//! Owns the balance invariant as an operator would state it, computed from the plan alone
//! (not from the election's internals), so a wrong election cannot also fool its check.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, Reason};

/// `None` when loads are within one: no movable address (with its followers) sits on a node
/// whose load is two or more above another node that could take it. Loads count lone
/// addresses and follow groups, not followers.
pub fn balance_violation(plan: &Plan) -> Option<String> {
    let mut loads: BTreeMap<&str, usize> = BTreeMap::new();
    for d in plan.addresses.values().filter(|d| d.follows.is_none()) {
        if let Some(owner) = &d.owner {
            *loads.entry(owner).or_default() += 1;
        }
    }
    for (address, d) in &plan.addresses {
        let movable = matches!(d.reason, Reason::Held | Reason::Assigned | Reason::Balanced);
        let (Some(owner), true) = (d.owner.as_deref(), movable) else {
            continue;
        };
        let mut candidates: BTreeSet<&str> = d.candidates.iter().map(|c| &**c).collect();
        for follower in plan
            .addresses
            .values()
            .filter(|f| f.follows == Some(*address))
        {
            let theirs: BTreeSet<&str> = follower.candidates.iter().map(|c| &**c).collect();
            candidates = candidates.intersection(&theirs).copied().collect();
        }
        let mine = loads[owner];
        for candidate in candidates {
            let theirs = loads.get(candidate).copied().unwrap_or(0);
            if mine > theirs + 1 {
                return Some(format!(
                    "{address} stays on {owner} (load {mine}) though {candidate} (load {theirs}) could take it"
                ));
            }
        }
    }
    None
}
