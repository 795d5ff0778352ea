//! `dvip log`: lines in from a pipe, records out as a subscriber, and the journal tools.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{dvip, text};

fn write_lines(uri: &str, lines: &str) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dvip"))
        .args(["log", "write", uri, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dvip runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    json_report(&child.wait_with_output().unwrap())
}

/// The JSON a successful command printed.
fn json_report(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn lines_piped_in_come_out_once_for_each_subscriber_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("mainlog.cluster");
    let p = path.to_str().unwrap();
    let lines: String = (0..3000).map(|i| format!("delivery {i}\n")).collect();
    let report = write_lines(&format!("cluster://{p}?subscribers=master,backup"), &lines);
    assert_eq!(report["records"], 3000);
    let read = |sub: &str, extra: &[&str]| {
        let mut args = vec!["log", "read", p, "--subscriber", sub];
        args.extend(extra);
        let out = dvip(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = read("master", &["--checkpoint", "--max", "1000"]);
    assert_eq!(first.lines().count(), 1000);
    assert!(first.lines().next().unwrap().ends_with(" delivery 0"));
    let rest = read("master", &["--checkpoint", "--json"]);
    let records: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2000, "the rest, none again");
    assert_eq!(records[0]["payload"], "delivery 1000");
    assert_eq!(records[1999]["payload"], "delivery 2999");
    assert_eq!(read("master", &[]).lines().count(), 0, "all checkpointed");
    assert_eq!(
        read("backup", &[]).lines().count(),
        3000,
        "the other subscriber still has all"
    );

    let show = dvip(&["log", "show", p, "--json"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let status: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let subs = status[0]["subscribers"].as_array().unwrap();
    let backlog =
        |name: &str| subs.iter().find(|s| s["name"] == name).unwrap()["backlog"]["records"].clone();
    assert_eq!(
        (backlog("master"), backlog("backup")),
        (0.into(), 3000.into())
    );
}

#[test]
fn subscribers_are_added_and_removed_and_mistakes_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j");
    let p = path.to_str().unwrap();
    write_lines(p, "one\ntwo\n");
    assert!(
        dvip(&["log", "subscriber", "add", p, "tail", "--from", "end"])
            .status
            .success()
    );
    assert!(dvip(&["log", "subscriber", "add", p, "all"])
        .status
        .success());
    write_lines(p, "three\n");
    let out = dvip(&["log", "read", p, "--subscriber", "tail"]);
    assert!(
        text(&out.stdout).ends_with(" three\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        text(&dvip(&["log", "read", p, "--subscriber", "all"]).stdout)
            .lines()
            .count(),
        3
    );
    let again = dvip(&["log", "subscriber", "add", p, "tail"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));
    assert!(dvip(&["log", "subscriber", "remove", p, "tail"])
        .status
        .success());
    let gone = dvip(&["log", "read", p, "--subscriber", "tail"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("no subscriber `tail`"),
        "{}",
        text(&gone.stderr)
    );
    let bad = dvip(&["log", "write", "cluster://relative=>x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("three slashes"),
        "{}",
        text(&bad.stderr)
    );
    let repair = dvip(&["log", "repair", p, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&repair.stdout).unwrap();
    assert_eq!(report["segments"].as_array().map(Vec::len), Some(0));
    let clean = dvip(&["log", "clean", p, "--json"]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
}

/// The payloads a subscriber has not yet read, in order.
fn unread(journal: &str, subscriber: &str) -> Vec<String> {
    let out = dvip(&["log", "read", journal, "--subscriber", subscriber]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            l.split_once(' ')
                .unwrap()
                .1
                .split_once(' ')
                .unwrap()
                .1
                .to_owned()
        })
        .collect()
}

fn follow_once(file: &str, uri: &str) -> serde_json::Value {
    json_report(&dvip(&["log", "follow", file, uri, "--once", "--json"]))
}

/// A file to follow and a journal with the subscriber `master` to follow it into.
struct Followed {
    dir: tempfile::TempDir,
    file: String,
    journal: String,
    uri: String,
}

fn followed() -> Followed {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (file, journal) = (path("mainlog"), path("mainlog.cluster"));
    let uri = format!("cluster://{journal}=>master");
    Followed {
        dir,
        file,
        journal,
        uri,
    }
}

#[test]
fn a_followed_file_reaches_the_journal_once_through_a_rename_rotation() {
    let Followed {
        dir,
        file,
        journal: j,
        uri,
    } = followed();
    let f = file.as_str();
    std::fs::write(&file, "one\ntwo\nthree without its newline yet").unwrap();
    let report = follow_once(f, &uri);
    assert_eq!(report["lines"], 2, "{report}");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b" now\nfour\n")
        .unwrap();
    std::fs::rename(&file, dir.path().join("mainlog.1")).unwrap();
    std::fs::write(&file, "five\n").unwrap();
    let report = follow_once(f, &uri);
    assert_eq!(
        (report["lines"].clone(), report["rotated"].clone()),
        (3.into(), true.into()),
        "{report}"
    );
    assert_eq!(follow_once(f, &uri)["lines"], 0, "nothing twice");
    assert_eq!(
        unread(&j, "master"),
        [
            "one",
            "two",
            "three without its newline yet now",
            "four",
            "five"
        ]
    );
}

/// A child that a failing test must not leave running (it would hold the test's output open).
struct KilledOnDrop(std::process::Child);

impl KilledOnDrop {
    fn kill(&mut self) {
        // SIGKILL, so the follower gets no chance to tidy up.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_follower_killed_again_and_again_while_lines_arrive_loses_and_repeats_none() {
    let Followed {
        dir: _dir,
        file,
        journal: j,
        uri,
    } = followed();
    let f = file.as_str();
    std::fs::write(&file, "").unwrap();
    // The journal exists before the first look at it.
    assert_eq!(follow_once(f, &uri)["lines"], 0);
    let spawn = || {
        KilledOnDrop(
            Command::new(env!("CARGO_BIN_EXE_dvip"))
                .args(["log", "follow", f, &uri])
                .stdout(Stdio::null())
                .spawn()
                .expect("dvip runs"),
        )
    };
    let mut follower = spawn();
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let total = 20_000;
    let mut kills = 0;
    let mut taken_at_last_kill = 0;
    for i in 0..total {
        writeln!(out, "delivery {i}").unwrap();
        // Kill it (SIGKILL) each time it has been seen taking more lines, then start another.
        if i % 250 == 0 {
            let taken = unread(&j, "master").len();
            if taken > taken_at_last_kill {
                follower.kill();
                kills += 1;
                taken_at_last_kill = taken;
                follower = spawn();
            }
        }
    }
    follower.kill();
    assert!(kills >= 3, "the followers took lines only {kills} times");
    follow_once(f, &uri);
    let lines = unread(&j, "master");
    let expected: Vec<String> = (0..total).map(|i| format!("delivery {i}")).collect();
    assert_eq!(lines.len(), expected.len(), "after {kills} kills");
    assert!(lines == expected, "every line once, in order");
}
