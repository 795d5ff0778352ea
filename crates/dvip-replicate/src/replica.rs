//! One node's replica: its own counts, what it was told of the others', the batch it has not
//! sent yet, and the cluster's sums.
//!
//! Owns the merge rules (see the crate's documentation). It must not read a clock or send:
//! every input carries the time, and messages to multicast come out as [`Action`]s.
//!
//! Open connections are a node's alone and current: the latest word from a member replaces
//! what was known of them, and a member that leaves takes them away. Connections made per
//! second only ever grow for a second gone by, so what was heard of a (member, key, second) is
//! merged by taking the larger: a message heard twice, a snapshot after a batch, or a member
//! restarted with its counts forgotten never lowers what the cluster counted.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;
use std::time::Duration;

use crate::cache::Cache;
use crate::wire::{self, DecodeError, Message};
use crate::{Counts, Key, Kind, Rate, Recent};

/// Longest a change waits before it is sent (Momentum's `max_delay`).
pub const MAX_DELAY_DEFAULT: Duration = Duration::from_secs(1);

/// Changed keys that make a batch go at once (Momentum's `max_pending`).
pub const MAX_PENDING_DEFAULT: usize = 100;

/// The shortest time between two batches that `max_pending` sends: under a flood of changes
/// a node sends at most twenty batches a second, each holding what changed meanwhile, rather
/// than one every `max_pending` changes. Measured on the lab (BENCHMARKS.md, "Replication on
/// the lab"): corosync's CPU follows the number of messages more than their size.
pub const BATCH_GAP: Duration = Duration::from_millis(50);

/// How long connections made are remembered: the longest window a limit may use.
pub const HORIZON_DEFAULT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOptions {
    pub max_delay: Duration,
    pub max_pending: usize,
    pub horizon: Duration,
    /// The kinds of key shared with the cluster; the others are counted on this node alone.
    pub shared: BTreeSet<Kind>,
}

impl Default for ReplicaOptions {
    /// Every kind shared.
    fn default() -> Self {
        Self {
            max_delay: MAX_DELAY_DEFAULT,
            max_pending: MAX_PENDING_DEFAULT,
            horizon: HORIZON_DEFAULT,
            shared: Kind::ALL.into(),
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Multicast these bytes to the group.
    Send(Vec<u8>),
}

/// What is known of one other node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Heard {
    /// Its connections open now (only while it is a member).
    open: BTreeMap<Key, u32>,
    /// Its connections made, per key and second.
    recent: BTreeMap<Key, Recent>,
}

impl Heard {
    fn set_open(&mut self, key: &Key, open: u32) {
        if open == 0 {
            self.open.remove(key);
        } else {
            self.open.insert(key.clone(), open);
        }
    }

    fn merge_recent(&mut self, key: &Key, heard: &Recent) {
        if heard.per_second.is_empty() {
            return;
        }
        self.recent.entry(key.clone()).or_default().merge_max(heard);
    }

