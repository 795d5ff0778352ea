//! The aggregator's file (`dvip collect --config FILE`), in the style of Momentum's manager
//! configuration: one `Logs` stanza with the files' template and modes, and a `Manager` per
//! aggregator listing the nodes it pulls from.
//!
//! Owns reading that file into a [`CollectConfig`] with located errors. It must not connect to
//! nodes or write files.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Severity};
use crate::logfile::Template;
use crate::lower::inputs::listed;
use crate::model::CLUSTER_LISTENER_PORT_DEFAULT;
use crate::options::{stanzas, unknown, Options, Owner, Unknown};
use crate::parse::Loader;
use crate::source::{FileId, Files, SourceMap, Span};
use crate::tree::{Item, Stanza};

/// Where an aggregator records what it wrote, unless told otherwise.
pub const COLLECT_STATE_DIR_DEFAULT: &str = "/var/lib/dvip/collect";

/// The template of the aggregated files, unless told otherwise.
pub const LOGFILE_DEFAULT: &str = "/var/log/dvip/%Y/%m/%d/%{l}/%{n}";

const LOGS_OPTIONS: &[&str] = &[
    "logfile",
    "file_mode",
    "dir_mode",
    "max_open",
    "max_idle",
    "state_dir",
    "tls_dir",
];
const NODE_OPTIONS: &[&str] = &["address", "subscriber"];
const MANAGER_OPTIONS: &[&str] = &["corosync_conf", "subscriber"];

/// One aggregator's view of the file.
#[derive(Clone, Debug, Serialize)]
pub struct CollectConfig {
    /// The aggregator this is: the `Manager` chosen.
    pub name: String,
    /// Files' names.
    #[serde(serialize_with = "template_text")]
    pub logfile: Template,
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Files held open at once (`None`: the aggregator's default).
    pub max_open: Option<u32>,
    /// Seconds a file stays open without a write (`None`: the aggregator's default).
    pub max_idle: Option<u32>,
    pub state_dir: PathBuf,
    pub tls_dir: PathBuf,
    pub nodes: Vec<CollectNode>,
}

fn template_text<S: serde::Serializer>(t: &Template, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.text())
}

/// A node an aggregator pulls from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollectNode {
    pub name: String,
    pub address: SocketAddr,
    /// Subscribers tried in order; by default the aggregator's name, then `master`.
    pub subscribers: Vec<String>,
}

/// The outcome of reading an aggregator's file.
#[derive(Debug)]
pub struct CheckedCollect {
    /// The configuration, when there is no error.
    pub config: Option<CollectConfig>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
}

/// Reads `path` for the aggregator `name`: the `Manager` of that name; without one, the only
/// Manager, or else the one named as this host (`hostname` up to its first dot, as a node's
/// name defaults to).
pub fn load_collect(
    path: &Path,
    name: Option<&str>,
    hostname: &str,
    files: &dyn Files,
) -> CheckedCollect {
    let mut loader = Loader::new(files);
    let document = loader.parse_file(path, None);
    let mut diagnostics = loader.diagnostics;
    let host = crate::lower::short_hostname(hostname);
    let config = read(&document, name, &host, files, &mut diagnostics);
    let mut list = diagnostics.list;
    list.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
    let errors = list.iter().any(|d| d.severity == Severity::Error);
    CheckedCollect {
        config: config.filter(|_| !errors),
        diagnostics: list,
        sources: loader.sources,
    }
}

