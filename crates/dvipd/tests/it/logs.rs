//! dvipd's log inputs with real senders: util-linux `logger` over the unix socket and over
//! loopback UDP (inside the test's namespace), a file an MTA would write, rotated under the
//! follower, and a journal that cannot be written for a while.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dvip_journal::{Journal, Reader};
use dvip_netns::Netns;

use crate::{eventually, wait_for, wait_logged, Daemon};

/// A directory for one test's journals, sockets and followed files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(ns: &Netns) -> Self {
        let path = std::env::temp_dir().join(format!("{}-logs", ns.name()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a test directory");
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_config(ns: &Netns, text: &str) -> crate::Conf {
    crate::config(ns, text)
}

/// The configuration: three logs, the unix socket and loopback UDP, two routes and a follow.
fn inputs_config(dir: &Dir, udp_port: u16, maillog: &str) -> String {
    format!(
        r#"
ESMTP_Listener {{ Listen "198.51.100.31:25" {{ Enable_Duravip = true }} }}
cluster {{
  nodename = solo
  logs = [
    maillog = "{maillog}"
    otherlog = "{other}"
    eximlog = "{exim}"
  ]
  Topology "198.51.100.0/24" {{ interface = "dv0" }}
}}
Syslog_Listener {{
  Listen "{socket}" {{ }}
  Listen "127.0.0.1:{udp_port}" {{ }}
}}
Log_Route "postfix" {{
  program = "postfix/*"
  facility = "mail"
  log = "maillog"
}}
Log_Route "warnings" {{
  facility = "local3"
  severity = "warning"
  log = "otherlog"
}}
Log_Follow "{mainlog}" {{
  log = "eximlog"
}}
"#,
        other = dir.join("other.cluster").display(),
        exim = dir.join("exim.cluster").display(),
        socket = dir.join("syslog.sock").display(),
        mainlog = dir.join("mainlog").display(),
    )
}

/// Every record `subscriber` has not read, as text; an empty list while the journal does
/// not exist yet.
fn records(journal: &Path, subscriber: &str) -> Result<Vec<String>, String> {
    let journal = match Journal::open(journal) {
        Ok(j) => j,
        Err(dvip_journal::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut reader = Reader::open(journal, subscriber).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    loop {
        let batch = reader.read(1024).map_err(|e| e.to_string())?;
        if batch.records.is_empty() {
            return Ok(all);
        }
        all.extend(
            batch
                .records
                .into_iter()
                .map(|r| String::from_utf8_lossy(&r.payload).into_owned()),
        );
    }
}

/// Waits until the messages (the part after the header) in `journal` are `want`, in order.
fn wait_messages(daemon: &Daemon, journal: &Path, want: &[&str]) {
    eventually(Duration::from_secs(5), daemon, || {
        let have = records(journal, "master")?;
        let ends: Vec<bool> = want
            .iter()
            .zip(&have)
            .map(|(w, h)| h.ends_with(w))
            .collect();
        if have.len() == want.len() && ends.iter().all(|e| *e) {
            Ok(())
        } else {
            Err(format!(
                "{} holds {have:?}, wanted {want:?}",
                journal.display()
            ))
        }
    });
}

fn logger(command: &mut Command, args: &[&str]) {
    let status = command.args(args).status().expect("logger runs");
    assert!(status.success(), "logger {args:?}");
}

fn to_socket(socket: &Path, args: &[&str]) {
    let socket = socket.to_str().expect("utf-8");
    let mut all = vec!["--socket-errors=on", "-u", socket];
    all.extend_from_slice(args);
    logger(&mut Command::new("logger"), &all);
}

#[test]
fn syslog_over_a_unix_socket_and_udp_and_a_followed_file_fill_their_journals() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let ns = Netns::new("dvipd-lg");
    ns.loopback_up();
    let dir = Dir::new(&ns);
    let maillog = dir.join("mail.cluster");
    let udp_port = 15514;
    let conf = write_config(
        &ns,
        &inputs_config(&dir, udp_port, maillog.to_str().expect("utf-8")),
    );
    std::fs::write(dir.join("mainlog"), "before start\n").expect("mainlog");
    let mut daemon = Daemon::start_with(&ns, &conf, &["--metrics", "127.0.0.1:19471"], &[]);
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);

    let socket = dir.join("syslog.sock");
    let meta = std::fs::metadata(&socket).expect("the syslog socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o666,
        "writable by all, as /dev/log"
    );

    to_socket(
        &socket,
        &[
            "--rfc3164",
            "-t",
            "postfix/smtp",
            "-p",
            "mail.info",
            "3F2A: to=<a@example.net>, status=sent",
        ],
    );
    to_socket(
        &socket,
        &[
            "--rfc5424",
            "-t",
            "postfix/qmgr",
            "-p",
            "mail.notice",
            "3F2A: removed",
        ],
    );
    // Not routed: a program no route names, and a local3 message below the route's severity.
    to_socket(&socket, &["-t", "cron", "-p", "cron.info", "tick"]);
    to_socket(&socket, &["-t", "app", "-p", "local3.info", "chatter"]);
    to_socket(&socket, &["-t", "app", "-p", "local3.err", "disk is slow"]);
    // UDP, only inside the namespace.
    let port = udp_port.to_string();
    logger(
        &mut ns.command("logger"),
        &[
            "-d",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "--rfc5424",
            "-t",
            "postfix/bounce",
            "-p",
            "mail.err",
            "3F2B: bounced",
        ],
    );
    wait_messages(
        &daemon,
        &maillog,
        &[
            "3F2A: to=<a@example.net>, status=sent",
            "3F2A: removed",
            "3F2B: bounced",
        ],
    );
    wait_messages(&daemon, &dir.join("other.cluster"), &["disk is slow"]);
    let kept = records(&maillog, "master").expect("records");
    assert!(kept[0].starts_with("<22>"), "kept as received: {kept:?}");
    assert!(
        kept[1].starts_with("<21>1 "),
        "RFC 5424 as received: {kept:?}"
    );

    // The followed file: what it held at start, lines added, then a rename rotation.
    let mainlog = dir.join("mainlog");
    let exim = dir.join("exim.cluster");
    wait_messages(&daemon, &exim, &["before start"]);
    append(&mainlog, "2026-12-06 1rX <= a@example.net\n");
    append(&mainlog, "2026-12-06 1rX => b@example.net\n");
    std::fs::rename(&mainlog, dir.join("mainlog.1")).expect("rotate");
    append(&dir.join("mainlog.1"), "2026-12-06 1rX Completed\n");
    append(&mainlog, "2026-12-06 1rY <= c@example.net\n");
    wait_messages(
        &daemon,
        &exim,
        &[
            "before start",
            "1rX <= a@example.net",
            "1rX => b@example.net",
            "1rX Completed",
            "1rY <= c@example.net",
        ],
    );

    eventually(Duration::from_secs(5), &daemon, || {
        let body = crate::operations::scrape(&ns, 19471)?;
        for line in [
            "dvip_journal_records_written_total{journal=\"maillog\"} 3",
            "dvip_journal_records_written_total{journal=\"otherlog\"} 1",
            "dvip_journal_records_written_total{journal=\"eximlog\"} 5",
            "dvip_syslog_unrouted_total 2",
            "dvip_syslog_received_total{listener=\"udp:127.0.0.1:15514\"} 1",
            "dvip_subscriber_backlog_records{journal=\"maillog\",subscriber=\"master\"} 3",
            "dvip_subscriber_backlog_records{journal=\"eximlog\",subscriber=\"master\"} 5",
            "dvip_journals_unreadable 0",
        ] {
            if !body.contains(line) {
                return Err(format!("{line:?} missing in\n{body}"));
            }
        }
        Ok(())
    });

    // A reload that routes postfix elsewhere: the sockets are bound again and the new route
    // holds for the next message.
    let conf_text = inputs_config(&dir, udp_port, maillog.to_str().expect("utf-8"))
        .replace("log = \"maillog\"", "log = \"otherlog\"");
    std::fs::write(&*conf, conf_text).expect("rewrite the configuration");
    daemon.signal("HUP");
    wait_logged(&daemon, "log inputs restarted");
    to_socket(
        &socket,
        &["-t", "postfix/smtp", "-p", "mail.info", "after the reload"],
    );
    wait_messages(
        &daemon,
        &dir.join("other.cluster"),
        &["disk is slow", "after the reload"],
    );
    assert_eq!(records(&maillog, "master").expect("records").len(), 3);

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!socket.exists(), "the socket is removed at stop");
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

#[test]
fn lines_for_a_journal_that_cannot_be_written_wait_and_arrive_once_it_can() {
    let ns = Netns::new("dvipd-lh");
    ns.loopback_up();
    let dir = Dir::new(&ns);
    // The journal's directory is taken by a plain file: every append fails until it goes.
    let maillog = dir.join("blocked.cluster");
    std::fs::write(&maillog, "not a journal").expect("a blocking file");
    let conf = write_config(
        &ns,
        &inputs_config(&dir, 15515, maillog.to_str().expect("utf-8")),
    );
    let daemon = Daemon::start_with(&ns, &conf, &["--metrics", "127.0.0.1:19472"], &[]);
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);
    let socket = dir.join("syslog.sock");
    for n in 1..=3 {
        to_socket(
            &socket,
            &[
                "-t",
                "postfix/smtp",
                "-p",
                "mail.info",
                &format!("held {n}"),
            ],
        );
    }
    eventually(Duration::from_secs(5), &daemon, || {
        let body = crate::operations::scrape(&ns, 19472)?;
        if body.contains("dvip_journal_write_errors_total{journal=\"maillog\"} ") {
            Ok(())
        } else {
            Err(format!("no write error counted in\n{body}"))
        }
    });
    assert!(daemon.log().contains("cannot append"), "{}", daemon.log());
    // This test's followed file never exists: dvipd says it waits for it.
    wait_logged(&daemon, "waiting for the file to appear");
    // The address stays served while the log input is stuck.
    assert_eq!(ns.address_list(), ["198.51.100.31"]);
    std::fs::remove_file(&maillog).expect("unblock");
    wait_messages(&daemon, &maillog, &["held 1", "held 2", "held 3"]);
    wait_logged(&daemon, "the journal takes lines again");
}

#[test]
fn a_syslog_socket_that_cannot_be_bound_stops_dvipd_before_it_plumbs() {
    let ns = Netns::new("dvipd-lb");
    ns.loopback_up();
    let dir = Dir::new(&ns);
    let maillog = dir.join("mail.cluster");
    let text = inputs_config(&dir, 15516, maillog.to_str().expect("utf-8")).replace(
        &dir.join("syslog.sock").display().to_string(),
        &dir.join("missing/syslog.sock").display().to_string(),
    );
    let conf = write_config(&ns, &text);
    let mut daemon = Daemon::start(&ns, &conf);
    let code = daemon.wait_exit(Duration::from_secs(5));
    assert_ne!(code, Some(0));
    assert!(
        daemon.log().contains("cannot listen for syslog on unix:"),
        "{}",
        daemon.log()
    );
    assert!(ns.address_list().is_empty(), "nothing plumbed");
}

#[test]
fn a_followed_file_goes_on_after_dvipd_is_killed_without_a_line_lost_or_repeated() {
    let ns = Netns::new("dvipd-lk");
    ns.loopback_up();
    let dir = Dir::new(&ns);
    let maillog = dir.join("mail.cluster");
    let conf = write_config(
        &ns,
        &inputs_config(&dir, 15517, maillog.to_str().expect("utf-8")),
    );
    let mainlog = dir.join("mainlog");
    let exim = dir.join("exim.cluster");
    let mut want: Vec<String> = Vec::new();
    for round in 0..5 {
        let daemon = Daemon::start(&ns, &conf);
        for n in 0..50 {
            let line = format!("round {round} line {n}");
            append(&mainlog, &format!("{line}\n"));
            want.push(line);
        }
        // Every other round is killed at once, in the middle of taking what was written
        // (the crash between an append and its kept position); the rest once all is in.
        if round % 2 == 0 {
            let want_now: Vec<&str> = want.iter().map(String::as_str).collect();
            wait_messages(&daemon, &exim, &want_now);
        }
        // SIGKILL, then lines written while no dvipd runs.
        drop(daemon);
        let line = format!("while stopped {round}");
        append(&mainlog, &format!("{line}\n"));
        want.push(line);
    }
    let daemon = Daemon::start(&ns, &conf);
    let want_now: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_messages(&daemon, &exim, &want_now);
}
