//! The configuration as the daemon runs it: read, checked, and reduced to what the loop needs.
//!
//! Owns turning a configuration file into [`Loaded`] and logging its diagnostics. It must not
//! apply a configuration; the loop hands it to the core and the edges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dvip_config::{load, DiskFiles, Severity};
use std::time::Duration;

use dvip_core::{ManagedAddress, NodeOptions, STATE_DEADLINE_DEFAULT};
use tracing::{error, info, warn};

use super::Settings;
use crate::forward::Route;

/// What the daemon takes from a valid configuration.
pub(super) struct Loaded {
    pub(super) name: String,
    pub(super) control_group: String,
    pub(super) addresses: Vec<ManagedAddress>,
    pub(super) group: String,
    pub(super) forwards: BTreeMap<(IpAddr, u16), Route>,
    pub(super) hook: Option<String>,
    pub(super) arp_all_hosts: bool,
    /// How many announcements per acquisition, and how far apart.
    pub(super) announce_count: u32,
    pub(super) announce_interval: Duration,
    /// The core's tunables the configuration sets; `state_deadline` is `None` when the
    /// configuration leaves it to corosync's timing.
    pub(super) view_mature_time: Duration,
    pub(super) state_deadline: Option<Duration>,
    pub(super) plumb_deadline: Duration,
    /// The syslog sockets, routes and followed files.
    pub(super) log_inputs: dvip_config::LogInputs,
    /// Every journal of the cluster `logs`: its key and directory.
    pub(super) journals: Vec<(String, std::path::PathBuf)>,
    /// Where the log service listens: `cluster_listener`.
    pub(super) log_listener: std::net::SocketAddr,
    /// Where the policy server listens (`None`: it does not).
    pub(super) policy_listener: Option<std::net::SocketAddr>,
    /// The limits it enforces.
    pub(super) inbound_limits: Vec<dvip_replicate::InboundLimit>,
    /// The kinds shared and the replica's batch bounds.
    pub(super) replica_options: dvip_replicate::ReplicaOptions,
    /// The named caches and how each behaves.
    pub(super) caches: Vec<(String, dvip_replicate::CacheOptions)>,
    /// The local API's socket (`None`: not served).
    pub(super) api_socket: Option<dvip_config::ApiSocket>,
}

impl Loaded {
    /// Whether `kind` is replicated: its counts are the cluster's, not this node's alone.
    pub(super) fn shares(&self, kind: dvip_replicate::Kind) -> bool {
        self.replica_options.shared.contains(&kind)
    }

    /// Whether anything is shared, so that the replica joins its group.
    pub(super) fn replicates(&self) -> bool {
        !self.replica_options.shared.is_empty() || !self.caches.is_empty()
    }
}

/// A State deadline that follows corosync's timing: twice its token timeout (a member
/// corosync still counts as alive but that dvip has not heard for that long is as good as
/// gone), never under [`STATE_DEADLINE_DEFAULT`].
pub(super) fn state_deadline_for(token: Option<Duration>) -> Duration {
    token.map_or(STATE_DEADLINE_DEFAULT, |t| {
        (t * 2).max(STATE_DEADLINE_DEFAULT)
    })
}

impl Loaded {
    /// The core's options: the configuration's, the State deadline derived from `token` when
    /// the configuration does not set it.
    pub(super) fn node_options(&self, token: Option<Duration>) -> NodeOptions {
        NodeOptions {
            view_mature_time: self.view_mature_time,
            state_deadline: self
                .state_deadline
                .unwrap_or_else(|| state_deadline_for(token)),
            plumb_deadline: self.plumb_deadline,
            ..NodeOptions::default()
        }
    }
}

impl Loaded {
    pub(super) fn managed(&self, address: IpAddr) -> Option<&ManagedAddress> {
        self.addresses
            .binary_search_by_key(&address, |m| m.address)
            .ok()
            .map(|i| &self.addresses[i])
    }
}

