//! Takeovers on ownership leases: how a node acts on its failure detector's promises and
//! takeovers (`dvip-lease`), and how the agreed table learns of them afterwards.
//!
//! Owns the agreed epochs of the members, this node's promises and what they defer, and the
//! hold-back of a node whose own epoch moved. It must not decide when a member is silent or
//! when a lease ends: the detector does, and the caller passes its verdicts in. The rules are
//! docs/leases.md's "How it joins the agreed table":
//!
//! - A takeover is acted on only on the plan every promise named, which must still be this
//!   node's ([`Node::lease_plan`]): the table is then the one the successors were computed
//!   from. The taker plumbs its share at once and multicasts `Took`.
//! - `Took`, delivered, makes the taker the holder of what it took and moves the subject's
//!   epoch; each member then multicasts `EpochSeen`. A taker's `Took` goes out before it
//!   delivers any move of that epoch, so once every member's `EpochSeen` is in, no `Took` of
//!   the old epoch is still on its way: the epoch has *settled*.
//! - A member that promised about another plumbs none of the addresses that member held at
//!   the promise until the subject's epoch has settled or the view has changed: the table
//!   may grant them to it meanwhile (the subject let them go), while a taker already has them.
//! - A node whose own epoch moved answers for nothing until the move has settled and it holds
//!   nothing another member holds. Its lease cannot return before its epoch moved.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{Event, Node};
use crate::entity::NodeName;
use crate::wire::Message;

/// This node's lease bookkeeping.
#[derive(Debug, Clone, Default)]
pub(super) struct Leases {
    /// Messages delivered and accepted in the current view: with the view, it names the
    /// table every member has at that point.
    pub(super) accepted: u64,
    /// The agreed epoch of each member of the view (absent: 0).
    epochs: BTreeMap<NodeName, u64>,
    /// This node's promises, by subject.
    promised: BTreeMap<NodeName, Promised>,
    /// Epoch moves not yet seen by every member: the epoch moved to, and who said so.
    unsettled: BTreeMap<NodeName, (u64, BTreeSet<NodeName>)>,
    /// This node's own epoch moved, or its lease lapsed: it answers for nothing until that
    /// is settled.
    held_back: bool,
    /// After a lapse: the echo that must come back first (sent in the current view, or in
    /// the next one when there is none), proving everything ordered before it was read.
    pub(super) lapse_echo: Option<Option<u64>>,
    /// What this node took and about whom, in which epoch, until its `Took` is delivered.
    pub(super) taken: BTreeMap<IpAddr, (NodeName, u64)>,
    /// The other members of the view this node's lease last lapsed in, less those it has met
    /// since in a settled view: any of them may have taken its addresses, which it can learn
    /// only in a view with them again.
    lapsed_among: BTreeSet<NodeName>,
}

/// One promise of this node's, as its plan stood when it was made.
#[derive(Debug, Clone)]
struct Promised {
    epoch: u64,
    plan: u64,
    /// Who takes each address the subject held then (the addresses deferred meanwhile).
    successors: BTreeMap<IpAddr, Option<NodeName>>,
}

/// Why a takeover was not acted on (it is then left to the bus's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TakeoverRefused {
    /// The view is not planned yet, or the subject is not in it (or is this node).
    NotInView,
    /// The subject's epoch has moved since the promises.
    EpochMoved,
    /// A message changed the table since the promises' plan.
    PlanMoved,
    /// This node made no promise on that plan and epoch.
    NoPromise,
}

impl TakeoverRefused {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotInView => "not in view",
            Self::EpochMoved => "epoch moved",
            Self::PlanMoved => "plan moved",
            Self::NoPromise => "no promise",
        }
    }
}

impl Leases {
    fn epoch_of(&self, member: &str) -> u64 {
        self.epochs.get(member).copied().unwrap_or(0)
    }

