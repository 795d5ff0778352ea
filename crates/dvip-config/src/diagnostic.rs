//! Diagnostics: what is wrong with a configuration, where, and what to do about it.
//!
//! Owns the kinds of problem ([`Code`]), their severities and their rendering as
//! `FILE:LINE:COL: error: ...` with the source line, a caret and a hint. It must not decide
//! what is wrong; the parser and the validator do.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::source::{SourceMap, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The configuration can be used, but probably does not say what was meant.
    Warning,
    /// Something dvip did on the operator's behalf and reports so they know.
    Note,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        }
    }
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// The kind of a diagnostic: stable, so scripts and tests can match on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, for documentation and for tests that each has an example.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The stable kebab-case name shown in JSON output.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

codes! {
    /// A file (the one named or an include) could not be read.
    Unreadable = "unreadable",
    /// A quoted string has no closing quote on its line.
    UnterminatedString = "unterminated-string",
    /// A token where none of its kind can stand.
    Unexpected = "unexpected",
    /// A `(`, `[`, `{` or `<` that is never closed.
    Unclosed = "unclosed",
    /// Brackets nested deeper than dvip accepts.
    TooDeep = "too-deep",
    /// An `include` that names a file already being included.
    IncludeCycle = "include-cycle",
    /// An option or stanza given twice where once is allowed.
    Duplicate = "duplicate",
    /// An option dvip does not know in a stanza dvip reads.
    UnknownOption = "unknown-option",
    /// A value of the wrong kind (a word where a yes/no, number or block belongs).
    WrongType = "wrong-type",
    /// A required option is missing.
    Missing = "missing",
    /// Not an IP address (or `ADDRESS:PORT` where one is expected).
    BadAddress = "bad-address",
    /// A port outside 1..=65535.
    BadPort = "bad-port",
    /// Not a network in CIDR notation, or host bits set.
    BadCidr = "bad-cidr",
    /// A prefix length that does not fit the address family.
    BadCidrmask = "bad-cidrmask",
    /// Not a usable network interface name.
    BadInterface = "bad-interface",
    /// A node or group name that cannot be used.
    BadName = "bad-name",
    /// Not a duration (`2`, `1.5s` or `500ms`).
    BadDuration = "bad-duration",
    /// A `cluster://` or `jlog://` log URI that cannot be used.
    BadLogUri = "bad-log-uri",
    /// A listener that both enables DuraVIP and follows a binding.
    FollowAndEnable = "follow-and-enable",
    /// `Duravip_Follow` on a binding; only listeners follow.
    BindingFollows = "binding-follows",
    /// A follow target that no DuraVIP binding has.
    FollowTargetMissing = "follow-target-missing",
    /// A listener following the binding on its own address.
    FollowOwnAddress = "follow-own-address",
    /// One address told to go two ways (two follow targets, or a binding on a follower).
    FollowConflict = "follow-conflict",
    /// A preference on a follower, which goes where its binding goes anyway.
    PreferenceWithFollow = "preference-with-follow",
    /// Two preferred owners named for one address in one configuration.
    PreferenceConflict = "preference-conflict",
    /// The node's own management address configured as DuraVIP.
    ManagementAddress = "management-address",
    /// A DuraVIP address that no topology hint places on an interface.
    NoTopology = "no-topology",
    /// A wildcard, loopback, multicast or unspecified address marked DuraVIP.
    NotUnicast = "not-unicast",
    /// More DuraVIP addresses than one node may manage.
    TooManyAddresses = "too-many-addresses",
    /// A service made DuraVIP because another service on its address is.
    Upgraded = "upgraded",
    /// A clustered log destination that no entry of the cluster `logs` serves.
    LogNotServed = "log-not-served",
    /// A `replicate` block dvip cannot act on: an unknown type, a bad cache `max_size`, or a
    /// type of Momentum's that dvip does not replicate.
    BadReplicate = "bad-replicate",
    /// A socket of the local API (`Replication_Listener`) with a path, mode, user or group
    /// that cannot be used.
    BadSocket = "bad-socket",
    /// A syslog `Listen` that is neither an absolute socket path nor a loopback
    /// `ADDRESS:PORT`.
    SyslogListen = "syslog-listen",
    /// A `Log_Route` or `Log_Follow` naming a log that the cluster `logs` do not list.
    UnknownLog = "unknown-log",
    /// A `Log_Route` criterion that cannot be used: an unknown facility or severity, an
    /// empty program pattern.
    BadRoute = "bad-route",
    /// A `Log_Follow` whose file is not an absolute path, or a file followed twice.
    BadFollow = "bad-follow",
    /// Syslog routes with no listener to feed them, or a listener with no route to take
    /// what it receives.
    SyslogUnused = "syslog-unused",
    /// Two inputs writing one journal, where a restarted follower's matching assumes it is
    /// the only writer.
    SharedJournal = "shared-journal",
    /// An aggregator's `logfile` template that dvip cannot expand, or that mixes streams.
    BadLogfile = "bad-logfile",
    /// An aggregator's file has no `Manager` for this aggregator, or a node it cannot reach.
    BadCollect = "bad-collect",
    /// A listener `Forward` dvipd cannot serve: not a DuraVIP address, a wildcard, a backend
    /// that is the listener itself, or a PROXY protocol switch without a forward.
    BadForward = "bad-forward",
    /// A `duravip_hook` that is not an absolute path to a program.
    BadHook = "bad-hook",
    /// A configuration that defines no DuraVIP address at all (an empty or cut-short file?).
    NoAddresses = "no-addresses",
    /// More than the messages between nodes carry: too many services on one address, a name
    /// too long, or a State over the message size limit.
    WireLimit = "wire-limit",
    /// A line dvip cannot read (words with no `=` and no block): an error where DuraVIP,
    /// cluster or log configuration could stand, a warning elsewhere.
    Unread = "unread",
    /// A Momentum option that dvip accepts and that changes nothing here, with why.
    NoEffect = "no-effect",
    /// A listener that is disabled, and so is no service for DuraVIP.
    Disabled = "disabled",
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub code: Code,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where; `None` only when no file could be read at all.
    pub span: Option<Span>,
    /// The file, when there is no span to point with.
    pub path: Option<PathBuf>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(severity: Severity, code: Code, span: Span, message: String) -> Self {
        Self {
            severity,
            code,
            message,
            span: Some(span),
            path: None,
            hint: None,
        }
    }

    /// The diagnostic as a person reads it: location line, source line, caret, hint.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let severity = self.severity.as_str();
        match self.span {
            Some(span) => {
                let location = sources.location(span);
                let file = sources.file(span.file);
                let line = file.line_text(span.start);
                let (_, column) = file.line_column(span.start);
                // Underline the span, but never past the end of its first line.
                let prefix: String = line.chars().take(column as usize - 1).collect();
                let rest = line.chars().count().saturating_sub(column as usize - 1);
                let width = span.end.saturating_sub(span.start) as usize;
                let carets = width.clamp(1, rest.max(1));
                let gutter = location.line.to_string().len();
                let pad: String = prefix
                    .chars()
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{location}: {severity}: {}", self.message);
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{} | {line}", location.line);
                let _ = writeln!(out, "{:gutter$} | {pad}{}", "", "^".repeat(carets));
                if let Some(hint) = &self.hint {
                    let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
                }
            }
            None => {
                let path = self
                    .path
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string());
                let _ = writeln!(out, "{path}: {severity}: {}", self.message);
                if let Some(hint) = &self.hint {
                    let _ = writeln!(out, "  = hint: {hint}");
                }
            }
        }
        out
    }

    /// The diagnostic as JSON: `{severity, code, file, line, column, message, hint}`.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let (file, line, column) = match self.span {
            Some(span) => {
                let l = sources.location(span);
                (
                    Some(l.path.display().to_string()),
                    Some(l.line),
                    Some(l.column),
                )
            }
            None => (
                self.path.as_ref().map(|p| p.display().to_string()),
                None,
                None,
            ),
        };
        serde_json::json!({
            "severity": self.severity,
            "code": self.code.as_str(),
            "file": file,
            "line": line,
            "column": column,
            "message": self.message,
            "hint": self.hint,
        })
    }
}

/// Collects diagnostics while a configuration is read.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn error(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::new(Severity::Error, code, span, message.into()))
    }

    pub(crate) fn warning(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::new(
            Severity::Warning,
            code,
            span,
            message.into(),
        ))
    }

    pub(crate) fn note(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::new(Severity::Note, code, span, message.into()))
    }

    fn push(&mut self, diagnostic: Diagnostic) -> &mut Diagnostic {
        self.list.push(diagnostic);
        // Just pushed, so the list is not empty.
        self.list.last_mut().expect("just pushed")
    }
}

impl Diagnostic {
    /// Adds a hint in place, for use on the `&mut` that [`Diagnostics`] hands back.
    pub(crate) fn with_hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }
}