fn read(
    document: &[Item],
    name: Option<&str>,
    host: &str,
    files: &dyn Files,
    diagnostics: &mut Diagnostics,
) -> Option<CollectConfig> {
    let mut logs = None;
    for stanza in stanzas(document) {
        if stanza.keyword.is("logs") && logs.is_none() {
            logs = Some(stanza);
        } else if stanza.keyword.is("logs") {
            diagnostics
                .error(Code::Duplicate, stanza.keyword.span, "a second Logs stanza")
                .with_hint("put every Manager in one Logs stanza");
        } else {
            unknown(
                &stanza.keyword,
                Owner::fixed("an aggregator's file"),
                &["Logs"],
                Unknown::Warn,
                diagnostics,
            );
        }
    }
    let Some(logs) = logs else {
        diagnostics
            .error(
                Code::Missing,
                Span {
                    file: FileId(0),
                    start: 0,
                    end: 0,
                },
                "an aggregator's file needs a Logs stanza",
            )
            .with_hint(format!(
                "write `Logs {{ logfile = \"{LOGFILE_DEFAULT}\" Manager \"NAME\" {{ Node \"node1\" {{ address = \"198.51.100.10\" }} }} }}`"
            ));
        return None;
    };
    let mut options = Options::new(Owner::fixed("Logs"), &logs.body.items);
    let logfile = options.word(&["logfile"], diagnostics);
    let file_mode = mode(&mut options, "file_mode", 0o640, diagnostics);
    let dir_mode = mode(&mut options, "dir_mode", 0o755, diagnostics);
    let max_open = count(&mut options, "max_open", diagnostics);
    let max_idle = count(&mut options, "max_idle", diagnostics);
    let state_dir = options.word(&["state_dir"], diagnostics).map_or_else(
        || PathBuf::from(COLLECT_STATE_DIR_DEFAULT),
        |w| PathBuf::from(&w.text),
    );
    let tls_dir = options.word(&["tls_dir"], diagnostics).map_or_else(
        || PathBuf::from("/etc/dvip/tls"),
        |w| PathBuf::from(&w.text),
    );
    options.finish(LOGS_OPTIONS, Unknown::Warn, diagnostics);
    let template = match logfile {
        Some(word) => match Template::parse(&word.text) {
            Ok(t) => Some(t),
            Err(e) => {
                diagnostics
                    .error(Code::BadLogfile, word.span, e.to_string())
                    .with_hint(format!("for example `logfile = \"{LOGFILE_DEFAULT}\"`"));
                None
            }
        },
        None => Template::parse(LOGFILE_DEFAULT).ok(),
    };
    let managers: Vec<&Stanza> = stanzas(&logs.body.items)
        .filter(|s| {
            let manager = s.keyword.is("manager");
            if !manager {
                unknown(
                    &s.keyword,
                    Owner::fixed("Logs"),
                    &["Manager"],
                    Unknown::Warn,
                    diagnostics,
                );
            }
            manager
        })
        .collect();
    let named_as = |wanted: &str| {
        managers
            .iter()
            .find(|m| m.args.first().is_some_and(|a| a.text == wanted))
            .copied()
    };
    let chosen = match name {
        Some(name) => named_as(name),
        None if managers.len() == 1 => managers.first().copied(),
        None => named_as(host),
    };
    let Some(manager) = chosen else {
        let named: Vec<&str> = managers
            .iter()
            .filter_map(|m| m.args.first().map(|a| a.text.as_str()))
            .collect();
        diagnostics
            .error(
                Code::BadCollect,
                logs.keyword.span,
                match name {
                    Some(name) => format!(
                        "no Manager \"{name}\" in Logs (it has: {})",
                        named.join(", ")
                    ),
                    None => format!(
                        "Logs has {} Managers and none is named after this host (`{host}`); say which this aggregator is",
                        named.len()
                    ),
                },
            )
            .with_hint(
                "give `--name NAME`, or add `Manager \"NAME\" { Node ... }` for this aggregator",
            );
        return None;
    };
    let Some(manager_name) = manager.args.first().map(|a| a.text.clone()) else {
        diagnostics
            .error(Code::Missing, manager.keyword.span, "a Manager is named")
            .with_hint("write `Manager \"collector\" { ... }`");
        return None;
    };
    let nodes = read_nodes(manager, &manager_name, files, diagnostics);
    Some(CollectConfig {
        name: manager_name,
        logfile: template?,
        file_mode,
        dir_mode,
        max_open,
        max_idle,
        state_dir,
        tls_dir,
        nodes,
    })
}