    /// Whether `address` must not be plumbed by `me` yet: a promise of its own deferred it,
    /// because a takeover on that promise's plan gives it to another member. (The address's
    /// successor itself need not wait: nobody else takes it.)
    fn defers(&self, me: &str, address: &IpAddr) -> bool {
        self.promised.values().any(|p| {
            p.successors
                .get(address)
                .is_some_and(|to| to.as_deref() != Some(me))
        })
    }

    /// A new view: what continues is the epochs of the members still there. Every `Took` of
    /// the old view was delivered in it, before the view, so nothing is unsettled any more;
    /// a held-back node stays so until it holds nothing another member holds.
    pub(super) fn new_view(&mut self, members: &BTreeSet<NodeName>) {
        self.accepted = 0;
        self.epochs.retain(|m, _| members.contains(m));
        self.promised.clear();
        self.unsettled.clear();
    }
}

/// FNV-1a of the view and the count of accepted messages: the same on every member at the
/// same point of the order.
fn plan_number(view_id: u64, accepted: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in view_id
        .to_le_bytes()
        .into_iter()
        .chain(accepted.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Node {
    /// The plan this node holds, as its detector's promises must name it: it changes with every
    /// view and every message that could change the table. Equal on two members at the same
    /// point of the order.
    pub fn lease_plan(&self) -> u64 {
        let view_id = self.view.as_ref().map_or(0, |v| v.id);
        plan_number(view_id, self.leases.accepted)
    }

    /// Whether this node holds off plumbing `address`, granted to it or not: it promised
    /// about the member that held it, and a takeover on that promise gives it to another.
    /// Until that member's epoch has moved and settled, or the view changes.
    pub fn defers(&self, address: &IpAddr) -> bool {
        #[cfg(feature = "planted-bugs")]
        if self.options.planted.take_deferred {
            return false;
        }
        self.leases.defers(&self.me, address)
    }

    /// The agreed epoch of `member` (0 until a takeover of it).
    pub fn epoch_of(&self, member: &str) -> u64 {
        self.leases.epoch_of(member)
    }

    /// The agreed epoch of every member of the current view, this node included (empty with
    /// no view): what the failure detector must hold, whole, after every input.
    pub fn agreed_epochs(&self) -> BTreeMap<NodeName, u64> {
        self.view
            .as_ref()
            .map(|v| {
                v.table
                    .keys()
                    .map(|m| (m.clone(), self.leases.epoch_of(m)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this node may answer for what it holds: false from a move of its own epoch
    /// until every `Took` of the old epoch has been delivered. The caller's kernel lease must
    /// not be renewed meanwhile.
    pub fn may_answer(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if self.options.planted.answer_while_held_back {
            return true;
        }
        !self.leases.held_back
    }

    /// The detector's lease ran out. A takeover may have been delivered in a view this node
    /// has not read (its host was paused, or cut off and excluded): it answers for nothing
    /// until an echo sent now has come back, its view is planned, and nothing it has is
    /// held by another member.
    pub fn handle_lease_lapsed(&mut self) {
        self.leases.held_back = true;
        if let Some(view) = &self.view {
            self.leases.lapsed_among = view
                .table
                .keys()
                .filter(|m| **m != self.me)
                .cloned()
                .collect();
        }
        if self.leases.lapse_echo.is_some() {
            return;
        }
        // One echo at a time: another would restart the wait that tells a stopped bus.
        self.leases.lapse_echo = Some(None);
        if self.echo.is_none() {
            self.leases.lapse_echo = Some(self.send_echo());
        }
    }

    /// An echo came back: a lapse waiting for it is over, or (if it was sent before the
    /// lapse) the lapse's own goes out now.
    pub(super) fn lapse_echo_back(&mut self, nonce: u64) {
        match self.leases.lapse_echo {
            Some(Some(sent)) if sent <= nonce => {
                self.leases.lapse_echo = None;
                self.settle_hold_back();
            }
            Some(None) if self.echo.is_none() => {
                self.leases.lapse_echo = Some(self.send_echo());
            }
            _ => {}
        }
    }

    /// The detector promised, on `plan`, never again to acknowledge `about` in its epoch
    /// `epoch`. Call it before any other input after the promise: the addresses `about` holds
    /// now are deferred, and a takeover on that plan takes them as its successors say.
    pub fn handle_promised(&mut self, about: &str, epoch: u64, plan: u64) {
        // Due in an epoch the table has left (the move was on its way to the detector): no
        // takeover can name it, and what it deferred would stay dark until the view changes.
        if epoch != self.leases.epoch_of(about) {
            return;
        }
        let successors = if plan == self.lease_plan() {
            self.successors(about)
        } else {
            // Not the table it promised on: defer all it holds now (the others' successors
            // are unknown here), and take nothing.
            let nobody = Some(NodeName::new());
            self.view
                .as_ref()
                .and_then(|v| v.table.get(about))
                .map(|m| m.holdings.iter().map(|a| (*a, nobody.clone())).collect())
                .unwrap_or_default()
        };
        self.leases.promised.insert(
            about.to_owned(),
            Promised {
                epoch,
                plan,
                successors,
            },
        );
    }

    /// Every other member promised about `about` in its epoch `epoch` on `plan`: its lease is
    /// over. Plumbs what that plan's successors give this node and multicasts `Took`.
    pub fn handle_takeover(
        &mut self,
        about: &str,
        epoch: u64,
        plan: u64,
    ) -> Result<usize, TakeoverRefused> {
        let view = self
            .view
            .as_ref()
            .filter(|v| v.ready() && about != self.me && v.table.contains_key(about))
            .ok_or(TakeoverRefused::NotInView)?;
        if self.leases.epoch_of(about) != epoch {
            return Err(TakeoverRefused::EpochMoved);
        }
        if self.lease_plan() != plan {
            return Err(TakeoverRefused::PlanMoved);
        }
        let promise = self
            .leases
            .promised
            .get(about)
            .filter(|p| p.epoch == epoch && p.plan == plan)
            .ok_or(TakeoverRefused::NoPromise)?;
        // Only what the subject alone holds: another holder (a healed partition's) keeps it
        // until the plan moves it, release before acquire.
        let taken: Vec<IpAddr> = promise
            .successors
            .iter()
            .filter(|(a, to)| {
                to.as_deref() == Some(self.me.as_str())
                    && !self.plumbed.contains(*a)
                    && view
                        .table
                        .iter()
                        .all(|(n, m)| (n == about) == m.holdings.contains(*a))
            })
            .map(|(a, _)| *a)
            .collect();
        let view_id = view.id;
        if taken.is_empty() {
            return Ok(0);
        }
        // Told before plumbed: plumbing thousands of addresses takes a few hundred
        // milliseconds, and a `Took` the view overtakes is let go and planned again (a second
        // move). What others do on it is bookkeeping: the kernel's lease decides who answers.
        self.send(&Message::Took {
            view_id,
            about: about.to_owned(),
            epoch,
            addresses: taken.clone(),
        });
        for &address in &taken {
            self.leases.taken.insert(address, (about.to_owned(), epoch));
            self.acquire(address);
        }
        self.events.push_back(Event::TookOver {
            about: about.to_owned(),
            addresses: taken.len(),
        });
        Ok(taken.len())
    }

    /// The detector asks to end `about`'s epoch `epoch`: it heard `about` again after
    /// promising, or its promise came to no takeover. The promise stands within the epoch, so
    /// this node ends it (an empty `Took`): its acknowledgements count again, and what it
    /// deferred is its own again once the move has settled.
    pub fn handle_end_epoch(&mut self, about: &str, epoch: u64) {
        // Before the view's States are in, the members may not agree on epochs yet.
        let Some(view_id) = self.view.as_ref().filter(|v| v.ready()).map(|v| v.id) else {
            return;
        };
        if self.leases.epoch_of(about) != epoch {
            return;
        }
        self.send(&Message::Took {
            view_id,
            about: about.to_owned(),
            epoch,
            addresses: Vec::new(),
        });
    }

    /// In a carried view: what this node took whose `Took` the old view never delivered is
    /// in nobody's table. After a host death that is every takeover: corosync orders nothing
    /// once the dead host has the token, so a `Took` sent on the lease reaches the others
    /// only in the new view, where it is stale. What was taken from a member that left is
    /// told again in this view, before this node announces, so every member has it in its
    /// table before the view's first plan and the taker keeps answering. Anything else this
    /// node has that its table does not name (taken from a member still here, whose `Took`
    /// the view overtook) is let go at once; the plan then places it as any free address.
    pub(super) fn let_go_of_untold_takeovers(&mut self) {
        let Some((view, mine)) = self
            .view
            .as_ref()
            .and_then(|v| Some((v, &v.table.get(&self.me)?.holdings)))
        else {
            self.leases.taken.clear();
            return;
        };
        let view_id = view.id;
        let mut retold: BTreeMap<(NodeName, u64), Vec<IpAddr>> = BTreeMap::new();
        let mut untold = Vec::new();
        for &address in self.plumbed.iter().filter(|a| !mine.contains(*a)) {
            match self.leases.taken.get(&address) {
                Some((about, epoch)) if !view.table.contains_key(about) => retold
                    .entry((about.clone(), *epoch))
                    .or_default()
                    .push(address),
                _ => untold.push(address),
            }
        }
        // What is told again waits for its delivery; the rest was the old view's.
        let telling: BTreeSet<IpAddr> = retold.values().flatten().copied().collect();
        self.leases.taken.retain(|a, _| telling.contains(a));
        for address in untold {
            self.let_go(address);
        }
        for ((about, epoch), addresses) in retold {
            self.events.push_back(Event::ToldAgain {
                about: about.clone(),
                addresses: addresses.len(),
            });
            self.send(&Message::Took {
                view_id,
                about,
                epoch,
                addresses,
            });
        }
    }

    /// `Took` from `from`, delivered: the taker holds what it took, and the subject's epoch
    /// moves.
    pub(super) fn took_delivered(
        &mut self,
        from: &str,
        about: &str,
        epoch: u64,
        addresses: &[IpAddr],
    ) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        for address in addresses {
            for (name, member) in view.table.iter_mut() {
                if *name == from {
                    member.holdings.insert(*address);
                } else {
                    member.holdings.remove(address);
                }
            }
        }
        if !addresses.is_empty() {
            self.fence(about);
        }
        if from == self.me {
            for address in addresses {
                self.leases.taken.remove(address);
            }
        } else {
            // Taken from here (this node is the subject), or granted here while deferred:
            // either way another node has it now.
            let lost: Vec<IpAddr> = addresses
                .iter()
                .filter(|a| self.plumbed.contains(*a))
                .copied()
                .collect();
            for address in lost {
                self.let_go(address);
            }
        }
        // A subject that left the view (a `Took` told again after a host death) has no epoch
        // here: the members forget a departed member's epoch with the view, and so do their
        // detectors; moving it now would leave the two disagreeing when it returns.
        let member = self
            .view
            .as_ref()
            .is_some_and(|v| v.table.contains_key(about));
        if member {
            self.move_epoch(about, epoch);
        }
    }

    /// A member whose lease ended and whose addresses were taken is planned around as
    /// holding and offering nothing, as a silent one is, until it announces again: its
    /// daemon may be paused while its corosync runs, and an election with it in would hand
    /// addresses back to a node that cannot answer. The subject itself lets go of what it
    /// still had (it cannot answer for it), and announces once its epoch has settled.
    fn fence(&mut self, about: &str) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if !view.silence(about) {
            return;
        }
        let view_id = view.id;
        self.events.push_back(Event::Silent {
            view_id,
            members: vec![about.to_owned()],
        });
        if about == self.me {
            self.release_all();
        }
        self.events.push_back(Event::Planned { view_id });
    }

    /// Multicasts the epochs this node knows, ahead of its State.
    pub(super) fn send_epochs(&mut self, view_id: u64) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        let epochs: Vec<(NodeName, u64)> = self
            .leases
            .epochs
            .iter()
            .filter(|(m, e)| **e > 0 && view.table.contains_key(*m))
            .map(|(m, e)| (m.clone(), *e))
            .collect();
        if !epochs.is_empty() {
            self.send(&Message::Epochs { view_id, epochs });
        }
    }

    /// `Epochs`, delivered: the greatest epoch heard for each member is everyone's.
    pub(super) fn epochs_delivered(&mut self, epochs: &[(NodeName, u64)]) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        for (member, epoch) in epochs {
            if view.table.contains_key(member) && *epoch > self.leases.epoch_of(member) {
                self.leases.epochs.insert(member.clone(), *epoch);
                self.events.push_back(Event::EpochMoved {
                    member: member.clone(),
                    epoch: *epoch,
                });
            }
        }
    }

    /// `about`'s epoch `ended` is over (a delivered `Took`): everyone moves it at this point.
    fn move_epoch(&mut self, about: &str, ended: u64) {
        let Some(view_id) = self.view.as_ref().map(|v| v.id) else {
            return;
        };
        if ended < self.leases.epoch_of(about) {
            return;
        }
        let epoch = ended + 1;
        self.leases.epochs.insert(about.to_owned(), epoch);
        self.leases
            .unsettled
            .insert(about.to_owned(), (epoch, BTreeSet::new()));
        if about == self.me {
            self.leases.held_back = true;
        }
        self.events.push_back(Event::EpochMoved {
            member: about.to_owned(),
            epoch,
        });
        self.send(&Message::EpochSeen {
            view_id,
            about: about.to_owned(),
            epoch,
        });
    }

    /// `EpochSeen` from `from`, delivered: once every member but the subject said so, the
    /// move has settled.
    pub(super) fn epoch_seen_delivered(&mut self, from: &str, about: &str, epoch: u64) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        let settled = match self.leases.unsettled.get_mut(about) {
            Some((moved_to, seen)) if *moved_to == epoch => {
                seen.insert(from.to_owned());
                view.table
                    .keys()
                    .filter(|m| *m != about)
                    .all(|m| seen.contains(m))
            }
            _ => false,
        };
        if !settled {
            return;
        }
        self.leases.unsettled.remove(about);
        self.leases
            .promised
            .retain(|m, p| m != about || p.epoch >= epoch);
    }

    /// A new view with `members` is about to replace the current one. A member that returns
    /// from the other side of a partition may have taken this node's addresses on its lease just before
    /// (this node's lease lapsed in a view with it), while this node, on its own side, kept
    /// or took them again: the `Took` never reached it. Its epoch's move arrives only with
    /// the returning member's `Epochs`, a few messages into the view; until the view has
    /// settled, this node answers for nothing (found by simulator seed 67 with leases, on a
    /// fault sequence since gone; RELIABILITY.md).
    pub(super) fn hold_back_for_the_returning(&mut self, members: &BTreeSet<NodeName>) {
        let returning = members.iter().any(|m| {
            self.leases.lapsed_among.contains(m)
                && self.view.as_ref().is_none_or(|v| !v.table.contains_key(m))
        });
        if returning {
            self.leases.held_back = true;
        }
    }

    /// Ends the hold-back once nothing of the move is in flight and this node holds nothing
    /// another member holds. Called after every delivered message.
    pub(super) fn settle_hold_back(&mut self) {
        if !self.leases.held_back
            || self.leases.unsettled.contains_key(&self.me)
            || self.leases.lapse_echo.is_some()
        {
            return;
        }
        let Some(view) = self.view.as_ref().filter(|v| v.ready()) else {
            return;
        };
        let shared = view
            .table
            .iter()
            .any(|(n, m)| *n != self.me && m.holdings.iter().any(|a| self.plumbed.contains(a)));
        if shared {
            return;
        }
        self.leases.held_back = false;
        self.leases
            .lapsed_among
            .retain(|m| !view.table.contains_key(m));
        if view.silent.contains(&self.me) {
            // Fenced by a takeover: a State makes it an ordinary member again.
            self.announce();
        }
    }
}
