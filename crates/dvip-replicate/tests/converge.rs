//! Replicas on a modelled bus through random connections, deaths, restarts, partitions and
//! heals: once the faults stop and the bus has been quiet for `max_delay`, every live node's
//! count of open connections per key is the sum of the live members' own, and what was
//! counted lately is never less than what the live members counted. A cache with snapshots
//! written on every side holds the same value for every key on every live node.
//!
//! The bus delivers as corosync's CPG does: one order per view, every message of a view
//! delivered to its members before the next view is installed, and a node that died takes
//! what it had not sent with it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dvip_replicate::{Action, CacheOptions, Key, Replica, ReplicaOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Open {
        node: usize,
        key: u8,
    },
    Close {
        node: usize,
        key: u8,
    },
    Wait {
        ms: u64,
    },
    Set {
        node: usize,
        key: u8,
        value: u8,
        ttl_s: u8,
    },
    Delete {
        node: usize,
        key: u8,
    },
    Kill(usize),
    Restart(usize),
    /// Nodes whose bit is set go to the other side.
    Partition(u8),
    Heal,
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..nodes, 0..6u8).prop_map(|(node, key)| Op::Open { node, key }),
        4 => (0..nodes, 0..6u8).prop_map(|(node, key)| Op::Close { node, key }),
        4 => (0..1500u64).prop_map(|ms| Op::Wait { ms }),
        3 => (0..nodes, 0..4u8, any::<u8>(), 0..4u8)
            .prop_map(|(node, key, value, ttl_s)| Op::Set { node, key, value, ttl_s }),
        1 => (0..nodes, 0..4u8).prop_map(|(node, key)| Op::Delete { node, key }),
        1 => (0..nodes).prop_map(Op::Kill),
        1 => (0..nodes).prop_map(Op::Restart),
        1 => any::<u8>().prop_map(Op::Partition),
        1 => Just(Op::Heal),
    ]
}

fn key(k: u8) -> Key {
    Key::Inbound([198, 51, 100, k].into())
}

struct Cluster {
    replicas: Vec<Option<Replica>>,
    side: Vec<u8>,
    /// Each side's current view: its id and members (by index).
    views: BTreeMap<u8, (u64, BTreeSet<usize>)>,
    next_view: u64,
    now: Duration,
    options: ReplicaOptions,
}

impl Cluster {
    fn new(nodes: usize) -> Self {
        let options = ReplicaOptions {
            max_pending: 3,
            ..ReplicaOptions::default()
        };
        let mut cluster = Self {
            replicas: (0..nodes).map(|i| Some(replica(i, &options))).collect(),
            side: vec![0; nodes],
            views: BTreeMap::new(),
            next_view: 1,
            now: Duration::from_secs(1_000_000),
            options,
        };
        cluster.regroup();
        cluster
    }

    /// Delivers every message sent so far, in each view's one order, until none is left.
    fn deliver(&mut self) {
        loop {
            let mut sent = false;
            for (_, (_, members)) in self.views.clone() {
                for &from in &members {
                    let Some(replica) = self.replicas[from].as_mut() else {
                        continue;
                    };
                    for Action::Send(bytes) in replica.take_actions() {
                        sent = true;
                        for &to in &members {
                            if let Some(r) = self.replicas[to].as_mut() {
                                r.handle_message(&name(from), &bytes).expect("decodes");
                            }
                        }
                    }
                }
            }
            if !sent {
                return;
            }
        }
    }

