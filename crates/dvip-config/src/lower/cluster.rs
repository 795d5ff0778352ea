//! The cluster stanza: identity, bus groups, switches, topology hints, logs, replication.
//!
//! Owns finding the stanza in either dialect (`Logger cluster/ec_cluster cluster { }` or
//! `cluster { }`, plus `ECCluster_Listener`) and reading every option in it. It must not look
//! at bindings or listeners.

use std::net::IpAddr;

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{
    replicate_types, ClusterLog, ClusterOptions, Replication, TopologyHint, REPLICATE_TYPES_MTA,
};
use crate::options::{self, stanzas, unknown, Options, Owner, Unknown};
use crate::source::Span;
use crate::tree::{Block, Item, OptionItem, Stanza, Value, Word};
use crate::values::{self, ListenAddress};

const CLUSTER_OPTIONS: &[&str] = &[
    "nodename",
    "nodeaddr",
    "mbus_daemon",
    "cluster_group",
    "control_group",
    "cluster_listener",
    "arp_all_hosts",
    "use_iflist_cache",
    "unconditional_rebind",
    "unconditional_rebinding",
    "view_mature_time",
    "state_deadline",
    "plumb_deadline",
    "duravip_hook",
    "announce_count",
    "announce_interval",
    "logs",
    "replicate",
    "topology",
];

/// The shortest `state_deadline` or `plumb_deadline` accepted: a State takes a few token
/// rotations, a plumb a few netlink round trips, and a deadline under either fires for
/// nothing.
const DEADLINE_LEAST_MS: u64 = 100;

const TOPOLOGY_OPTIONS: &[&str] = &["interface", "cidrmask"];

/// Momentum's cluster options that change nothing under dvip, and why. Each draws a note, so
/// an operator who migrates sees it was read.
pub(crate) const NO_EFFECT: &[(&str, &str)] = &[
    ("dml", "it configures a Momentum subsystem that dvip does not have"),
    ("log_group", "dvip serves clustered logs over the cluster listener, not through a bus group"),
    ("heartbeat_start_delay", "corosync decides membership; dvipd sends no heartbeats of its own to delay"),
    ("if_check_interval", "dvipd hears of interface changes from the kernel as they happen instead of polling"),
    ("if_down_limit", "dvipd acts on the kernel's link-down event; `plumb_deadline` bounds how long a failing interface keeps its addresses"),
    ("duravip_balance_set_size", "dvip plans every address at once and plumbs them in netlink batches"),
    ("view_balance_interval", "dvip balances on each new view once it has stood for `view_mature_time`"),
    ("view_broadcast_interval", "corosync delivers every view change; dvipd multicasts its State once per view"),
    ("debug_level", "dvipd's log level is set with the RUST_LOG environment variable"),
];

/// What the cluster stanza says.
#[derive(Debug, Default)]
pub(crate) struct ClusterSection {
    pub(crate) options: ClusterOptions,
    pub(crate) nodename: Option<String>,
    pub(crate) nodeaddr: Option<IpAddr>,
    pub(crate) topology: Vec<TopologyHint>,
    pub(crate) logs: Vec<ClusterLog>,
    pub(crate) replicate: Vec<Replication>,
    /// The `logs` block, so log URIs can be told apart from the paths it serves.
    pub(crate) logs_at: Option<Span>,
}

/// True for the stanza that configures clustering, in either dialect.
pub(crate) fn is_cluster_stanza(stanza: &Stanza) -> bool {
    (stanza.keyword.is("cluster") && stanza.args.is_empty())
        || (stanza.keyword.is("logger")
            && stanza
                .args
                .first()
                .is_some_and(|a| a.is("cluster/ec_cluster") || a.is("cluster")))
}

pub(crate) fn read(document: &[Item], diagnostics: &mut Diagnostics) -> ClusterSection {
    let mut section = ClusterSection::default();
    let mut found: Option<&Stanza> = None;
    for stanza in stanzas(document).filter(|s| is_cluster_stanza(s)) {
        if found.is_some() {
            diagnostics
                .error(
                    Code::Duplicate,
                    stanza.keyword.span,
                    "a second cluster stanza",
                )
                .with_hint("merge it into the first; a node has one cluster configuration");
            continue;
        }
        found = Some(stanza);
        read_stanza(stanza, &mut section, diagnostics);
    }
    read_eccluster_listener(document, found.is_some(), &mut section, diagnostics);
    section
}

