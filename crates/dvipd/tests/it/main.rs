//! dvipd against a real kernel in network namespaces each test makes and removes (root
//! required, as in CI): on the standalone bus here, on corosync in `cluster`.

mod api;
mod cluster;
mod cluster_clients;
mod cluster_large;
mod cluster_rules;
mod kernel_lease;
mod limits;
mod listeners;
mod log_service;
mod logs;
mod missing_interface;
mod neighbours;
mod operations;
mod policy;
mod postfix;
mod spread;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dvip_netns::Netns;

const THREE: &str = r#"
cluster { nodename = solo  Topology "198.51.100.0/24" { interface = "dv0" } }
Binding "a" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
Binding "b" { Enable_Duravip = true  Bind_Address = 198.51.100.12 }
ESMTP_Listener { Listen "198.51.100.13:25" { Enable_Duravip = true } }
"#;

/// The addresses `THREE` puts on `dv0`.
const THREE_ADDRESSES: [&str; 3] = ["198.51.100.11", "198.51.100.12", "198.51.100.13"];

const TWO: &str = r#"
cluster { nodename = solo  Topology "198.51.100.0/24" { interface = "dv0" } }
Binding "a" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
Binding "b" { Enable_Duravip = true  Bind_Address = 198.51.100.12 }
"#;

