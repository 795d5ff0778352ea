//! The console's reports on replicated data: connection counts by prefix and by domain,
//! throttles, and the named caches, read (and a cache written) through the local dvipd.
//!
//! Owns how those reports print. It must not count or decide anything: the daemon's replica
//! does.

use std::path::Path;

use dvip_console::{Answer, Request};

use crate::console::report;
use crate::Outcome;

/// `dvip cidr show count for PREFIX in inbound ...`.
pub(crate) fn cidr_show(socket: &Path, words: &[String], json: bool) -> Outcome {
    let query = match dvip_replicate::PrefixQuery::parse(words) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("dvip cidr show: {e}");
            return Outcome::Usage;
        }
    };
    report(socket, &Request::Cidr { query }, json, |a| {
        if let Answer::Cidr(c) = a {
            cidr_text(c);
        }
    })
}

/// Whose counts a report holds, in words.
fn whose(from: Option<&str>, shared: bool, kind: &str) -> String {
    match (from, shared) {
        (Some(node), _) => format!("{node}'s"),
        (None, true) => "the cluster's".to_owned(),
        (None, false) => format!("this node's own ({kind} is not replicated)"),
    }
}

pub(crate) fn cidr_text(c: &dvip_console::CidrReport) {
    say!(
        "node {}: {} counts, recent = the last {} s",
        c.node,
        whose(c.from.as_deref(), c.shared, "inbound_cidr"),
        c.window_s
    );
    say!("{:<44} {:>10} {:>10}", "PREFIX", "OPEN", "RECENT");
    for row in &c.rows {
        say!("{:<44} {:>10} {:>10}", row.prefix, row.open, row.recent);
    }
}

/// `dvip domains show`.
pub(crate) fn domains_show(socket: &Path, request: &Request, json: bool) -> Outcome {
    report(socket, request, json, |a| {
        if let Answer::Domains(d) = a {
            domains_text(d);
        }
    })
}

pub(crate) fn domains_text(d: &dvip_console::DomainsReport) {
    say!(
        "node {}: {} outbound connections{}, recent = the last {} s",
        d.node,
        whose(d.from.as_deref(), d.shared, "outbound_domains"),
        d.group
            .as_deref()
            .map(|g| format!(" of binding group {g}"))
            .unwrap_or_default(),
        d.window_s
    );
    say!("{:<48} {:>10} {:>10}", "DOMAIN", "OPEN", "RECENT");
    for row in &d.rows {
        say!("{:<48} {:>10} {:>10}", row.domain, row.open, row.recent);
    }
}

/// `dvip throttle show`.
pub(crate) fn throttles_show(socket: &Path, json: bool) -> Outcome {
    report(socket, &Request::Throttles, json, |a| {
        if let Answer::Throttles(t) = a {
            throttles_text(t);
        }
    })
}

pub(crate) fn throttles_text(t: &dvip_console::ThrottlesReport) {
    say!(
        "node {}: {} hits",
        t.node,
        whose(None, t.shared, "shared_named_throttles")
    );
    say!(
        "{:<32} {:>12} {:>10} {:>10} {:>10}",
        "THROTTLE",
        "ALLOWED",
        "WINDOW",
        "HITS",
        "HERE"
    );
    for row in &t.rows {
        let allowed = row
            .hits_allowed
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        say!(
            "{:<32} {:>12} {:>8} s {:>10} {:>10}",
            row.name,
            allowed,
            row.window_s,
            row.hits,
            row.hits_here
        );
    }
}

/// `dvip cache show`.
pub(crate) fn caches_show(socket: &Path, json: bool) -> Outcome {
    report(socket, &Request::Caches, json, |a| {
        if let Answer::Caches(c) = a {
            caches_text(c);
        }
    })
}

pub(crate) fn caches_text(c: &dvip_console::CachesReport) {
    say!("node {}: {} caches", c.node, c.caches.len());
    say!(
        "{:<32} {:>10} {:>10} {:>9}",
        "CACHE",
        "KEYS",
        "MAX",
        "SNAPSHOT"
    );
    for cache in &c.caches {
        let max = cache
            .max_size
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let snapshot = if cache.snapshot { "yes" } else { "no" };
        say!(
            "{:<32} {:>10} {:>10} {:>9}",
            cache.name,
            cache.keys,
            max,
            snapshot
        );
    }
}

/// `dvip cache get NAME KEY`: the value alone, so that scripts can use it; a missing key
/// exits 1.
pub(crate) fn cache_get(socket: &Path, request: &Request, json: bool) -> Outcome {
    let mut found = true;
    let outcome = report(socket, request, json, |a| {
        if let Answer::CacheValue(v) = a {
            found = value_text(v);
        }
    });
    match outcome {
        Outcome::Ok if !found => Outcome::Failed,
        other => other,
    }
}

/// The value alone, or on stderr that there is none; whether there was one.
pub(crate) fn value_text(v: &dvip_console::CacheValueReport) -> bool {
    match &v.value {
        Some(value) => say!("{}", value.value),
        None => eprintln!("{}: no key `{}` in cache {}", v.node, v.key, v.cache),
    }
    v.value.is_some()
}