    /// Installs new views where membership changed, after delivering the old views' messages.
    fn regroup(&mut self) {
        self.deliver();
        let mut sides: BTreeMap<u8, BTreeSet<usize>> = BTreeMap::new();
        for (i, r) in self.replicas.iter().enumerate() {
            if r.is_some() {
                sides.entry(self.side[i]).or_default().insert(i);
            }
        }
        let mut views = BTreeMap::new();
        for (side, members) in sides {
            let same = self.views.get(&side).filter(|(_, m)| *m == members);
            let id = match same {
                Some((id, _)) => *id,
                None => {
                    self.next_view += 1;
                    let names: BTreeSet<String> = members.iter().map(|&i| name(i)).collect();
                    for &i in &members {
                        if let Some(r) = self.replicas[i].as_mut() {
                            r.handle_view(self.next_view, &names);
                        }
                    }
                    self.next_view
                }
            };
            views.insert(side, (id, members));
        }
        self.views = views;
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Open { node, key: k } => {
                if let Some(r) = self.replicas[node].as_mut() {
                    r.open(&key(k), self.now);
                }
            }
            Op::Close { node, key: k } => {
                if let Some(r) = self.replicas[node].as_mut() {
                    r.close(&key(k), self.now);
                }
            }
            Op::Wait { ms } => self.wait(Duration::from_millis(ms)),
            Op::Set {
                node,
                key,
                value,
                ttl_s,
            } => {
                if let Some(r) = self.replicas[node].as_mut() {
                    let ttl = (ttl_s > 0).then(|| Duration::from_secs(u64::from(ttl_s)));
                    r.cache_set(CACHE, &key.to_string(), value.to_string(), ttl, self.now)
                        .expect("a configured cache");
                }
            }
            Op::Delete { node, key } => {
                if let Some(r) = self.replicas[node].as_mut() {
                    r.cache_delete(CACHE, &key.to_string(), self.now)
                        .expect("a configured cache");
                }
            }
            Op::Kill(node) => {
                // What it had not sent dies with it.
                self.replicas[node] = None;
                self.regroup();
            }
            Op::Restart(node) => {
                if self.replicas[node].is_none() {
                    self.replicas[node] = Some(replica(node, &self.options));
                    self.regroup();
                }
            }
            Op::Partition(bits) => {
                for (i, side) in self.side.iter_mut().enumerate() {
                    *side = (bits >> i) & 1;
                }
                self.regroup();
            }
            Op::Heal => {
                self.side.iter_mut().for_each(|s| *s = 0);
                self.regroup();
            }
        }
        self.deliver();
    }

    fn wait(&mut self, how_long: Duration) {
        let end = self.now + how_long;
        loop {
            let next = self
                .replicas
                .iter()
                .flatten()
                .filter_map(Replica::next_deadline)
                .filter(|&d| d <= end)
                .min();
            self.now = next.unwrap_or(end).max(self.now);
            for r in self.replicas.iter_mut().flatten() {
                r.tick(self.now);
            }
            self.deliver();
            if next.is_none() {
                return;
            }
        }
    }
}

impl Cluster {
    fn quiet(&mut self) {
        let quiet = self.options.max_delay + Duration::from_millis(1);
        self.apply(&Op::Wait {
            ms: quiet.as_millis() as u64,
        });
    }

    /// Every live node counts the live members' open connections exactly, and at least what
    /// they counted lately.
    fn check(&self) -> Result<(), TestCaseError> {
        let second = self.now.as_secs();
        let live = || self.replicas.iter().flatten();
        for k in 0..4u8 {
            let values: Vec<_> = live()
                .map(|r| r.cache_get(CACHE, &k.to_string(), self.now).expect("cache"))
                .collect();
            prop_assert!(
                values.windows(2).all(|w| w[0] == w[1]),
                "cache key {}: {:?}",
                k,
                values
            );
        }
        for k in 0..6u8 {
            let key = key(k);
            let own_open: u32 = live().map(|r| r.own(&key).open).sum();
            let own_recent: u64 = live()
                .map(|r| r.own(&key).recent.within(second, 3600))
                .sum();
            for r in live() {
                let counted = r.cluster(&key);
                prop_assert_eq!(counted.open, own_open, "open for {:?}", key);
                let recent = counted.recent.within(second, 3600);
                prop_assert!(
                    recent >= own_recent,
                    "recent for {:?}: {} < {}",
                    key,
                    recent,
                    own_recent
                );
            }
        }
        Ok(())
    }
}

const CACHE: &str = "senders";

fn replica(i: usize, options: &ReplicaOptions) -> Replica {
    let mut r = Replica::new(name(i), options.clone());
    r.define_cache(
        CACHE,
        // No max_size: eviction is each node's own (a key evicted stays gone when newer ones
        // expire, where a node that never held as many keeps it), so it is no part of
        // agreeing.
        CacheOptions {
            max_size: None,
            snapshot: true,
        },
    );
    r
}

fn name(i: usize) -> String {
    format!("node{}", i + 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn after_the_faults_every_live_node_counts_what_the_live_members_count(
        nodes in 2..5usize,
        ops in prop::collection::vec(op(4), 1..80),
    ) {
        let mut cluster = Cluster::new(nodes);
        for op in ops.iter().filter(|op| match op {
            Op::Open { node, .. }
            | Op::Close { node, .. }
            | Op::Set { node, .. }
            | Op::Delete { node, .. }
            | Op::Kill(node)
            | Op::Restart(node) => {
                *node < nodes
            }
            _ => true,
        }) {
            cluster.apply(op);
        }
        // The faults stop: one side, then quiet for max_delay; the dead stay dead (their
        // open connections must be gone), then come back (and learn everything).
        cluster.apply(&Op::Heal);
        cluster.quiet();
        cluster.check()?;
        for node in 0..nodes {
            cluster.apply(&Op::Restart(node));
        }
        cluster.quiet();
        cluster.check()?;
    }
}
