//! Lines dvip cannot read: every [`Bare`] item of the document, reported where it stands.
//!
//! Owns the rule that nothing is dropped in silence: a line of words with no `=` and no block
//! is an error inside a stanza whose content dvip reads (the cluster stanza, listeners,
//! bindings), when it starts with one of dvip's keywords or when it holds a log URI, and a
//! warning elsewhere. It must not read options.

use crate::diagnostic::{Code, Diagnostics};
use crate::lower::cluster::is_cluster_stanza;
use crate::tree::{Bare, Entry, Item, Stanza, Value};

/// Stanzas whose content dvip reads, besides the cluster stanza.
const READ_BY_DVIP: &[&str] = &[
    "eccluster_listener",
    "esmtp_listener",
    "listen",
    "binding",
    "binding_group",
    "syslog_listener",
    "log_route",
    "log_follow",
];

/// Keywords that, standing alone, are a stanza of dvip's written wrong (`Binding "b" = { }`).
const DVIP_KEYWORDS: &[&str] = &[
    "cluster",
    "logger",
    "topology",
    "replicate",
    "logs",
    "include",
    "readonly_include",
];

pub(crate) fn report(document: &[Item], diagnostics: &mut Diagnostics) {
    walk(document, false, diagnostics);
}

fn read_by_dvip(stanza: &Stanza) -> bool {
    is_cluster_stanza(stanza) || READ_BY_DVIP.iter().any(|k| stanza.keyword.is(k))
}

fn walk(items: &[Item], inside_dvip: bool, diagnostics: &mut Diagnostics) {
    for item in items {
        match item {
            Item::Bare(bare) => line(bare, inside_dvip, diagnostics),
            Item::Stanza(stanza) => walk(
                &stanza.body.items,
                inside_dvip || read_by_dvip(stanza),
                diagnostics,
            ),
            Item::Option(option) => in_value(&option.value, inside_dvip, diagnostics),
        }
    }
}

fn in_value(value: &Value, inside_dvip: bool, diagnostics: &mut Diagnostics) {
    match value {
        Value::Word(_) => {}
        Value::Block(block) => walk(&block.items, inside_dvip, diagnostics),
        Value::List(list) => {
            for entry in &list.entries {
                match entry {
                    Entry::Item {
                        value: v, block, ..
                    } => {
                        if let Some(v) = v {
                            in_value(v, inside_dvip, diagnostics);
                        }
                        if let Some(b) = block {
                            walk(&b.items, inside_dvip, diagnostics);
                        }
                    }
                    Entry::Group(v) => in_value(v, inside_dvip, diagnostics),
                }
            }
        }
    }
}

fn line(bare: &Bare, inside_dvip: bool, diagnostics: &mut Diagnostics) {
    let words = std::iter::once(&bare.keyword).chain(&bare.args);
    let holds_log = words.clone().any(|w| {
        let lower = w.text.to_ascii_lowercase();
        lower.starts_with("cluster://") || lower.starts_with("jlog://")
    });
    let text: Vec<&str> = words.map(|w| w.text.as_str()).collect();
    let span = bare
        .args
        .last()
        .map_or(bare.keyword.span, |last| bare.keyword.span.to(last.span));
    let message = format!(
        "dvip cannot read `{}`: a line with no `=` and no block",
        text.join(" ")
    );
    let hint = if bare.args.is_empty() {
        format!(
            "write `{0} = VALUE` or `{0} {{ ... }}`; nothing after this line is affected",
            bare.keyword.text
        )
    } else {
        format!(
            "a stanza is `{}` followed by its block on the same line, with no `=`; nothing after this line is affected",
            text.join(" ")
        )
    };
    let dvip_keyword = READ_BY_DVIP
        .iter()
        .chain(DVIP_KEYWORDS)
        .any(|k| bare.keyword.is(k));
    if inside_dvip || holds_log || dvip_keyword {
        diagnostics
            .error(Code::Unread, span, message)
            .with_hint(hint);
    } else {
        diagnostics
            .warning(Code::Unread, span, message)
            .with_hint(hint);
    }
}
