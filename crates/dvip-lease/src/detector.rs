//! One member's detector: what it has heard, what it acknowledges, what it has promised,
//! its own lease, and the takeovers it may make.
//!
//! Owns the rules of the crate's documentation. It must not read a clock or send: the caller
//! passes `now` (its own monotonic clock) to every call and sends the beats it builds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::beat::{Ack, Beat, Promise};
use crate::options::{Flaw, LeaseOptions};

/// Whether this member may answer for its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Until `until` on this member's clock (`None`: alone in the view, nobody can take over).
    Held { until: Option<Duration> },
    /// Not held: let go of every address now.
    Lost,
}

/// Every other member has promised about `about` in its epoch `epoch`, on plan `plan`: its
/// lease is over, and its addresses go as that plan's successors say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub about: String,
    pub epoch: u64,
    pub plan: u64,
}

/// A member silent for `suspect_after`: the caller records what it will defer, then makes
/// the promise ([`Detector::promise`]) on the plan it holds at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub about: String,
    pub epoch: u64,
}

/// What one [`Detector::tick`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticked {
    /// Promises now due (each once per epoch).
    pub due: Vec<Due>,
    /// The takeovers that have just become possible.
    pub takeovers: Vec<Takeover>,
    /// Promises whose epoch the caller should end (again every `suspect_after` until it has
    /// moved): their subject was heard again
    /// since, or no takeover came of them within twice `suspect_after` (a member that still
    /// hears the subject never promises). The promise stands for the epoch, so only a new
    /// epoch lets the subject's lease return, and lets this member take what the subject
    /// lets go.
    pub to_end: Vec<Due>,
}

/// What the caller's agreed table says at one point of the bus's order: which view it is in
/// (`None`: no group), and the agreed epoch of each member of that view, itself included.
///
/// The detector is handed the whole of it after every input, never a change at a time: a
/// change can be lost between two threads, or never made (a table that kept an epoch while
/// the detector started over), and a detector whose epoch of a member is not the table's
/// promises in an epoch no takeover can end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreed {
    pub view: Option<u64>,
    pub epochs: BTreeMap<String, u64>,
}

/// A member this one does not acknowledge in its epoch `epoch`, since `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Silenced {
    epoch: u64,
    since: Duration,
}

/// What this member knows of another.
#[derive(Debug, Clone, Default)]
struct Heard {
    /// When a beat of it last arrived, on this member's clock.
    last: Duration,
    /// Which run of its daemon the beats come from (its clock starts again with each).
    incarnation: Option<u64>,
    /// The latest send time heard from it in that run, on its clock.
    sent: Option<Duration>,
    /// Its epoch, as agreed (moved by the caller).
    epoch: u64,
    /// The promises it has made, by subject.
    promises: BTreeMap<String, Promise>,
    /// Whether any beat of it ever arrived. A member never heard is never promised about:
    /// one whose daemon starts later than this one's is not a silent owner, and nothing it
    /// could hold is taken without corosync's view.
    ever: bool,
}

/// One member's failure detector.
#[derive(Debug, Clone)]
pub struct Detector {
    me: String,
    /// Which run of this daemon: acknowledgements count only for its own beats.
    incarnation: u64,
    options: LeaseOptions,
    /// Until then this member acknowledges nobody: a restarted daemon first hears the
    /// promises it may have made before it forgot them.
    quiet_until: Duration,
    epoch: u64,
    members: BTreeSet<String>,
    heard: BTreeMap<String, Heard>,
    /// The latest of this member's send times each other member acknowledged, in its epoch.
    acked: BTreeMap<String, Duration>,
    /// Members this member will not acknowledge in their epoch: its own promises, and those
    /// it heard from others.
    silenced: BTreeMap<String, Silenced>,
    /// This member's promises, by subject.
    promised: BTreeMap<String, Promise>,
    /// Promises reported due, by subject: the epoch.
    asked: BTreeMap<String, u64>,
    /// Takeovers already reported, by subject and epoch.
    reported: BTreeSet<(String, u64)>,
    /// Promises to end, by subject and epoch: when last reported.
    to_end: BTreeMap<(String, u64), Option<Duration>>,
    next_beat: Duration,
    /// The lease ran out at some point since [`Detector::take_lapsed`] last said so.
    lapsed: bool,
    /// The lease was held when last looked at (a lapse is the change to lost; a lease never
    /// held has nothing to lapse).
    was_held: bool,
    /// When the view's members last changed: no takeover until `suspect_after` later.
    members_since: Duration,
    /// The view of the last [`Agreed`] followed.
    view: Option<u64>,
    /// When `tick` last ran: a longer gap than half of `suspect_after` means this member was
    /// paused, and its silence is not the others'.
    last_tick: Duration,
}

