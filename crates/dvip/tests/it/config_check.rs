//! `dvip config check`: exit codes, located errors, and the JSON model.

use serde_json::Value;

use crate::{dvip, root, text};

fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .map(|p| {
            format!(
                "examples/{}",
                p.file_name().expect("a file").to_string_lossy()
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "an example per dialect");
    files
}

#[test]
fn every_example_passes_the_check_without_warnings() {
    for example in examples() {
        let out = dvip(&["config", "check", &example]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).starts_with(&format!("{example}: valid:")),
            "{}",
            text(&out.stdout)
        );
        assert!(
            !text(&out.stderr).contains("warning:"),
            "{example}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn both_dialects_of_the_example_node_describe_the_same_addresses() {
    let model = |file: &str| -> Value {
        let out = dvip(&["config", "check", "--json", file]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        report["files"][0].clone()
    };
    let (two, three) = (model("examples/mta-2x.conf"), model("examples/mta-3x.conf"));
    let addresses = |m: &Value| -> Vec<String> {
        m["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| a["address"].to_string())
            .collect()
    };
    // The 3.x file puts its IPv6 address on a listener instead of a binding; the rest match.
    let mut a2 = addresses(&two);
    let mut a3 = addresses(&three);
    a2.retain(|a| !a.contains(':'));
    a3.retain(|a| !a.contains(':'));
    assert_eq!(a2, a3);
    assert_eq!(two["addresses"][2]["follow"], "acme-1");
    assert_eq!(two["addresses"][2]["follow_address"], "203.0.113.10");
}

#[test]
fn an_invalid_file_exits_1_with_located_errors_on_stderr() {
    let out = dvip(&[
        "config",
        "check",
        "crates/dvip-config/testdata/invalid/bad-values.conf",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let located = stderr
        .lines()
        .filter(|l| l.starts_with("crates/dvip-config/testdata/invalid/bad-values.conf:"))
        .count();
    assert_eq!(located, 11, "every error of the file in one run:\n{stderr}");
    assert!(
        stderr.contains("bad-values.conf:24:20: error: `maybe` is not a yes/no value"),
        "{stderr}"
    );
    assert!(stderr.contains("= hint: "), "{stderr}");
    assert!(
        text(&out.stdout).contains("invalid: 11 errors"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(dvip(&["config", "check"]).status.code(), Some(2), "no file");
    assert_eq!(
        dvip(&["config", "check", "--frobnicate", "x"])
            .status
            .code(),
        Some(2),
        "unknown flag"
    );
    assert_eq!(dvip(&["config"]).status.code(), Some(2), "no subcommand");
    let spaced = dvip(&[
        "config",
        "check",
        "--nodename",
        "node 1",
        "examples/mta-2x.conf",
    ]);
    assert_eq!(spaced.status.code(), Some(2), "a node name with a space");
    assert!(
        text(&spaced.stderr).contains("no spaces"),
        "{}",
        text(&spaced.stderr)
    );
}

#[test]
fn an_unreadable_file_exits_1_and_says_which() {
    let out = dvip(&["config", "check", "no/such/file.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no/such/file.conf: error: cannot read `no/such/file.conf`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_prints_the_effective_model_for_one_file() {
    let out = dvip(&[
        "config",
        "check",
        "--json",
        "--nodename",
        "nodeX",
        "examples/mta-2x.conf",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["files"].as_array().map(Vec::len),
        Some(1),
        "one shape for one file"
    );
    let model = &report["files"][0];
    for key in [
        "nodename",
        "nodeaddr",
        "cluster",
        "addresses",
        "topology",
        "logs",
        "replicate",
        "warnings",
        "errors",
        "valid",
        "file",
    ] {
        assert!(model.get(key).is_some(), "missing {key}");
    }
    assert_eq!(model["nodename"], "nodeX");
    assert_eq!(model["nodename_source"], "override");
    let first = &model["addresses"][0];
    for key in [
        "address",
        "bindings",
        "listener_ports",
        "preference",
        "follow",
        "upgraded",
        "interface",
        "cidrmask",
    ] {
        assert!(first.get(key).is_some(), "address lacks {key}");
    }
    let upgraded: Vec<&Value> = model["addresses"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["upgraded"] == true)
        .collect();
    assert_eq!(upgraded.len(), 1);
    assert_eq!(upgraded[0]["address"], "203.0.113.12");
    assert_eq!(
        upgraded[0]["interface"], "eth2",
        "the most specific hint wins"
    );
    assert_eq!(model["notes"][0]["code"], "upgraded");
}

#[test]
fn json_for_several_files_has_the_same_shape_and_carries_errors() {
    let out = dvip(&[
        "config",
        "check",
        "--json",
        "examples/mta-3x.conf",
        "crates/dvip-config/testdata/invalid/no-topology.conf",
    ]);
    assert_eq!(out.status.code(), Some(1), "one file is invalid");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], false);
    let reports = report["files"].as_array().expect("the files' reports");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[1]["valid"], false);
    let error = &reports[1]["errors"][0];
    assert_eq!(error["code"], "no-topology");
    assert_eq!(error["line"], 8);
    assert!(error["hint"].as_str().expect("hint").contains("Topology"));
}

#[test]
fn the_address_table_shows_where_each_address_goes_and_why() {
    let out = dvip(&["config", "check", "--addresses", "examples/mta-2x.conf"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[1].starts_with("ADDRESS "), "{stdout}");
    assert_eq!(
        lines.len(),
        2 + 8,
        "summary, header and one row per address:\n{stdout}"
    );
    let row = |address: &str| -> Vec<&str> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{address} ")))
            .expect("a row");
        line.split_whitespace().collect()
    };
    assert_eq!(
        row("198.51.100.20"),
        ["198.51.100.20", "eth0/32", "-", "25,587", "-", "-"]
    );
    assert_eq!(
        row("198.51.100.30"),
        [
            "198.51.100.30",
            "eth0/32",
            "-",
            "25",
            "-",
            "acme-1",
            "(203.0.113.10)"
        ]
    );
    assert_eq!(
        row("198.51.100.31"),
        ["198.51.100.31", "eth0/32", "-", "25", "-", "203.0.113.11"]
    );
    assert_eq!(
        row("203.0.113.12"),
        [
            "203.0.113.12",
            "eth2/32",
            "globex-1",
            "2525",
            "-",
            "-",
            "upgraded"
        ]
    );
    assert_eq!(
        row("2001:db8:25::10"),
        ["2001:db8:25::10", "eth1/128", "globex-v6", "-", "-", "-"]
    );
}

#[test]
fn a_configuration_on_standard_input_is_checked_as_a_file_named_dash() {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dvip"))
        .args(["config", "check", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dvip runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"cluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
              Binding \"a\" { Enable_Duravip = maybe  Bind_Address = 198.51.100.7 }\n",
        )
        .expect("written");
    let out = child.wait_with_output().expect("dvip ends");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let file = &report["files"][0];
    assert_eq!(file["file"], "-");
    assert_eq!(file["errors"][0]["file"], "-");
    assert_eq!(file["errors"][0]["line"], 2);
}

#[test]
fn a_reader_that_goes_away_ends_the_report_quietly() {
    // Far more than a pipe holds, so the write meets the closed end whenever it comes.
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = tmp.path().join("many.conf");
    let mut text = String::from(
        "cluster { nodename = n1  Topology \"198.18.0.0/16\" { interface = \"eth0\" } }\n",
    );
    for i in 0..3000u32 {
        text.push_str(&format!(
            "Binding \"b{i}\" {{ Enable_Duravip = true  Bind_Address = 198.18.{}.{} }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    std::fs::write(&path, text).expect("write");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dvip"))
        .args(["config", "check", "--addresses"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dvip runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("dvip ends");
    let stderr = crate::text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
