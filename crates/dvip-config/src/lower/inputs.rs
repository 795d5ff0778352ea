//! dvip's log inputs: the `Syslog_Listener`, `Log_Route` and `Log_Follow` stanzas.
//!
//! Owns reading those three top-level stanzas (written alike in both dialects, as Momentum
//! writes its listeners) and tying each route and follow to a journal of the cluster `logs`.
//! It must not read the cluster stanza or the loggers' URIs itself: it is given what they say.

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{
    ClusterLog, InputJournal, LogDestination, LogFollow, LogInputs, LogRoute,
    INPUT_SUBSCRIBER_DEFAULT,
};
use crate::options::{self, closest, stanzas, unknown, Options, Owner, Unknown};
use crate::source::Span;
use crate::syslog::{Facility, ProgramPattern, RouteMatch, Severity};
use crate::tree::{Entry, Item, OptionItem, Stanza, Value, Word};
use crate::values;

const LISTENER: &str = "Syslog_Listener";
const ROUTE: &str = "Log_Route";
const FOLLOW: &str = "Log_Follow";
/// The stanzas this pass reads, as the documentation spells them.
pub(crate) const STANZAS: &[&str] = &[LISTENER, ROUTE, FOLLOW];
const ROUTE_OPTIONS: &[&str] = &["program", "facility", "severity", "log"];
const FOLLOW_OPTIONS: &[&str] = &["log"];

/// What the three stanzas say, with where the parts stand for the cross-checks.
#[derive(Default)]
struct Found<'t> {
    inputs: LogInputs,
    listener: Option<&'t Word>,
    /// Each route's and follow's `log` value, with whether it belongs to a follow.
    targets: Vec<(&'t Word, bool)>,
}

pub(crate) fn read(
    document: &[Item],
    logs: &[ClusterLog],
    destinations: &[LogDestination],
    diagnostics: &mut Diagnostics,
) -> LogInputs {
    let mut found = Found::default();
    for stanza in stanzas(document) {
        if stanza.keyword.is(LISTENER) {
            read_listener(stanza, &mut found, diagnostics);
        } else if stanza.keyword.is(ROUTE) {
            read_route(stanza, logs, &mut found, diagnostics);
        } else if stanza.keyword.is(FOLLOW) {
            read_follow(stanza, logs, &mut found, diagnostics);
        } else {
            options::near_miss(&stanza.keyword, STANZAS, diagnostics);
        }
    }
    check_use(&found, document, diagnostics);
    check_shared(&found, diagnostics);
    let mut inputs = found.inputs;
    inputs.journals = journals(&inputs, logs, destinations);
    inputs
}

fn read_listener<'t>(stanza: &'t Stanza, found: &mut Found<'t>, diagnostics: &mut Diagnostics) {
    if found.listener.is_some() {
        diagnostics
            .error(
                Code::Duplicate,
                stanza.keyword.span,
                "a second Syslog_Listener",
            )
            .with_hint("list every socket as a `Listen` of one Syslog_Listener");
        return;
    }
    found.listener = Some(&stanza.keyword);
    let owner = Owner::fixed("the Syslog_Listener");
    for inner in options::listens(stanza, owner, diagnostics) {
        let Some(at) = inner.args.first() else {
            diagnostics
                .error(Code::Missing, inner.keyword.span, "a Listen names a socket")
                .with_hint("write `Listen \"/run/dvip/syslog\" { }`");
            continue;
        };
        let listen_owner = Owner::at("syslog Listen", &at.text);
        Options::new(listen_owner, &inner.body.items).finish(&[], Unknown::Warn, diagnostics);
        let Some(listen) = options::refused(diagnostics, at, values::syslog_listen(&at.text))
        else {
            continue;
        };
        if found.inputs.syslog.contains(&listen) {
            diagnostics
                .error(
                    Code::Duplicate,
                    at.span,
                    format!("syslog is already received on {listen}"),
                )
                .with_hint("remove one of the two");
            continue;
        }
        found.inputs.syslog.push(listen);
    }
}