fn read_stanza(stanza: &Stanza, section: &mut ClusterSection, diagnostics: &mut Diagnostics) {
    let items = &stanza.body.items;
    let mut options = Options::new(Owner::fixed("the cluster stanza"), items);
    let o = &mut section.options;
    section.nodename = options
        .parsed(&["nodename"], diagnostics, |t| values::name(t, "node name"))
        .map(|(n, _)| n);
    section.nodeaddr = options
        .parsed(&["nodeaddr"], diagnostics, values::address)
        .map(|(a, _)| a);
    if let Some(w) = options.word(&["mbus_daemon"], diagnostics) {
        o.mbus_daemon.clone_from(&w.text);
    }
    for (names, slot) in [
        (&["cluster_group"], &mut o.cluster_group),
        (&["control_group"], &mut o.control_group),
    ] {
        if let Some((name, _)) =
            options.parsed(names, diagnostics, |t| values::name(t, "group name"))
        {
            *slot = name;
        }
    }
    if let Some((listen, _)) = options.parsed(&["cluster_listener"], diagnostics, |t| {
        values::listen_address(t, crate::model::CLUSTER_LISTENER_PORT_DEFAULT)
    }) {
        o.cluster_listener = listen;
    }
    for (names, slot) in [
        (&["arp_all_hosts"][..], &mut o.arp_all_hosts),
        (&["use_iflist_cache"], &mut o.use_iflist_cache),
        (
            &["unconditional_rebind", "unconditional_rebinding"],
            &mut o.unconditional_rebind,
        ),
    ] {
        if let Some(v) = options.boolean(names, diagnostics) {
            *slot = v;
        }
    }
    if let Some((false, word)) = options.parsed(&["enabled"], diagnostics, values::boolean) {
        diagnostics
            .error(
                Code::Disabled,
                word.span,
                "the cluster stanza says `enabled = false`, but dvipd is the cluster: it would still move addresses",
            )
            .with_hint("on a node without clustering, do not run dvipd; otherwise remove the option or set it true");
    }
    for &(name, why) in NO_EFFECT {
        if let Some(option) = options.take(&[name], diagnostics) {
            diagnostics
                .note(
                    Code::NoEffect,
                    option.key.span,
                    format!(
                        "`{}` is read and changes nothing here: {why}",
                        option.key.text
                    ),
                )
                .with_hint("keep it for Momentum, or remove it; dvip needs nothing in its place");
        }
    }
    if let Some(d) = options.duration(&["view_mature_time"], diagnostics) {
        o.view_mature_time_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
    let least = std::time::Duration::from_millis(DEADLINE_LEAST_MS);
    if let Some((d, _)) = options.parsed(&["state_deadline"], diagnostics, |t| {
        values::deadline(t, least)
    }) {
        o.state_deadline_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some((d, _)) = options.parsed(&["plumb_deadline"], diagnostics, |t| {
        values::deadline(t, least)
    }) {
        o.plumb_deadline_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
    if let Some((hook, _)) = options.parsed(&["duravip_hook"], diagnostics, values::hook) {
        o.duravip_hook = Some(hook);
    }
    if let Some((count, _)) = options.parsed(&["announce_count"], diagnostics, |t| {
        values::count(t, 1..=20, "announcements")
    }) {
        o.announce_count = count;
    }
    if let Some(d) = options.duration(&["announce_interval"], diagnostics) {
        o.announce_interval_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
    super::policy::read(&mut options, o, diagnostics);
    // `logs` and `replicate` may be written as options (`logs = [ ]`) or stanzas (`logs [ ]`).
    if let Some(option) = options.take(&["logs"], diagnostics) {
        if let Some(block) = block_value(option, diagnostics) {
            read_logs(block, section, diagnostics);
        }
    }
    for option in options.take_all(&["replicate"]) {
        if let Some(block) = block_value(option, diagnostics) {
            read_replicate(&option.key, None, block, section, diagnostics);
        }
    }
    let known: Vec<&str> = CLUSTER_OPTIONS
        .iter()
        .copied()
        .chain(super::policy::OPTIONS.iter().copied())
        .chain(["enabled"])
        .chain(NO_EFFECT.iter().map(|&(name, _)| name))
        .collect();
    options.finish(&known, Unknown::Warn, diagnostics);

    let mut logs_seen = section.logs_at.is_some();
    for inner in stanzas(items) {
        if inner.keyword.is("logs") {
            if logs_seen {
                diagnostics
                    .error(
                        Code::Duplicate,
                        inner.keyword.span,
                        "`logs` is given twice in the cluster stanza",
                    )
                    .with_hint("list every served log in one `logs` block");
                continue;
            }
            logs_seen = true;
            read_logs(&inner.body, section, diagnostics);
        } else if inner.keyword.is("replicate") {
            read_replicate(
                &inner.keyword,
                inner.args.first(),
                &inner.body,
                section,
                diagnostics,
            );
        } else if inner.keyword.is("inbound_limit") {
            super::policy::read_limit(
                &inner.keyword,
                &inner.body,
                &mut section.options,
                diagnostics,
            );
        } else if inner.keyword.is("topology") {
            match inner.args.as_slice() {
                [cidr] => read_topology(cidr, &inner.body, section, diagnostics),
                _ => {
                    diagnostics
                        .error(
                            Code::Missing,
                            inner.keyword.span,
                            "a Topology stanza names one network",
                        )
                        .with_hint("write `Topology \"192.0.2.0/24\" { interface = \"eth0\" }`");
                }
            }
        } else if looks_like_network(&inner.keyword.text) && inner.args.is_empty() {
            read_topology(&inner.keyword, &inner.body, section, diagnostics);
        } else if known.iter().any(|k| inner.keyword.is(k)) {
            diagnostics
                .error(
                    Code::WrongType,
                    inner.keyword.span,
                    format!("`{}` takes a single value, not a block", inner.keyword.text),
                )
                .with_hint(format!("write `{} = VALUE`", inner.keyword.text));
        } else {
            unknown(
                &inner.keyword,
                Owner::fixed("the cluster stanza"),
                CLUSTER_OPTIONS,
                Unknown::Warn,
                diagnostics,
            );
        }
    }
}

fn looks_like_network(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit()) || text.contains(':')
}

fn block_value<'t>(option: &'t OptionItem, diagnostics: &mut Diagnostics) -> Option<&'t Block> {
    match &option.value {
        Value::Block(b) => Some(b),
        other => {
            diagnostics
                .error(
                    Code::WrongType,
                    other.span(),
                    format!("`{}` takes a block", option.key.text),
                )
                .with_hint(format!("write `{} [ name = \"value\" ]`", option.key.text));
            None
        }
    }
}

fn read_logs(block: &Block, section: &mut ClusterSection, diagnostics: &mut Diagnostics) {
    section.logs_at = Some(block.open);
    let mut options = Options::new(Owner::fixed("the cluster logs"), &block.items);
    let mut names: Vec<&Word> = Vec::new();
    for item in &block.items {
        let Item::Option(option) = item else { continue };
        if names.iter().any(|n| option.key.is(&n.text)) {
            continue; // `take` below reports the duplicate once.
        }
        names.push(&option.key);
    }
    for key in names {
        let Some(path) = options.word(&[key.text.as_str()], diagnostics) else {
            continue;
        };
        if !path.text.starts_with('/') {
            diagnostics
                .error(Code::BadLogUri, path.span, format!("log `{}` must be an absolute path", key.text))
                .with_hint("write the journal directory the logger's `cluster://` URI names, such as \"/var/log/dvip/mainlog.cluster\"");
            continue;
        }
        section.logs.push(ClusterLog {
            name: key.text.clone(),
            path: path.text.clone(),
        });
    }
    for stanza in stanzas(&block.items) {
        diagnostics
            .error(
                Code::Unexpected,
                stanza.keyword.span,
                "the cluster logs hold `name = \"path\"` pairs, not stanzas",
            )
            .with_hint("write `mainlog = \"/var/log/dvip/mainlog.cluster\"`");
    }
}

/// What a replicate block may say.
const REPLICATE_OPTIONS: &[&str] = &[
    "type",
    "class",
    "parameters",
    "max_delay",
    "max_pending",
    "max_size",
    "binding_group",
    "replication_name",
];

fn read_replicate(
    keyword: &Word,
    name: Option<&Word>,
    block: &Block,
    section: &mut ClusterSection,
    diagnostics: &mut Diagnostics,
) {
    let mut options = std::collections::BTreeMap::new();
    let (mut max_delay_ms, mut max_pending) = (None, None);
    for item in &block.items {
        match item {
            Item::Option(OptionItem {
                key,
                value: Value::Word(w),
            }) => {
                if !REPLICATE_OPTIONS.iter().any(|k| key.is(k)) {
                    unknown(
                        key,
                        Owner::fixed("a replicate block"),
                        REPLICATE_OPTIONS,
                        Unknown::Warn,
                        diagnostics,
                    );
                }
                // The batch bounds dvipd uses are checked where they are written.
                if key.is("max_delay") {
                    if let Some(d) = options::refused(diagnostics, w, values::duration(&w.text)) {
                        max_delay_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    }
                } else if key.is("max_pending") {
                    max_pending = options::refused(
                        diagnostics,
                        w,
                        values::count(&w.text, 1..=1_000_000, "changed keys"),
                    );
                }
                if options
                    .insert(key.text.to_ascii_lowercase(), w.text.clone())
                    .is_some()
                {
                    diagnostics
                        .error(
                            Code::Duplicate,
                            key.span,
                            format!("`{}` is set twice in this replicate block", key.text),
                        )
                        .with_hint("remove one of them");
                }
            }
            Item::Option(OptionItem { key, .. }) => {
                diagnostics
                    .error(
                        Code::WrongType,
                        key.span,
                        format!("replicate option `{}` takes a single value", key.text),
                    )
                    .with_hint("write `name = \"value\"`");
            }
            Item::Stanza(s) => {
                diagnostics
                    .error(
                        Code::Unexpected,
                        s.keyword.span,
                        "a replicate block holds `name = value` options",
                    )
                    .with_hint("move this stanza out of the replicate block");
            }
            // Reported by `unread`.
            Item::Bare(_) => {}
        }
    }
    // 3.x's `class` gives the type when the stanza's name is not one.
    let kind = options.remove("type").or_else(|| options.remove("class"));
    let replication_name = options.remove("replication_name");
    let (name, kind) = match (name, kind, replication_name) {
        (Some(n), kind, _) => (n.text.clone(), kind.unwrap_or_else(|| n.text.clone())),
        (None, Some(kind), Some(name)) => (name, kind),
        (None, Some(kind), None) if kind.eq_ignore_ascii_case("cache") => {
            diagnostics
                .error(
                    Code::Missing,
                    keyword.span,
                    "a replicated cache needs a `replication_name`",
                )
                .with_hint("write `replicate [ type = \"cache\" replication_name = \"mycache\" ]`; the name tells caches apart");
            return;
        }
        (None, Some(kind), None) => (kind.clone(), kind),
        (None, None, _) => {
            diagnostics
                .error(
                    Code::Missing,
                    keyword.span,
                    "a replicate block needs a `type`",
                )
                .with_hint("write `replicate [ type = \"inbound_cidr\" ]`");
            return;
        }
    };
    if section.replicate.iter().any(|r| r.name == name) {
        diagnostics
            .error(
                Code::Duplicate,
                keyword.span,
                format!("a second replicated data set named `{name}`"),
            )
            .with_hint("give each cache its own `replication_name`");
        return;
    }
    let Some(kind) = replicate_type(&kind, keyword, block, diagnostics) else {
        return;
    };
    let (max_size, snapshot) = cache_options(&kind, block, diagnostics);
    section.replicate.push(Replication {
        name,
        kind,
        max_delay_ms,
        max_pending,
        max_size,
        snapshot,
        options,
    });
}

/// The type in dvip's spelling, a note for Momentum's own data sets, or an error for a name
/// neither knows.
fn replicate_type(
    kind: &str,
    keyword: &Word,
    block: &Block,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let lower = kind.to_ascii_lowercase();
    let at = replicate_word(block, &["type", "class"]).map_or(keyword.span, |w| w.span);
    let types = replicate_types();
    if types.contains(&lower.as_str()) {
        return Some(lower);
    }
    if REPLICATE_TYPES_MTA.contains(&lower.as_str()) {
        diagnostics
            .warning(
                Code::BadReplicate,
                at,
                format!("dvip does not replicate `{kind}`; it is read and has no effect"),
            )
            .with_hint(format!("dvip replicates {}", types.join(", ")));
        return Some(lower);
    }
    let hint = match options::closest(&lower, &types) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("the types are {}", types.join(", ")),
    };
    diagnostics
        .error(
            Code::BadReplicate,
            at,
            format!("`{kind}` is not a type of replicated data"),
        )
        .with_hint(hint);
    None
}

