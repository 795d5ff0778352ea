//! Balance: even out the loads by moving as few units as possible.
//!
//! Owns rule 6 of the election. A unit moves from its owner to another of its candidates
//! only when that candidate's load is at least two below the owner's, so every move lowers the
//! spread and the loop ends; at the end no movable unit has a candidate two below its owner.
//! Pinned and preferred units count in the loads but never move. It must not change which
//! units exist or their candidates.

use super::{Reason, Unit};

pub(super) fn balance(units: &mut [Unit], loads: &mut [usize]) {
    // Movable units per owner, in address order; moves take from the end.
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); loads.len()];
    for (u, unit) in units.iter().enumerate() {
        if let (Some(o), true) = (unit.owner, unit.movable()) {
            owned[o].push(u);
        }
    }
    // Nodes with nothing to give right now; cleared whenever a move changes the loads.
    let mut stuck = vec![false; loads.len()];
    loop {
        let Some(from) = (0..loads.len())
            .filter(|&n| !stuck[n])
            .max_by_key(|&n| (loads[n], std::cmp::Reverse(n)))
        else {
            return;
        };
        // Nothing can move if no node at all is two below the most loaded one: with equal
        // configurations and a fresh assignment, this ends the loop at once.
        let lowest = loads.iter().copied().min().unwrap_or(0);
        if loads[from] < lowest + 2 {
            return;
        }
        let mut moved = None;
        for position in (0..owned[from].len()).rev() {
            let u = owned[from][position];
            let target = units[u]
                .candidates
                .iter()
                .filter(|&c| c != from && loads[c] + 2 <= loads[from])
                .min_by_key(|&c| (loads[c], c));
            if let Some(to) = target {
                moved = Some((position, u, to));
                break;
            }
        }
        match moved {
            Some((position, u, to)) => {
                owned[from].remove(position);
                let at = owned[to].partition_point(|&v| v < u);
                owned[to].insert(at, u);
                units[u].owner = Some(to);
                units[u].reason = Reason::Balanced;
                loads[from] -= 1;
                loads[to] += 1;
                stuck.iter_mut().for_each(|s| *s = false);
            }
            None => stuck[from] = true,
        }
    }
}