/// A running dvipd, killed on drop if still alive; its log goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Netns, config: &std::path::Path) -> Self {
        Self::start_with(ns, config, &[], &[])
    }

    /// Like [`Daemon::start`], with more flags and environment variables.
    fn start_with(
        ns: &Netns,
        config: &std::path::Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = ns
            .command(env!("CARGO_BIN_EXE_dvipd"))
            .args([
                "--config",
                config.to_str().expect("utf-8 path"),
                "--bus",
                "standalone",
                "--socket",
                config.with_extension("sock").to_str().expect("utf-8 path"),
                "--state-dir",
                config.with_extension("state").to_str().expect("utf-8 path"),
            ])
            .args(flags)
            .args(
                ["--address-lifetime", "2"]
                    .iter()
                    .filter(|_| !flags.contains(&"--address-lifetime")),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("dvipd starts");
        Self { child, log }
    }

    fn signal(&self, name: &str) {
        // `ip netns exec` execs dvipd, so the child's pid is dvipd's.
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "dvipd did not exit within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A configuration file, removed (with the socket and log beside it) on drop.
struct Conf(PathBuf);

impl std::ops::Deref for Conf {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Conf {
    fn drop(&mut self) {
        for extension in ["conf", "sock", "lock", "log", "notify"] {
            let _ = std::fs::remove_file(self.0.with_extension(extension));
        }
        // Each test keeps its node's state apart: a standby kept by one must not reach another.
        let _ = std::fs::remove_dir_all(self.0.with_extension("state"));
    }
}

fn config(ns: &Netns, text: &str) -> Conf {
    let path = std::env::temp_dir().join(format!("{}.conf", ns.name()));
    std::fs::write(&path, text).expect("write config");
    Conf(path)
}

/// Polls `check` every 20 ms until it passes; fails with its last complaint and the log.
fn eventually(within: Duration, daemon: &Daemon, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(
                Instant::now() < deadline,
                "{why} after {within:?}:\n{}",
                daemon.log()
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until dvipd's log says `text`.
fn wait_logged(daemon: &Daemon, text: &str) {
    eventually(Duration::from_secs(5), daemon, || {
        if daemon.log().contains(text) {
            Ok(())
        } else {
            Err(format!("the log never said {text:?}"))
        }
    });
}

/// Waits until `dv0` carries exactly `want`.
fn wait_for(ns: &Netns, want: &[&str], within: Duration, daemon: &Daemon) {
    eventually(within, daemon, || {
        let have = ns.address_list();
        if have == want {
            Ok(())
        } else {
            Err(format!("wanted {want:?}, have {have:?}"))
        }
    });
}

/// Waits until the client's neighbour table points every one of `addresses` at `mac`.
fn wait_client_learns(ns: &Netns, addresses: &[&str], mac: &str, daemon: &Daemon) {
    eventually(Duration::from_secs(5), daemon, || {
        let learned = ns.client_neighbours();
        let all = addresses
            .iter()
            .all(|a| learned.iter().any(|(ip, lladdr)| ip == a && lladdr == mac));
        if all {
            Ok(())
        } else {
            Err(format!(
                "the client has {learned:?}, wanted {addresses:?} at {mac}"
            ))
        }
    });
}

#[test]
fn a_standalone_node_plumbs_its_addresses_and_sigterm_removes_them() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let mut daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    assert!(
        ns.addresses()
            .iter()
            .all(|(_, lifetime)| lifetime.is_some_and(|s| s <= 2)),
        "plumbed with a lifetime"
    );
    // Held addresses are refreshed: still there after several lifetimes.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        ns.address_list().len(),
        3,
        "refreshed, not expired:\n{}",
        daemon.log()
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        ns.address_list().is_empty(),
        "SIGTERM handed every address back"
    );
}

#[test]
fn a_killed_daemon_s_guardian_removes_its_addresses_at_once() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    // A lifetime of a minute: only the guardian can make them go within the 2 s allowed.
    let mut daemon = Daemon::start_with(&ns, &conf, &["--address-lifetime", "60"], &[]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    daemon.child.kill().expect("kill -9");
    let _ = daemon.wait_exit(Duration::from_secs(5));
    wait_for(&ns, &[], Duration::from_secs(2), &daemon);
}

/// Kills dvipd's guardian (by the pid `info` reports), so that a kill -9 of dvipd leaves its
/// addresses behind.
fn kill_guardian(conf: &std::path::Path, daemon: &Daemon) {
    let socket = conf.with_extension("sock");
    eventually(Duration::from_secs(5), daemon, || {
        socket
            .exists()
            .then_some(())
            .ok_or_else(|| "no console socket yet".to_owned())
    });
    let info = call(&socket, &serde_json::json!({"command": "info"}));
    let pid = info["guardian_pid"].as_u64().expect("a guardian pid");
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -9 the guardian");
}

#[test]
fn without_its_guardian_a_dead_daemon_s_addresses_expire_and_a_restart_cleans_up_at_once() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let mut first = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &first);
    kill_guardian(&conf, &first);
    first.child.kill().expect("kill -9");
    let _ = first.wait_exit(Duration::from_secs(5));
    assert_eq!(
        ns.address_list().len(),
        3,
        "kill -9 of dvipd and its guardian leaves the addresses (for now)"
    );
    // Restarted with a configuration that no longer has 198.51.100.13: the leftover goes at
    // start, the others are plumbed again.
    std::fs::write(&*conf, TWO).expect("write config");
    let mut second = Daemon::start(&ns, &conf);
    wait_for(
        &ns,
        &["198.51.100.11", "198.51.100.12"],
        Duration::from_secs(5),
        &second,
    );
    assert!(
        second
            .log()
            .contains("removed addresses a previous dvipd left behind"),
        "{}",
        second.log()
    );
    kill_guardian(&conf, &second);
    second.child.kill().expect("kill -9");
    let _ = second.wait_exit(Duration::from_secs(5));
    // Nobody refreshes them now: they expire by themselves (lifetime 2 s).
    wait_for(&ns, &[], Duration::from_secs(6), &second);
}

#[test]
fn sighup_reloads_and_a_bad_configuration_keeps_the_old_one() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let mut daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    std::fs::write(&*conf, "Binding \"a\" { Enable_Duravip = maybe }\n").expect("write config");
    daemon.signal("HUP");
    wait_logged(&daemon, "keeping the old one");
    assert!(
        daemon.log().contains("`maybe` is not a yes/no value"),
        "the error is in the log with its location"
    );
    assert_eq!(
        ns.address_list().len(),
        3,
        "the old configuration still runs"
    );
    std::fs::write(&*conf, TWO).expect("write config");
    daemon.signal("HUP");
    wait_for(
        &ns,
        &["198.51.100.11", "198.51.100.12"],
        Duration::from_secs(5),
        &daemon,
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
}

/// Sends `request` as a raw line and returns the raw reply: these tests hold the wire format
/// that scripts use, below the typed client.
pub(crate) fn call(socket: &std::path::Path, request: &serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("dvipd answers on {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    writeln!(stream, "{request}").expect("request written");
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .expect("a reply line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn the_console_shows_the_plan_and_standby_drains_the_node() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let socket = conf.with_extension("sock");
    let mut daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);

    assert!(
        socket.exists(),
        "no console socket at {}:\n{}",
        socket.display(),
        daemon.log()
    );
    let show = call(&socket, &serde_json::json!({"command": "show"}));
    assert_eq!(show["ok"], true);
    assert_eq!(show["node"], "solo");
    assert_eq!(show["view"]["members"], serde_json::json!(["solo"]));
    let addresses = show["addresses"].as_array().expect("addresses");
    assert_eq!(addresses.len(), 3);
    assert!(
        addresses
            .iter()
            .all(|a| a["owner"] == "solo" && a["plumbed_here"] == true),
        "{show}"
    );
    let table = show["table"].as_str().expect("table");
    assert!(table.contains("*solo"), "{table}");
    assert!(
        table.lines().next().is_some_and(|h| h.contains(" HERE ")),
        "{table}"
    );
    assert!(
        table.lines().skip(1).all(|l| l.contains(" yes ")),
        "every address is held here: {table}"
    );
    let mode = std::fs::metadata(&socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600), "the console is root's alone");

    assert_eq!(
        call(&socket, &serde_json::json!({"command": "standby"}))["ok"],
        true
    );
    wait_for(&ns, &[], Duration::from_secs(5), &daemon);
    let me = std::process::id();
    assert!(
        daemon.log().lines().any(|l| l.contains("console request")
            && l.contains("uid=0")
            && l.contains(&format!("pid={me}"))
            && l.contains("Standby")),
        "a command is logged with who gave it:\n{}",
        daemon.log()
    );
    let drained = call(&socket, &serde_json::json!({"command": "show"}));
    assert_eq!(drained["standby"], true);
    assert!(drained["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .all(|a| a["owner"].is_null()));

    assert_eq!(
        call(&socket, &serde_json::json!({"command": "online"}))["ok"],
        true
    );
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);

    let refused = call(
        &socket,
        &serde_json::json!({"command": "move", "address": "198.51.100.11", "to": "elsewhere"}),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("not a candidate"),
        "{refused}"
    );
    let garbled = call(&socket, &serde_json::json!({"command": "dance"}));
    assert!(garbled["error"]
        .as_str()
        .expect("error")
        .contains("unknown command"));

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!socket.exists(), "the socket goes with the daemon");
}

#[test]
fn every_acquisition_is_announced_to_the_link() {
    let ns = Netns::with_client("dvipd-t");
    let conf = config(&ns, THREE);
    let daemon = Daemon::start(&ns, &conf);
    let mac = ns.mac();
    wait_client_learns(
        &ns,
        &["198.51.100.11", "198.51.100.12", "198.51.100.13"],
        &mac,
        &daemon,
    );
}

#[test]
fn an_address_already_on_the_machine_is_refused_and_nothing_is_plumbed() {
    let ns = Netns::new("dvipd-t");
    // 198.51.100.12 is this node's own (management) address, not dvip's to move.
    ns.ip(&["addr", "add", "198.51.100.12/24", "dev", "dv0"]);
    let conf = config(&ns, THREE);
    let mut daemon = Daemon::start(&ns, &conf);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(1));
    assert!(
        daemon
            .log()
            .contains("198.51.100.12 already on this machine"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        ns.address_list(),
        ["198.51.100.12"],
        "nothing plumbed, the node's address untouched"
    );
}

#[test]
fn migrate_takes_over_addresses_another_failover_system_left_plumbed() {
    let ns = Netns::new("dvipd-m");
    // keepalived (or Momentum) held 198.51.100.12 here before dvip, and left it behind.
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    ns.ip(&["addr", "add", "198.51.100.12/32", "dev", "dv0"]);
    let conf = config(&ns, THREE);
    let daemon = Daemon::start_with(&ns, &conf, &["--migrate"], &[]);
    let mut want: Vec<&str> = vec!["198.51.100.1"];
    want.extend(THREE_ADDRESSES);
    wait_for(&ns, &want, Duration::from_secs(5), &daemon);
    assert!(
        daemon
            .log()
            .contains("migration: removed a DuraVIP address"),
        "{}",
        daemon.log()
    );
    // Now it is dvip's: a clean stop hands it over and removes it, the node's own stays.
    daemon.signal("TERM");
    wait_for(&ns, &["198.51.100.1"], Duration::from_secs(5), &daemon);
}

#[test]
fn an_address_removed_by_hand_is_put_back_at_once() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    // A lifetime of a minute: refreshes come every 20 s, so only the kernel's notification
    // can bring the address back within the 3 s allowed.
    let daemon = Daemon::start_with(&ns, &conf, &["--address-lifetime", "60"], &[]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    ns.ip(&["addr", "del", "198.51.100.12/32", "dev", "dv0"]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(3), &daemon);
}

#[test]
fn an_interface_that_goes_down_gives_up_its_addresses_until_it_is_back() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    ns.ip(&["link", "set", "dv0", "down"]);
    wait_for(&ns, &[], Duration::from_secs(3), &daemon);
    let info = call(&socket, &serde_json::json!({"command": "info"}));
    assert_eq!(
        info["interfaces_down"],
        serde_json::json!(["dv0"]),
        "{info}"
    );
    assert_eq!(info["held"], 0, "{info}");
    ns.ip(&["link", "set", "dv0", "up"]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
}

#[test]
fn a_link_down_lost_in_a_netlink_overrun_is_found_by_reading_the_links_again() {
    use std::io::Write;
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start_with(&ns, &conf, &["--address-lifetime", "60"], &[]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    // An announcement tried on a down interface makes the kernel report the link again,
    // which would find the change by chance: let them all be made first.
    eventually(Duration::from_secs(5), &daemon, || {
        let arp = call(&socket, &serde_json::json!({"command": "arp-show"}));
        let done = arp["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|a| a["announcements"] == 3));
        if done {
            Ok(())
        } else {
            Err(format!("announcing: {arp}"))
        }
    });
    // While dvipd cannot read, thousands of address notifications fill its netlink socket,
    // so the kernel drops the one that says dv0 went down.
    ns.ip(&[
        "link", "add", "flood0", "type", "veth", "peer", "name", "flood1",
    ]);
    ns.ip(&["link", "set", "flood0", "up"]);
    daemon.signal("STOP");
    let batch: String = (0..4000)
        .map(|i| {
            format!(
                "addr add 198.18.{}.{}/32 dev flood0\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let mut ip = Command::new("ip")
        .args(["-n", ns.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip runs");
    ip.stdin
        .take()
        .expect("stdin")
        .write_all(batch.as_bytes())
        .expect("the batch is written");
    assert!(ip.wait().expect("ip ends").success(), "ip -batch");
    ns.ip(&["link", "set", "dv0", "down"]);
    // The kernel says a link changed twice: at once, and when its operational state follows
    // (up to a second later). Both must be lost.
    eventually(Duration::from_secs(5), &daemon, || {
        let out = Command::new("ip")
            .args(["-n", ns.name(), "-j", "link", "show", "dv0"])
            .output()
            .expect("ip runs");
        let link: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        match link[0]["operstate"].as_str() {
            Some("DOWN") => Ok(()),
            other => Err(format!("dv0 is {other:?}")),
        }
    });
    daemon.signal("CONT");
    wait_for(&ns, &[], Duration::from_secs(5), &daemon);
    let info = call(&socket, &serde_json::json!({"command": "info"}));
    assert_eq!(
        info["interfaces_down"],
        serde_json::json!(["dv0"]),
        "{info}"
    );
    assert_eq!(info["held"], 0, "{info}");
    assert!(
        daemon.log().contains("netlink overrun"),
        "the overrun was seen:\n{}",
        daemon.log()
    );
    ns.ip(&["link", "set", "dv0", "up"]);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
}

#[test]
fn a_client_that_knew_the_old_owner_learns_the_new_one_for_ipv4_and_ipv6() {
    let ns = Netns::with_client("dvipd-t");
    let old = "02:00:00:00:00:99";
    ns.client_remembers("198.51.100.11", old);
    ns.client_remembers("2001:db8::11", old);
    let conf = config(
        &ns,
        r#"
cluster { nodename = solo
  Topology "198.51.100.0/24" { interface = "dv0" }
  Topology "2001:db8::/64" { interface = "dv0" } }
Binding "v4" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
Binding "v6" { Enable_Duravip = true  Bind_Address = 2001:db8::11 }
"#,
    );
    let daemon = Daemon::start(&ns, &conf);
    let mac = ns.mac();
    wait_client_learns(&ns, &["198.51.100.11", "2001:db8::11"], &mac, &daemon);
}

/// Opens the event stream of the daemon at `socket` and checks that it accepted; each later
/// read waits at most `wait`.
fn follow_events(
    socket: &std::path::Path,
    wait: Duration,
) -> std::io::Lines<std::io::BufReader<std::os::unix::net::UnixStream>> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("the console answers");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream
        .write_all(b"{\"command\":\"events\"}\n")
        .expect("request");
    let mut lines = std::io::BufReader::new(stream).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    assert_eq!(first["ok"], true);
    lines
}

#[test]
fn the_event_stream_reports_acquisitions_and_releases_as_they_happen() {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    let mut lines = follow_events(&socket, Duration::from_secs(5));
    assert_eq!(
        call(&socket, &serde_json::json!({"command": "standby"}))["ok"],
        true
    );
    let mut released = std::collections::BTreeSet::new();
    while released.len() < 3 {
        let line = lines
            .next()
            .expect("the stream goes on")
            .expect("an event within 5 s");
        let event: serde_json::Value =
            serde_json::from_str(&line).expect("one JSON object per line");
        assert!(event["at_ms"].as_u64().is_some_and(|t| t > 0), "{line}");
        if event["event"] == "release" {
            released.insert(event["address"].as_str().expect("address").to_owned());
        }
    }
    assert_eq!(
        released.into_iter().collect::<Vec<_>>(),
        ["198.51.100.11", "198.51.100.12", "198.51.100.13"]
    );
}

/// A daemon holding three addresses, put on standby and back `cycles` times while its event
/// stream is followed; returns the events once the stream has been quiet for half a second.
fn standby_and_back(cycles: usize) -> (Netns, Daemon, Vec<serde_json::Value>) {
    let ns = Netns::new("dvipd-t");
    let conf = config(&ns, THREE);
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    let lines = follow_events(&socket, Duration::from_millis(500));
    for _ in 0..cycles {
        for command in ["standby", "online"] {
            assert_eq!(
                call(&socket, &serde_json::json!({"command": command}))["ok"],
                true
            );
        }
    }
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    let events = lines
        .map_while(Result::ok)
        .map(|line| serde_json::from_str(&line).expect("one JSON object per line"))
        .collect();
    (ns, daemon, events)
}

#[test]
fn an_address_released_and_taken_again_at_once_is_not_mistaken_for_a_removal_by_hand() {
    // Several times over: each time the kernel reports the removals while, or after, the
    // addresses are plumbed again.
    let (_ns, daemon, events) = standby_and_back(5);
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for event in &events {
        *kinds
            .entry(event["event"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert!(kinds.get("release").copied().unwrap_or(0) >= 3, "{kinds:?}");
    assert_eq!(kinds.get("restored"), None, "{kinds:?}\n{}", daemon.log());
}

#[test]
fn an_acquisition_is_stamped_when_the_kernel_took_the_address_not_when_the_batch_ended() {
    let (_ns, _daemon, events) = standby_and_back(1);
    // The acquisitions of the batch are sent after its announcements; their stamps must still
    // come first: the kernel had the address before anyone was told.
    let mut acquired = std::collections::BTreeMap::<String, u64>::new();
    let mut announced = std::collections::BTreeMap::<String, u64>::new();
    for event in &events {
        let (Some(address), Some(at)) = (event["address"].as_str(), event["at_ms"].as_u64()) else {
            continue;
        };
        match event["event"].as_str() {
            Some("acquire") => {
                acquired.insert(address.to_owned(), at);
            }
            Some("announce") => {
                announced.entry(address.to_owned()).or_insert(at);
            }
            _ => {}
        }
    }
    assert_eq!(acquired.len(), 3, "{acquired:?}");
    for (address, at) in &acquired {
        let announce = announced
            .get(address)
            .expect("every acquisition is announced");
        assert!(
            at <= announce,
            "{address}: acquired at {at}, announced at {announce}"
        );
    }
}

#[test]
fn a_second_dvipd_on_the_same_node_is_refused_and_the_first_keeps_its_addresses() {
    let ns = Netns::new("dvipd-l");
    let conf = config(&ns, TWO);
    let socket = conf.with_extension("sock");
    let first = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES[..2], Duration::from_secs(5), &first);
    let log = conf.with_extension("second.log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_dvipd"))
        .args([
            "--config",
            conf.to_str().expect("utf-8 path"),
            "--bus",
            "standalone",
        ])
        .args(["--socket", socket.to_str().expect("utf-8 path")])
        .args([
            "--state-dir",
            conf.with_extension("state").to_str().expect("utf-8 path"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("dvipd starts");
    let mut second = Daemon { child, log };
    let code = second.wait_exit(Duration::from_secs(5));
    assert_ne!(code, Some(0), "{}", second.log());
    assert!(
        second.log().contains("another dvipd is already running"),
        "{}",
        second.log()
    );
    // The first still holds its addresses and answers on its socket.
    wait_for(&ns, &THREE_ADDRESSES[..2], Duration::from_secs(1), &first);
    assert_eq!(
        call(&socket, &serde_json::json!({"command": "show"}))["ok"],
        true,
        "{}",
        first.log()
    );
}

#[test]
fn release_hooks_run_to_their_end_when_dvipd_stops() {
    let ns = Netns::new("dvipd-k");
    let dir = std::env::temp_dir();
    let hook = dir.join(format!("{}-hook.sh", ns.name()));
    let record = dir.join(format!("{}-hook.out", ns.name()));
    let _ = std::fs::remove_file(&record);
    // Slow on purpose: a hook that tells a load balancer or a mail queue takes its time.
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nsleep 0.5\necho \"$1 $2\" >> {}\n",
            record.display()
        ),
    )
    .expect("hook written");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("hook executable");
    let conf = config(
        &ns,
        &TWO.replace(
            "nodename = solo",
            &format!("nodename = solo  duravip_hook = \"{}\"", hook.display()),
        ),
    );
    let mut daemon = Daemon::start(&ns, &conf);
    wait_for(&ns, &THREE_ADDRESSES[..2], Duration::from_secs(5), &daemon);
    eventually(Duration::from_secs(5), &daemon, || {
        let done = std::fs::read_to_string(&record).unwrap_or_default();
        (done.lines().filter(|l| l.starts_with("acquire")).count() == 2)
            .then_some(())
            .ok_or(format!("hooks so far: {done:?}"))
    });
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        daemon.log()
    );
    let done = std::fs::read_to_string(&record).unwrap_or_default();
    for address in &THREE_ADDRESSES[..2] {
        assert!(
            done.contains(&format!("release {address}")),
            "the release hook of {address} ran before dvipd exited: {done:?}\n{}",
            daemon.log()
        );
    }
    for path in [hook, record] {
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn a_reload_into_an_empty_or_cut_short_configuration_keeps_the_addresses_unless_forced() {
    let ns = Netns::new("dvipd-r");
    let conf = config(&ns, TWO);
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);
    let both = &THREE_ADDRESSES[..2];
    wait_for(&ns, both, Duration::from_secs(5), &daemon);
    // Cut short mid-stanza while being written: invalid, the old one stays.
    std::fs::write(&*conf, &TWO[..TWO.len() / 2]).expect("truncated");
    daemon.signal("HUP");
    eventually(Duration::from_secs(5), &daemon, || {
        daemon
            .log()
            .contains("the new configuration is invalid")
            .then_some(())
            .ok_or_else(|| "no refusal yet".to_owned())
    });
    // Empty: valid, but it would release everything.
    std::fs::write(&*conf, "").expect("emptied");
    daemon.signal("HUP");
    eventually(Duration::from_secs(5), &daemon, || {
        daemon
            .log()
            .contains("defines no DuraVIP address while 2 are running")
            .then_some(())
            .ok_or_else(|| "no refusal yet".to_owned())
    });
    let refused = call(&socket, &serde_json::json!({"command": "reload"}));
    assert_eq!(refused["ok"], false, "{refused}");
    wait_for(&ns, both, Duration::from_secs(1), &daemon);
    // The operator means it.
    let forced = call(
        &socket,
        &serde_json::json!({"command": "reload", "force": true}),
    );
    assert_eq!(forced["ok"], true, "{forced}");
    wait_for(&ns, &[], Duration::from_secs(5), &daemon);
}