/// The word of the first of `names` written in a replicate block.
fn replicate_word<'b>(block: &'b Block, names: &[&str]) -> Option<&'b Word> {
    block.items.iter().find_map(|item| match item {
        Item::Option(OptionItem {
            key,
            value: Value::Word(w),
        }) if names.iter().any(|n| key.is(n)) => Some(w),
        _ => None,
    })
}

/// A cache's `max_size` (`-1`: no bound) and whether its `parameters` ask for snapshots.
fn cache_options(kind: &str, block: &Block, diagnostics: &mut Diagnostics) -> (Option<u64>, bool) {
    let size = replicate_word(block, &["max_size"]);
    let parameters = replicate_word(block, &["parameters"]);
    if kind != dvip_replicate::CACHE_TYPE {
        if let Some(w) = size {
            diagnostics
                .warning(
                    Code::BadReplicate,
                    w.span,
                    "`max_size` bounds caches only; it has no effect here",
                )
                .with_hint("remove it");
        }
        return (None, false);
    }
    let max_size = size.and_then(|w| match w.text.trim().parse::<i64>() {
        Ok(-1) => None,
        Ok(n) if n >= 1 => u64::try_from(n).ok(),
        _ => {
            diagnostics
                .error(
                    Code::BadReplicate,
                    w.span,
                    format!("`{}` is not a cache size", w.text),
                )
                .with_hint("write a number of keys from 1, or -1 for no bound");
            None
        }
    });
    let snapshot = parameters.is_some_and(|w| {
        w.text
            .split([';', ',', ' '])
            .any(|p| p.trim().eq_ignore_ascii_case("snapshot"))
    });
    (max_size, snapshot)
}

