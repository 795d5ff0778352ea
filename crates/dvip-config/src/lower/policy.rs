//! dvip's own cluster options for the policy server: where it listens for Postfix's policy
//! delegation (`policy_listener`) and the cluster-wide limits it enforces (`inbound_limit [ ]`,
//! repeatable).
//!
//! Owns reading and checking those options. It must not read any other cluster option.

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{ClusterOptions, InboundLimit, POLICY_PORT_DEFAULT};
use crate::options::{Options, Owner, Unknown};
use crate::tree::{Block, Value, Word};
use crate::values;

/// The cluster options this file reads.
pub(crate) const OPTIONS: &[&str] = &["policy_listener", "inbound_limit"];

const LIMIT_OPTIONS: &[&str] = &["prefix", "prefix6", "connections", "window"];

/// Reads `policy_listener` and every `inbound_limit` from the cluster stanza's options.
pub(crate) fn read(
    options: &mut Options<'_>,
    o: &mut ClusterOptions,
    diagnostics: &mut Diagnostics,
) {
    if let Some((listen, _)) = options.parsed(&["policy_listener"], diagnostics, |t| {
        values::listen_address(t, POLICY_PORT_DEFAULT)
    }) {
        o.policy_listener = Some(listen);
    }
    for option in options.take_all(&["inbound_limit"]) {
        let Value::Block(block) = &option.value else {
            diagnostics
                .error(
                    Code::WrongType,
                    option.value.span(),
                    "`inbound_limit` takes a block",
                )
                .with_hint(HINT);
            continue;
        };
        read_limit(&option.key, block, o, diagnostics);
    }
}

const HINT: &str = "write `inbound_limit [ prefix = 24 connections = 30 window = 60 ]`";

/// Reads one `inbound_limit` block (`keyword` is where it starts) into `o`.
pub(crate) fn read_limit(
    keyword: &Word,
    block: &Block,
    o: &mut ClusterOptions,
    diagnostics: &mut Diagnostics,
) {
    let mut limit = InboundLimit::default();
    let mut options = Options::new(Owner::fixed("an inbound_limit"), &block.items);
    if let Some((n, _)) = options.parsed(&["prefix"], diagnostics, |t| {
        values::count(t, 0..=32, "bits of an IPv4 prefix")
    }) {
        limit.prefix = u8::try_from(n).unwrap_or(32);
    }
    if let Some((n, _)) = options.parsed(&["prefix6"], diagnostics, |t| {
        values::count(t, 0..=128, "bits of an IPv6 prefix")
    }) {
        limit.prefix6 = u8::try_from(n).unwrap_or(128);
    }
    let connections = options.parsed(&["connections"], diagnostics, |t| {
        values::count(t, 1..=u32::MAX, "connections")
    });
    if let Some(d) = options.duration(&["window"], diagnostics) {
        if d.as_secs() == 0 || d.as_secs() > 3600 {
            diagnostics
                .error(
                    Code::BadDuration,
                    keyword.span,
                    "an inbound_limit's window is 1 second to 1 hour",
                )
                .with_hint("write `window = 60` (seconds)");
            return;
        }
        limit.window_s = d.as_secs();
    }
    options.finish(LIMIT_OPTIONS, Unknown::Warn, diagnostics);
    let Some((connections, _)) = connections else {
        diagnostics
            .error(
                Code::Missing,
                keyword.span,
                "an inbound_limit needs `connections`",
            )
            .with_hint(HINT);
        return;
    };
    limit.connections = connections;
    o.inbound_limits.push(limit);
}
