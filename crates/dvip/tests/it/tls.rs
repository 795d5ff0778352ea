//! `dvip tls init` and `issue` as an operator runs them: files, JSON, refusals and exit codes.

use crate::{dvip, text};

#[test]
fn init_then_issue_write_a_ca_and_a_pair_and_report_them() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("tls");
    let dir = dir.to_str().expect("utf-8");
    let out = dvip(&["tls", "init", "--dir", dir, "--cluster", "fleet", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["name"], "fleet");
    assert!(report["sha256"].as_str().is_some_and(|s| s.len() == 95));

    let out = dvip(&[
        "tls",
        "issue",
        "node1",
        "--dir",
        dir,
        "--also",
        "198.51.100.10",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("certificate for node1: "), "{said}");
    assert!(tmp.path().join("tls/node1.pem").exists());
    assert!(tmp.path().join("tls/node1.key").exists());

    let out = dvip(&["tls", "init", "--dir", dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already holds a CA"),
        "{}",
        text(&out.stderr)
    );

    let out = dvip(&["tls", "issue", "../escape", "--dir", dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a usable name"));
}

#[test]
fn issue_without_a_ca_says_how_to_make_one() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().to_str().expect("utf-8");
    let out = dvip(&["tls", "issue", "node1", "--dir", dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("run `dvip tls init` first"),
        "{}",
        text(&out.stderr)
    );
}
