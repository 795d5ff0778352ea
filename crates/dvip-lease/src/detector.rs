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

/// What one [`Detector::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticked {
    /// The members it has just promised about.
    pub promised: Vec<String>,
    /// The takeovers that have just become possible.
    pub takeovers: Vec<Takeover>,
}

/// What this member knows of another.
#[derive(Debug, Clone, Default)]
struct Heard {
    /// When a beat of it last arrived, on this member's clock.
    last: Duration,
    /// The latest send time heard from it in its current epoch, on its clock.
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
    options: LeaseOptions,
    /// Until then this member acknowledges nobody: a restarted daemon first hears the
    /// promises it may have made before it forgot them.
    quiet_until: Duration,
    plan: u64,
    epoch: u64,
    members: BTreeSet<String>,
    heard: BTreeMap<String, Heard>,
    /// The latest of this member's send times each other member acknowledged, in its epoch.
    acked: BTreeMap<String, Duration>,
    /// Members this member will not acknowledge in their epoch: its own promises, and those
    /// it heard from others.
    silenced: BTreeMap<String, u64>,
    /// This member's promises, by subject.
    promised: BTreeMap<String, Promise>,
    /// Takeovers already reported, by subject and epoch.
    reported: BTreeSet<(String, u64)>,
    next_beat: Duration,
}

impl Detector {
    /// A detector started at `now`, alone until [`Detector::set_members`].
    pub fn new(me: impl Into<String>, options: LeaseOptions, now: Duration) -> Self {
        let me = me.into();
        Self {
            members: [me.clone()].into(),
            me,
            quiet_until: now + options.suspect_after,
            options,
            plan: 0,
            epoch: 0,
            heard: BTreeMap::new(),
            acked: BTreeMap::new(),
            silenced: BTreeMap::new(),
            promised: BTreeMap::new(),
            reported: BTreeSet::new(),
            next_beat: now,
        }
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    /// The members of the current view (this one is added if missing). A member new to this
    /// detector counts as heard at `now`, so it is not suspected before it could speak.
    pub fn set_members(&mut self, members: &BTreeSet<String>, now: Duration) {
        self.members = members.clone();
        self.members.insert(self.me.clone());
        let me = self.me.clone();
        self.heard.retain(|name, _| members.contains(name));
        self.acked.retain(|name, _| members.contains(name));
        self.promised.retain(|name, _| members.contains(name));
        for name in members.iter().filter(|&n| *n != me) {
            self.heard.entry(name.clone()).or_insert_with(|| Heard {
                last: now,
                ..Heard::default()
            });
        }
    }

    /// The plan this member holds now: its promises from here on name it.
    pub fn set_plan(&mut self, plan: u64) {
        self.plan = plan;
    }

    /// Moves `member`'s epoch (agreed: a takeover of it or its lost lease was delivered).
    /// Promises about it in older epochs are void; it is given `suspect_after` again.
    pub fn set_epoch(&mut self, member: &str, epoch: u64, now: Duration) {
        if member == self.me {
            if epoch != self.epoch {
                self.epoch = epoch;
                self.acked.clear();
            }
            return;
        }
        if let Some(heard) = self.heard.get_mut(member) {
            if heard.epoch != epoch {
                heard.epoch = epoch;
                heard.sent = None;
                heard.last = heard.last.max(now);
            }
        }
        if self.silenced.get(member).is_some_and(|&e| e < epoch) {
            self.silenced.remove(member);
        }
        if self.promised.get(member).is_some_and(|p| p.epoch < epoch) {
            self.promised.remove(member);
        }
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
                        || self.silenced.get(*name) != Some(&heard.epoch)
                })
                .filter_map(|(name, heard)| {
                    Some(Ack {
                        to: name.clone(),
                        epoch: heard.epoch,
                        sent: heard.sent?,
                    })
                })
                .collect()
        };
        Beat {
            from: self.me.clone(),
            sent: now,
            epoch: self.epoch,
            acks,
            promises: self.promised.values().cloned().collect(),
        }
    }

    /// A beat arrived at `now`.
    pub fn receive(&mut self, beat: &Beat, now: Duration) {
        let Some(heard) = self.heard.get_mut(&beat.from) else {
            return;
        };
        heard.last = heard.last.max(now);
        heard.ever = true;
        if beat.epoch == heard.epoch {
            heard.sent = heard.sent.max(Some(beat.sent));
        }
        for ack in beat.acks.iter().filter(|a| a.to == self.me) {
            if ack.epoch == self.epoch {
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
            if agreed == Some(promise.epoch) {
                let silenced = self.silenced.entry(promise.about.clone()).or_default();
                *silenced = (*silenced).max(promise.epoch);
            }
        }
    }

    /// Makes the promises that are due, and says which it made and which takeovers became
    /// possible.
    pub fn tick(&mut self, now: Duration) -> Ticked {
        let after = match self.options.flaw {
            Some(Flaw::PromiseEarly) => self.options.suspect_after / 2,
            _ => self.options.suspect_after,
        };
        let mut promised = Vec::new();
        for (name, heard) in &self.heard {
            if heard.ever
                && now.saturating_sub(heard.last) >= after
                && !self.promised.contains_key(name)
            {
                promised.push(name.clone());
                self.promised.insert(
                    name.clone(),
                    Promise {
                        about: name.clone(),
                        epoch: heard.epoch,
                        plan: self.plan,
                    },
                );
                self.silenced.insert(name.clone(), heard.epoch);
            }
        }
        let mut ready = Vec::new();
        for (about, heard) in &self.heard {
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
        Ticked {
            promised,
            takeovers: ready,
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

    fn three() -> Vec<Detector> {
        let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        names
            .iter()
            .map(|n| {
                let mut d = Detector::new(n.clone(), LeaseOptions::default(), ms(0));
                d.set_members(&names, ms(0));
                d
            })
            .collect()
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
            ready.extend(d.tick(now).takeovers);
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
        let mut ds = three();
        let mut now = ms(0);
        while now < ms(100) {
            round(&mut ds, now, None);
            now += ms(5);
        }
        // b promises about a (a's beats to b are lost), then c restarts.
        for _ in 0..10 {
            let beat_a = ds[0].beat(now);
            ds[2].receive(&beat_a, now);
            let beat_b = ds[1].beat(now);
            ds[0].receive(&beat_b, now);
            ds[2].receive(&beat_b, now);
            ds[1].tick(now);
            now += ms(5);
        }
        assert!(ds[1].promised().any(|p| p.about == "a"));
        let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut c = Detector::new("c", LeaseOptions::default(), now);
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
        let d = Detector::new("a", LeaseOptions::default(), ms(0));
        assert_eq!(d.lease(ms(10_000)), Lease::Held { until: None });
        let names: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let mut a = Detector::new("a", LeaseOptions::default(), ms(0));
        a.set_members(&names, ms(0));
        assert_eq!(a.lease(ms(0)), Lease::Lost, "nobody acknowledged yet");
    }
}