fn read_nodes(
    manager: &Stanza,
    manager_name: &str,
    files: &dyn Files,
    diagnostics: &mut Diagnostics,
) -> Vec<CollectNode> {
    let mut options = Options::new(Owner::named("Manager", manager_name), &manager.body.items);
    let corosync_conf = options.word(&["corosync_conf"], diagnostics);
    let default_subscribers = options
        .take(&["subscriber"], diagnostics)
        .map(|o| {
            listed(o, diagnostics)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec![manager_name.to_owned(), "master".to_owned()]);
    options.finish(MANAGER_OPTIONS, Unknown::Warn, diagnostics);
    let mut listed_nodes = explicit_nodes(manager, manager_name, &default_subscribers, diagnostics);
    let mut nodes = Vec::new();
    if let Some(conf) = corosync_conf {
        for node in corosync_list(conf, files, diagnostics) {
            // A node listed here as well is taken as listed here.
            if let Some(i) = listed_nodes.iter().position(|n| n.name == node.name) {
                nodes.push(listed_nodes.remove(i));
                continue;
            }
            nodes.push(CollectNode {
                name: node.name,
                address: SocketAddr::new(node.address, CLUSTER_LISTENER_PORT_DEFAULT),
                subscribers: default_subscribers.clone(),
            });
        }
    }
    nodes.extend(listed_nodes);
    if nodes.is_empty() {
        diagnostics
            .error(
                Code::BadCollect,
                manager.keyword.span,
                format!("Manager `{manager_name}` lists no node"),
            )
            .with_hint(
                "add `Node \"node1\" { address = \"198.51.100.10\" }`, or `corosync_conf = \"/etc/corosync/corosync.conf\"` on a cluster host",
            );
    }
    nodes
}

/// The nodes of the corosync.conf `conf` names.
fn corosync_list(
    conf: &crate::tree::Word,
    files: &dyn Files,
    diagnostics: &mut Diagnostics,
) -> Vec<crate::corosync_nodes::CorosyncNode> {
    let text = match files.read(Path::new(&conf.text)) {
        Ok(text) => text,
        Err(e) => {
            diagnostics
                .error(
                    Code::BadCollect,
                    conf.span,
                    format!("cannot read {}: {e}", conf.text),
                )
                .with_hint("name corosync's configuration, usually /etc/corosync/corosync.conf");
            return Vec::new();
        }
    };
    match crate::corosync_nodes::nodelist(&text) {
        Ok(nodes) => nodes,
        Err(e) => {
            let why = match e {
                crate::corosync_nodes::NodelistError::NoNodelist => {
                    format!("{} has no nodelist", conf.text)
                }
                crate::corosync_nodes::NodelistError::BadNode { line, why } => {
                    format!("{}, line {line}: {why}", conf.text)
                }
            };
            diagnostics
                .error(Code::BadCollect, conf.span, why)
                .with_hint("give every node of corosync's nodelist a `name` and a `ring0_addr`, or list the nodes here with `Node`");
            Vec::new()
        }
    }
}

/// The `Node` stanzas of a Manager.
fn explicit_nodes(
    manager: &Stanza,
    manager_name: &str,
    default_subscribers: &[String],
    diagnostics: &mut Diagnostics,
) -> Vec<CollectNode> {
    let mut nodes: Vec<CollectNode> = Vec::new();
    for stanza in stanzas(&manager.body.items) {
        if !stanza.keyword.is("node") {
            unknown(
                &stanza.keyword,
                Owner::named("Manager", manager_name),
                &["Node"],
                Unknown::Warn,
                diagnostics,
            );
            continue;
        }
        let Some(name) = stanza.args.first() else {
            diagnostics
                .error(Code::Missing, stanza.keyword.span, "a Node is named")
                .with_hint("write `Node \"node1\" { address = \"198.51.100.10\" }`");
            continue;
        };
        if nodes.iter().any(|n| n.name == name.text) {
            diagnostics
                .error(
                    Code::Duplicate,
                    name.span,
                    format!("node `{}` is listed twice", name.text),
                )
                .with_hint("list each node once");
            continue;
        }
        let mut options = Options::new(Owner::named("Node", &name.text), &stanza.body.items);
        let address = options.word(&["address"], diagnostics);
        let subscribers = options.take(&["subscriber"], diagnostics).map(|o| {
            listed(o, diagnostics)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        });
        options.finish(NODE_OPTIONS, Unknown::Warn, diagnostics);
        let Some(address) = address else {
            diagnostics
                .error(
                    Code::Missing,
                    name.span,
                    format!("node `{}` has no address", name.text),
                )
                .with_hint("write `address = \"198.51.100.10\"` (port 4802 unless given)");
            continue;
        };
        let Some(at) = socket_address(&address.text) else {
            diagnostics
                .error(
                    Code::BadAddress,
                    address.span,
                    format!("`{}` is not an address with an optional port", address.text),
                )
                .with_hint("write `198.51.100.10`, `198.51.100.10:4802` or `[2001:db8::10]:4802`");
            continue;
        };
        nodes.push(CollectNode {
            name: name.text.clone(),
            address: at,
            subscribers: subscribers
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default_subscribers.to_vec()),
        });
    }
    nodes
}

fn socket_address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|a| SocketAddr::new(a, CLUSTER_LISTENER_PORT_DEFAULT))
    })
}

fn mode(options: &mut Options<'_>, name: &str, default: u32, diagnostics: &mut Diagnostics) -> u32 {
    let Some(word) = options.word(&[name], diagnostics) else {
        return default;
    };
    match u32::from_str_radix(&word.text, 8) {
        Ok(m) if m <= 0o7777 => m,
        _ => {
            diagnostics
                .error(
                    Code::WrongType,
                    word.span,
                    format!("`{}` is not an octal file mode", word.text),
                )
                .with_hint(format!("write `{name} = \"0640\"`"));
            default
        }
    }
}

fn count(options: &mut Options<'_>, name: &str, diagnostics: &mut Diagnostics) -> Option<u32> {
    let word = options.word(&[name], diagnostics)?;
    match word.text.parse::<u32>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            diagnostics
                .error(
                    Code::WrongType,
                    word.span,
                    format!("`{}` is not a positive whole number", word.text),
                )
                .with_hint(format!("write `{name} = 64`"));
            None
        }
    }
}
