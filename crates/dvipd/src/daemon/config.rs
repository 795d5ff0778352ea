//! The configuration as the daemon runs it: read, checked, and reduced to what the loop needs.
//!
//! Owns turning a configuration file into [`Loaded`] and logging its diagnostics. It must not
//! apply a configuration; the loop hands it to the core and the edges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dvip_config::{load, DiskFiles, Severity};
use dvip_core::ManagedAddress;
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
    pub(super) announce_interval: std::time::Duration,
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
            announce_interval: std::time::Duration::from_millis(
                config.cluster.announce_interval_ms,
            ),
            group: config.cluster.cluster_group,
            control_group: config.cluster.control_group,
            name: config.nodename,
        }
    })
}