fn read_topology(
    cidr_word: &Word,
    body: &Block,
    section: &mut ClusterSection,
    diagnostics: &mut Diagnostics,
) {
    let cidr = options::refused(diagnostics, cidr_word, values::network(&cidr_word.text));
    let owner = Owner::at("topology hint", &cidr_word.text);
    let mut options = Options::new(owner, &body.items);
    let ipv6 = cidr.is_some_and(|c| matches!(c, ipnet::IpNet::V6(_)));
    let interface = options
        .parsed(&["interface"], diagnostics, values::interface)
        .map(|(i, _)| i);
    let cidrmask = options.parsed(&["cidrmask"], diagnostics, |t| values::cidrmask(t, ipv6));
    options.finish(TOPOLOGY_OPTIONS, Unknown::Warn, diagnostics);
    for stanza in stanzas(&body.items) {
        unknown(
            &stanza.keyword,
            owner,
            TOPOLOGY_OPTIONS,
            Unknown::Warn,
            diagnostics,
        );
    }
    let Some(cidr) = cidr else { return };
    let Some(interface) = interface else {
        if options_lack(body, "interface") {
            diagnostics
                .error(
                    Code::Missing,
                    cidr_word.span,
                    format!("topology hint {cidr} names no interface"),
                )
                .with_hint("add `interface = \"eth0\"` (the interface its addresses go on)");
        }
        return;
    };
    if section.topology.iter().any(|h| h.cidr == cidr) {
        diagnostics
            .error(
                Code::Duplicate,
                cidr_word.span,
                format!("a second topology hint for {cidr}"),
            )
            .with_hint("keep one hint per network");
        return;
    }
    let cidrmask = cidrmask.map_or(cidr.max_prefix_len(), |(m, _)| m);
    section.topology.push(TopologyHint {
        cidr,
        interface,
        cidrmask,
    });
}

