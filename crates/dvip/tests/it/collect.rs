//! `dvip collect` against a real dvipd's log service, inside a network namespace: the
//! aggregator is killed with SIGKILL again and again while lines are written, and the
//! aggregated file ends with every line once, in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dvip_journal::{CreateOptions, Durability, Journal, Writer};
use dvip_netns::Netns;
use dvip_tls::TlsDir;

use crate::{dvip, text};

const PORT: u16 = 14803;

fn dvipd_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_dvip")).with_file_name("dvipd");
    assert!(path.exists(), "no dvipd at {}", path.display());
    path
}

/// A child killed and waited for on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a file");
}

fn lines_in(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A node serving `maillog` with the log service, certificates for it and for `collector`,
/// and an aggregator's file writing into `out` (which the caller may mount first).
struct Lab {
    ns: Netns,
    tmp: tempfile::TempDir,
    writer: Writer,
    collect_conf: PathBuf,
    /// dvipd, while it runs.
    node: Option<Running>,
}

impl Lab {
    fn new(prefix: &str) -> Self {
        let ns = Netns::new(prefix);
        ns.loopback_up();
        let tmp = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(tmp.path().join("out")).expect("out");
        Self::with(ns, tmp)
    }

    fn with(ns: Netns, tmp: tempfile::TempDir) -> Self {
        let root = tmp.path();
        let tls = TlsDir::new(root.join("tls"));
        tls.init("test", 1, false).expect("a CA");
        tls.issue("solo", &[], 1).expect("the node's");
        tls.issue("collector", &[], 1).expect("the aggregator's");
        let journal = root.join("mail.cluster");
        let options = CreateOptions {
            subscribers: vec!["master".into(), "archive".into()],
            ..CreateOptions::default()
        };
        let writer = Writer::new(
            Journal::open_or_create(&journal, &options).expect("journal"),
            Durability::Process,
        );
        write(
            &root.join("node.conf"),
            &format!(
                r#"
    ESMTP_Listener {{ Listen "198.51.100.31:25" {{ Enable_Duravip = true }} }}
    cluster {{
      nodename = solo
      cluster_listener = "127.0.0.1:{PORT}"
      logs = [ maillog = "{}" ]
      Topology "198.51.100.0/24" {{ interface = "dv0" }}
    }}
    "#,
                journal.display()
            ),
        );
        let collect_conf = root.join("collect.conf");
        write(
            &collect_conf,
            &format!(
                r#"
    Logs {{
      logfile = "{out}/%{{l}}/%{{n}}"
      file_mode = "0640"
      state_dir = "{state}"
      tls_dir = "{tls}"
      Manager "collector" {{
        Node "solo" {{ address = "127.0.0.1:{PORT}"  Subscriber = ( master ) }}
      }}
    }}
    "#,
                out = root.join("out").display(),
                state = root.join("collect-state").display(),
                tls = tls.path().display(),
            ),
        );

        let check = dvip(&[
            "collect",
            "--check",
            "--config",
            collect_conf.to_str().expect("utf-8"),
        ]);
        assert!(check.status.success(), "{}", text(&check.stderr));
        let mut lab = Self {
            ns,
            tmp,
            writer,
            collect_conf,
            node: None,
        };
        lab.start_node();
        lab
    }

    /// Starts dvipd (again).
    fn start_node(&mut self) {
        let root = self.tmp.path();
        self.node = Some(Running(
            self.ns
                .command(dvipd_path().to_str().expect("utf-8"))
                .args(["--bus", "standalone", "--config"])
                .arg(root.join("node.conf"))
                .arg("--socket")
                .arg(root.join("node.sock"))
                .arg("--state-dir")
                .arg(root.join("node-state"))
                .arg("--tls-dir")
                .arg(root.join("tls"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dvipd starts"),
        ));
    }

    /// What `dvip collect status --json` says.
    fn status(&self) -> serde_json::Value {
        let out = dvip(&[
            "collect",
            "status",
            "--json",
            "--config",
            self.collect_conf.to_str().expect("utf-8"),
        ]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the status's `maillog` entry passes `check`.
    fn wait_status(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            let stream = status["streams"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["log"] == "maillog"))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            if check(&stream) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the status never showed {what}: {status}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Appends lines `from..to` to the journal and to `want`.
    fn write_lines(&mut self, from: usize, to: usize, want: &mut Vec<String>) {
        let batch: Vec<String> = (from..to).map(|i| format!("line {i}")).collect();
        self.writer
            .append_batch(
                dvip_journal::Timestamp::from_system(std::time::SystemTime::now()),
                batch.iter().map(String::as_bytes),
            )
            .expect("append");
        want.extend(batch);
    }

    fn collect(&self) -> Running {
        self.collect_with(&[])
    }

    fn collect_with(&self, flags: &[&str]) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("collect.log"))
            .expect("a log");
        Running(
            self.ns
                .command(env!("CARGO_BIN_EXE_dvip"))
                .args(["collect", "--config"])
                .arg(&self.collect_conf)
                .args(flags)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("dvip collect starts"),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("collect.log")).unwrap_or_default()
    }

    fn out(&self) -> PathBuf {
        self.root().join("out").join("maillog").join("solo")
    }

    /// Waits for every line, stops the aggregator, and checks each line is there once, in
    /// order.
    fn finish(&self, aggregator: Running, want: &[String]) {
        self.wait_lines(want, Duration::from_secs(60));
        drop(aggregator);
        let have = lines_in(&self.out());
        assert_eq!(have.len(), want.len(), "no line twice");
        assert!(have == want, "every line once and in order");
    }

    /// Waits until the aggregated file holds as many lines as `want`.
    fn wait_lines(&self, want: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let have = lines_in(&self.out());
            if have.len() >= want.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} lines after {within:?}:\n{}",
                have.len(),
                want.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn an_aggregator_killed_again_and_again_writes_every_line_once() {
    let mut lab = Lab::new("dvip-co");
    let total = 24_000;
    let mut want = Vec::new();
    let mut seed = 0x2545_f491_u32;
    let mut next = 0;
    for _ in 0..8 {
        // Lines wait in the journal; the aggregator starts, and is killed while it replays
        // them, at a moment that differs each round (batch writes, syncs and commits take
        // a few milliseconds each).
        for _ in 0..30 {
            lab.write_lines(next, next + 100, &mut want);
            next += 100;
        }
        let aggregator = lab.collect();
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        std::thread::sleep(Duration::from_millis(u64::from(5 + seed % 40)));
        drop(aggregator);
    }
    assert_eq!(next, total);
    let aggregator = lab.collect_with(&["--metrics", "127.0.0.1:19480"]);
    lab.wait_lines(&want, Duration::from_secs(60));
    lab.wait_status("the log connected and caught up", |s| {
        s["connected"] == true && s["lag_records"] == 0 && s["last"].is_object()
    });
    // A second aggregator on the same state directory is refused.
    let second = dvip(&[
        "collect",
        "--config",
        lab.collect_conf.to_str().expect("utf-8"),
    ]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another dvip collect runs"),
        "{}",
        text(&second.stderr)
    );
    let metrics = lab.ns.run(|| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", 19480)).expect("metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("request");
        let mut body = String::new();
        stream.read_to_string(&mut body).expect("response");
        body
    });
    for line in [
        "dvip_collect_connected{node=\"solo\",log=\"maillog\"} 1",
        "dvip_collect_lag_records{node=\"solo\",log=\"maillog\"} 0",
        "dvip_collect_written_lines_total{node=\"solo\",log=\"maillog\"} ",
    ] {
        assert!(metrics.contains(line), "{line:?} missing in\n{metrics}");
    }
    drop(aggregator);
    let have = lines_in(&lab.out());
    assert_eq!(have.len(), want.len(), "no line twice");
    assert!(have == want, "every line once and in order");
}

/// A tmpfs mounted for a test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Self(at.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_aggregator_whose_disk_fills_stops_says_so_and_resumes_without_a_gap_or_a_repeat() {
    let ns = Netns::new("dvip-cf");
    ns.loopback_up();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(tmp.path().join("out")).expect("out");
    let mut lab = Lab::with(ns, tmp);
    // Room for a few thousand of the 20,000 lines. Declared after the lab, so it is
    // unmounted before the lab's directory is removed, even when the test fails.
    let mount = Mount::tmpfs(&lab.root().join("out"), "64k");
    let mut want = Vec::new();
    lab.write_lines(0, 20_000, &mut want);
    let aggregator = lab.collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.log().contains("No space left on device") {
        assert!(
            Instant::now() < deadline,
            "no word of the full disk:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = lines_in(&lab.out());
    assert!(
        written.len() < want.len(),
        "the disk was full before the end"
    );
    assert_eq!(
        written[..],
        want[..written.len()],
        "what went in is whole and in order"
    );
    mount.resize("16m");
    lab.finish(aggregator, &want);
}

#[test]
fn the_shipped_aggregator_unit_passes_systemd_s_own_check() {
    let unit = include_str!("../../../../packaging/dvip-collect.service");
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("dvip-collect.service");
    write(
        &path,
        &unit.replace(
            "/usr/sbin/dvip ",
            &format!("{} ", env!("CARGO_BIN_EXE_dvip")),
        ),
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().expect("utf-8")])
        .output()
        .expect("systemd-analyze (package systemd) runs");
    let complaints = text(&out.stderr);
    assert!(
        out.status.success() && !complaints.contains("dvip-collect.service"),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn a_node_that_dies_mid_replay_and_a_cut_link_lose_and_repeat_nothing() {
    let mut lab = Lab::new("dvip-cd");
    let mut want = Vec::new();
    lab.write_lines(0, 30_000, &mut want);
    let aggregator = lab.collect();
    // The node dies while its log is being replayed, and comes back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines_in(&lab.out()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing replayed:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    lab.node = None;
    lab.wait_status("the node gone", |s| s["connected"] == false);
    lab.write_lines(30_000, 31_000, &mut want);
    lab.start_node();
    lab.wait_lines(&want, Duration::from_secs(60));

    // The link is cut (every packet to the service dropped) while lines keep coming.
    let nft = |lab: &Lab, script: &str| {
        let status = lab
            .ns
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(script.as_bytes())?;
                child.wait()
            })
            .expect("nft runs");
        assert!(status.success(), "nft: {script}");
    };
    nft(
        &lab,
        &format!(
        "table inet cut {{\n chain input {{\n  type filter hook input priority 0;\n  tcp dport {PORT} drop\n  tcp sport {PORT} drop\n }}\n}}\n"
    ),
    );
    lab.write_lines(31_000, 32_000, &mut want);
    lab.wait_status("the cut noticed", |s| {
        s["connected"] == false
            && s["error"]
                .as_str()
                .is_some_and(|e| e.contains("silent") || e.contains("answer"))
    });
    nft(&lab, "delete table inet cut");
    lab.finish(aggregator, &want);
}

#[test]
fn the_shipped_example_passes_the_check() {
    let example = crate::root().join("packaging/collect.conf.example");
    let out = dvip(&[
        "collect",
        "--check",
        "--config",
        example.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid for aggregator collector (3 nodes"));
}

#[test]
fn two_aggregators_with_their_own_subscribers_each_get_every_line() {
    let mut lab = Lab::new("dvip-c2");
    let root = lab.root().to_owned();
    let tls = TlsDir::new(root.join("tls"));
    tls.issue("archive", &[], 1)
        .expect("the second aggregator's");
    let archive_conf = root.join("archive.conf");
    write(
        &archive_conf,
        &format!(
            r#"
Logs {{
  logfile = "{out}/%{{l}}/%{{n}}"
  state_dir = "{state}"
  tls_dir = "{tls}"
  Manager "archive" {{
    Node "solo" {{ address = "127.0.0.1:{PORT}" }}
  }}
}}
"#,
            out = root.join("archive-out").display(),
            state = root.join("archive-state").display(),
            tls = tls.path().display(),
        ),
    );
    let mut want = Vec::new();
    lab.write_lines(0, 5_000, &mut want);
    let archive = Running(
        lab.ns
            .command(env!("CARGO_BIN_EXE_dvip"))
            .args(["collect", "--config"])
            .arg(&archive_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the second aggregator starts"),
    );
    let aggregator = lab.collect();
    lab.write_lines(5_000, 8_000, &mut want);
    // The second reads as `archive` (its name, the default before `master`).
    let archived = root.join("archive-out").join("maillog").join("solo");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_in(&archived).len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "the archive has {} of {}",
            lines_in(&archived).len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(archive);
    assert!(
        lines_in(&archived) == want,
        "the archive has every line once, in order"
    );
    // Killed, the archive's status goes stale, and `status` says it is not running.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = dvip(&[
            "collect",
            "status",
            "--config",
            archive_conf.to_str().expect("utf-8"),
        ]);
        if out.status.code() == Some(1) && text(&out.stdout).contains("NOT RUNNING") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a killed aggregator still looks alive:\n{}",
            text(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.finish(aggregator, &want);
}