    fn forget_before(&mut self, second: u64) {
        self.recent.retain(|_, r| {
            r.forget_before(second);
            !r.per_second.is_empty()
        });
    }
}

/// One node's replica.
#[derive(Debug, Clone)]
pub struct Replica {
    me: String,
    options: ReplicaOptions,
    /// The current view: its id and members.
    view: Option<(u64, BTreeSet<String>)>,
    own: BTreeMap<Key, Counts>,
    /// What was heard of every other node, members and departed alike.
    others: BTreeMap<String, Heard>,
    /// Own keys changed since the last batch.
    changed: BTreeSet<Key>,
    /// The named caches, by name.
    pub(crate) caches: BTreeMap<String, Cache>,
    /// The Lamport clock that stamps cache writes: above every stamp seen.
    pub(crate) clock: u64,
    /// Cache keys written here since the last batch, as `(cache, key)`.
    pub(crate) cache_changed: BTreeSet<(String, String)>,
    /// The rate each throttle was last asked with here.
    pub(crate) throttle_rates: BTreeMap<String, Rate>,
    /// When the oldest of the changes not sent was made.
    pending_since: Option<Duration>,
    /// When the last batch went.
    last_batch: Option<Duration>,
    /// `max_pending` changes wait: the batch goes at [`BATCH_GAP`] after the last one.
    full: bool,
    /// The second of this view's last batch: the next batch carries the connections made
    /// from that second on, not a key's whole hour (receivers keep the larger count of each
    /// second, so the seconds before are already theirs). `None` until a batch of this view.
    sent_from: Option<u64>,
    actions: Vec<Action>,
    /// Messages dropped, by why.
    dropped: BTreeMap<&'static str, u64>,
}

/// Whole seconds of `now` (the caller's wall clock: seconds must mean the same on every node).
fn second(now: Duration) -> u64 {
    now.as_secs()
}

/// Milliseconds of `now`, on the same wall clock.
pub(crate) fn millis(now: Duration) -> u64 {
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

impl Replica {
    pub fn new(me: impl Into<String>, options: ReplicaOptions) -> Self {
        Self {
            me: me.into(),
            options,
            view: None,
            own: BTreeMap::new(),
            others: BTreeMap::new(),
            changed: BTreeSet::new(),
            caches: BTreeMap::new(),
            clock: 0,
            cache_changed: BTreeSet::new(),
            throttle_rates: BTreeMap::new(),
            pending_since: None,
            last_batch: None,
            full: false,
            sent_from: None,
            actions: Vec::new(),
            dropped: BTreeMap::new(),
        }
    }

    /// A connection for `key` opened here.
    pub fn open(&mut self, key: &Key, now: Duration) {
        let counts = self.own.entry(key.clone()).or_default();
        counts.open = counts.open.saturating_add(1);
        counts.recent.add_one(second(now));
        self.changed_now(key, now);
    }

    /// A connection for `key` was made here and is not counted as open (its end will not be
    /// reported).
    pub fn count(&mut self, key: &Key, now: Duration) {
        let counts = self.own.entry(key.clone()).or_default();
        counts.recent.add_one(second(now));
        self.changed_now(key, now);
    }

    /// A connection for `key` closed here.
    pub fn close(&mut self, key: &Key, now: Duration) {
        if let Some(counts) = self.own.get_mut(key) {
            counts.open = counts.open.saturating_sub(1);
            self.changed_now(key, now);
        }
    }

    fn changed_now(&mut self, key: &Key, now: Duration) {
        if !self.options.shared.contains(&key.kind()) {
            return;
        }
        self.changed.insert(key.clone());
        self.pending_now(now);
    }

    /// A change waits to be sent: it goes at `max_delay`, or as soon as [`BATCH_GAP`]
    /// allows once `max_pending` are waiting.
    pub(crate) fn pending_now(&mut self, now: Duration) {
        self.pending_since.get_or_insert(now);
        if self.changed.len() + self.cache_changed.len() >= self.options.max_pending {
            self.full = true;
            if self.next_deadline().is_some_and(|due| now >= due) {
                self.flush(Some(now));
            }
        }
    }

    /// When [`Replica::tick`] must be called next, if at all.
    pub fn next_deadline(&self) -> Option<Duration> {
        let since = self.pending_since?;
        let waited = since + self.options.max_delay;
        let full = self.full.then(|| {
            self.last_batch
                .map_or(since, |last| (last + BATCH_GAP).max(since))
        });
        Some(full.map_or(waited, |f| f.min(waited)))
    }

    /// Time passed: sends a batch that is due, forgets what is older than the horizon.
    pub fn tick(&mut self, now: Duration) {
        if self.next_deadline().is_some_and(|due| now >= due) {
            self.flush(Some(now));
        }
        // Every node forgets at the same horizon, its own counts and its copies alike: no
        // message needed.
        let from = second(now.saturating_sub(self.options.horizon));
        self.own.retain(|_, counts| {
            counts.recent.forget_before(from);
            !counts.is_empty()
        });
        for copy in self.others.values_mut() {
            copy.forget_before(from);
        }
        let now_ms = millis(now);
        for cache in self.caches.values_mut() {
            cache.expire(now_ms);
        }
        let members = self
            .view
            .as_ref()
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        self.others
            .retain(|name, copy| members.contains(name) || !copy.recent.is_empty());
    }

    /// Sends the changed keys as they are now (at `now`, when known).
    fn flush(&mut self, now: Option<Duration>) {
        self.pending_since = None;
        self.full = false;
        let from = self.sent_from.unwrap_or(0);
        if let Some(now) = now {
            self.last_batch = Some(now);
            if self.view.is_some() {
                self.sent_from = Some(second(now));
            }
        }
        let changed = std::mem::take(&mut self.changed);
        let Some((view_id, _)) = self.view else {
            // No view: nobody to tell; the snapshot of the first view carries the counts.
            // Cache writes wait for a view.
            return;
        };
        if !changed.is_empty() {
            let changes = changed
                .into_iter()
                .map(|key| {
                    let counts = self.own.get(&key).map_or_else(Counts::default, |c| Counts {
                        open: c.open,
                        recent: c.recent.since(from),
                    });
                    (key, counts)
                })
                .collect();
            self.send(&Message::Batch { view_id, changes });
        }
        let written = std::mem::take(&mut self.cache_changed);
        if !written.is_empty() {
            let writes = written
                .into_iter()
                .filter_map(|(cache, key)| {
                    let entry = self.caches.get(&cache)?.entry(&key)?.clone();
                    Some((cache, key, entry))
                })
                .collect();
            self.send(&Message::Cache { writes });
        }
    }

    pub(crate) fn count_dropped(&mut self, why: &'static str) {
        *self.dropped.entry(why).or_default() += 1;
    }

    pub(crate) fn send(&mut self, message: &Message) {
        self.actions.push(Action::Send(wire::encode(message)));
    }

    /// The bus installed a view (`members` includes this node).
    pub fn handle_view(&mut self, view_id: u64, members: &BTreeSet<String>) {
        if !members.contains(&self.me) || self.view.as_ref().is_some_and(|(id, _)| *id == view_id) {
            return;
        }
        for (name, copy) in &mut self.others {
            if !members.contains(name) {
                // Its open connections went with it; what it counted lately stays.
                copy.open.clear();
            }
        }
        self.view = Some((view_id, members.clone()));
        self.sent_from = None;
        // Every view starts from a snapshot of each member: a joiner learns everything, and a
        // batch sent in the old view but delivered in this one (dropped as stale) is made up.
        self.changed.clear();
        self.pending_since = None;
        let shared = &self.options.shared;
        let counts = self
            .own
            .iter()
            .filter(|(k, _)| shared.contains(&k.kind()))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        self.send(&Message::Snapshot { view_id, counts });
        // Snapshot caches too, in every view, not only in views with a newcomer: a write
        // whose batch found no view to go in (the group lost, the process paused past its
        // view) would otherwise stay on its writer alone.
        self.send_cache_snapshots();
        if !self.cache_changed.is_empty() {
            // Writes made with no view to send them in go now.
            self.flush(None);
        }
    }

    /// A message from `from` was delivered (this node's own too, which changes nothing).
    pub fn handle_message(&mut self, from: &str, bytes: &[u8]) -> Result<(), DecodeError> {
        let message = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.count_dropped("malformed");
                return Err(e);
            }
        };
        let Some((view_id, members)) = &self.view else {
            self.count_dropped("no view");
            return Ok(());
        };
        let of_another_view = message.view_id().is_some_and(|id| id != *view_id);
        if of_another_view || !members.contains(from) {
            self.count_dropped("stale");
            return Ok(());
        }
        if from == self.me {
            return Ok(());
        }
        if let Message::Cache { writes } = message {
            self.merge_cache_writes(writes);
            return Ok(());
        }
        let copy = self.others.entry(from.to_owned()).or_default();
        match message {
            Message::Cache { .. } => {}
            Message::Batch { changes, .. } => {
                for (key, counts) in &changes {
                    copy.set_open(key, counts.open);
                    copy.merge_recent(key, &counts.recent);
                }
            }
            Message::Snapshot { counts, .. } => {
                copy.open.clear();
                for (key, c) in &counts {
                    copy.set_open(key, c.open);
                    copy.merge_recent(key, &c.recent);
                }
            }
        }
        Ok(())
    }

