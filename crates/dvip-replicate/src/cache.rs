//! Named caches shared by the cluster: key/value pairs with a time to live, written by any
//! node, where the last write wins.
//!
//! Owns one cache's entries, the order of writes, expiry and eviction. It must not send or
//! read a clock: the replica stamps the writes and carries them over the bus.
//!
//! Why last-writer-wins: any node may write any key, so unlike the counts a key has no single
//! owner. Every write carries a stamp (a Lamport clock and the writer's name), which orders
//! all writes the same way on every node; a node keeps, for each key, the write with the
//! highest stamp it has seen. Applying writes in any order, and any of them twice, leaves
//! every node with the same entry. A delete is a write of nothing (a tombstone), kept for
//! [`TOMBSTONE_KEEP`] so that an older write arriving late cannot bring the key back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A cache's `type` in the configuration.
pub const CACHE_TYPE: &str = "cache";

/// How long a deleted key is remembered as deleted.
pub const TOMBSTONE_KEEP: Duration = Duration::from_secs(600);

/// Longest key and value a cache takes, in bytes.
pub const KEY_MAX: usize = 1024;
pub const VALUE_MAX: usize = 64 * 1024;

/// Where a write stands among all writes: higher wins. Ordered by clock, then writer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub clock: u64,
    pub node: String,
}

/// The latest write of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheWrite {
    /// `None`: deleted.
    pub value: Option<String>,
    pub stamp: Stamp,
    /// When it expires, in milliseconds of the wall clock (`None`: never).
    pub expires_ms: Option<u64>,
}

impl CacheWrite {
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// How a cache behaves (its `replicate` stanza).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheOptions {
    /// At most this many keys; the oldest write is evicted first (`None`: no bound).
    pub max_size: Option<usize>,
    /// A node that joins is sent every key (`parameters = "snapshot"`); otherwise it learns
    /// only keys written after it joined.
    pub snapshot: bool,
}

/// A value read, with how long it has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheValue {
    pub value: String,
    /// Milliseconds left (`None`: it never expires).
    pub ttl_ms: Option<u64>,
}

/// One cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache {
    pub(crate) options: CacheOptions,
    entries: BTreeMap<String, CacheWrite>,
    /// The live (not deleted) keys by the age of their write, for eviction.
    by_age: BTreeSet<(Stamp, String)>,
}

