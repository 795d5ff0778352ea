//! Log destinations: `cluster://` and `jlog://` URIs anywhere in the configuration.
//!
//! Owns recognising those URIs in any logger's options and checking that every clustered log
//! is served by the cluster `logs` block. It must not read the cluster stanza itself.

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
            Item::Stanza(_) => {}
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
    // Called on every value of the file: compare in place rather than lower-casing a copy.
    let has = |prefix: &str| {
        text.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    if has("cluster://") {
        Some("cluster")
    } else if has("jlog://") {
        Some("jlog")
    } else {
        None
    }
}

/// `SCHEME:///absolute/path[=>subscriber]`.
fn parse(option: &str, word: &Word, diagnostics: &mut Diagnostics) -> Option<LogDestination> {
    let scheme = scheme(&word.text)?;
    let rest = &word.text[scheme.len() + 3..];
    let (path, subscriber) = match rest.split_once("=>") {
        Some((path, subscriber)) => (path, Some(subscriber)),
        None => (rest, None),
    };
    if !path.starts_with('/') || path.len() < 2 {
        diagnostics
            .error(Code::BadLogUri, word.span, format!("`{}` does not name an absolute journal directory", word.text))
            .with_hint(format!("write `{scheme}:///var/log/dvip/mainlog.{scheme}=>master` (three slashes: the path is absolute)"));
        return None;
    }
    if subscriber.is_some_and(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
        diagnostics
            .error(
                Code::BadLogUri,
                word.span,
                format!(
                    "`{}` has an empty or spaced subscriber name after `=>`",
                    word.text
                ),
            )
            .with_hint("write a subscriber name such as `=>master`, or drop the `=>`");
        return None;
    }
    Some(LogDestination {
        scheme: scheme.to_owned(),
        path: path.to_owned(),
        subscriber: subscriber.map(str::to_owned),
        option: option.to_owned(),
        uri: word.text.clone(),
    })
}