    /// What to multicast, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// This node's own counts for `key`.
    pub fn own(&self, key: &Key) -> Counts {
        self.own.get(key).cloned().unwrap_or_default()
    }

    /// What `node` counted for `key`, as this node knows it (`None`: the cluster's sum).
    pub fn counts_from(&self, node: Option<&str>, key: &Key) -> Counts {
        match node {
            None => self.cluster(key),
            Some(n) if n == self.me => self.own(key),
            Some(n) => self
                .others
                .get(n)
                .map_or_else(Counts::default, |copy| Counts {
                    open: copy.open.get(key).copied().unwrap_or(0),
                    recent: copy.recent.get(key).cloned().unwrap_or_default(),
                }),
        }
    }

    /// The cluster's counts for `key`: this node's, the members' open connections, and every
    /// node's connections made lately.
    pub fn cluster(&self, key: &Key) -> Counts {
        let mut sum = self.own(key);
        for copy in self.others.values() {
            sum.open = sum
                .open
                .saturating_add(copy.open.get(key).copied().unwrap_or(0));
            if let Some(recent) = copy.recent.get(key) {
                sum.recent.add(recent);
            }
        }
        sum
    }

    /// The counts of every key in `range` that has any, the cluster's or one node's (a CIDR
    /// prefix is one range of [`Key::Inbound`] or [`Key::Outbound`] keys).
    pub fn counts_in<R: RangeBounds<Key> + Clone>(
        &self,
        range: R,
        node: Option<&str>,
    ) -> BTreeMap<Key, Counts> {
        let mut keys: BTreeSet<&Key> = self.own.range(range.clone()).map(|(k, _)| k).collect();
        for copy in self.others.values() {
            keys.extend(copy.open.range(range.clone()).map(|(k, _)| k));
            keys.extend(copy.recent.range(range.clone()).map(|(k, _)| k));
        }
        keys.into_iter()
            .map(|k| (k.clone(), self.counts_from(node, k)))
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// The nodes whose counts this node knows: itself and every other it heard from.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: BTreeSet<&str> = self.others.keys().map(String::as_str).collect();
        nodes.insert(&self.me);
        nodes.into_iter().map(str::to_owned).collect()
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.me
    }

