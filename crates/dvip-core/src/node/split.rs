//! A view named differently by its members: noticed, and stood down from by the smaller side.
//!
//! Owns what this node heard of the view ids its members name, and the rule that acts on it.
//! It must not plan, and must not decide who is silent: a member named elsewhere is still
//! planned around as silent by the State deadline, as any member that sends no State.
//!
//! Why: every message carries its view's id, and a member drops what carries another. Members
//! that corosync put in one ring but that name their view differently (CPG showed them
//! different process lists: a dvipd killed and restarted as a merge was forming, chaos seed
//! 47, round 146) each drop the other's messages for good. Each plans around the other as
//! silent, and each would take the other's addresses: two owners on one LAN, until the next
//! ring change, which may never come.
//!
//! The rule. A member's messages name a view; an id this node never had (not among its
//! recent views) means the two name this view differently, if this node keeps hearing it:
//! over at least one [`crate::NodeOptions::echo_interval`] (every member echoes that often),
//! the last time once the member has had time to install the view. A backlog read at once
//! (a member, or this node, that was busy for seconds) spans no time and does not count;
//! a member heard in this node's view at all is not counted. A node whose view has at least
//! as many members naming it elsewhere as naming it alike (itself included) stands down: it
//! lets every address go and leaves the view, as on losing corosync, and takes nothing until
//! corosync shows it a new one (any change of the group or the ring; a ring change also
//! makes corosync's process lists agree again). Where those naming it alike are the
//! majority, the node goes on: the smaller side stands down, so when the State deadline
//! plans around it as silent, its addresses are already free. A tie stands both sides down,
//! which is safe.
//!
//! Leaving the group and joining again from the same process would be quicker, but corosync
//! refuses the join (`TRY_AGAIN`) for as long as the old membership stands, which was more
//! than a minute in the lab.
//!
//! Its timing, in fractions of the State deadline so that it always acts before it: the
//! last message naming elsewhere must come from half of it after the view's installation
//! (a member lagging that long is as good as silent), and the judgement is from three
//! quarters of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Event, Node};
use crate::entity::NodeName;

/// How many of this node's latest view ids count as known: a member behind by a few views
/// names one of them, not a view of its own.
pub(super) const RECENT_VIEWS: usize = 8;

/// What this node heard, in its current view, of the view ids its members name.
#[derive(Debug, Clone, Default)]
pub(super) struct Heard {
    /// Members heard in this view.
    alike: BTreeSet<NodeName>,
    /// Members heard naming a view this node never had: the last id named, and when that
    /// was first and last heard.
    elsewhere: BTreeMap<NodeName, (u64, Duration, Duration)>,
    /// This node reported the split (once a view).
    reported: bool,
}

impl Node {
    /// Remembers `view_id` as this node's, among its recent views.
    pub(super) fn remember_view(&mut self, view_id: u64) {
        if self.recent_views.len() == RECENT_VIEWS {
            self.recent_views.pop_front();
        }
        self.recent_views.push_back(view_id);
    }

    /// A message from `from` named `view_id` (whatever it was, and before any check).
    pub(super) fn hear_view_named(&mut self, from: &str, view_id: u64) {
        let now = self.now;
        let known = self.recent_views.contains(&view_id);
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if from == self.me || !view.table.contains_key(from) {
            return;
        }
        if view_id == view.id {
            view.heard.alike.insert(from.to_owned());
        } else if !known {
            let heard = view
                .heard
                .elsewhere
                .entry(from.to_owned())
                .or_insert((view_id, now, now));
            heard.0 = view_id;
            heard.2 = now;
        }
    }

    /// Stands down if at least half of this node's view names it elsewhere (see the module
    /// documentation); reports a split either way, once a view.
    pub(super) fn judge_split(&mut self) {
        #[cfg(feature = "planted-bugs")]
        if self.options.planted.ignore_split {
            return;
        }
        let judge_from = self.now.saturating_sub(self.options.state_deadline * 3 / 4);
        let (grace, span) = (self.options.state_deadline / 2, self.options.echo_interval);
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if view.installed_at > judge_from {
            return;
        }
        let elsewhere: BTreeMap<NodeName, u64> = view
            .heard
            .elsewhere
            .iter()
            .filter(|(m, (_, first, last))| {
                !view.heard.alike.contains(*m)
                    && *last >= view.installed_at + grace
                    && last.saturating_sub(*first) >= span
            })
            .map(|(m, (id, _, _))| (m.clone(), *id))
            .collect();
        if elsewhere.is_empty() {
            return;
        }
        let stand_down = elsewhere.len() * 2 >= view.table.len();
        if std::mem::replace(&mut view.heard.reported, true) && !stand_down {
            return;
        }
        self.events.push_back(Event::ViewSplit {
            view_id: view.id,
            named: elsewhere.into_iter().collect(),
            stood_down: stand_down,
        });
        if stand_down {
            self.handle_bus_lost();
        }
    }
}