fn options_lack(body: &Block, name: &str) -> bool {
    !body
        .items
        .iter()
        .any(|i| matches!(i, Item::Option(o) if o.key.is(name)))
}

fn read_eccluster_listener(
    document: &[Item],
    cluster_found: bool,
    section: &mut ClusterSection,
    diagnostics: &mut Diagnostics,
) {
    let mut listen: Option<(ListenAddress, &Word)> = None;
    for stanza in stanzas(document).filter(|s| s.keyword.is("eccluster_listener")) {
        for inner in stanzas(&stanza.body.items).filter(|s| s.keyword.is("listen")) {
            let Some(address) = inner.args.first() else {
                continue;
            };
            let Some(parsed) = options::refused(
                diagnostics,
                address,
                values::listen_address(&address.text, crate::model::CLUSTER_LISTENER_PORT_DEFAULT),
            ) else {
                continue;
            };
            if listen.is_some() {
                diagnostics
                    .error(Code::Duplicate, address.span, "a second cluster listener")
                    .with_hint("nodes reach each other on one address; keep one Listen");
                continue;
            }
            listen = Some((parsed, address));
        }
    }
    let Some((parsed, word)) = listen else { return };
    let default = ClusterOptions::default().cluster_listener;
    let configured = section.options.cluster_listener;
    if cluster_found && configured != default && configured != parsed {
        diagnostics
            .error(
                Code::Duplicate,
                word.span,
                format!(
                    "ECCluster_Listener says {parsed} but the cluster stanza says {configured}"
                ),
            )
            .with_hint("set the cluster listener in one place");
        return;
    }
    section.options.cluster_listener = parsed;
}