    /// Messages dropped so far, by why.
    pub fn dropped(&self) -> &BTreeMap<&'static str, u64> {
        &self.dropped
    }

    /// Whether changes wait to be sent.
    pub fn pending(&self) -> bool {
        !self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{deliver, pair};

    fn key() -> Key {
        Key::Inbound("203.0.113.7".parse().expect("an address"))
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(1_000 + s)
    }

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_change_waits_max_delay_or_max_pending_then_goes() {
        let options = ReplicaOptions {
            max_pending: 3,
            ..ReplicaOptions::default()
        };
        let mut a = Replica::new("a", options);
        a.handle_view(1, &members(&["a"]));
        a.take_actions();
        a.open(&key(), at(0));
        assert!(a.take_actions().is_empty());
        assert_eq!(a.next_deadline(), Some(at(1)));
        a.tick(at(0) + Duration::from_millis(999));
        assert!(a.take_actions().is_empty());
        a.tick(at(1));
        assert_eq!(a.take_actions().len(), 1);
        for k in 0..3u8 {
            a.open(&Key::Inbound([198, 51, 100, k].into()), at(2));
        }
        assert_eq!(
            a.take_actions().len(),
            1,
            "the third change fills the batch"
        );
        assert!(!a.pending());
        // Under a flood, the next full batch waits BATCH_GAP after that one, and takes
        // everything that changed meanwhile.
        for k in 3..9u8 {
            a.open(&Key::Inbound([198, 51, 100, k].into()), at(2));
        }
        assert!(
            a.take_actions().is_empty(),
            "within BATCH_GAP of the last batch"
        );
        assert_eq!(a.next_deadline(), Some(at(2) + BATCH_GAP));
        a.tick(at(2) + BATCH_GAP);
        let sent = a.take_actions();
        assert_eq!(sent.len(), 1);
        let Action::Send(bytes) = &sent[0];
        let Ok(Message::Batch { changes, .. }) = wire::decode(bytes) else {
            panic!("a batch");
        };
        assert_eq!(changes.len(), 6);
    }

    #[test]
    fn a_batch_carries_the_seconds_since_the_last_batch_and_the_peer_keeps_them_all() {
        let (mut a, mut b) = pair();
        for s in 0..30 {
            b.count(&key(), at(s));
            b.tick(at(s + 1));
            let sent = b.take_actions();
            for Action::Send(bytes) in &sent {
                let Ok(Message::Batch { changes, .. }) = wire::decode(bytes) else {
                    panic!("a batch");
                };
                // The first batch of the view carries everything; the next ones the seconds
                // from the last batch's on, not the key's whole history.
                assert!(changes[0].1.recent.per_second.len() <= 2, "{changes:?}");
                a.handle_message("b", bytes).expect("decodes");
            }
        }
        assert_eq!(a.cluster(&key()).recent.within(second(at(30)), 60), 30);
    }

    #[test]
    fn a_leaver_takes_its_open_connections_and_leaves_its_recent_ones() {
        let (mut a, mut b) = pair();
        b.open(&key(), at(0));
        b.open(&key(), at(0));
        b.tick(at(1));
        deliver(&mut b, &mut [&mut a]);
        assert_eq!(a.cluster(&key()).open, 2);
        a.handle_view(2, &members(&["a"]));
        let left = a.cluster(&key());
        assert_eq!(left.open, 0);
        assert_eq!(
            left.recent.within(at(1).as_secs(), 60),
            2,
            "a death does not reset a rate"
        );
        // Aged out past the horizon.
        a.tick(at(0) + HORIZON_DEFAULT + Duration::from_secs(2));
        assert!(a.cluster(&key()).is_empty());
    }

    #[test]
    fn a_restarted_member_s_snapshot_never_lowers_what_was_counted() {
        let (mut a, mut b) = pair();
        for _ in 0..5 {
            b.open(&key(), at(0));
        }
        b.tick(at(1));
        deliver(&mut b, &mut [&mut a]);
        // b dies and comes back with nothing.
        a.handle_view(2, &members(&["a"]));
        let mut b = Replica::new("b", ReplicaOptions::default());
        for r in [&mut a, &mut b] {
            r.handle_view(3, &members(&["a", "b"]));
        }
        deliver(&mut a, &mut [&mut b]);
        deliver(&mut b, &mut [&mut a]);
        assert_eq!(a.cluster(&key()).recent.within(at(1).as_secs(), 60), 5);
        assert_eq!(a.cluster(&key()).open, 0);
        // The joiner learns a's own counts, not what a remembers of b.
        assert_eq!(b.cluster(&key()).recent.within(at(1).as_secs(), 60), 0);
    }

    #[test]
    fn a_prefix_is_a_range_of_keys() {
        let mut a = Replica::new("a", ReplicaOptions::default());
        for last in [1u8, 2, 200] {
            a.open(&Key::Inbound([198, 51, 100, last].into()), at(0));
        }
        a.open(&Key::Inbound([203, 0, 113, 1].into()), at(0));
        let slash24 = a.counts_in(
            Key::Inbound([198, 51, 100, 0].into())..=Key::Inbound([198, 51, 100, 255].into()),
            None,
        );
        assert_eq!(slash24.len(), 3);
    }
}
