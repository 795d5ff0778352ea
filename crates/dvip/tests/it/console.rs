//! The console client against a stand-in daemon: what `dvip` sends for each command and how it
//! shows the reply. (dvipd's side is tested in dvipd's own tests, with a real daemon.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

use dvip_console::{
    Announced, Answer, Arp, ArpMode, BusStatus, ConfigStatus, Gathered, Info, Status, ViewStatus,
};
use serde_json::{json, Value};

use crate::{dvip, text};

/// Answers one request with `reply` and hands back the request it got.
fn stand_in(reply: Value) -> (PathBuf, JoinHandle<Value>) {
    stand_in_lines(vec![reply])
}

/// Answers one request with `lines` (a reply, or a stream's acceptance and its events), then
/// goes away; hands back the request it got.
fn stand_in_lines(lines: Vec<Value>) -> (PathBuf, JoinHandle<Value>) {
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
        for reply in lines {
            writer
                .write_all(format!("{reply}\n").as_bytes())
                .expect("reply");
        }
        serde_json::from_str(&line).expect("the request is JSON")
    });
    (path, handle)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A `show` reply of node `n1`, as dvipd would send it.
fn status() -> Value {
    Answer::Status(Box::new(Status {
        node: "n1".into(),
        standby: false,
        view: ViewStatus {
            id: Some(7),
            members: vec!["n1".into(), "n2".into()],
            silent: Default::default(),
            ready: true,
            mature: true,
            stable_ms: Some(12_345),
        },
        addresses: Vec::new(),
        not_plumbed: Default::default(),
        given_up_interfaces: Default::default(),
        table: "ADDRESS       OWNER\n198.51.100.1  n1\n".into(),
        moves: Vec::new(),
        config: ConfigStatus {
            addresses: 1,
            stable_ms: 125_000,
        },
        waiting_for_corosync: false,
        lease: None,
    }))
    .to_json()
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
    let info = Answer::Info(Box::new(Info {
        node: "n1".into(),
        version: "0.1.0".into(),
        pid: 42,
        uptime_ms: 3_600_000,
        config_file: "/etc/dvip.conf".into(),
        config: ConfigStatus {
            addresses: 3,
            stable_ms: 1000,
        },
        bus: BusStatus::Corosync {
            group: "ec_cluster".into(),
            joined: false,
        },
        address_lifetime_s: 6,
        holders: 0,
        held_on_holders: 0,
        guardian_pid: None,
        arp_all_hosts: false,
        hook: Some("/usr/local/bin/hook".into()),
        held: 2,
        not_plumbed: Default::default(),
        given_up_interfaces: Default::default(),
        interfaces_down: Vec::new(),
        forwarding: vec!["198.51.100.1:25 -> 127.0.0.1:2525".into()],
        socket: "/run/dvip/dvipd.sock".into(),
    }))
    .to_json();
    let arp = Answer::Arp(Arp {
        node: "n1".into(),
        mode: ArpMode::Neighbours,
        addresses: vec![Announced {
            address: "198.51.100.1".parse().expect("address"),
            interface: "eth0".into(),
            announcements: 3,
            frames_last: 2,
            last_at_ms: Some(1),
        }],
    })
    .to_json();
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
    let cases: [(&[&str], Value); 9] = [
        (&["standby"], json!({"v": 1, "command": "standby"})),
        (
            &["online", "node3"],
            json!({"v": 1, "command": "online", "node": "node3"}),
        ),
        (&["online"], json!({"v": 1, "command": "online"})),
        (
            &["cluster", "duravip", "announce", "view"],
            json!({"v": 1, "command": "announce-view"}),
        ),
        (
            &["move", "198.51.100.9", "to", "n2"],
            json!({"v": 1, "command": "move", "address": "198.51.100.9", "to": "n2"}),
        ),
        (
            &["move", "clear", "198.51.100.9"],
            json!({"v": 1, "command": "move-clear", "address": "198.51.100.9"}),
        ),
        (
            &["reload", "--force"],
            json!({"v": 1, "command": "reload", "force": true}),
        ),
        (
            &[
                "cache",
                "set",
                "greylist",
                "198.51.100.7",
                "seen",
                "--ttl",
                "5M",
            ],
            json!({"v": 1, "command": "cache-set", "cache": "greylist", "key": "198.51.100.7",
                   "value": "seen", "ttl_s": 300}),
        ),
        (
            &["cache", "del", "greylist", "198.51.100.7"],
            json!({"v": 1, "command": "cache-delete", "cache": "greylist", "key": "198.51.100.7"}),
        ),
    ];
    for (args, expected) in cases {
        let (socket, server) = stand_in(json!({"ok": true, "addresses": 3}));
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
    let reply = Answer::Gathered(Gathered {
        replies: [("n1".to_owned(), status()), ("n2".to_owned(), second)].into(),
        missing: vec!["n3".into()],
    })
    .to_json();
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
        json!({"v": 1, "command": "broadcast", "request": {"command": "show"}})
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a silent node fails the command"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("== n1\nnode n1, view 7"), "{stdout}");
    assert!(stdout.contains("== n2\nnode n2, view 7"), "{stdout}");
    assert!(text(&out.stderr).contains("no reply in time from n3"));
    let _ = std::fs::remove_file(socket);

    let refused = dvip(&["broadcast", "standby", "--socket", "/nonexistent"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("cannot be broadcast"));
}

#[test]
fn errors_are_json_with_json_and_the_socket_comes_from_dvip_socket() {
    let (socket, server) = stand_in(json!({"ok": false, "kind": "refused", "error": "no view"}));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dvip"))
        .args(["standby", "--json"])
        .env("DVIP_SOCKET", &socket)
        .output()
        .expect("dvip runs");
    assert_eq!(server.join().expect("server")["command"], "standby");
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_str(&text(&out.stdout)).expect("an error as JSON");
    assert_eq!(
        printed,
        json!({"ok": false, "kind": "refused", "error": "no view"})
    );
    let _ = std::fs::remove_file(socket);

    let none = dvip(&["info", "--json", "--socket", "/nonexistent/dvipd.sock"]);
    assert_eq!(none.status.code(), Some(1));
    let printed: Value = serde_json::from_str(&text(&none.stdout)).expect("an error as JSON");
    assert_eq!(printed["kind"], "unreachable");
}

#[test]
fn events_print_readable_lines_or_json_lines() {
    let events = vec![
        json!({"event": "acquire", "address": "198.51.100.1", "at_ms": 3_723_004}),
        json!({"event": "silent", "view_id": 9, "members": ["n3"], "at_ms": 3_723_010}),
    ];
    for json in [false, true] {
        let mut lines = vec![json!({"ok": true})];
        lines.extend(events.iter().cloned());
        let (socket, server) = stand_in_lines(lines);
        let mut args = vec!["events", "--socket", socket.to_str().expect("utf-8")];
        if json {
            args.push("--json");
        }
        let out = dvip(&args);
        assert_eq!(server.join().expect("server")["command"], "events");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        if json {
            let read: Vec<Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            assert_eq!(read, events);
        } else {
            assert_eq!(lines[0], "01:02:03.004 acquire      acquired 198.51.100.1");
            assert!(
                lines[1].contains("silent") && lines[1].contains("no State in time from n3"),
                "{stdout}"
            );
        }
        let _ = std::fs::remove_file(socket);
    }
}

#[test]
fn status_shows_every_node_the_marks_with_what_each_member_says_and_the_last_moves() {
    let reply = json!({
        "ok": true, "node": "n1", "waiting_for_corosync": false, "addresses": 2,
        "view": {"id": 9, "members": ["n1"], "silent": [], "ready": true, "mature": true,
                 "stable_ms": 65_000},
        "config": {"addresses": 2, "stable_ms": 7_200_000},
        "nodes": [
            {"name": "n1", "state": "online", "owns": 2, "held": ["198.51.100.1", "198.51.100.2"]},
            {"name": "n2", "state": "offline", "owns": 0, "held": []}
        ],
        "in_transit": [],
        "not_plumbed": {"n1": ["198.51.100.2"]},
        "configurations": [["n1"], ["n3"]],
        "marked": [{"address": "198.51.100.1", "marks": ["UNSAFE"], "owner": "n1",
                    "said": {"n1": {"bindings": ["a"], "listener_ports": [25],
                                    "preference": null, "follows": null},
                             "n3": null}}],
        "changes": [{"at_ms": 3_723_004, "view_id": 9, "address": "198.51.100.2",
                     "from": "n2", "to": "n1", "reason": "assigned"}],
        "moves": [{"address": "198.51.100.1", "to": "n1"}]
    });
    let (socket, server) = stand_in(reply);
    let out = dvip(&["status", "--socket", socket.to_str().expect("utf-8")]);
    assert_eq!(server.join().expect("server")["command"], "status");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "cluster as n1 sees it: view 9 of 1 members, settled, stable for 1 min 05 s",
        "n1               online       2     2",
        "n2               offline      -     -",
        "NOT PLUMBED on n1 (held, retried, dark until then): 198.51.100.2",
        "  198.51.100.1 UNSAFE (owner n1)",
        "    n1: bindings a; ports 25",
        "    n3: does not configure it",
        "configurations DIFFER between members: n1 | n3",
        "standing moves (until `dvip move clear ADDRESS`): 198.51.100.1 -> n1",
        "  01:02:03.004  view 9      198.51.100.2             n2 -> n1  (assigned)",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in\n{stdout}");
    }
    let _ = std::fs::remove_file(socket);
}

#[test]
fn cidr_show_sends_the_query_prints_the_rows_and_refuses_a_wrong_query_with_2() {
    let reply = json!({"ok": true, "node": "n1", "shared": true, "window_s": 60, "rows": [
        {"prefix": "203.0.113.0/24", "open": 4, "recent": 31}
    ]});
    let (socket, server) = stand_in(reply);
    let out = dvip(&[
        "cidr",
        "show",
        "count",
        "for",
        "203.0.113.9/16",
        "in",
        "inbound",
        "cidrsize",
        "24",
        "order",
        "by",
        "count",
        "limit",
        "10",
        "--socket",
        socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sent = server.join().expect("server");
    assert_eq!(sent["command"], "cidr", "{sent}");
    assert_eq!(
        sent["query"],
        json!({"network": "203.0.0.0", "len": 16, "direction": "inbound", "sizes": [24, 24],
               "order": "count", "limit": 10, "threshold": null, "window_s": 60, "from": null}),
        "{sent}"
    );
    let shown = text(&out.stdout);
    assert!(shown.contains("the cluster's counts"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("203.0.113.0/24") && l.ends_with("31")),
        "{shown}"
    );
    let _ = std::fs::remove_file(socket);
    let reply = json!({"ok": true, "node": "n1", "shared": true, "from": "n2", "window_s": 30,
                       "rows": []});
    let (socket, server) = stand_in(reply);
    let one = dvip(&[
        "cidr",
        "show",
        "count",
        "for",
        "203.0.113.0/24",
        "in",
        "outbound",
        "window",
        "30",
        "from",
        "n2",
        "--socket",
        socket.to_str().expect("utf-8"),
    ]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    let sent = server.join().expect("server");
    assert_eq!(sent["query"]["from"], "n2", "{sent}");
    assert_eq!(sent["query"]["window_s"], 30, "{sent}");
    assert!(
        text(&one.stdout).contains("n2's counts"),
        "{}",
        text(&one.stdout)
    );
    let _ = std::fs::remove_file(socket);
    let wrong = dvip(&[
        "cidr",
        "show",
        "count",
        "for",
        "203.0.113.0/24",
        "in",
        "sideways",
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("expected `inbound` or `outbound`"),
        "{}",
        text(&wrong.stderr)
    );
}

/// Runs `args` against a stand-in that answers `reply`; the request it got and the output.
fn ask(args: &[&str], reply: Value) -> (Value, std::process::Output) {
    let (socket, server) = stand_in(reply);
    let mut all = args.to_vec();
    all.extend(["--socket", socket.to_str().expect("utf-8")]);
    let out = dvip(&all);
    let sent = server.join().expect("server");
    let _ = std::fs::remove_file(socket);
    (sent, out)
}

#[test]
fn replicated_data_is_shown_by_domain_throttle_and_cache() {
    let (sent, out) = ask(
        &["domains", "show", "--group", "warm", "--window", "300"],
        json!({"ok": true, "node": "n1", "shared": true, "group": "warm", "window_s": 300,
               "rows": [{"domain": "example.com", "group": "warm", "open": 7, "recent": 40}]}),
    );
    assert_eq!(
        sent,
        json!({"v": 1, "command": "domains", "group": "warm", "window_s": 300})
    );
    let shown = text(&out.stdout);
    assert!(
        shown.contains("the cluster's outbound connections of binding group warm"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("example.com") && l.ends_with("40")),
        "{shown}"
    );

    let (sent, out) = ask(
        &["throttle", "show"],
        json!({"ok": true, "node": "n1", "shared": false, "rows": [
            {"name": "bounces", "hits_allowed": 100, "window_s": 60, "hits": 12, "hits_here": 12}
        ]}),
    );
    assert_eq!(sent, json!({"v": 1, "command": "throttles"}));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("shared_named_throttles is not replicated"),
        "{shown}"
    );
    assert!(shown.lines().any(|l| l.starts_with("bounces")), "{shown}");

    let (sent, out) = ask(
        &["cache", "show", "--json"],
        json!({"ok": true, "node": "n1", "caches": [
            {"name": "greylist", "keys": 3, "max_size": null, "snapshot": true}
        ]}),
    );
    assert_eq!(sent, json!({"v": 1, "command": "caches"}));
    let printed: Value = serde_json::from_str(&text(&out.stdout)).expect("--json prints JSON");
    assert_eq!(printed["caches"][0]["keys"], 3);

    // `cache get` prints the value alone; a missing key exits 1 and says so.
    let (sent, out) = ask(
        &["cache", "get", "greylist", "198.51.100.7"],
        json!({"ok": true, "node": "n1", "cache": "greylist", "key": "198.51.100.7",
               "value": {"value": "seen", "ttl_ms": 1000}}),
    );
    assert_eq!(
        sent,
        json!({"v": 1, "command": "cache-get", "cache": "greylist", "key": "198.51.100.7"})
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "seen\n".to_owned())
    );
    let (_, out) = ask(
        &["cache", "get", "greylist", "198.51.100.8"],
        json!({"ok": true, "node": "n1", "cache": "greylist", "key": "198.51.100.8",
               "value": null}),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no key `198.51.100.8` in cache greylist"));
    let wrong = dvip(&["cache", "set", "greylist", "k", "v", "--ttl", "soon"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("time to live"),
        "{}",
        text(&wrong.stderr)
    );
}