fn read_route<'t>(
    stanza: &'t Stanza,
    logs: &[ClusterLog],
    found: &mut Found<'t>,
    diagnostics: &mut Diagnostics,
) {
    let Some(name) = stanza.args.first() else {
        diagnostics
            .error(Code::Missing, stanza.keyword.span, "a Log_Route has a name")
            .with_hint(
                "write `Log_Route \"postfix\" { program = \"postfix/*\" log = \"maillog\" }`",
            );
        return;
    };
    let owner = Owner::named("Log_Route", &name.text);
    let mut options = Options::new(owner, &stanza.body.items);
    let programs: Vec<ProgramPattern> = options
        .take(&["program"], diagnostics)
        .map(|o| listed(o, diagnostics))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(text, span)| {
            let pattern = ProgramPattern::new(&text);
            if pattern.is_none() {
                diagnostics
                    .error(Code::BadRoute, span, "an empty program pattern matches nothing")
                    .with_hint("name a program, such as \"postfix/*\", or leave `program` out to take every program");
            }
            pattern
        })
        .collect();
    let facilities: Vec<Facility> = options
        .take(&["facility"], diagnostics)
        .map(|o| listed(o, diagnostics))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(text, span)| {
            named(
                &text,
                span,
                "facility",
                Facility::from_name,
                Facility::names(),
                diagnostics,
            )
        })
        .collect();
    let severity = options
        .word(&["severity"], diagnostics)
        .map_or(Some(Severity::DEBUG), |w| {
            named(
                &w.text,
                w.span,
                "severity",
                Severity::from_name,
                Severity::names(),
                diagnostics,
            )
        });
    let log = options.word(&["log"], diagnostics);
    options.finish(ROUTE_OPTIONS, Unknown::Warn, diagnostics);
    for inner in stanzas(&stanza.body.items) {
        unknown(
            &inner.keyword,
            owner,
            ROUTE_OPTIONS,
            Unknown::Warn,
            diagnostics,
        );
    }
    if found.inputs.routes.iter().any(|r| r.name == name.text) {
        diagnostics
            .error(
                Code::Duplicate,
                name.span,
                format!("a second Log_Route named `{}`", name.text),
            )
            .with_hint("give each route its own name");
        return;
    }
    let Some(log) = required_log(log, &stanza.keyword, logs, diagnostics) else {
        return;
    };
    let Some(severity) = severity else { return };
    found.targets.push((log, false));
    found.inputs.routes.push(LogRoute {
        name: name.text.clone(),
        matches: RouteMatch {
            programs,
            facilities,
            severity,
        },
        log: log.text.clone(),
    });
}

fn read_follow<'t>(
    stanza: &'t Stanza,
    logs: &[ClusterLog],
    found: &mut Found<'t>,
    diagnostics: &mut Diagnostics,
) {
    let Some(file) = stanza.args.first() else {
        diagnostics
            .error(
                Code::Missing,
                stanza.keyword.span,
                "a Log_Follow names the file it follows",
            )
            .with_hint("write `Log_Follow \"/var/log/exim4/mainlog\" { log = \"eximlog\" }`");
        return;
    };
    let owner = Owner::at("Log_Follow", &file.text);
    let mut options = Options::new(owner, &stanza.body.items);
    let log = options.word(&["log"], diagnostics);
    options.finish(FOLLOW_OPTIONS, Unknown::Warn, diagnostics);
    for inner in stanzas(&stanza.body.items) {
        unknown(
            &inner.keyword,
            owner,
            FOLLOW_OPTIONS,
            Unknown::Warn,
            diagnostics,
        );
    }
    if !file.text.starts_with('/') || file.text.ends_with('/') {
        diagnostics
            .error(
                Code::BadFollow,
                file.span,
                format!("`{}` is not an absolute file path", file.text),
            )
            .with_hint("write the full path the MTA writes, such as \"/var/log/exim4/mainlog\"");
        return;
    }
    if found
        .inputs
        .follows
        .iter()
        .any(|f| f.file.as_os_str() == file.text.as_str())
    {
        diagnostics
            .error(
                Code::BadFollow,
                file.span,
                format!("`{}` is followed twice", file.text),
            )
            .with_hint("follow each file once; its lines would be taken twice");
        return;
    }
    let Some(log) = required_log(log, &stanza.keyword, logs, diagnostics) else {
        return;
    };
    found.targets.push((log, true));
    found.inputs.follows.push(LogFollow {
        file: file.text.clone().into(),
        log: log.text.clone(),
    });
}

/// A value written as one word (`"mail, local0"`) or a list (`( mail local0 )`): its parts.
pub(crate) fn listed(option: &OptionItem, diagnostics: &mut Diagnostics) -> Vec<(String, Span)> {
    match &option.value {
        Value::Word(w) => w
            .text
            .split(',')
            .map(|part| (part.trim().to_owned(), w.span))
            .collect(),
        Value::List(list) => list
            .entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Item {
                    head,
                    value: None,
                    block: None,
                    ..
                } => Some((head.text.clone(), head.span)),
                Entry::Item { head, .. } => {
                    wrong_list(&option.key, head.span, diagnostics);
                    None
                }
                Entry::Group(v) => {
                    wrong_list(&option.key, v.span(), diagnostics);
                    None
                }
            })
            .collect(),
        Value::Block(b) => {
            wrong_list(&option.key, b.open, diagnostics);
            Vec::new()
        }
    }
}

fn wrong_list(key: &Word, at: Span, diagnostics: &mut Diagnostics) {
    diagnostics
        .error(
            Code::WrongType,
            at,
            format!("`{}` takes names, not blocks", key.text),
        )
        .with_hint(format!(
            "write `{} = ( a b )` or `{} = \"a, b\"`",
            key.text, key.text
        ));
}

