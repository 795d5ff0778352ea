//! `dvip plan`: the settled ownership of a cluster of given configurations, offline.

use serde_json::Value;

use crate::{dvip, text};

/// A configuration file, removed when the test is done with it (even when it fails).
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_config(name: &str, body: &str) -> TempConfig {
    let path = std::env::temp_dir().join(format!("dvip-plan-test-{}-{name}", std::process::id()));
    std::fs::write(&path, body).expect("write temp config");
    TempConfig(path)
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = dvip(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn owner<'v>(plan: &'v Value, address: &str) -> &'v Value {
    let found = plan["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .find(|a| a["address"] == address);
    &found.unwrap_or_else(|| panic!("{address} not in the plan"))["owner"]
}

#[test]
fn three_nodes_on_the_example_config_settle_balanced_with_preferences_and_followers() {
    let plan = plan_json(&[
        "--node",
        "node1=examples/mta-3x.conf",
        "--node",
        "node2=examples/mta-3x.conf",
        "--node",
        "node3=examples/mta-3x.conf",
    ]);
    assert_eq!(owner(&plan, "198.51.100.21"), "node2", "preferred");
    assert_eq!(owner(&plan, "203.0.113.11"), "node2", "preferred");
    assert_eq!(
        owner(&plan, "198.51.100.31"),
        "node2",
        "follows 203.0.113.11"
    );
    assert_eq!(
        owner(&plan, "198.51.100.30"),
        owner(&plan, "203.0.113.10"),
        "follows acme-1"
    );
    // Six units (two of them follow groups) over three nodes: two each.
    let loads = plan["loads"].as_object().expect("loads");
    let units_of = |node: &str| {
        plan["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .filter(|a| a["owner"] == node && a["follows"].is_null())
            .count()
    };
    for node in ["node1", "node2", "node3"] {
        assert_eq!(units_of(node), 2, "{node}: {loads:?}");
    }
}

#[test]
fn holdings_stay_until_a_rule_moves_them_and_the_moves_are_listed() {
    let plan = plan_json(&[
        "--node",
        "node1=examples/mta-3x.conf",
        "--node",
        "node2=examples/mta-3x.conf",
        "--holds",
        "node1=203.0.113.10,203.0.113.11,203.0.113.12",
    ]);
    assert_eq!(
        owner(&plan, "203.0.113.10"),
        "node1",
        "held, not moved for nothing"
    );
    assert_eq!(
        owner(&plan, "203.0.113.11"),
        "node2",
        "its preferred node takes it back"
    );
    let moves = plan["moves"].as_array().expect("moves");
    let home = moves
        .iter()
        .find(|m| m["address"] == "203.0.113.11")
        .expect("the preferred move is listed");
    assert_eq!(home["from"], serde_json::json!(["node1"]));
    assert_eq!(home["reason"], "preferred");
    assert_eq!(home["after_maturity"], true);
    // Orphans placed at once already account for where the preference will take 203.0.113.11,
    // so the matured plan moves only it and its follower, nothing for balance.
    let later: Vec<&Value> = moves
        .iter()
        .filter(|m| m["after_maturity"] == true)
        .collect();
    let later_addresses: Vec<&str> = later
        .iter()
        .map(|m| m["address"].as_str().expect("address"))
        .collect();
    assert_eq!(
        later_addresses,
        ["198.51.100.31", "203.0.113.11"],
        "{later:?}"
    );
}

#[test]
fn two_nodes_naming_different_preferred_owners_show_a_conflict() {
    let a = temp_config("a.conf", "cluster { Topology \"198.51.100.0/24\" { interface = eth0 } }\nBinding \"x\" { Enable_Duravip = true Bind_Address = 198.51.100.7 Duravip_Preference = n1 }\n");
    let b = temp_config("b.conf", "cluster { Topology \"198.51.100.0/24\" { interface = eth0 } }\nBinding \"x\" { Enable_Duravip = true Bind_Address = 198.51.100.7 Duravip_Preference = n2 }\n");
    let plan = plan_json(&[
        "--node",
        &format!("n1={}", a.path()),
        "--node",
        &format!("n2={}", b.path()),
    ]);
    let address = &plan["addresses"][0];
    assert_eq!(address["marks"], serde_json::json!(["CONFLICT"]));
    assert!(address["owner"].is_string(), "still elected");
}

#[test]
fn the_table_stars_the_owner_among_the_candidates() {
    let out = dvip(&[
        "plan",
        "--node",
        "node1=examples/mta-2x.conf",
        "--node",
        "node2=examples/mta-2x.conf",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("198.51.100.21 "))
        .expect("a row for .21");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        ["198.51.100.21", "node2", "preferred", "-", "node1,*node2"]
    );
    assert!(stdout.contains("addresses per node: node1 "), "{stdout}");
}

#[test]
fn an_invalid_configuration_exits_1_with_located_errors() {
    let bad = temp_config(
        "bad.conf",
        "Binding \"x\" { Enable_Duravip = maybe Bind_Address = 198.51.100.7 }\n",
    );
    let out = dvip(&[
        "plan",
        "--node",
        &format!("n1={}", bad.path()),
        "--node",
        "n2=examples/mta-3x.conf",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.conf:1:32: error: `maybe` is not a yes/no value"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_mistakes_exit_2() {
    assert_eq!(dvip(&["plan"]).status.code(), Some(2), "no node");
    assert_eq!(
        dvip(&["plan", "--node", "examples/mta-3x.conf"])
            .status
            .code(),
        Some(2),
        "no NAME="
    );
    let unknown = dvip(&[
        "plan",
        "--node",
        "a=examples/mta-3x.conf",
        "--holds",
        "b=203.0.113.10",
    ]);
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "holdings of a node not given"
    );
    assert!(text(&unknown.stderr).contains("--holds names `b`"));
    let twice = dvip(&[
        "plan",
        "--node",
        "a=examples/mta-3x.conf",
        "--node",
        "a=examples/mta-2x.conf",
    ]);
    assert_eq!(twice.status.code(), Some(2), "a node given twice");
    let garbled = dvip(&[
        "plan",
        "--node",
        "a=examples/mta-3x.conf",
        "--holds",
        "a=not-an-ip",
    ]);
    assert_eq!(garbled.status.code(), Some(2));
}

const FOUR: &str = "cluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
    Binding \"a\" { Enable_Duravip = true  Bind_Address = 198.51.100.1 }\n\
    Binding \"b\" { Enable_Duravip = true  Bind_Address = 198.51.100.2 }\n\
    Binding \"c\" { Enable_Duravip = true  Bind_Address = 198.51.100.3  Duravip_Preference = \"node9\" }\n\
    Binding \"d\" { Enable_Duravip = true  Bind_Address = 198.51.100.4 }\n";

#[test]
fn what_if_a_node_fails_or_goes_on_standby_shows_the_moves_of_that_step() {
    let conf = temp_config("four.conf", FOUR);
    let node = |n: &str| format!("{n}={}", conf.path());
    for flag in ["--fail", "--standby"] {
        let plan = plan_json(&[
            "--node",
            &node("node1"),
            "--node",
            &node("node2"),
            flag,
            "node2",
        ]);
        for a in 1..=4 {
            assert_eq!(owner(&plan, &format!("198.51.100.{a}")), "node1", "{flag}");
        }
        let moves = plan["moves"].as_array().expect("moves");
        assert_eq!(moves.len(), 2, "{flag}: node2's share moves: {plan}");
        // A failed node lets nothing go (its addresses are taken from nobody); a node going
        // on standby releases them first.
        let from = if flag == "--fail" {
            serde_json::json!([])
        } else {
            serde_json::json!(["node2"])
        };
        for m in moves {
            assert_eq!(m["from"], from, "{flag}: {m}");
            assert_eq!(m["to"], "node1", "{flag}: {m}");
        }
    }
    let out = dvip(&["plan", "--node", &node("node1"), "--fail", "node7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`node7` is no --node"));
}

#[test]
fn a_preference_for_a_node_nobody_gives_is_warned_about() {
    let conf = temp_config("prefers-node9.conf", FOUR);
    let out = dvip(&["plan", "--node", &format!("node1={}", conf.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("node1 prefers `node9` for 198.51.100.3, which no --node gives"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn marks_come_with_what_each_node_says_and_strict_fails_on_them() {
    let one = temp_config(
        "unsafe-1.conf",
        "cluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
         ESMTP_Listener { Listen \"198.51.100.5:25\" { Enable_Duravip = true } }\n",
    );
    let two = temp_config(
        "unsafe-2.conf",
        "cluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
         ESMTP_Listener { Listen \"198.51.100.5:587\" { Enable_Duravip = true } }\n",
    );
    let args = [
        "plan".to_owned(),
        "--node".to_owned(),
        format!("node1={}", one.path()),
        "--node".to_owned(),
        format!("node2={}", two.path()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dvip(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "198.51.100.5 is UNSAFE: what each node says",
        "  node1: bindings none; ports 25",
        "  node2: bindings none; ports 587",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in\n{stdout}");
    }
    let mut strict = args.clone();
    strict.push("--strict");
    let out = dvip(&strict);
    assert_eq!(out.status.code(), Some(1), "--strict fails on a mark");
    assert!(text(&out.stderr).contains("1 marked addresses (--strict)"));
}
