//! Replication in the simulator: each daemon's replica, a workload of connections, throttle
//! hits and cache writes made through the faults, and replication's invariant.
//!
//! Owns the workload and the judgement of replicas. It must not carry messages (the world's
//! bus does, on a group of its own) nor touch the election's checks.
//!
//! The invariant, judged once the faults have stopped and the bus has been quiet for longer
//! than `max_delay`: every node counts, for every key, exactly the open connections the live
//! members count as their own, and every node holds the same value for every key of the
//! snapshot cache. A probe written after that must then reach every node, so a replica that
//! never sends anything cannot pass.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use dvip_replicate::{CacheOptions, Key, Kind, Rate, Replica, ReplicaOptions};

use crate::scenario::Dice;
use crate::world::World;

/// The one cache, sent whole to joiners.
const CACHE: &str = "seen";

/// Keys of the cache and client addresses the workload uses: few, so that nodes collide.
const KEYS: usize = 6;

/// The probe's key and client, which the workload never uses.
const PROBE_KEY: &str = "probe";
const PROBE_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

/// How long after the probe every node must have it: a batch's wait and its delivery.
pub(crate) const PROBE_WITHIN: Duration = Duration::from_secs(2);

/// A daemon's replica as dvipd makes it: alone until the bus shows a view.
pub(crate) fn replica(name: &str) -> Replica {
    let mut replica = Replica::new(name, ReplicaOptions::default());
    replica.define_cache(
        CACHE,
        CacheOptions {
            max_size: None,
            snapshot: true,
        },
    );
    replica.handle_view(0, &BTreeSet::from([name.to_owned()]));
    let _ = replica.take_actions();
    replica
}

fn client(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        198,
        51,
        100,
        100 + u8::try_from(i).unwrap_or(0),
    ))
}

/// A few operations on random running daemons' replicas: connections opened and closed,
/// inbound and outbound, throttle hits, cache keys written (some to expire) and deleted.
pub(crate) fn exercise(world: &mut World, dice: &mut Dice) {
    for _ in 0..dice.below(5) {
        let host = dice.below(world.hosts.len());
        let op = dice.below(8);
        let i = dice.below(KEYS);
        let ttl = dice
            .chance(0.3)
            .then(|| Duration::from_millis(dice.between(200, 3000)));
        let value = format!("v{}", dice.below(100));
        let h = &world.hosts[host];
        if h.replica.is_none() || h.paused || !h.powered {
            continue;
        }
        world.stats.replica_ops += 1;
        world.record_event(&format!("replicate {op} {i} on host {host}"));
        world.with_replica(host, |r, now| match op {
            0 | 1 => r.open(&Key::Inbound(client(i)), now),
            2 => r.close(&Key::Inbound(client(i)), now),
            3 => r.open_outbound(client(i), "example.com", Some("warm"), now),
            4 => r.close_outbound(client(i), "example.com", Some("warm"), now),
            5 => {
                let rate = Rate {
                    hits: 5,
                    window: Duration::from_secs(10),
                };
                r.throttle("bounces", rate, now);
            }
            6 => {
                let _ = r.cache_set(CACHE, &format!("k{i}"), value, ttl, now);
            }
            _ => {
                let _ = r.cache_delete(CACHE, &format!("k{i}"), now);
            }
        });
    }
}

/// Writes the probe on the first running replica.
pub(crate) fn probe(world: &mut World) {
    let Some(host) = world.hosts.iter().position(|h| h.replica.is_some()) else {
        return;
    };
    world.record_event(&format!("probe on host {host}"));
    world.with_replica(host, |r, now| {
        r.open(&Key::Inbound(PROBE_CLIENT), now);
        let _ = r.cache_set(CACHE, PROBE_KEY, "here".to_owned(), None, now);
    });
}

/// Open connections per key, of every kind, that `replica` knows for `node` (`None`: the
/// cluster's sum).
fn open_counts(replica: &Replica, node: Option<&str>) -> BTreeMap<Key, u32> {
    Kind::ALL
        .into_iter()
        .flat_map(|kind| replica.counts_in(kind.range(), node))
        .filter(|(_, c)| c.open > 0)
        .map(|(k, c)| (k, c.open))
        .collect()
}

/// Replication's invariant over the running replicas, the probe included.
pub(crate) fn agree(world: &World) -> Vec<String> {
    let running: Vec<(&str, &Replica)> = world
        .hosts
        .iter()
        .filter_map(|h| Some((h.name.as_str(), h.replica.as_ref()?)))
        .collect();
    let mut expected: BTreeMap<Key, u32> = BTreeMap::new();
    for (name, replica) in &running {
        for (key, open) in open_counts(replica, Some(name)) {
            *expected.entry(key).or_default() += open;
        }
    }
    let mut problems = Vec::new();
    for (name, replica) in &running {
        let counted = open_counts(replica, None);
        if counted != expected {
            problems.push(format!(
                "{name} counts open connections {counted:?}, the live members {expected:?}"
            ));
        }
        if !counted.contains_key(&Key::Inbound(PROBE_CLIENT)) {
            problems.push(format!(
                "{name} does not count the probe's connection {PROBE_WITHIN:?} after it"
            ));
        }
    }
    let keys = (0..KEYS)
        .map(|i| format!("k{i}"))
        .chain([PROBE_KEY.to_owned()]);
    for key in keys {
        let values: BTreeSet<Option<String>> = running
            .iter()
            .map(|(_, r)| {
                r.cache_get(CACHE, &key, world.now)
                    .ok()
                    .flatten()
                    .map(|v| v.value)
            })
            .collect();
        if values.len() > 1 {
            problems.push(format!("cache key {key}: the nodes hold {values:?}"));
        }
        if key == PROBE_KEY && values.contains(&None) {
            problems.push(format!(
                "the probe's cache key is missing after {PROBE_WITHIN:?}"
            ));
        }
    }
    problems
}