/// A facility or severity by name; an unknown one is an error with the closest name.
fn named<T>(
    text: &str,
    span: Span,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
    names: &[&str],
    diagnostics: &mut Diagnostics,
) -> Option<T> {
    let value = parse(text);
    if value.is_none() {
        let hint = closest(text, names).map_or_else(
            || format!("a {what} is one of {}", names.join(", ")),
            |near| format!("did you mean `{near}`?"),
        );
        diagnostics
            .error(
                Code::BadRoute,
                span,
                format!("`{text}` is not a syslog {what}"),
            )
            .with_hint(hint);
    }
    value
}

/// The `log` a route or follow names, which must be a key of the cluster `logs`.
fn required_log<'t>(
    log: Option<&'t Word>,
    keyword: &Word,
    logs: &[ClusterLog],
    diagnostics: &mut Diagnostics,
) -> Option<&'t Word> {
    let Some(log) = log else {
        diagnostics
            .error(
                Code::Missing,
                keyword.span,
                format!("a {} names the log its lines go to", keyword.text),
            )
            .with_hint("add `log = \"mainlog\"`, a name from the cluster stanza's `logs`");
        return None;
    };
    if logs.iter().any(|l| l.name == log.text) {
        return Some(log);
    }
    let names: Vec<&str> = logs.iter().map(|l| l.name.as_str()).collect();
    let hint = match closest(&log.text, &names) {
        Some(near) => format!("did you mean `{near}`?"),
        None if names.is_empty() => format!(
            "add `logs [ {} = \"/var/log/dvip/{}.cluster\" ]` to the cluster stanza",
            log.text, log.text
        ),
        None => format!("the cluster stanza's logs are {}", names.join(", ")),
    };
    diagnostics
        .error(
            Code::UnknownLog,
            log.span,
            format!("no log `{}` in the cluster stanza's `logs`", log.text),
        )
        .with_hint(hint);
    None
}

/// Routes with nothing to feed them, or a listener whose every message would be dropped.
fn check_use(found: &Found<'_>, document: &[Item], diagnostics: &mut Diagnostics) {
    let inputs = &found.inputs;
    match found.listener {
        None if !inputs.routes.is_empty() => {
            let first = stanzas(document)
                .find(|s| s.keyword.is(ROUTE))
                .map_or_else(|| found.targets[0].0.span, |s| s.keyword.span);
            diagnostics
                .warning(
                    Code::SyslogUnused,
                    first,
                    "Log_Route without a Syslog_Listener: no message reaches it",
                )
                .with_hint("add `Syslog_Listener { Listen \"/run/dvip/syslog\" { } }`");
        }
        Some(keyword) if !inputs.syslog.is_empty() && inputs.routes.is_empty() => {
            diagnostics
                .warning(
                    Code::SyslogUnused,
                    keyword.span,
                    "a Syslog_Listener without a Log_Route drops every message it receives",
                )
                .with_hint("add `Log_Route \"mail\" { facility = \"mail\" log = \"maillog\" }`");
        }
        _ => {}
    }
}

/// A followed file's journal written by another input too.
fn check_shared(found: &Found<'_>, diagnostics: &mut Diagnostics) {
    for (i, &(log, follow)) in found.targets.iter().enumerate() {
        let shared = found
            .targets
            .iter()
            .enumerate()
            .any(|(j, &(other, other_follow))| {
                j != i && other.text == log.text && (follow || other_follow)
            });
        if follow && shared {
            diagnostics
                .warning(
                    Code::SharedJournal,
                    log.span,
                    format!("log `{}` is written by this follow and by another input", log.text),
                )
                .with_hint("give a followed file a log of its own: after a crash the follower finds its place by matching its own lines in the journal");
        }
    }
}

/// Each log routed or followed into, once, with the subscribers its journal is created with:
/// those the loggers' URIs name for its directory, or the default.
fn journals(
    inputs: &LogInputs,
    logs: &[ClusterLog],
    destinations: &[LogDestination],
) -> Vec<InputJournal> {
    let named = inputs
        .routes
        .iter()
        .map(|r| &r.log)
        .chain(inputs.follows.iter().map(|f| &f.log));
    let mut journals: Vec<InputJournal> = Vec::new();
    for log in named {
        if journals.iter().any(|j| &j.log == log) {
            continue;
        }
        let Some(served) = logs.iter().find(|l| &l.name == log) else {
            continue;
        };
        let mut subscribers: Vec<String> = Vec::new();
        for d in destinations.iter().filter(|d| d.path == served.path) {
            for s in &d.subscribers {
                if !subscribers.contains(s) {
                    subscribers.push(s.clone());
                }
            }
        }
        if subscribers.is_empty() {
            subscribers.push(INPUT_SUBSCRIBER_DEFAULT.to_owned());
        }
        journals.push(InputJournal {
            log: log.clone(),
            path: served.path.clone().into(),
            subscribers,
        });
    }
    journals
}
