//! Replication in the daemon: the replica of the connection counts, its group on corosync,
//! and the policy server's questions answered from it.
//!
//! Owns wiring the pure replica (`dvip-replicate`) to the bus, the clock and the policy
//! server. With `inbound_cidr` replicated, the replica joins a CPG group of its own next to
//! the cluster group (its batches and snapshots never queue behind the election's); without,
//! it counts this node alone. It must not decide anything itself: the replica does.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dvip_console::{Answer, ConsoleError, ErrorKind, Request};
use dvip_replicate::{Action, CacheOptions, Kind, Replica, ReplicaOptions, Verdict};
use tracing::{debug, info, warn};

use super::{Bus, Daemon};
use crate::corosync::{BusEvent, CorosyncBus};
use crate::policy::PolicyQuery;

/// The replica and its group.
pub(super) struct Replication {
    replica: Replica,
    /// The SMTP connections already counted.
    sessions: crate::policy::Sessions,
    /// Joined while counts are shared (corosync only; `None` while away or not shared).
    bus: Option<CorosyncBus>,
    /// Messages held while the cluster group's view is not ready, and since when.
    held: Vec<Vec<u8>>,
    held_since: Option<std::time::Instant>,
}

/// The longest the replica's messages wait for the cluster group's view to be ready: past it
/// (a view planned around a silent member takes its State deadline) they go anyway.
const HOLD_MAX: Duration = Duration::from_secs(2);

/// How soon the loop looks again at held messages.
const HOLD_LOOK: Duration = Duration::from_millis(10);

/// The wall clock, which the replica's seconds need to mean the same on every node.
pub(super) fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The replication group's name: the cluster group's, marked, within corosync's 128 bytes.
fn group_of(cluster_group: &str) -> String {
    let mut end = cluster_group.len().min(125);
    while !cluster_group.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-r", &cluster_group[..end])
}

impl Replication {
    /// A replica of this node's counts alone, until a group is joined.
    pub(super) fn new(
        name: &str,
        options: ReplicaOptions,
        caches: &[(String, CacheOptions)],
    ) -> Self {
        let mut replica = Replica::new(name, options);
        set_caches(&mut replica, caches);
        replica.handle_view(0, &BTreeSet::from([name.to_owned()]));
        let _ = replica.take_actions();
        Self {
            replica,
            sessions: crate::policy::Sessions::default(),
            bus: None,
            held: Vec::new(),
            held_since: None,
        }
    }

    pub(super) fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }
}

/// Defines `caches` and drops the others; a cache kept keeps its keys.
fn set_caches(replica: &mut Replica, caches: &[(String, CacheOptions)]) {
    for (name, options) in caches {
        replica.define_cache(name, *options);
    }
    let names: Vec<&str> = caches.iter().map(|(n, _)| n.as_str()).collect();
    replica.keep_caches(&names);
}

