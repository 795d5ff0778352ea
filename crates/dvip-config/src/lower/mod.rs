//! Lowering: from the syntax tree to the effective [`Config`](crate::Config).
//!
//! Owns the order of the passes (lines dvip cannot read, cluster stanza, services, addresses,
//! forwards, log destinations, log inputs, the local API) and
//! the node name. Each pass lives in its own file and reports into one diagnostics list.

mod addresses;
mod api;
mod cluster;
mod forwards;
pub(crate) mod inputs;
mod logs;
mod policy;
mod services;
mod unread;

use crate::diagnostic::Diagnostics;
use crate::model::{Config, NodenameSource};
use crate::tree::Item;
use crate::LoadOptions;

pub(crate) fn lower(
    document: Vec<Item>,
    load: &LoadOptions,
    diagnostics: &mut Diagnostics,
) -> Config {
    unread::report(&document, diagnostics);
    let section = cluster::read(&document, diagnostics);
    let services = services::collect(&document, diagnostics);
    let addresses = addresses::build(&services, &section.topology, section.nodeaddr, diagnostics);
    let forwards = forwards::collect(&services, &addresses, diagnostics);
    let log_destinations = logs::collect(&document, &section.logs, section.logs_at, diagnostics);
    let log_inputs = inputs::read(&document, &section.logs, &log_destinations, diagnostics);
    let replication_listener = api::read(&document, diagnostics);
    drop(services);
    let (nodename, nodename_source) = match (&load.nodename, section.nodename) {
        (Some(name), _) => (name.clone(), NodenameSource::Override),
        (None, Some(name)) => (name, NodenameSource::Config),
        (None, None) => (short_hostname(&load.hostname), NodenameSource::Hostname),
    };
    Config {
        nodename,
        nodename_source,
        nodeaddr: section.nodeaddr,
        cluster: section.options,
        addresses,
        forwards,
        topology: section.topology,
        logs: section.logs,
        log_destinations,
        replicate: section.replicate,
        log_inputs,
        replication_listener,
        document,
    }
}

/// The host name up to its first dot, as the node name defaults to.
pub(crate) fn short_hostname(hostname: &str) -> String {
    hostname.split('.').next().unwrap_or(hostname).to_owned()
}
