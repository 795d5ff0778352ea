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
        "view": {"id": 7, "members": ["n1", "n2"], "ready": true, "mature": true},
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
        let _ = std::fs::remove_file(socket);
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
