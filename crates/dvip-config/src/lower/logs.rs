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

/// `SCHEME:///absolute/path[=>subscriber]` or `SCHEME:///absolute/path?subscribers=a,b`.
fn parse(option: &str, word: &Word, diagnostics: &mut Diagnostics) -> Option<LogDestination> {
    let scheme = scheme(&word.text)?;
    let rest = &word.text[scheme.len() + 3..];
    let mut refuse = |message: String, hint: String| {
        diagnostics
            .error(Code::BadLogUri, word.span, message)
            .with_hint(hint);
        None
    };
    let (path, subscribers) = if let Some((path, subscriber)) = rest.split_once("=>") {
        (path, vec![subscriber])
    } else if let Some((path, query)) = rest.split_once('?') {
        let Some(list) = query
            .split_once('=')
            .filter(|(key, _)| key.eq_ignore_ascii_case("subscribers"))
            .map(|(_, list)| list)
        else {
            return refuse(
                format!("`{}` has a query dvip does not know: `?{query}`", word.text),
                "the one query a journal URI takes is `?subscribers=NAME,NAME`".to_owned(),
            );
        };
        (path, list.split(',').collect())
    } else {
        (rest, Vec::new())
    };
    if !path.starts_with('/') || path.len() < 2 || path.contains('?') {
        return refuse(
            format!("`{}` does not name an absolute journal directory", word.text),
            format!("write `{scheme}:///var/log/dvip/mainlog.{scheme}=>master` (three slashes: the path is absolute)"),
        );
    }
    if subscribers
        .iter()
        .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '?' || c == '='))
    {
        return refuse(
            format!("`{}` has an empty or unusable subscriber name", word.text),
            "write `=>master` or `?subscribers=master,backup`: names without spaces, separated by commas".to_owned(),
        );
    }
    Some(LogDestination {
        scheme: scheme.to_owned(),
        path: path.to_owned(),
        subscribers: subscribers.into_iter().map(str::to_owned).collect(),
        option: option.to_owned(),
        uri: word.text.clone(),
    })
}
