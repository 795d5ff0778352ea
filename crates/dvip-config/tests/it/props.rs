//! Property tests: no input makes the reader panic or lose track of where it is.
//!
//! Random bytes, soups of the language's own tokens, and valid configs with random edits all
//! yield a model plus located diagnostics, every one of which renders.

use std::path::Path;

use dvip_config::{load_str, Checked, LoadOptions};
use proptest::prelude::*;

use crate::HOSTNAME;

fn run(text: &str) -> Checked {
    let checked = load_str(Path::new("fuzz.conf"), text, &LoadOptions::new(HOSTNAME));
    let lines = text.split('\n').count() as u32;
    for d in &checked.diagnostics {
        let span = d
            .span
            .expect("every diagnostic of an in-memory file is located");
        let at = checked.sources.location(span);
        assert!(
            at.line >= 1 && at.line <= lines,
            "line {} of {lines}",
            at.line
        );
        assert!(!d.render(&checked.sources).is_empty());
        assert!(d.hint.is_some(), "no hint for: {}", d.message);
    }
    assert_eq!(
        checked.is_valid(),
        checked.of(dvip_config::Severity::Error).next().is_none()
    );
    let _ = checked.to_json();
    checked
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "=",
    "\"",
    "#",
    "\n",
    " ",
    "include",
    "cluster",
    "Logger",
    "cluster/ec_cluster",
    "Binding",
    "Binding_Group",
    "ESMTP_Listener",
    "Listen",
    "Topology",
    "interface",
    "cidrmask",
    "Enable_Duravip",
    "duravip",
    "Duravip_Follow",
    "duravip_follow",
    "Duravip_Preference",
    "Bind_Address",
    "logs",
    "replicate",
    "type",
    "nodeaddr",
    "nodename",
    "true",
    "maybe",
    "\"x\"",
    "198.51.100.7",
    "198.51.100.0/24",
    "2001:db8::1",
    "*:25",
    "198.51.100.7:25,200",
    "eth0",
    "32",
    "\"cluster:///x=>m\"",
    "\"jlog://y\"",
    "ECCluster_Listener",
    "\\",
    "é",
    "\"unterminated",
    "0.0.0.0/0",
    "/*",
    "*/",
    "readonly_include",
    "Domain",
    "/(a|b)[0-9]{2}/",
    "[::1]:25",
    "[*]:25",
    ":25",
    "*:587,200~20",
    "\"cluster:///x?subscribers=a,b\"",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.join(" "))
}

const SEED: &str = include_str!("../../testdata/golden/overview-2x.conf");
const SEED_3X: &str = include_str!("../../testdata/golden/follow-3x.conf");
const SEED_ASSIGNED: &str = include_str!("../../testdata/golden/assigned-stanzas-3x.conf");

/// Byte offsets of the lines that open a stanza outside any `( )` list: where an operator's
/// stray line or comment could stand before a stanza.
fn stanza_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0i32;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        // `key = {` is a stanza too, but `key = (` or `key = [ entries ]` inside a list is not
        // one; attributes (`<duravip="enabled">`) hold `=` of their own.
        let header = trimmed.split(['{', '[', '<']).next().unwrap_or("");
        let opens = trimmed.contains(['{', '['])
            && (!header.contains('=') || header.trim_end().ends_with('='));
        let starts_like_a_name = trimmed
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '"');
        if depth == 0 && opens && starts_like_a_name {
            starts.push(at);
        }
        let code = line.split('#').next().unwrap_or("");
        depth += code.matches('(').count() as i32 - code.matches(')').count() as i32;
        at += line.len();
    }
    starts
}

/// A line an operator may leave before a stanza: a stray word (with or without a quoted
/// name after it), an unknown option, or a comment of either kind.
fn junk() -> impl Strategy<Value = String> {
    let word = "[a-z_][a-z0-9_]{0,11}";
    let text = "[ -~]{0,30}";
    prop_oneof![
        prop::string::string_regex(word)
            .expect("regex")
            .prop_map(|w| w),
        (
            prop::string::string_regex(word).expect("regex"),
            prop::string::string_regex("[a-z0-9./]{1,12}").expect("regex")
        )
            .prop_map(|(w, q)| format!("{w} \"{q}\"")),
        (
            prop::string::string_regex(word).expect("regex"),
            prop::string::string_regex("[a-z0-9]{1,8}").expect("regex")
        )
            .prop_map(|(w, v)| format!("x_{w} = {v}")),
        prop::string::string_regex(text)
            .expect("regex")
            .prop_map(|t| format!("# {t}")),
        (
            prop::string::string_regex(text).expect("regex"),
            any::<bool>()
        )
            .prop_map(|(t, multi)| {
                let t = t.replace("*/", "* /");
                if multi {
                    format!("/* {t}\n   {t} */")
                } else {
                    format!("/* {t} */")
                }
            }),
    ]
}

/// What a configuration yields, without where it came from.
fn yields(checked: &Checked) -> serde_json::Value {
    serde_json::to_value(&checked.config).expect("the model serializes")
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Swap(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ];
    prop::collection::vec(edit, 1..8)
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match *edit {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Edit::Insert(at, text) => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, text.chars());
            }
            Edit::Swap(a, b) if !chars.is_empty() => {
                let n = chars.len();
                chars.swap(a % n, b % n);
            }
            Edit::Swap(..) => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        run(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup_never_panics(text in soup()) {
        run(&text);
    }

    #[test]
    fn edited_valid_configs_never_panic(edits in edits(), three in any::<bool>()) {
        run(&apply(if three { SEED_3X } else { SEED }, &edits));
    }

    #[test]
    fn an_unknown_line_or_comment_before_a_stanza_changes_nothing_it_yields(
        seed in prop::sample::select(&[SEED, SEED_3X, SEED_ASSIGNED][..]),
        at in any::<prop::sample::Index>(),
        line in junk(),
    ) {
        let starts = stanza_starts(seed);
        prop_assert!(!starts.is_empty());
        let at = starts[at.index(starts.len())];
        let text = format!("{}{line}\n{}", &seed[..at], &seed[at..]);
        let before = run(seed);
        let after = run(&text);
        prop_assert_eq!(yields(&before), yields(&after), "after inserting {:?}", line);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed(depth in 60usize..5000, open in prop::sample::select(&["(", "[", "{", "<"][..])) {
        let text = format!("x = {}", open.repeat(depth));
        let checked = run(&text);
        prop_assert!(!checked.is_valid());
    }
}

#[test]
fn the_unedited_seeds_are_valid() {
    // Check the checker: the mutation test starts from configs that are valid, so what it
    // finds is what the edits did.
    assert!(run(SEED).is_valid());
    assert!(run(SEED_3X).is_valid());
    assert!(run(SEED_ASSIGNED).is_valid());
}

#[test]
fn stray_lines_are_inserted_before_the_stanzas_of_every_seed() {
    // Check the property's reach: every seed offers stanzas inside its cluster stanza as
    // well as at the top level.
    for seed in [SEED, SEED_3X, SEED_ASSIGNED] {
        let starts = stanza_starts(seed);
        let indented = starts
            .iter()
            .filter(|&&at| seed[at..].starts_with(' '))
            .count();
        assert!(
            indented > 0 && indented < starts.len(),
            "{starts:?} in:\n{seed}"
        );
    }
}
