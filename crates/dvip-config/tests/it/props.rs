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
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.join(" "))
}

const SEED: &str = include_str!("../../testdata/golden/overview-2x.conf");
const SEED_3X: &str = include_str!("../../testdata/golden/follow-3x.conf");

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
}
