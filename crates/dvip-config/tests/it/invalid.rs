//! One failing configuration per rule: each file in `testdata/invalid` lists the diagnostics
//! it must produce as `# expect: LINE SEVERITY CODE "message fragment"`, and produces no
//! other error or warning.

use std::collections::BTreeSet;

use dvip_config::{Code, Severity};

use crate::{check_file, conf_files};

struct Expected {
    line: u32,
    severity: String,
    code: String,
    fragment: String,
}

fn expectations(text: &str) -> Vec<Expected> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("# expect: "))
        .map(|rest| {
            let (head, fragment) = rest
                .split_once(" \"")
                .expect("expect line has a quoted fragment");
            let mut words = head.split_whitespace();
            let line = words
                .next()
                .and_then(|w| w.parse().ok())
                .expect("expect line starts with a line number");
            let severity = words.next().expect("severity").to_owned();
            let code = words.next().expect("code").to_owned();
            Expected {
                line,
                severity,
                code,
                fragment: fragment.trim_end_matches('"').to_owned(),
            }
        })
        .collect()
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// Node configurations, and aggregators' files (read by `load_collect`).
const INVALID: &str = "testdata/invalid";
const INVALID_COLLECT: &str = "testdata/invalid-collect";

/// The diagnostics of a file, read as what its directory holds.
struct Diagnosed {
    diagnostics: Vec<dvip_config::Diagnostic>,
    sources: dvip_config::SourceMap,
}

fn diagnosed(conf: &std::path::Path) -> Diagnosed {
    if conf.starts_with(INVALID_COLLECT) {
        let checked = dvip_config::collect::load_collect(
            conf,
            Some("collector"),
            "collector-host",
            &dvip_config::DiskFiles,
        );
        Diagnosed {
            diagnostics: checked.diagnostics,
            sources: checked.sources,
        }
    } else {
        let checked = check_file(conf);
        Diagnosed {
            diagnostics: checked.diagnostics,
            sources: checked.sources,
        }
    }
}

#[test]
fn every_invalid_config_reports_exactly_its_expected_diagnostics() {
    let mut failures = Vec::new();
    for conf in conf_files(INVALID)
        .into_iter()
        .chain(conf_files(INVALID_COLLECT))
    {
        let text = std::fs::read_to_string(&conf).expect("readable test file");
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` lines",
            conf.display()
        );
        let checked = diagnosed(&conf);
        let actual: Vec<_> = checked
            .diagnostics
            .iter()
            .map(|d| {
                let line = d.span.map_or(0, |s| checked.sources.location(s).line);
                (
                    line,
                    severity_name(d.severity),
                    d.code.as_str(),
                    d.message.clone(),
                    d.render(&checked.sources),
                )
            })
            .collect();
        let mut matched = BTreeSet::new();
        for e in &expected {
            let hit = actual.iter().position(|a| {
                a.0 == e.line && a.1 == e.severity && a.2 == e.code && a.3.contains(&e.fragment)
            });
            match hit {
                Some(i) => {
                    matched.insert(i);
                }
                None => failures.push(format!(
                    "{}: expected {} {} {} \"{}\" but it was not reported",
                    conf.display(),
                    e.line,
                    e.severity,
                    e.code,
                    e.fragment
                )),
            }
        }
        // A note need not be expected: the operator is told, nothing is wrong.
        for (i, a) in actual.iter().enumerate() {
            if !matched.contains(&i) && a.1 != "note" {
                failures.push(format!(
                    "{}: unexpected diagnostic:\n{}",
                    conf.display(),
                    a.4
                ));
            }
        }
        // Every diagnostic points at a line and says what to do.
        for d in &checked.diagnostics {
            assert!(
                d.hint.is_some(),
                "{}: no hint for: {}",
                conf.display(),
                d.message
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_failing_example() {
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for conf in conf_files(INVALID)
        .into_iter()
        .chain(conf_files(INVALID_COLLECT))
    {
        let text = std::fs::read_to_string(&conf).expect("readable test file");
        covered.extend(expectations(&text).into_iter().map(|e| e.code));
    }
    // Covered elsewhere: the limit needs 10,241 generated addresses (see `limits`), and the
    // upgrade note is part of a spec example (see `golden`).
    covered.insert(Code::TooManyAddresses.as_str().to_owned());
    covered.insert(Code::Upgraded.as_str().to_owned());
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes with no failing example in testdata/invalid: {missing:?}"
    );
}

#[test]
fn the_fragment_parser_reads_the_expect_lines() {
    // Check the checker: a file without a match must fail the comparison above.
    let e = expectations("# expect: 3 error unexpected \"closes nothing\"\n");
    assert_eq!(
        (e[0].line, e[0].severity.as_str(), e[0].code.as_str()),
        (3, "error", "unexpected")
    );
    assert_eq!(e[0].fragment, "closes nothing");
}

#[test]
fn every_code_is_documented() {
    let docs = std::fs::read_to_string("../../docs/config.md").expect("docs/config.md exists");
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !docs.contains(&format!("| `{c}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md lacks rows for {missing:?}"
    );
}
