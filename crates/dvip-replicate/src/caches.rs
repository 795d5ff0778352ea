//! The replica's named caches: writes made here are stamped and sent with the next batch,
//! writes heard are merged, and a joiner is sent every write of the caches that ask for
//! snapshots.
//!
//! Owns the caches' side of the replica. It must not change the rules of one cache (see
//! `cache.rs`) nor the counts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheOptions, CacheValue, CacheWrite, Stamp, KEY_MAX, VALUE_MAX};
use crate::replica::millis;
use crate::wire::Message;
use crate::Replica;

/// Why a cache could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// No cache of that name is configured; the names that are.
    NoCache {
        name: String,
        known: Vec<String>,
    },
    KeyTooLong(usize),
    ValueTooLong(usize),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoCache { name, known } if known.is_empty() => write!(
                f,
                "no cache named `{name}`: none is configured (replicate [ type = \"cache\" replication_name = \"{name}\" ])"
            ),
            Self::NoCache { name, known } => write!(
                f,
                "no cache named `{name}`; the configured caches are {}",
                known.join(", ")
            ),
            Self::KeyTooLong(n) => write!(f, "a key of {n} bytes; at most {KEY_MAX}"),
            Self::ValueTooLong(n) => write!(f, "a value of {n} bytes; at most {VALUE_MAX}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// One cache, as `dvip cache` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSummary {
    pub name: String,
    /// Live keys.
    pub keys: usize,
    pub max_size: Option<usize>,
    pub snapshot: bool,
}

impl Replica {
    /// Makes a cache (or changes its options, keeping its entries).
    pub fn define_cache(&mut self, name: &str, options: CacheOptions) {
        self.caches
            .entry(name.to_owned())
            .and_modify(|c| c.options = options)
            .or_insert_with(|| Cache::new(options));
    }

    /// Drops the caches not in `names` (a reload that removed them).
    pub fn keep_caches(&mut self, names: &[&str]) {
        self.caches.retain(|name, _| names.contains(&name.as_str()));
        self.cache_changed
            .retain(|(cache, _)| names.contains(&cache.as_str()));
    }

    fn cache(&self, name: &str) -> Result<&Cache, CacheError> {
        self.caches.get(name).ok_or_else(|| CacheError::NoCache {
            name: name.to_owned(),
            known: self.caches.keys().cloned().collect(),
        })
    }

    /// The value of `key` in cache `name`.
    pub fn cache_get(
        &self,
        name: &str,
        key: &str,
        now: Duration,
    ) -> Result<Option<CacheValue>, CacheError> {
        Ok(self.cache(name)?.get(key, millis(now)))
    }

    /// Sets `key` in cache `name`, to expire after `ttl` (`None`: never).
    pub fn cache_set(
        &mut self,
        name: &str,
        key: &str,
        value: String,
        ttl: Option<Duration>,
        now: Duration,
    ) -> Result<(), CacheError> {
        if value.len() > VALUE_MAX {
            return Err(CacheError::ValueTooLong(value.len()));
        }
        let expires_ms = ttl.map(|t| millis(now + t));
        self.write(name, key, Some(value), expires_ms, now)
    }

    /// Deletes `key` from cache `name`. Whether it was there.
    pub fn cache_delete(
        &mut self,
        name: &str,
        key: &str,
        now: Duration,
    ) -> Result<bool, CacheError> {
        let was = self.cache(name)?.get(key, millis(now)).is_some();
        // Kept for the same while whatever it buries: a write made at the same moment on
        // another node, with a later expiry than the value held here, may lose to this
        // delete on its way, and must still lose to it on this node when it arrives.
        let expires_ms = Some(millis(now + crate::cache::TOMBSTONE_KEEP));
        self.write(name, key, None, expires_ms, now)?;
        Ok(was)
    }

    fn write(
        &mut self,
        name: &str,
        key: &str,
        value: Option<String>,
        expires_ms: Option<u64>,
        now: Duration,
    ) -> Result<(), CacheError> {
        if key.len() > KEY_MAX {
            return Err(CacheError::KeyTooLong(key.len()));
        }
        self.cache(name)?;
        // A hybrid clock: it follows the wall clock's milliseconds and never goes back, so a
        // node restarted with its clock at zero still writes above what it wrote before.
        self.clock = (self.clock + 1).max(millis(now));
        let entry = CacheWrite {
            value,
            stamp: Stamp {
                clock: self.clock,
                node: self.name().to_owned(),
            },
            expires_ms,
        };
        if let Some(cache) = self.caches.get_mut(name) {
            cache.merge(key, entry);
        }
        self.cache_changed.insert((name.to_owned(), key.to_owned()));
        self.pending_now(now);
        Ok(())
    }

    /// Writes heard from another node.
    pub(crate) fn merge_cache_writes(&mut self, writes: Vec<(String, String, CacheWrite)>) {
        for (name, key, entry) in writes {
            self.clock = self.clock.max(entry.stamp.clock);
            match self.caches.get_mut(&name) {
                Some(cache) => {
                    cache.merge(&key, entry);
                }
                None => self.count_dropped("unknown cache"),
            }
        }
    }