/// Reads and validates the configuration, logging every diagnostic.
pub(super) fn read_config(settings: &Settings) -> Option<Loaded> {
    let checked = load(&settings.config, &settings.load, &DiskFiles);
    for d in &checked.diagnostics {
        let text = d.render(&checked.sources);
        match d.severity {
            Severity::Error => error!("{}", text.trim_end()),
            Severity::Warning => warn!("{}", text.trim_end()),
            Severity::Note => info!("{}", text.trim_end()),
        }
    }
    checked.is_valid().then(|| {
        let config = checked.config;
        Loaded {
            addresses: config.managed_addresses().cloned().collect(),
            forwards: config
                .forwards
                .iter()
                .map(|f| {
                    let route = Route {
                        backend: f.backend,
                        proxy_protocol: f.proxy_protocol,
                    };
                    ((f.address, f.port), route)
                })
                .collect(),
            hook: config.cluster.duravip_hook,
            arp_all_hosts: config.cluster.arp_all_hosts,
            announce_count: config.cluster.announce_count,
            announce_interval: Duration::from_millis(config.cluster.announce_interval_ms),
            view_mature_time: Duration::from_millis(config.cluster.view_mature_time_ms),
            state_deadline: config.cluster.state_deadline_ms.map(Duration::from_millis),
            plumb_deadline: Duration::from_millis(config.cluster.plumb_deadline_ms),
            log_inputs: config.log_inputs,
            log_listener: listen_at(&config.cluster.cluster_listener),
            policy_listener: config.cluster.policy_listener.as_ref().map(listen_at),
            inbound_limits: config
                .cluster
                .inbound_limits
                .iter()
                .map(|l| dvip_replicate::InboundLimit {
                    prefix_v4: l.prefix,
                    prefix_v6: l.prefix6,
                    connections: u64::from(l.connections),
                    window: Duration::from_secs(l.window_s),
                })
                .collect(),
            replica_options: replica_options(&config.replicate),
            caches: caches(&config.replicate),
            api_socket: config.replication_listener,
            journals: config
                .logs
                .iter()
                .map(|l| (l.name.clone(), l.path.clone().into()))
                .collect(),
            group: config.cluster.cluster_group,
            control_group: config.cluster.control_group,
            name: config.nodename,
        }
    })
}

/// The replica's options: the kinds configured are shared, and a batch waits no longer and
/// grows no larger than the strictest `max_delay` and `max_pending` among them allow (one
/// batch carries every kind).
fn replica_options(replicate: &[dvip_config::Replication]) -> dvip_replicate::ReplicaOptions {
    use dvip_replicate::Kind;
    let defaults = dvip_replicate::ReplicaOptions::default();
    let shared: std::collections::BTreeSet<Kind> = replicate
        .iter()
        .filter_map(|r| Kind::from_type_name(&r.kind))
        .collect();
    let bounded = || {
        replicate
            .iter()
            .filter(|r| Kind::from_type_name(&r.kind).is_some() || is_cache(r))
    };
    dvip_replicate::ReplicaOptions {
        max_delay: bounded()
            .filter_map(|r| r.max_delay_ms)
            .min()
            .map_or(defaults.max_delay, Duration::from_millis),
        max_pending: bounded()
            .filter_map(|r| r.max_pending)
            .min()
            .map_or(defaults.max_pending, |n| n as usize),
        shared,
        ..defaults
    }
}

fn is_cache(r: &dvip_config::Replication) -> bool {
    r.kind.eq_ignore_ascii_case(dvip_replicate::CACHE_TYPE)
}

/// The caches configured, by name.
fn caches(replicate: &[dvip_config::Replication]) -> Vec<(String, dvip_replicate::CacheOptions)> {
    replicate
        .iter()
        .filter(|r| is_cache(r))
        .map(|r| {
            let options = dvip_replicate::CacheOptions {
                max_size: r.max_size.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                snapshot: r.snapshot,
            };
            (r.name.clone(), options)
        })
        .collect()
}

/// A listen address as a socket address: a wildcard is every IPv4 (or IPv6) address.
fn listen_at(listen: &dvip_config::ListenAddress) -> std::net::SocketAddr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let address = listen.address.unwrap_or(if listen.ipv6_wildcard {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    std::net::SocketAddr::new(address, listen.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_shares_the_kinds_configured_with_their_strictest_batch_bounds() {
        use dvip_replicate::Kind;
        let replication = |name: &str, kind: &str, delay, pending| dvip_config::Replication {
            name: name.into(),
            kind: kind.into(),
            max_delay_ms: delay,
            max_pending: pending,
            max_size: Some(10),
            snapshot: true,
            options: Default::default(),
        };
        let sets = [
            replication("outbound_cidr", "outbound_cidr", Some(500), Some(70)),
            replication("inbound_cidr", "inbound_cidr", Some(250), None),
            replication("greylist", "cache", None, Some(40)),
            replication("obtc", "obtc", Some(5), Some(1)),
        ];
        let options = replica_options(&sets);
        assert_eq!(options.max_delay, Duration::from_millis(250));
        assert_eq!(options.max_pending, 40);
        assert_eq!(
            options.shared,
            std::collections::BTreeSet::from([Kind::Inbound, Kind::Outbound])
        );
        assert_eq!(
            caches(&sets),
            vec![(
                "greylist".to_owned(),
                dvip_replicate::CacheOptions {
                    max_size: Some(10),
                    snapshot: true
                }
            )]
        );
        let none = replica_options(&[]);
        assert!(none.shared.is_empty());
        assert_eq!(
            none.max_delay,
            dvip_replicate::ReplicaOptions::default().max_delay
        );
    }

    #[test]
    fn the_state_deadline_follows_the_token_but_never_goes_below_the_default() {
        assert_eq!(state_deadline_for(None), STATE_DEADLINE_DEFAULT);
        assert_eq!(
            state_deadline_for(Some(Duration::from_millis(100))),
            STATE_DEADLINE_DEFAULT
        );
        assert_eq!(
            state_deadline_for(Some(Duration::from_secs(3))),
            Duration::from_secs(6)
        );
    }
}
