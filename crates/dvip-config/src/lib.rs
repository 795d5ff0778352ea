//! Reads Momentum-style cluster configuration into dvip's model.
//!
//! Both dialects an operator may already run are understood: the 2.x one
//! (`ESMTP_Listener = ( 192.0.2.10:25 <duravip="enabled"> )`,
//! `Logger cluster/ec_cluster cluster { 192.0.2.0/24 [ interface = "eth0" ] }`) and the 3.x one
//! (`ESMTP_Listener { Listen "192.0.2.10:25" { Enable_Duravip = true } }`,
//! `cluster { Topology "192.0.2.0/24" { interface = "eth0" } }`). Every other stanza of an MTA
//! config parses and is kept in [`Config::document`] but means nothing to dvip.
//!
//! [`load`] never stops at the first problem: it returns the best model it could build and
//! every [`Diagnostic`], each with a location, a message and a hint. A configuration is usable
//! when [`Checked::is_valid`] holds (no errors; warnings and notes allowed).
//!
//! The pipeline, one module per step: `source` (files and positions) → `lex` → `parse` (with
//! `include` expanded) → `tree` → `lower` (the cluster stanza, services, addresses, logs, log inputs) →
//! `model`.

pub mod collect;
pub mod corosync_nodes;
mod diagnostic;
mod lex;
pub mod logfile;
mod lower;
mod model;
mod options;
mod parse;
mod source;
pub mod syslog;
mod tree;
mod values;

use std::path::Path;

pub use diagnostic::{Code, Diagnostic, Severity};
pub use model::{
    ApiSocket, ClusterLog, ClusterOptions, Config, DuravipAddress, InboundLimit, InputJournal,
    ListenerForward, LogDestination, LogFollow, LogInputs, LogRoute, NodenameSource, Replication,
    SyslogListen, TopologyHint, ANNOUNCE_COUNT_DEFAULT, ANNOUNCE_INTERVAL_MS_DEFAULT,
    API_SOCKET_MODE_DEFAULT, CLUSTER_GROUP_DEFAULT, CLUSTER_LISTENER_PORT_DEFAULT,
    CONTROL_GROUP_DEFAULT, INPUT_SUBSCRIBER_DEFAULT, LISTENER_PORT_DEFAULT, MBUS_DAEMON_DEFAULT,
    POLICY_PORT_DEFAULT, VIEW_MATURE_TIME_MS_DEFAULT,
};
pub use source::{DiskFiles, FileId, Files, Location, MemoryFiles, SourceFile, SourceMap, Span};
pub use tree::{Bare, Block, Entry, Item, List, OptionItem, Stanza, Value, Word};
pub use values::ListenAddress;

/// Checks a node name given outside a file (e.g. `--nodename`) by the rules `nodename` follows.
pub fn check_node_name(text: &str) -> Result<String, String> {
    values::name(text, "node name").map_err(|r| format!("{}: {}", r.message, r.hint))
}

/// What the environment contributes to a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The machine's host name; the node name defaults to it up to the first dot.
    pub hostname: String,
    /// A node name that overrides the configuration's (`--nodename`).
    pub nodename: Option<String>,
}

impl LoadOptions {
    /// Options for a machine called `hostname`.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            nodename: None,
        }
    }
}

/// The outcome of reading one configuration.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The model, as complete as the errors allowed.
    pub config: Config,
    /// Every problem found, errors first within each file position order.
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, for rendering diagnostics.
    pub sources: SourceMap,
}

impl Checked {
    /// True when there is no error (warnings and notes do not count).
    pub fn is_valid(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Diagnostics of one severity.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(move |d| d.severity == severity)
    }

    /// The effective model plus `valid` and every diagnostic split by severity (`errors`,
    /// `warnings`, `notes`): what `dvip config check --json` prints for one file.
    pub fn to_json(&self) -> serde_json::Value {
        let mut report = serde_json::to_value(&self.config)
            .expect("the model holds only strings, numbers, addresses and maps with string keys");
        let list = |severity| -> Vec<serde_json::Value> {
            self.of(severity)
                .map(|d| d.to_json(&self.sources))
                .collect()
        };
        report["valid"] = serde_json::Value::Bool(self.is_valid());
        report["errors"] = list(Severity::Error).into();
        report["warnings"] = list(Severity::Warning).into();
        report["notes"] = list(Severity::Note).into();
        report
    }
}

/// Reads the configuration at `path` (and its includes) from `files`.
pub fn load(path: &Path, options: &LoadOptions, files: &dyn Files) -> Checked {
    let mut loader = parse::Loader::new(files);
    let document = loader.parse_file(path, None);
    let mut diagnostics = loader.diagnostics;
    let config = lower::lower(document, options, &mut diagnostics);
    let sources = loader.sources;
    let mut diagnostics = diagnostics.list;
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    if config.addresses.is_empty() && !errors {
        // Valid, but a node that serves nothing is rarely meant: an empty file, or one cut
        // short while it was being written, reads like this too.
        // The top file was read (or there would be an error), so it is the first source.
        let start = Span {
            file: FileId(0),
            start: 0,
            end: 0,
        };
        let mut warning = Diagnostic::new(
            Severity::Warning,
            Code::NoAddresses,
            start,
            "this configuration defines no DuraVIP address: this node would hold none".to_owned(),
        );
        warning.with_hint(
            "if the file is empty or cut short, restore it; a running dvipd refuses to reload \
             into a configuration without addresses unless told `dvip reload --force`",
        );
        diagnostics.push(warning);
    }
    // Report in reading order: by file, then position; severity breaks ties.
    diagnostics.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
    Checked {
        config,
        diagnostics,
        sources,
    }
}

/// Reads a configuration held in a string, named `path` in diagnostics. Includes are
/// resolved against `files`.
pub fn load_str(path: &Path, text: &str, options: &LoadOptions) -> Checked {
    let mut files = MemoryFiles::new();
    files.insert(path, text);
    load(path, options, &files)
}