    /// Every write held of the caches that send snapshots, for a joiner.
    pub(crate) fn send_cache_snapshots(&mut self) {
        let writes: Vec<(String, String, CacheWrite)> = self
            .caches
            .iter()
            .filter(|(_, c)| c.options.snapshot)
            .flat_map(|(name, c)| {
                c.entries()
                    .map(|(key, entry)| (name.clone(), key.clone(), entry.clone()))
            })
            .collect();
        if !writes.is_empty() {
            self.send(&Message::Cache { writes });
        }
    }

    /// The caches, for `dvip cache`.
    pub fn caches(&self) -> Vec<CacheSummary> {
        self.caches
            .iter()
            .map(|(name, c)| CacheSummary {
                name: name.clone(),
                keys: c.len(),
                max_size: c.options.max_size,
                snapshot: c.options.snapshot,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exchange, pair};
    use crate::{Replica, ReplicaOptions};
    use std::collections::BTreeSet;

    fn now() -> Duration {
        Duration::from_secs(30_000)
    }

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn sent(a: &mut Replica, b: &mut Replica) {
        let later = now() + Duration::from_secs(2);
        a.tick(later);
        b.tick(later);
        exchange(a, b);
    }

    #[test]
    fn a_write_on_one_node_is_read_on_the_other_and_the_later_one_wins() {
        let (mut a, mut b) = pair();
        for r in [&mut a, &mut b] {
            r.define_cache("senders", CacheOptions::default());
        }
        a.cache_set("senders", "k", "from a".into(), None, now())
            .expect("set");
        sent(&mut a, &mut b);
        let read = b.cache_get("senders", "k", now()).expect("cache");
        assert_eq!(read.map(|v| v.value), Some("from a".into()));
        // b writes after hearing a: its stamp is higher, on both.
        b.cache_set("senders", "k", "from b".into(), None, now())
            .expect("set");
        a.cache_set("senders", "other", "x".into(), None, now())
            .expect("set");
        sent(&mut a, &mut b);
        for r in [&a, &b] {
            let v = r.cache_get("senders", "k", now()).expect("cache");
            assert_eq!(v.map(|v| v.value), Some("from b".into()), "{}", r.name());
        }
        assert!(b.cache_delete("senders", "k", now()).expect("del"));
        sent(&mut a, &mut b);
        assert_eq!(a.cache_get("senders", "k", now()), Ok(None));
        assert_eq!(
            a.cache_get("nope", "k", now()),
            Err(CacheError::NoCache {
                name: "nope".into(),
                known: vec!["senders".into()]
            })
        );
    }

    #[test]
    fn a_delete_crossing_a_later_expiring_write_wins_on_both_after_the_first_value_expires() {
        let (mut a, mut b) = pair();
        for r in [&mut a, &mut b] {
            r.define_cache("senders", CacheOptions::default());
        }
        let second = Duration::from_secs(1);
        let t0 = now();
        a.cache_set("senders", "k", "first".into(), Some(2 * second), t0)
            .expect("set");
        for r in [&mut a, &mut b] {
            r.tick(t0 + second);
        }
        exchange(&mut a, &mut b);
        // At one millisecond b deletes and a writes again, to expire later than the first
        // value; the clocks tie and b's name is the higher, so the delete wins.
        let t1 = t0 + second;
        assert!(b.cache_delete("senders", "k", t1).expect("del"));
        a.cache_set("senders", "k", "again".into(), Some(2 * second), t1)
            .expect("set");
        // Both batches cross only once the first value has expired.
        let t2 = t0 + 2 * second;
        for r in [&mut a, &mut b] {
            r.tick(t2);
        }
        exchange(&mut a, &mut b);
        for r in [&a, &b] {
            assert_eq!(r.cache_get("senders", "k", t2), Ok(None), "{}", r.name());
        }
    }

    #[test]
    fn every_view_carries_every_key_of_a_snapshot_cache_and_only_of_one() {
        let mut a = Replica::new("a", ReplicaOptions::default());
        a.handle_view(1, &members(&["a"]));
        let snapshot = CacheOptions {
            snapshot: true,
            ..CacheOptions::default()
        };
        a.define_cache("full", snapshot);
        a.define_cache("new_only", CacheOptions::default());
        for cache in ["full", "new_only"] {
            a.cache_set(cache, "old", "v".into(), None, now())
                .expect("set");
        }
        a.tick(now() + Duration::from_secs(2));
        let _ = a.take_actions();
        let mut b = Replica::new("b", ReplicaOptions::default());
        b.define_cache("full", snapshot);
        b.define_cache("new_only", CacheOptions::default());
        for r in [&mut a, &mut b] {
            r.handle_view(2, &members(&["a", "b"]));
        }
        exchange(&mut a, &mut b);
        assert!(b.cache_get("full", "old", now()).expect("cache").is_some());
        assert_eq!(b.cache_get("new_only", "old", now()), Ok(None));
        // Every view carries the snapshot cache, not only one with a joiner: b missed a
        // write whose batch found no view (lost with its group) and gets it in the next.
        a.cache_set("full", "lost", "w".into(), None, now())
            .expect("set");
        a.tick(now() + Duration::from_secs(4));
        let _ = a.take_actions();
        for r in [&mut a, &mut b] {
            r.handle_view(3, &members(&["a", "b"]));
        }
        exchange(&mut a, &mut b);
        assert!(b.cache_get("full", "lost", now()).expect("cache").is_some());
        a.handle_view(4, &members(&["a"]));
        assert_eq!(
            a.take_actions().len(),
            2,
            "the counts' snapshot and the cache's"
        );
    }
}
