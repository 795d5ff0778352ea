//! The console client against a stand-in daemon: what `dvip` sends for each command and how it
//! shows the reply. (dvipd's side is tested in dvipd's own tests, with a real daemon.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

use serde_json::{json, Value};

use crate::{dvip, text};

/// Answers one request with `reply` and hands back the request it got.
fn stand_in(reply: Value) -> (PathBuf, JoinHandle<Value>) {
    let path = std::env::temp_dir().join(format!(
        "dvip-console-{}-{}.sock",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind a test socket");
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the client connects");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("a request line");
        let mut writer = &stream;
        writer
            .write_all(format!("{reply}\n").as_bytes())
            .expect("reply");
        serde_json::from_str(&line).expect("the request is JSON")
    });
    (path, handle)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn status() -> Value {
    json!({
        "ok": true, "node": "n1", "standby": false,
        "view": {"id": 7, "members": ["n1", "n2"], "ready": true, "mature": true, "stable_ms": 12_345},
        "config": {"addresses": 1, "stable_ms": 125_000},
        "addresses": [],
        "table": "ADDRESS       OWNER\n198.51.100.1  n1\n",
    })
}

#[test]
fn show_and_its_spec_spelling_print_the_view_and_the_table() {
    for args in [&["show"][..], &["cluster", "duravip", "show"]] {
        let (socket, server) = stand_in(status());
        let mut all = args.to_vec();
        all.extend(["--socket", socket.to_str().expect("utf-8")]);
        let out = dvip(&all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(server.join().expect("server")["command"], "show");
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("node n1, view 7 of 2 (n1, n2): settled\n"),
            "{stdout}"
        );
        assert!(stdout.contains("198.51.100.1  n1"), "{stdout}");
        assert!(
            stdout.contains(
                "view stable for 12.3 s, configuration (1 addresses) stable for 2 min 05 s"
            ),
            "{stdout}"
        );
        let _ = std::fs::remove_file(socket);
    }
}

#[test]
fn membership_info_and_arp_show_print_their_reports_and_json_on_request() {
    let info = json!({
        "ok": true, "node": "n1", "version": "0.1.0", "pid": 42, "uptime_ms": 3_600_000,
        "config_file": "/etc/dvip.conf", "config": {"addresses": 3, "stable_ms": 1000},
        "bus": {"kind": "corosync", "group": "ec_cluster", "joined": false},
        "address_lifetime_s": 6, "arp_all_hosts": false, "hook": "/usr/local/bin/hook",
        "held": 2, "forwarding": ["198.51.100.1:25 -> 127.0.0.1:2525"],
    });
    let arp = json!({
        "ok": true, "node": "n1", "mode": "neighbours",
        "addresses": [{"address": "198.51.100.1", "interface": "eth0", "announcements": 3,
                       "frames_last": 2, "last_at_ms": 1}],
    });
    let cases: [(&[&str], &str, Value, &[&str]); 3] = [
        (
            &["membership"],
            "show",
            status(),
            &["view 7 of 2 (n1, n2): settled", "view stable for 12.3 s"],
        ),
        (
            &["info"],
            "info",
            info,
            &[
                "dvipd 0.1.0 on node n1 (pid 42), up 1 h 00 min",
                "NOT JOINED",
                "known neighbours only",
                "forwarding 198.51.100.1:25 -> 127.0.0.1:2525",
            ],
        ),
        (
            &["arp", "show"],
            "arp-show",
            arp,
            &["known neighbours only", "198.51.100.1"],
        ),
    ];
    for (args, command, reply, expected) in cases {
        for json in [false, true] {
            let (socket, server) = stand_in(reply.clone());
            let mut all = args.to_vec();
            all.extend(["--socket", socket.to_str().expect("utf-8")]);
            if json {
                all.push("--json");
            }
            let out = dvip(&all);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert_eq!(server.join().expect("server")["command"], command);
            let stdout = text(&out.stdout);
            if json {
                let printed: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
                assert_eq!(printed, reply, "{args:?}");
            } else {
                for line in expected {
                    assert!(
                        stdout.contains(line),
                        "{args:?}: {line:?} missing in\n{stdout}"
                    );
                }
            }
            let _ = std::fs::remove_file(socket);
        }
    }
}

#[test]
fn commands_send_what_the_daemon_expects() {
    let cases: [(&[&str], Value); 4] = [
        (&["standby"], json!({"command": "standby"})),
        (&["online"], json!({"command": "online"})),
        (
            &["cluster", "duravip", "announce", "view"],
            json!({"command": "announce-view"}),
        ),
        (
            &["move", "198.51.100.9", "to", "n2"],
            json!({"command": "move", "address": "198.51.100.9", "to": "n2"}),
        ),
    ];
    for (args, expected) in cases {
        let (socket, server) = stand_in(json!({"ok": true}));
        let mut all = args.to_vec();
        all.extend(["--socket", socket.to_str().expect("utf-8")]);
        let out = dvip(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(server.join().expect("server"), expected, "{args:?}");
        let _ = std::fs::remove_file(socket);
    }
}

#[test]
fn a_refusal_or_no_daemon_exits_1_and_says_why() {
    let (socket, server) =
        stand_in(json!({"ok": false, "error": "n9 is not a candidate for 198.51.100.9"}));
    let out = dvip(&[
        "move",
        "198.51.100.9",
        "to",
        "n9",
        "--socket",
        socket.to_str().expect("utf-8"),
    ]);
    let _ = server.join();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("n9 is not a candidate"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_file(socket);
    let none = dvip(&["show", "--socket", "/nonexistent/dvipd.sock"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("is dvipd running?"));
    assert_eq!(
        dvip(&["move", "198.51.100.9", "onto", "n2"]).status.code(),
        Some(2),
        "the word is `to`"
    );
}

#[test]
fn broadcast_sends_the_inner_request_and_shows_each_node_s_reply() {
    let mut second = status();
    second["node"] = json!("n2");
    let reply = json!({"ok": false, "replies": {"n1": status(), "n2": second},
                       "missing": ["n3"], "error": "no reply within 3 s from n3"});
    let (socket, server) = stand_in(reply);
    let out = dvip(&[
        "broadcast",
        "cluster",
        "duravip",
        "show",
        "--socket",
        socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        server.join().expect("server"),
        json!({"command": "broadcast", "request": {"command": "show"}})
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a silent node fails the command"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("== n1\nnode n1, view 7"), "{stdout}");
    assert!(stdout.contains("== n2\nnode n2, view 7"), "{stdout}");
    assert!(text(&out.stderr).contains("no reply within 3 s from n3"));
    let _ = std::fs::remove_file(socket);

    let refused = dvip(&["broadcast", "standby", "--socket", "/nonexistent"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("cannot be broadcast"));
}