/// The replication group's next event, or never when not joined.
pub(super) async fn next_replication_event(replication: &mut Replication) -> Option<BusEvent> {
    match &mut replication.bus {
        Some(bus) => bus.next().await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    /// Joins the replication group when counts are shared and corosync is there.
    pub(super) fn rejoin_replication(&mut self) {
        if !self.config.replicates()
            || self.replication.bus.is_some()
            || !matches!(self.bus, Bus::Corosync { bus: Some(_), .. })
        {
            return;
        }
        match CorosyncBus::join(&group_of(&self.config.group)) {
            Ok(joined) => self.replication.bus = Some(joined),
            Err(e) => warn!("cannot join the replication group: {e}"),
        }
    }

    /// A reload: the caches follow the configuration. The kinds shared and the batch bounds
    /// are read once, at start: a reload that changes them says so and waits for a restart.
    pub(super) fn configure_replication(&mut self, loaded: &super::config::Loaded) {
        set_caches(&mut self.replication.replica, &loaded.caches);
        if loaded.replica_options != self.config.replica_options {
            warn!("the replicated kinds or their max_delay or max_pending changed: they apply when dvipd restarts");
        }
    }

    /// A view or message of the replication group.
    pub(super) fn replication_event(&mut self, event: BusEvent) {
        match event {
            BusEvent::View { id, members } => {
                let names = self.member_names(&members);
                debug!(view_id = id, ?names, "replication view");
                self.replication.replica.handle_view(id, &names);
            }
            BusEvent::Message { from, bytes } => {
                let name = self.member_name(from);
                if let Err(e) = self.replication.replica.handle_message(&name, &bytes) {
                    warn!(from = %name, "dropped a replication message: {e}");
                    self.metrics.dropped("replication");
                }
            }
            BusEvent::Dropped { why, .. } => {
                warn!("dropped a replication fragment: {why}");
                self.metrics.dropped("fragment");
            }
            BusEvent::Lost(why) => {
                warn!("lost the replication group ({why}); joining again");
                self.replication.bus = None;
                // Alone until joined again: this node's counts only.
                let me = BTreeSet::from([self.name.clone()]);
                self.replication.replica.handle_view(0, &me);
            }
        }
        self.send_replication();
    }

    /// How long until the replica's batch is due, if one waits: the loop wakes for it rather
    /// than on its next tick, so `max_delay` holds to the millisecond.
    pub(super) fn replication_due(&self) -> Option<Duration> {
        let held = (!self.replication.held.is_empty()).then_some(HOLD_LOOK);
        let due = self
            .replication
            .replica
            .next_deadline()
            .map(|due| due.saturating_sub(wall()));
        held.into_iter().chain(due).min()
    }

    /// Time passed: batches due go out, old seconds are forgotten.
    pub(super) fn replication_tick(&mut self) {
        self.replication.replica.tick(wall());
        self.send_replication();
    }

    /// The policy server's question about a client.
    pub(super) fn admit(&mut self, query: &PolicyQuery) -> Verdict {
        let limits = &self.config.inbound_limits;
        let now = wall();
        let verdict = if self.replication.sessions.first(query, now) {
            self.replication.replica.admit(query.client, limits, now)
        } else {
            // A connection already counted: checked against the limits, not counted again.
            self.replication.replica.check(query.client, limits, now)
        };
        self.send_replication();
        let label = match verdict {
            Verdict::Accept => "accept",
            Verdict::Defer { .. } => "defer",
        };
        self.metrics
            .policy
            .get_or_create(&crate::metrics::VerdictLabel { verdict: label })
            .inc();
        verdict
    }

    /// The console's questions about replicated data, answered from this node's replica;
    /// `cache-set` and `cache-delete` write for the whole cluster.
    pub(super) fn replication_answer(&mut self, request: Request) -> crate::console::Reply {
        let now = wall();
        let node = self.name.clone();
        let refused =
            |e: dvip_replicate::CacheError| ConsoleError::new(ErrorKind::Refused, e.to_string());
        let answer = match request {
            Request::Cidr { query } => Answer::Cidr(self.cidr_report(&query)),
            Request::Domains {
                group,
                from,
                window_s,
            } => Answer::Domains(dvip_console::DomainsReport {
                shared: self.config.shares(Kind::Domain),
                rows: self.replication.replica.domains(
                    group.as_deref(),
                    from.as_deref(),
                    window_s,
                    now,
                ),
                node,
                group,
                from,
                window_s,
            }),
            Request::Throttles => Answer::Throttles(dvip_console::ThrottlesReport {
                shared: self.config.shares(Kind::Throttle),
                rows: self.replication.replica.throttles(now),
                node,
            }),
            Request::Caches => Answer::Caches(dvip_console::CachesReport {
                caches: self.replication.replica.caches(),
                node,
            }),
            Request::CacheGet { cache, key } => {
                let value = self
                    .replication
                    .replica
                    .cache_get(&cache, &key, now)
                    .map_err(refused)?;
                Answer::CacheValue(dvip_console::CacheValueReport {
                    node,
                    cache,
                    key,
                    value,
                })
            }
            Request::CacheSet {
                cache,
                key,
                value,
                ttl_s,
            } => {
                let ttl = ttl_s.filter(|&s| s > 0).map(Duration::from_secs);
                self.replication
                    .replica
                    .cache_set(&cache, &key, value, ttl, now)
                    .map_err(refused)?;
                info!(%cache, %key, "cache key set from the console");
                Answer::Done
            }
            Request::CacheDelete { cache, key } => {
                let was = self
                    .replication
                    .replica
                    .cache_delete(&cache, &key, now)
                    .map_err(refused)?;
                info!(%cache, %key, was, "cache key deleted from the console");
                Answer::Done
            }
            other => {
                return Err(ConsoleError::new(
                    ErrorKind::BadRequest,
                    format!("`{}` is not about replicated data", other.name()),
                ))
            }
        };
        self.send_replication();
        Ok(answer)
    }

    /// `dvip cidr show`: the counts under a prefix, as this node's replica knows them.
    fn cidr_report(&self, query: &dvip_replicate::PrefixQuery) -> dvip_console::CidrReport {
        dvip_console::CidrReport {
            node: self.name.clone(),
            shared: self.config.shares(Kind::Inbound),
            from: query.from.clone(),
            window_s: query.window_s,
            rows: self.replication.replica.query_prefixes(query, wall()),
        }
    }

    /// Whether pieces of a batch wait for corosync to take them (it said "try again").
    pub(super) fn replication_waiting(&self) -> bool {
        self.replication
            .bus
            .as_ref()
            .is_some_and(CorosyncBus::waiting)
    }

    /// Sends what waits of the replication group's batches: retried with the cluster
    /// group's, so a batch that corosync refused for a moment does not wait for the next.
    pub(super) fn flush_replication(&mut self) {
        if let Some(bus) = &mut self.replication.bus {
            if let Err(e) = bus.flush() {
                warn!("cannot multicast on the replication group: {e}");
            }
        }
    }

    /// Hands the replica's messages to its group. While the cluster group's view is not
    /// ready (its States still crossing after a change), they wait here, up to [`HOLD_MAX`]:
    /// a view change sets every replica sending its snapshot just when the election's States
    /// must cross, and on one ring they would queue behind it. Failover goes first; counts
    /// follow a moment later, in order.
    pub(super) fn send_replication(&mut self) {
        let replication = &mut self.replication;
        for Action::Send(bytes) in replication.replica.take_actions() {
            replication.held.push(bytes);
        }
        let Some(bus) = &mut replication.bus else {
            replication.held.clear();
            replication.held_since = None;
            return;
        };
        if replication.held.is_empty() {
            return;
        }
        let since = *replication
            .held_since
            .get_or_insert_with(std::time::Instant::now);
        if !self.node.is_ready() && since.elapsed() < HOLD_MAX {
            return;
        }
        replication.held_since = None;
        for bytes in replication.held.drain(..) {
            if let Err(e) = bus.send(&bytes) {
                warn!("cannot multicast on the replication group: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_name_is_marked_and_fits_corosync() {
        assert_eq!(group_of("dvip"), "dvip-r");
        let long = "g".repeat(127);
        assert_eq!(group_of(&long).len(), 127);
    }
}