impl Detector {
    /// A detector started at `now`, alone until [`Detector::set_members`].
    ///
    /// `incarnation` tells this run of the daemon from the ones before (its clock, and so its
    /// beats' send times, start again): any number the caller's earlier runs never used.
    pub fn new(
        me: impl Into<String>,
        options: LeaseOptions,
        now: Duration,
        incarnation: u64,
    ) -> Self {
        let me = me.into();
        Self {
            incarnation,
            members: [me.clone()].into(),
            me,
            quiet_until: now + options.suspect_after,
            options,
            epoch: 0,
            heard: BTreeMap::new(),
            acked: BTreeMap::new(),
            silenced: BTreeMap::new(),
            promised: BTreeMap::new(),
            asked: BTreeMap::new(),
            reported: BTreeSet::new(),
            to_end: BTreeMap::new(),
            next_beat: now,
            last_tick: now,
            members_since: now,
            view: None,
            lapsed: false,
            was_held: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    /// The members of the current view (this one is added if missing). A member new to this
    /// detector counts as heard at `now`, so it is not suspected before it could speak.
    ///
    /// No takeover is allowed until `suspect_after` after any view (the same members or not):
    /// a member that has not yet installed the view may still hold a lease drawn from members
    /// that left it, which the promises of those that stayed do not end. By then it has
    /// installed the view and counts only its members' acknowledgements, or it is stopped
    /// and its kernel's lease has run out.
    pub fn set_members(&mut self, members: &BTreeSet<String>, now: Duration) {
        let mut members = members.clone();
        members.insert(self.me.clone());
        // Every view, even one with the same members: the bus may have shown this member
        // views in between that it never read (its corosync was stopped).
        self.members_since = now;
        self.members = members.clone();
        let me = self.me.clone();
        self.heard.retain(|name, _| members.contains(name));
        self.acked.retain(|name, _| members.contains(name));
        self.promised.retain(|name, _| members.contains(name));
        self.asked.retain(|name, _| members.contains(name));
        // One that left the view and comes back is a new member: what was promised about it
        // ended with the view that excluded it (the bus handed its addresses on).
        self.silenced.retain(|name, _| members.contains(name));
        self.reported.retain(|(name, _)| members.contains(name));
        self.to_end.retain(|(name, _), _| members.contains(name));
        for name in members.iter().filter(|&n| *n != me) {
            self.heard.entry(name.clone()).or_insert_with(|| Heard {
                last: now,
                ..Heard::default()
            });
        }
    }

    /// Takes the caller's agreed table as it is now: a new view sets the members, and every
    /// member's epoch becomes the table's. Call it after every input to the table.
    pub fn set_agreed(&mut self, agreed: &Agreed, now: Duration) {
        if agreed.view != self.view {
            self.view = agreed.view;
            let members = agreed.epochs.keys().cloned().collect();
            self.set_members(&members, now);
        }
        for (member, epoch) in &agreed.epochs {
            self.set_epoch(member, *epoch, now);
        }
    }

    /// Promises, on `plan`, never again to acknowledge `about` in its epoch `epoch` (a
    /// [`Due`] the caller has recorded): from now on every beat says so. Nothing happens if
    /// the epoch has moved, or the promise is already made.
    pub fn promise(&mut self, about: &str, epoch: u64, plan: u64, now: Duration) {
        let current = self.heard.get(about).map(|h| h.epoch);
        if current != Some(epoch) || self.promised.contains_key(about) {
            return;
        }
        self.promised.insert(
            about.to_owned(),
            Promise {
                about: about.to_owned(),
                epoch,
                plan,
            },
        );
        self.silenced
            .insert(about.to_owned(), Silenced { epoch, since: now });
    }

    /// Moves `member`'s epoch (agreed: a takeover of it or its lost lease was delivered).
    /// Promises about it in older epochs are void; it is given `suspect_after` again.
    pub fn set_epoch(&mut self, member: &str, epoch: u64, now: Duration) {
        if member == self.me {
            // Acknowledgements from the old epoch still count until they run out: each was
            // given before its giver promised anything, in any epoch, so it ends before any
            // promise it could outlive.
            self.epoch = epoch;
            return;
        }
        if let Some(heard) = self.heard.get_mut(member) {
            if heard.epoch != epoch {
                heard.epoch = epoch;
                heard.sent = None;
                heard.last = heard.last.max(now);
            }
        }
        if self.silenced.get(member).is_some_and(|s| s.epoch < epoch) {
            self.silenced.remove(member);
        }
        if self.promised.get(member).is_some_and(|p| p.epoch < epoch) {
            self.promised.remove(member);
        }
        self.to_end
            .retain(|(name, e), _| name != member || *e >= epoch);
    }

    /// This member's own epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The epoch of another member, as agreed so far (`None`: not a member).
    pub fn epoch_of(&self, member: &str) -> Option<u64> {
        self.heard.get(member).map(|h| h.epoch)
    }

    /// When the next beat is due.
    pub fn next_beat(&self) -> Duration {
        self.next_beat
    }

    /// The beat to send every other member now; the next is due `interval` later.
    pub fn beat(&mut self, now: Duration) -> Beat {
        self.next_beat = now + self.options.interval;
        let acks = if now < self.quiet_until {
            Vec::new()
        } else {
            self.heard
                .iter()
                .filter(|(name, heard)| {
                    self.options.flaw == Some(Flaw::AckAfterPromise)
                        || self.silenced.get(*name).map(|s| s.epoch) != Some(heard.epoch)
                })
                .filter_map(|(name, heard)| {
                    Some(Ack {
                        to: name.clone(),
                        incarnation: heard.incarnation?,
                        sent: heard.sent?,
                    })
                })
                .collect()
        };
        Beat {
            from: self.me.clone(),
            incarnation: self.incarnation,
            sent: now,
            epoch: self.epoch,
            acks,
            promises: self.promised.values().cloned().collect(),
        }
    }

    /// A beat arrived at `now`.
    pub fn receive(&mut self, beat: &Beat, now: Duration) {
        self.note_lapse(now);
        let Some(heard) = self.heard.get_mut(&beat.from) else {
            return;
        };
        heard.last = heard.last.max(now);
        heard.ever = true;
        if heard.incarnation != Some(beat.incarnation) {
            // A new run of its daemon: send times from the last one mean nothing now.
            heard.incarnation = Some(beat.incarnation);
            heard.sent = None;
        }
        // Any beat of this run may be acknowledged, whatever epoch either side thinks it is
        // in: the acknowledgement is for a beat sent before its giver last heard the owner, so
        // the lease it renews ends before any promise the giver can make, in any epoch.
        heard.sent = heard.sent.max(Some(beat.sent));
        if self
            .promised
            .get(&beat.from)
            .is_some_and(|p| p.epoch == heard.epoch)
        {
            self.to_end
                .entry((beat.from.clone(), heard.epoch))
                .or_insert(None);
        }
        for ack in beat.acks.iter().filter(|a| a.to == self.me) {
            if ack.incarnation == self.incarnation {
                let sent = match self.options.flaw {
                    Some(Flaw::LeaseFromArrival) => now,
                    _ => ack.sent,
                };
                let held = self.acked.entry(beat.from.clone()).or_default();
                *held = (*held).max(sent);
            }
        }
        heard.promises = beat
            .promises
            .iter()
            .map(|p| (p.about.clone(), p.clone()))
            .collect();
        // Whatever another member promised, this one stops acknowledging too: one promise
        // made and forgotten in a restart must not be undone by the others' acknowledgements.
        for promise in &beat.promises {
            let agreed = self.heard.get(&promise.about).map(|h| h.epoch);
            let known = self.silenced.get(&promise.about).map(|s| s.epoch);
            if agreed == Some(promise.epoch) && known.is_none_or(|e| e < promise.epoch) {
                let silenced = Silenced {
                    epoch: promise.epoch,
                    since: now,
                };
                self.silenced.insert(promise.about.clone(), silenced);
            }
        }
    }

    /// Makes the promises that are due, and says which it made and which takeovers became
    /// possible.
    pub fn tick(&mut self, now: Duration) -> Ticked {
        if now.saturating_sub(self.last_tick) > self.options.suspect_after / 2 {
            // Paused: what it missed meanwhile (a new view among them) arrives now. It
            // suspects nobody until it has listened for `suspect_after` again.
            for heard in self.heard.values_mut() {
                heard.last = heard.last.max(now);
            }
        }
        self.last_tick = self.last_tick.max(now);
        self.note_lapse(now);
        let after = match self.options.flaw {
            Some(Flaw::PromiseEarly) => self.options.suspect_after / 2,
            _ => self.options.suspect_after,
        };
        let mut due = Vec::new();
        for (name, heard) in &self.heard {
            if heard.ever
                && now.saturating_sub(heard.last) >= after
                && !self.promised.contains_key(name)
                && self.asked.get(name) != Some(&heard.epoch)
            {
                due.push(Due {
                    about: name.clone(),
                    epoch: heard.epoch,
                });
            }
        }
        for d in &due {
            self.asked.insert(d.about.clone(), d.epoch);
        }
        // A silence of its own or adopted (its promiser may have restarted and forgotten it)
        // that led to no takeover is ended: it would keep the subject's lease from returning.
        for (about, silenced) in &self.silenced {
            let current = self.heard.get(about).map(|h| h.epoch) == Some(silenced.epoch);
            let overdue = now.saturating_sub(silenced.since) >= 2 * self.options.suspect_after;
            if current && overdue && !self.reported.contains(&(about.clone(), silenced.epoch)) {
                self.to_end
                    .entry((about.clone(), silenced.epoch))
                    .or_insert(None);
            }
        }
        let mut ready = Vec::new();
        // A member whose own lease is lost may be the one cut off: what it took it could not
        // answer for, and its `Took` could reach a later view. It takes nothing until its
        // lease is back (in a pair, that is until the bus's view: leases are for three nodes
        // and more).
        let settled = now >= self.members_since + self.options.suspect_after
            && self.lease(now) != Lease::Lost;
        for (about, heard) in self.heard.iter().filter(|_| settled) {
            let epoch = heard.epoch;
            if self.reported.contains(&(about.clone(), epoch)) {
                continue;
            }
            let mut plans = BTreeSet::new();
            let all = self.members.iter().filter(|m| *m != about).all(|m| {
                let promise = if *m == self.me {
                    self.promised.get(about)
                } else {
                    self.heard.get(m).and_then(|h| h.promises.get(about))
                };
                promise
                    .filter(|p| p.epoch == epoch)
                    .map(|p| plans.insert(p.plan))
                    .is_some()
            });
            if all && plans.len() == 1 {
                ready.push(Takeover {
                    about: about.clone(),
                    epoch,
                    plan: plans.into_iter().next().unwrap_or_default(),
                });
            }
        }
        for t in &ready {
            self.reported.insert((t.about.clone(), t.epoch));
        }
        let mut to_end = Vec::new();
        // Said again every `suspect_after` until the epoch moves: the caller may not be
        // able to end it yet (its view not planned), and a promise that stands silences its
        // subject for every member.
        for ((about, epoch), reported) in &mut self.to_end {
            let due =
                reported.is_none_or(|at| now.saturating_sub(at) >= self.options.suspect_after);
            let standing = self.silenced.get(about).is_some_and(|s| s.epoch == *epoch);
            if due && standing {
                *reported = Some(now);
                to_end.push(Due {
                    about: about.clone(),
                    epoch: *epoch,
                });
            }
        }
        Ticked {
            due,
            takeovers: ready,
            to_end,
        }
    }

    /// This member's lease at `now`: held while a majority of the view (itself included)
    /// acknowledged one of its beats sent less than the lease ago.
    pub fn lease(&self, now: Duration) -> Lease {
        let needed = self.members.len() / 2; // others, beside itself
        if needed == 0 {
            return Lease::Held { until: None };
        }
        let mut acks: Vec<Duration> = self
            .members
            .iter()
            .filter_map(|m| self.acked.get(m).copied())
            .collect();
        if acks.len() < needed {
            return Lease::Lost;
        }
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let until = acks[needed - 1] + self.options.lease();
        if now < until {
            Lease::Held { until: Some(until) }
        } else {
            Lease::Lost
        }
    }

    /// Whether the lease ran out (was held, then lost) since the last call (then cleared), outside
    /// the `suspect_after` that follows a change of members (when more acknowledgements may
    /// be needed than have come, and no takeover is allowed). Whoever may have taken this
    /// member's addresses meanwhile, the caller answers for nothing until it has read what
    /// the bus delivered since.
    pub fn take_lapsed(&mut self) -> bool {
        std::mem::take(&mut self.lapsed)
    }

    fn note_lapse(&mut self, now: Duration) {
        if now < self.members_since + self.options.suspect_after {
            return;
        }
        let held = self.lease(now) != Lease::Lost;
        if !held && self.was_held {
            self.lapsed = true;
        }
        self.was_held = held;
    }

    /// The latest of this member's send times each other member acknowledged.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&String, Duration)> {
        self.acked.iter().map(|(m, sent)| (m, *sent))
    }

    /// The members this one does not acknowledge now: the epoch it withholds them in, and
    /// whether the promise is its own (else adopted from another member's beats).
    pub fn withheld(&self) -> impl Iterator<Item = (&String, u64, bool)> {
        self.silenced
            .iter()
            .filter(|(m, s)| self.heard.get(*m).is_some_and(|h| h.epoch == s.epoch))
            .map(|(m, s)| (m, s.epoch, self.promised.contains_key(m)))
    }

    /// The members of the view, this one included.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    /// The promises this member has made, by subject.
    pub fn promised(&self) -> impl Iterator<Item = &Promise> {
        self.promised.values()
    }

    /// The earliest time something may change without a beat arriving: the next beat, a
    /// member's silence turning into a promise, or this member's lease running out.
    pub fn next_deadline(&self) -> Duration {
        let suspicion = self
            .heard
            .iter()
            .filter(|(name, h)| h.ever && !self.promised.contains_key(*name))
            .map(|(_, h)| h.last + self.options.suspect_after)
            .min();
        let lease = match self.lease(Duration::ZERO) {
            Lease::Held { until } => until,
            Lease::Lost => None,
        };
        [Some(self.next_beat), suspicion, lease]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ticks, and makes every promise due on plan 0, as a caller would.
    fn tick(d: &mut Detector, now: Duration) -> Ticked {
        let ticked = d.tick(now);
        for due in &ticked.due {
            d.promise(&due.about, due.epoch, 0, now);
        }
        ticked
    }

    fn three() -> Vec<Detector> {
        let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        names
            .iter()
            .map(|n| {
                let mut d = Detector::new(n.clone(), LeaseOptions::default(), ms(0), 0);
                d.set_members(&names, ms(0));
                d
            })
            .collect()
    }

    /// Three members that have beaten for 100 ms, and the time.
    fn settled() -> (Vec<Detector>, Duration) {
        let mut ds = three();
        let mut now = ms(0);
        while now < ms(100) {
            round(&mut ds, now, None);
            now += ms(5);
        }
        (ds, now)
    }

    /// Every member beats at `now` and every beat reaches everyone but `silent`'s.
    fn round(ds: &mut [Detector], now: Duration, silent: Option<&str>) -> Vec<Takeover> {
        let beats: Vec<Beat> = ds
            .iter_mut()
            .filter(|d| Some(d.name()) != silent)
            .map(|d| d.beat(now))
            .collect();
        let mut ready = Vec::new();
        for d in ds.iter_mut() {
            for b in &beats {
                if b.from != d.name() {
                    d.receive(b, now);
                }
            }
            ready.extend(tick(d, now).takeovers);
        }
        ready
    }

    #[test]
    fn a_heard_member_keeps_its_lease_and_a_silent_one_is_taken_over_once_it_has_lost_it() {
        let mut ds = three();
        let mut now = ms(0);
        while now < ms(100) {
            assert!(round(&mut ds, now, None).is_empty(), "nobody is silent");
            now += ms(5);
        }
        assert!(matches!(ds[0].lease(now), Lease::Held { .. }));
        // a stops being heard (its beats are lost; it still hears the others).
        let silent_from = now;
        let mut taken = Vec::new();
        while taken.is_empty() {
            taken = round(&mut ds, now, Some("a"));
            now += ms(1);
            assert!(now < silent_from + ms(60), "the others take over within T");
        }
        assert_eq!(taken.len(), 2, "b and c both see it: {taken:?}");
        assert!(taken.iter().all(|t| t.about == "a" && t.epoch == 0));
        assert_eq!(ds[0].lease(now - ms(1)), Lease::Lost, "a let go first");
        // b, whose beats still reach a, keeps its lease.
        assert!(matches!(ds[1].lease(now), Lease::Held { .. }));
    }

    #[test]
    fn a_restarted_member_acknowledges_nobody_another_has_promised_about() {
        let (mut ds, mut now) = settled();
        // b promises about a (a's beats to b are lost), then c restarts.
        for _ in 0..10 {
            let beat_a = ds[0].beat(now);
            ds[2].receive(&beat_a, now);
            let beat_b = ds[1].beat(now);
            ds[0].receive(&beat_b, now);
            ds[2].receive(&beat_b, now);
            tick(&mut ds[1], now);
            now += ms(5);
        }
        assert!(ds[1].promised().any(|p| p.about == "a"));
        let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut c = Detector::new("c", LeaseOptions::default(), now, 1);
        c.set_members(&names, now);
        for _ in 0..20 {
            c.receive(&ds[0].beat(now), now);
            c.receive(&ds[1].beat(now), now);
            let acks = c.beat(now).acks;
            assert!(acks.iter().all(|a| a.to != "a"), "{acks:?}");
            now += ms(5);
        }
    }

    #[test]
    fn the_agreed_table_is_taken_whole_even_where_nothing_moved() {
        let epochs = |e: u64| -> BTreeMap<String, u64> {
            [("a", e), ("b", 0), ("c", 0)]
                .map(|(m, e)| (m.to_owned(), e))
                .into()
        };
        let mut b = Detector::new("b", LeaseOptions::default(), ms(0), 0);
        let view = |id, epochs| Agreed {
            view: Some(id),
            epochs,
        };
        b.set_agreed(&view(1, epochs(3)), ms(0));
        assert_eq!(b.epoch_of("a"), Some(3));
        assert_eq!(b.members().len(), 3);
        // The group is lost and joined again; the table kept a's epoch, so nothing moved.
        b.set_agreed(&Agreed::default(), ms(10));
        assert_eq!(b.epoch_of("a"), None, "alone: nobody to beat to");
        b.set_agreed(&view(2, epochs(3)), ms(20));
        assert_eq!(b.epoch_of("a"), Some(3), "the table's epoch, not a fresh 0");
        // Within a view, an epoch that moves moves here, and the members stay as they were.
        b.set_agreed(&view(2, epochs(4)), ms(30));
        assert_eq!(b.epoch_of("a"), Some(4));
        assert_eq!(b.members().len(), 3);
    }

    #[test]
    fn a_member_never_heard_is_never_promised_about() {
        let mut ds = three();
        let mut c = ds.pop().expect("three");
        let mut now = ms(0);
        while now < ms(200) {
            round(&mut ds, now, None);
            now += ms(5);
        }
        assert!(ds.iter().all(|d| d.promised().next().is_none()));
        // Once heard, its silence counts.
        let beat = c.beat(now);
        for d in &mut ds {
            d.receive(&beat, now);
        }
        while now < ms(300) {
            round(&mut ds, now, None);
            now += ms(5);
        }
        assert!(ds.iter().all(|d| d.promised().any(|p| p.about == "c")));
    }

    #[test]
    fn alone_in_the_view_the_lease_never_ends_and_a_pair_needs_the_other() {
        let d = Detector::new("a", LeaseOptions::default(), ms(0), 0);
        assert_eq!(d.lease(ms(10_000)), Lease::Held { until: None });
        let names: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let mut a = Detector::new("a", LeaseOptions::default(), ms(0), 0);
        a.set_members(&names, ms(0));
        assert_eq!(a.lease(ms(0)), Lease::Lost, "nobody acknowledged yet");
    }

    #[test]
    fn no_takeover_until_suspect_after_has_passed_since_the_members_changed() {
        let (mut ds, mut now) = settled();
        // a falls silent; just before b and c would take over, the view changes (a fourth
        // member leaves, say): the takeover waits `suspect_after` from the change.
        let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut changed = None;
        let mut taken = Vec::new();
        while taken.is_empty() {
            if changed.is_none() && ds[1].promised().any(|p| p.about == "a") {
                let more: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
                for d in &mut ds {
                    d.set_members(&more, now);
                    d.set_members(&names, now);
                }
                changed = Some(now);
            }
            taken = round(&mut ds, now, Some("a"));
            now += ms(1);
            assert!(now < ms(400), "never taken over");
        }
        let changed = changed.expect("the promise came before the takeover");
        assert!(
            now > changed + LeaseOptions::default().suspect_after,
            "taken over {:?} after the members changed",
            now - changed
        );
    }

    #[test]
    fn a_lapse_is_reported_once_when_the_lease_runs_out() {
        let (mut ds, mut now) = settled();
        assert!(!ds[0].take_lapsed(), "held all along");
        // a hears nobody: its lease runs out.
        let mut lapses = 0;
        while now < ms(300) {
            let beat = ds[0].beat(now);
            for d in &mut ds[1..] {
                d.receive(&beat, now);
            }
            tick(&mut ds[0], now);
            lapses += usize::from(ds[0].take_lapsed());
            now += ms(5);
        }
        assert_eq!(lapses, 1, "one lapse, not one per tick");
        assert_eq!(ds[0].lease(now), Lease::Lost);
    }

    #[test]
    fn a_promise_is_to_be_ended_when_its_subject_speaks_or_no_takeover_comes() {
        let (mut ds, mut now) = settled();
        // a's beats reach c but not b: b promises, c never does, so no takeover.
        let mut ended = Vec::new();
        while now < ms(400) && ended.is_empty() {
            let beats: Vec<Beat> = ds.iter_mut().map(|d| d.beat(now)).collect();
            for (i, d) in ds.iter_mut().enumerate() {
                for b in &beats {
                    if b.from != d.name() && !(b.from == "a" && i == 1) {
                        d.receive(b, now);
                    }
                }
            }
            let ticked = tick(&mut ds[1], now);
            assert!(ticked.takeovers.is_empty());
            ended = ticked.to_end;
            tick(&mut ds[2], now);
            now += ms(5);
        }
        assert_eq!(ended.len(), 1, "b ends its promise");
        assert_eq!(ended[0].about, "a");
        // Meanwhile b withholds its acknowledgements from a, on its own promise, and c, having
        // heard b's, adopts it.
        let withheld = |d: &Detector| -> Vec<(String, u64, bool)> {
            d.withheld()
                .map(|(m, e, own)| (m.clone(), e, own))
                .collect()
        };
        assert_eq!(withheld(&ds[1]), vec![("a".to_owned(), 0, true)]);
        assert_eq!(withheld(&ds[2]), vec![("a".to_owned(), 0, false)]);
        // Ended for good in this epoch: once moved, b may promise again.
        ds[1].set_epoch("a", 1, now);
        assert!(ds[1].promised().next().is_none());
        assert!(withheld(&ds[1]).is_empty(), "a new epoch is acknowledged");
    }

    #[test]
    fn a_paused_member_suspects_nobody_before_listening_again() {
        let (mut ds, mut now) = settled();
        // b is stopped for a second; when it wakes, the others' beats have not arrived yet.
        now += ms(1000);
        assert!(
            tick(&mut ds[1], now).due.is_empty(),
            "it was b that was silent"
        );
        assert!(tick(&mut ds[1], now + ms(30)).due.is_empty());
    }
}
