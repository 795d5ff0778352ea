//! Ownership changes: the last addresses whose agreed owner changed, with the plan's reason.
//!
//! Owns comparing one plan with the next and keeping a bounded record of what moved, so an
//! operator can ask "who moved what, and why" of any member (every member makes the same
//! plans). It must not decide owners.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::election::{Plan, Reason};
use crate::entity::NodeName;

/// How many changes are kept: enough for the last few failovers of a small cluster, and a
/// bounded cost when a large one moves thousands of addresses at once.
pub const CHANGES_KEPT: usize = 64;

/// One address whose owner changed in the agreed plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerChange {
    /// The view the new plan was made in.
    pub view_id: u64,
    /// When, by the node's clock.
    pub at: Duration,
    /// The address.
    pub address: IpAddr,
    /// Its owner before (`None`: nobody).
    pub from: Option<NodeName>,
    /// Its owner now (`None`: nobody).
    pub to: Option<NodeName>,
    /// Why the new owner has it.
    pub reason: Reason,
}

/// The last [`CHANGES_KEPT`] changes, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Changes {
    kept: VecDeque<OwnerChange>,
}

impl Changes {
    /// Records every address both plans know whose owner differs. An address only the new
    /// plan knows (a first plan, a reload that adds it) has no owner to change from.
    pub(crate) fn record(&mut self, old: &Plan, new: &Plan, view_id: u64, at: Duration) {
        for (address, d) in &new.addresses {
            let Some(before) = old.addresses.get(address) else {
                continue;
            };
            if before.owner == d.owner {
                continue;
            }
            if self.kept.len() == CHANGES_KEPT {
                self.kept.pop_front();
            }
            self.kept.push_back(OwnerChange {
                view_id,
                at,
                address: *address,
                from: before.owner.as_deref().map(str::to_owned),
                to: d.owner.as_deref().map(str::to_owned),
                reason: d.reason,
            });
        }
    }

    /// The changes kept, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OwnerChange> {
        self.kept.iter()
    }
}