impl Cache {
    pub(crate) fn new(options: CacheOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// The value of `key`, unless it is deleted or expired.
    pub(crate) fn get(&self, key: &str, now_ms: u64) -> Option<CacheValue> {
        let entry = self.entries.get(key).filter(|e| !e.expired(now_ms))?;
        Some(CacheValue {
            value: entry.value.clone()?,
            ttl_ms: entry.expires_ms.map(|at| at - now_ms),
        })
    }

    /// Keeps `entry` for `key` if it is newer than the write held. Whether it was.
    pub(crate) fn merge(&mut self, key: &str, entry: CacheWrite) -> bool {
        if let Some(held) = self.entries.get(key) {
            if held.stamp >= entry.stamp {
                return false;
            }
            if held.value.is_some() {
                self.by_age.remove(&(held.stamp.clone(), key.to_owned()));
            }
        }
        if entry.value.is_some() {
            self.by_age.insert((entry.stamp.clone(), key.to_owned()));
        }
        self.entries.insert(key.to_owned(), entry);
        self.evict();
        true
    }

    /// Drops the oldest writes beyond `max_size`. Every node holding the same writes drops
    /// the same ones, so no message is needed.
    fn evict(&mut self) {
        let Some(max) = self.options.max_size else {
            return;
        };
        while self.by_age.len() > max {
            if let Some((_, key)) = self.by_age.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    /// Turns expired values into tombstones and forgets old tombstones. An expired value is
    /// remembered as deleted, not forgotten: an older write of its key still on its way
    /// (sent before, arriving after) must lose to it rather than come back forever.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        let by_age = &mut self.by_age;
        let keep_ms = u64::try_from(TOMBSTONE_KEEP.as_millis()).unwrap_or(u64::MAX);
        self.entries.retain(|key, entry| {
            let Some(at) = entry.expires_ms.filter(|&at| at <= now_ms) else {
                return true;
            };
            if entry.value.take().is_some() {
                by_age.remove(&(entry.stamp.clone(), key.clone()));
                entry.expires_ms = Some(at.saturating_add(keep_ms));
                return !entry.expired(now_ms);
            }
            false
        });
    }

    /// Every write held, tombstones included (a joiner's snapshot).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &CacheWrite)> {
        self.entries.iter()
    }

    /// The entry held for `key`, tombstone or not.
    pub(crate) fn entry(&self, key: &str) -> Option<&CacheWrite> {
        self.entries.get(key)
    }

    /// Live keys.
    pub(crate) fn len(&self) -> usize {
        self.by_age.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }
}

/// A time to live as Momentum's caches write it: seconds, or minutes and hours with an `M`
/// or `H` after them; `0` never expires (`None`).
pub fn parse_ttl(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], c.to_ascii_uppercase()),
        _ => (text, 'S'),
    };
    let wrong = || format!("`{text}` is not a time to live like `300`, `5M` or `2H` (`0`: never)");
    let n: u64 = digits.parse().map_err(|_| wrong())?;
    let seconds = match unit {
        'S' => n,
        'M' => n.saturating_mul(60),
        'H' => n.saturating_mul(3600),
        _ => return Err(wrong()),
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(clock: u64, node: &str, value: Option<&str>, expires_ms: Option<u64>) -> CacheWrite {
        CacheWrite {
            value: value.map(str::to_owned),
            stamp: Stamp {
                clock,
                node: node.to_owned(),
            },
            expires_ms,
        }
    }

    #[test]
    fn the_highest_stamp_wins_in_any_order_and_twice_changes_nothing() {
        let writes = [
            write(1, "a", Some("one"), None),
            write(2, "b", Some("two"), None),
            write(2, "c", Some("three"), None),
            write(3, "a", None, Some(10_000)),
            write(4, "b", Some("four"), None),
        ];
        let mut orders = vec![writes.to_vec()];
        orders.push(writes.iter().rev().cloned().collect());
        orders.push(writes.iter().chain(&writes).cloned().collect());
        for order in orders {
            let mut cache = Cache::default();
            for w in order {
                cache.merge("k", w);
            }
            assert_eq!(cache.get("k", 0).map(|v| v.value), Some("four".into()));
        }
        let mut cache = Cache::default();
        for w in &writes[..4] {
            cache.merge("k", w.clone());
        }
        assert_eq!(cache.get("k", 0), None, "deleted by the highest stamp");
        assert!(
            !cache.merge("k", writes[2].clone()),
            "an older write stays out"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_expire_into_tombstones_and_tombstones_go_in_time() {
        let mut cache = Cache::default();
        cache.merge("short", write(1, "a", Some("v"), Some(5_000)));
        cache.merge("gone", write(2, "a", None, Some(5_000)));
        cache.merge("forever", write(3, "a", Some("v"), None));
        assert_eq!(
            cache.get("short", 4_000),
            Some(CacheValue {
                value: "v".into(),
                ttl_ms: Some(1_000)
            })
        );
        assert_eq!(cache.get("short", 5_000), None);
        cache.expire(5_000);
        // The tombstone is gone; the expired value is remembered as deleted for a while.
        assert_eq!(cache.entries().count(), 2);
        assert_eq!(cache.len(), 1);
        assert!(
            !cache.merge("short", write(0, "b", Some("late"), None)),
            "an older write arriving after the expiry must not bring the key back"
        );
        assert_eq!(cache.get("short", 5_001), None);
        let keep = u64::try_from(TOMBSTONE_KEEP.as_millis()).expect("fits");
        cache.expire(5_000 + keep);
        assert_eq!(cache.entries().count(), 1);
    }

    #[test]
    fn past_max_size_the_oldest_write_goes() {
        let mut cache = Cache::new(CacheOptions {
            max_size: Some(2),
            snapshot: false,
        });
        cache.merge("a", write(1, "n", Some("1"), None));
        cache.merge("b", write(2, "n", Some("2"), None));
        cache.merge("a", write(3, "n", Some("3"), None));
        cache.merge("c", write(4, "n", Some("4"), None));
        assert_eq!(cache.get("b", 0), None, "b was written longest ago");
        assert!(cache.get("a", 0).is_some() && cache.get("c", 0).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_ttl_is_seconds_minutes_or_hours_and_zero_is_never() {
        assert_eq!(parse_ttl("30"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(parse_ttl("5M"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_ttl("2h"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(parse_ttl("0"), Ok(None));
        assert!(parse_ttl("5 days").is_err_and(|e| e.contains("`5M`")));
        assert!(parse_ttl("H").is_err());
    }
}
