//! Syslog's vocabulary and the routing of a message to a log.
//!
//! Owns the names operators write for facilities and severities, what a program pattern
//! matches, and which route a message takes. It is pure: it must not parse messages or touch
//! sockets (dvipd does both and asks [`route`] where a message goes).

use serde::{Serialize, Serializer};

/// Facility names by code (RFC 5424 §6.2.1, as Linux spells them).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Other spellings syslog.conf and rsyslog accept, with the code they mean.
const FACILITY_ALIASES: &[(&str, u8)] = &[("security", 4), ("console", 14)];

/// Severity names by code, most severe first.
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

const SEVERITY_ALIASES: &[(&str, u8)] = &[("panic", 0), ("error", 3), ("warn", 4)];

/// A syslog facility (0 kern to 23 local7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Facility(u8);

/// A syslog severity (0 emerg, the most severe, to 7 debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(u8);

fn by_name(text: &str, names: &[&str], aliases: &[(&str, u8)]) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .and_then(|i| u8::try_from(i).ok())
        .or_else(|| aliases.iter().find(|(n, _)| *n == lower).map(|&(_, c)| c))
}

/// The lookups both vocabularies share: by code, by name, back to code and name.
macro_rules! syslog_code {
    ($ty:ident, $names:ident, $aliases:ident) => {
        impl $ty {
            /// The value with syslog code `code`.
            pub fn from_code(code: u8) -> Option<Self> {
                usize::from(code).lt(&$names.len()).then_some(Self(code))
            }

            /// The value an operator names, in any case.
            pub fn from_name(text: &str) -> Option<Self> {
                by_name(text, &$names, $aliases).map(Self)
            }

            /// The syslog code.
            pub fn code(self) -> u8 {
                self.0
            }

            /// The name the configuration and reports use.
            pub fn name(self) -> &'static str {
                $names[usize::from(self.0)]
            }

            /// Every name, for hints.
            pub fn names() -> &'static [&'static str] {
                &$names
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

syslog_code!(Facility, FACILITIES, FACILITY_ALIASES);
syslog_code!(Severity, SEVERITIES, SEVERITY_ALIASES);

impl Facility {
    /// The facility a message without a priority is taken to have (RFC 3164 §4.3.3).
    pub const USER: Self = Self(1);
    /// The mail system.
    pub const MAIL: Self = Self(2);
}

impl Severity {
    /// The least severe: a route at this severity takes every message.
    pub const DEBUG: Self = Self(7);
    /// The severity a message without a priority is taken to have (RFC 3164 §4.3.3).
    pub const NOTICE: Self = Self(5);
    /// Informational.
    pub const INFO: Self = Self(6);

    /// True when `self` is as severe as `threshold` or more.
    pub fn at_least(self, threshold: Self) -> bool {
        self.0 <= threshold.0
    }
}

/// A program name with `*` standing for any run of characters: `postfix/*`, `exim*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProgramPattern(String);

impl ProgramPattern {
    /// A pattern; `None` for an empty one, which would match only a message without a program.
    pub fn new(text: &str) -> Option<Self> {
        (!text.is_empty()).then(|| Self(text.to_owned()))
    }

    /// True when `program` is matched as a whole.
    pub fn matches(&self, program: &str) -> bool {
        let mut pieces = self.0.split('*');
        let first = pieces.next().unwrap_or("");
        let Some(mut rest) = program.strip_prefix(first) else {
            return false;
        };
        let pieces: Vec<&str> = pieces.collect();
        let Some((last, middle)) = pieces.split_last() else {
            return rest.is_empty(); // no `*`: the whole name
        };
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl std::fmt::Display for ProgramPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which messages a route takes: each criterion given must match, and one left out matches
/// anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteMatch {
    /// Programs (RFC 3164's tag, RFC 5424's APP-NAME); empty: any.
    pub programs: Vec<ProgramPattern>,
    /// Facilities; empty: any.
    pub facilities: Vec<Facility>,
    /// The least severe severity taken.
    pub severity: Severity,
}

impl RouteMatch {
    /// True when a message with these fields is taken.
    pub fn takes(&self, program: Option<&str>, facility: Facility, severity: Severity) -> bool {
        severity.at_least(self.severity)
            && (self.facilities.is_empty() || self.facilities.contains(&facility))
            && (self.programs.is_empty()
                || program.is_some_and(|p| self.programs.iter().any(|pattern| pattern.matches(p))))
    }
}

/// The first of `matches` (routes in file order) that takes the message: its index.
pub fn route<'m>(
    matches: impl IntoIterator<Item = &'m RouteMatch>,
    program: Option<&str>,
    facility: Facility,
    severity: Severity,
) -> Option<usize> {
    matches
        .into_iter()
        .position(|m| m.takes(program, facility, severity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> ProgramPattern {
        ProgramPattern::new(text).unwrap()
    }

    #[test]
    fn patterns_match_whole_names_with_stars_anywhere() {
        for (p, yes, no) in [
            ("postfix/*", "postfix/smtp", "postfix"),
            ("postfix/*", "postfix/", "xpostfix/smtp"),
            ("exim", "exim", "exim4"),
            ("exim*", "exim4", "xexim"),
            ("*smtp*", "postfix/smtpd", "postfix/qmgr"),
            ("a*a", "aa", "a"),
            ("a*b*c", "abxc", "acb"),
            ("*", "anything", "\u{0}never"),
        ] {
            assert!(pattern(p).matches(yes), "{p} should match {yes}");
            if p != "*" {
                assert!(!pattern(p).matches(no), "{p} should not match {no}");
            }
        }
        assert!(ProgramPattern::new("").is_none());
    }

    #[test]
    fn names_and_codes_agree_both_ways_and_aliases_are_read() {
        for code in 0..24 {
            let f = Facility::from_code(code).unwrap();
            assert_eq!(Facility::from_name(f.name()), Some(f));
        }
        assert_eq!(Facility::from_code(24), None);
        assert_eq!(Facility::from_name("MAIL"), Some(Facility::MAIL));
        assert_eq!(
            Facility::from_name("security").map(Facility::name),
            Some("auth")
        );
        assert_eq!(Severity::from_name("warn").map(Severity::code), Some(4));
        assert_eq!(Severity::from_code(8), None);
        assert_eq!(Facility::from_name("mial"), None);
    }

    #[test]
    fn the_first_route_that_takes_a_message_wins_and_severity_is_a_threshold() {
        let postfix = RouteMatch {
            programs: vec![pattern("postfix/*")],
            facilities: vec![Facility::MAIL],
            severity: Severity::INFO,
        };
        let all_mail = RouteMatch {
            programs: vec![],
            facilities: vec![Facility::MAIL],
            severity: Severity::DEBUG,
        };
        let routes = [postfix, all_mail];
        let err = Severity::from_name("err").unwrap();
        assert_eq!(
            route(&routes, Some("postfix/smtp"), Facility::MAIL, err),
            Some(0)
        );
        assert_eq!(
            route(
                &routes,
                Some("postfix/smtp"),
                Facility::MAIL,
                Severity::DEBUG
            ),
            Some(1),
            "debug is below the first route's info"
        );
        assert_eq!(route(&routes, None, Facility::MAIL, err), Some(1));
        assert_eq!(
            route(&routes, Some("postfix/smtp"), Facility::USER, err),
            None
        );
    }
}
