//! Log destinations: `cluster://` and `jlog://` URIs anywhere in the configuration.
//!
//! Owns recognising those URIs in any logger's options and checking that every clustered log
//! is served by the cluster `logs` block. It must not read the cluster stanza itself.

use dvip_journal::{JournalUri, Scheme};

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{ClusterLog, LogDestination};
use crate::source::Span;
use crate::tree::{Entry, Item, Value, Word};

pub(crate) fn collect(
    document: &[Item],
    served: &[ClusterLog],
    logs_at: Option<Span>,
    diagnostics: &mut Diagnostics,
) -> Vec<LogDestination> {
    let mut found = Vec::new();
    walk_items(document, logs_at, &mut found);
    let mut destinations = Vec::new();
    for (option, word) in found {
        let Some(destination) = parse(&option.text, word, diagnostics) else {
            continue;
        };
        if destination.scheme == "cluster" && !served.iter().any(|l| l.path == destination.path) {
            diagnostics
                .warning(
                    Code::LogNotServed,
                    word.span,
                    format!(
                        "clustered log `{}` is written here but not served to subscribers",
                        destination.path
                    ),
                )
                .with_hint(format!(
                    "add `{} = \"{}\"` to the `logs` of the cluster stanza",
                    option.text, destination.path
                ));
        }
        destinations.push(destination);
    }
    destinations
}

/// Collects `(option name, value)` for every URI-looking value, skipping the `logs` block.
fn walk_items<'t>(items: &'t [Item], skip: Option<Span>, out: &mut Vec<(&'t Word, &'t Word)>) {
    for item in items {
        match item {
            Item::Option(option) => walk_value(&option.key, &option.value, skip, out),
            Item::Stanza(stanza) if Some(stanza.body.open) != skip => {
                walk_items(&stanza.body.items, skip, out);
            }
            // A bare line is reported by `unread`, URI or not.
            Item::Stanza(_) | Item::Bare(_) => {}
        }
    }
}

fn walk_value<'t>(
    key: &'t Word,
    value: &'t Value,
    skip: Option<Span>,
    out: &mut Vec<(&'t Word, &'t Word)>,
) {
    match value {
        Value::Word(word) if scheme(&word.text).is_some() => out.push((key, word)),
        Value::Word(_) => {}
        Value::Block(block) if Some(block.open) != skip => walk_items(&block.items, skip, out),
        Value::Block(_) => {}
        Value::List(list) => {
            for entry in &list.entries {
                match entry {
                    Entry::Item {
                        value: Some(v),
                        head,
                        ..
                    } => walk_value(head, v, skip, out),
                    Entry::Item { block: Some(b), .. } => walk_items(&b.items, skip, out),
                    Entry::Group(v) => walk_value(key, v, skip, out),
                    Entry::Item { .. } => {}
                }
            }
        }
    }
}

fn scheme(text: &str) -> Option<&'static str> {
    Scheme::of(text).map(Scheme::as_str)
}

/// A journal URI, parsed by the journal crate's one parser; refusals become located errors.
fn parse(option: &str, word: &Word, diagnostics: &mut Diagnostics) -> Option<LogDestination> {
    match word.text.parse::<JournalUri>() {
        Ok(uri) => Some(LogDestination {
            scheme: uri.scheme.as_str().to_owned(),
            path: uri.path.display().to_string(),
            subscribers: uri.subscribers,
            option: option.to_owned(),
            uri: word.text.clone(),
        }),
        Err(refusal) => {
            diagnostics
                .error(Code::BadLogUri, word.span, refusal.to_string())
                .with_hint(refusal.hint());
            None
        }
    }
}
