//! Golden tables: `testdata/election/*.txt` hold node configurations, what each node holds,
//! standby nodes, pins and whether the view has matured, then `----` and the plan the
//! election must produce. Regenerate with `UPDATE_EXPECT=1 cargo test -p dvip-core --test it
//! golden` and review every diff.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dvip_core::elect;

use crate::{member_from_config, Members};

struct Case {
    members: Members,
    mature: bool,
    pins: BTreeMap<IpAddr, String>,
}

fn parse(text: &str) -> (Case, &str) {
    let (input, expected) = text.split_once("----\n").expect("a case has a `----` line");
    let mut configs: Vec<(String, String)> = Vec::new();
    let mut holds: Vec<(String, Vec<IpAddr>)> = Vec::new();
    let mut standby = Vec::new();
    let mut pins = BTreeMap::new();
    let mut mature = true;
    for line in input.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(config_line) = line.strip_prefix("  ") {
            let (_, text) = configs
                .last_mut()
                .expect("config lines follow a `node` line");
            text.push_str(config_line);
            text.push('\n');
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["node", name] => configs.push(((*name).to_owned(), String::new())),
            ["holds", name, addresses @ ..] => holds.push((
                (*name).to_owned(),
                addresses
                    .iter()
                    .map(|a| a.parse().expect("an address"))
                    .collect(),
            )),
            ["standby", name] => standby.push((*name).to_owned()),
            ["pin", address, name] => {
                pins.insert(address.parse().expect("an address"), (*name).to_owned());
            }
            ["immature"] => mature = false,
            other => panic!("unknown line in case: {other:?}"),
        }
    }
    let mut members: Members = configs
        .iter()
        .map(|(name, text)| (name.clone(), member_from_config(name, text)))
        .collect();
    for (name, addresses) in holds {
        members
            .get_mut(&name)
            .expect("holds names a node")
            .holdings
            .extend(addresses);
    }
    for name in standby {
        members
            .get_mut(&name)
            .expect("standby names a node")
            .standby = true;
    }
    (
        Case {
            members,
            mature,
            pins,
        },
        expected,
    )
}

#[test]
fn every_election_table_gives_its_expected_plan() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut paths: Vec<_> = std::fs::read_dir("testdata/election")
        .expect("testdata/election exists")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 10);
    let mut mismatched = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable case");
        let (case, expected) = parse(&text);
        let actual = elect(&case.members, case.mature, &case.pins).table();
        if update {
            let head = &text[..text.len() - expected.len()];
            std::fs::write(&path, format!("{head}{actual}")).expect("writing case");
        } else if actual != expected {
            mismatched.push(format!(
                "--- {}\nexpected:\n{expected}actual:\n{actual}",
                path.display()
            ));
        }
    }
    assert!(mismatched.is_empty(), "{}", mismatched.join("\n"));
}
