//! The local API of running dvipds, asked by redis-cli as an MTA's Redis client would ask:
//! the socket's file and mode, caches, and counts and throttles shared by two nodes over a
//! real corosync.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dvip_netns::Netns;

use crate::Daemon;

/// redis-cli's reply to `args` on `socket`, as it prints it without a terminal.
fn redis(socket: &Path, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .expect("redis-cli runs (apt redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// Asks until the reply is `want`, within `within`; how long it took.
fn until(
    socket: &Path,
    args: &[&str],
    want: &str,
    within: Duration,
    logs: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = redis(socket, args);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{args:?} still says {got:?}, not {want:?}, after {within:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_node_serves_caches_on_a_socket_with_the_configured_mode_replacing_a_stale_one() {
    let ns = Netns::new("dvipd-api");
    ns.loopback_up();
    let dir = tempfile::tempdir().expect("a directory");
    let socket = dir.path().join("api.sock");
    // A socket file left by a dvipd that died: the next one replaces it.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("a stale socket"));
    let text = format!(
        r#"
cluster {{
  nodename = solo
  Topology "198.51.100.0/24" {{ interface = "dv0" }}
  Replicate "greylist" {{ type = "cache" max_size = 2 }}
}}
Binding "a" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}
Replication_Listener {{ Listen "{}" {{ mode = "0600" group = "0" }} }}
"#,
        socket.display()
    );
    let conf = crate::config(&ns, &text);
    let daemon = Daemon::start_with(&ns, &conf, &["--metrics", "127.0.0.1:19475"], &[]);
    let logs = || daemon.log();
    until(&socket, &["PING"], "PONG", Duration::from_secs(10), logs);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(&socket).expect("the socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "the configured mode");
    assert_eq!(meta.gid(), 0);

    assert_eq!(
        redis(&socket, &["SET", "greylist:198.51.100.7", "seen"]),
        "OK"
    );
    assert_eq!(redis(&socket, &["GET", "greylist:198.51.100.7"]), "seen");
    assert_eq!(redis(&socket, &["TTL", "greylist:198.51.100.7"]), "-1");
    assert_eq!(
        redis(&socket, &["SET", "greylist:b", "2", "EX", "100"]),
        "OK"
    );
    let ttl: u64 = redis(&socket, &["TTL", "greylist:b"])
        .parse()
        .expect("seconds");
    assert!((99..=100).contains(&ttl), "{ttl}");
    // max_size = 2: a third key evicts the oldest write.
    assert_eq!(redis(&socket, &["SET", "greylist:c", "3"]), "OK");
    assert_eq!(
        redis(
            &socket,
            &[
                "EXISTS",
                "greylist:198.51.100.7",
                "greylist:b",
                "greylist:c"
            ]
        ),
        "2"
    );
    assert_eq!(redis(&socket, &["GET", "greylist:198.51.100.7"]), "");
    assert_eq!(
        redis(&socket, &["DEL", "greylist:b", "greylist:nothing"]),
        "1"
    );
    assert_eq!(redis(&socket, &["TTL", "greylist:b"]), "-2");
    // A key expires by itself.
    assert_eq!(
        redis(&socket, &["SET", "greylist:short", "x", "PX", "300"]),
        "OK"
    );
    until(
        &socket,
        &["GET", "greylist:short"],
        "",
        Duration::from_secs(3),
        logs,
    );

    // Mistakes are named, and the connection goes on.
    let wrong = redis(&socket, &["GET", "senders:x"]);
    assert!(
        wrong.contains("senders") && wrong.contains("greylist"),
        "{wrong}"
    );
    let unknown = redis(&socket, &["FLUSHALL"]);
    assert!(
        unknown.starts_with("ERR unknown command `FLUSHALL`"),
        "{unknown}"
    );
    let bare = redis(&socket, &["GET", "nocache"]);
    assert!(bare.contains("CACHE:KEY"), "{bare}");

    // Counts without replication are this node's own.
    assert_eq!(
        redis(&socket, &["OUTBOUND.OPEN", "198.51.100.11", "example.com"]),
        "1"
    );
    assert_eq!(
        redis(&socket, &["OUTBOUND.OPEN", "198.51.100.11", "Example.com"]),
        "2"
    );
    assert_eq!(
        redis(&socket, &["OUTBOUND.CLOSE", "198.51.100.11", "example.com"]),
        "1"
    );
    assert_eq!(redis(&socket, &["DOMAIN.COUNT", "EXAMPLE.COM"]), "1");
    assert_eq!(redis(&socket, &["THROTTLE", "bounces", "2", "60"]), "1");
    assert_eq!(redis(&socket, &["THROTTLE", "bounces", "2", "60"]), "1");
    assert_eq!(redis(&socket, &["THROTTLE", "bounces", "2", "60"]), "0");
    assert_eq!(redis(&socket, &["INBOUND.OPEN", "203.0.113.9"]), "1");
    let rows = redis(
        &socket,
        &["CIDR", "count", "for", "203.0.113.0/24", "in", "inbound"],
    );
    assert_eq!(rows, "203.0.113.0/24\n1\n1", "{rows}");

    let metrics = crate::operations::scrape(&ns, 19475).expect("metrics");
    for line in [
        "dvip_api_commands_total{command=\"SET\",outcome=\"ok\"} 4",
        "dvip_api_commands_total{command=\"GET\",outcome=\"error\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    drop(daemon);
}

fn node_config(node: usize, socket: &Path) -> String {
    format!(
        "cluster {{ nodename = node{node}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }}\n\
           Replicate \"outbound_domains\" {{ max_delay = 0.2 }}\n\
           Replicate \"shared_named_throttles\" {{ }}\n\
           Replicate \"seen\" {{ type = \"cache\" parameters = \"snapshot\" }} }}\n\
         Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}\n\
         Replication_Listener {{ Listen \"{}\" {{ }} }}\n",
        socket.display()
    )
}

#[test]
fn two_nodes_share_domain_counts_throttles_and_caches_and_a_joiner_gets_the_caches() {
    let lab = dvip_netns::Lab::new("dvapi", 2);
    let sockets: Vec<_> = (1..=2)
        .map(|i| lab.dir().join(format!("api-{i}.sock")))
        .collect();
    let _one = crate::cluster::start_with(&lab, 1, &node_config(1, &sockets[0]));
    let mut two = crate::cluster::start_with(&lab, 2, &node_config(2, &sockets[1]));
    crate::cluster::wait(&lab, Duration::from_secs(15), "one owner", |held| {
        held.iter().map(Vec::len).sum::<usize>() == 1
    });
    let logs = || crate::cluster::logs(&lab);
    let (one_api, two_api) = (&sockets[0], &sockets[1]);
    until(two_api, &["PING"], "PONG", Duration::from_secs(10), logs);

    // A cache written on node1 is read on node2; a delete follows it.
    assert_eq!(redis(one_api, &["SET", "seen:msgid-1", "first"]), "OK");
    let took = until(
        two_api,
        &["GET", "seen:msgid-1"],
        "first",
        Duration::from_secs(3),
        logs,
    );
    eprintln!("node2 read node1's cache write after {took:?}");
    // Throttle hits on node1 use the cluster's allowance: node2 is refused once it knows.
    for _ in 0..2 {
        assert_eq!(redis(one_api, &["THROTTLE", "bounces", "2", "60"]), "1");
    }
    // Connections node1 opens to a domain are the cluster's, in total and per binding group.
    assert_eq!(
        redis(
            one_api,
            &["OUTBOUND.OPEN", "198.51.100.11", "example.com", "warm"]
        ),
        "1"
    );
    until(
        two_api,
        &["DOMAIN.COUNT", "example.com"],
        "1",
        Duration::from_secs(3),
        logs,
    );
    assert_eq!(
        redis(two_api, &["DOMAIN.COUNT", "example.com", "warm"]),
        "1"
    );
    assert_eq!(
        redis(two_api, &["DOMAIN.COUNT", "example.com", "cold"]),
        "0"
    );
    // The throttle's hits went out before the connection: node2 has them too.
    assert_eq!(redis(two_api, &["THROTTLE", "bounces", "2", "60"]), "0");
    assert_eq!(
        redis(two_api, &["OUTBOUND.OPEN", "198.51.100.11", "example.com"]),
        "2"
    );
    until(
        one_api,
        &["DOMAIN.COUNT", "example.com"],
        "2",
        Duration::from_secs(3),
        logs,
    );

    // The console reads the same replica, and writes a cache for the cluster.
    let console = |i: usize| lab.dir().join(format!("dvipd-{i}.sock"));
    let report = crate::call(
        &console(2),
        &serde_json::json!({"command": "domains", "group": "warm", "window_s": 60}),
    );
    assert_eq!(report["shared"], true, "{report}");
    assert_eq!(report["rows"][0]["domain"], "example.com", "{report}");
    assert_eq!(report["rows"][0]["open"], 1, "{report}");
    let report = crate::call(&console(2), &serde_json::json!({"command": "throttles"}));
    assert_eq!(report["rows"][0]["name"], "bounces", "{report}");
    assert_eq!(
        report["rows"][0]["hits"], 2,
        "a refused hit is not counted: {report}"
    );
    assert_eq!(report["rows"][0]["hits_here"], 0, "{report}");
    let set = crate::call(
        &console(2),
        &serde_json::json!({"command": "cache-set", "cache": "seen", "key": "msgid-2",
                            "value": "from the console"}),
    );
    assert_eq!(set["ok"], true, "{set}");
    until(
        one_api,
        &["GET", "seen:msgid-2"],
        "from the console",
        Duration::from_secs(3),
        logs,
    );
    let refused = crate::call(
        &console(1),
        &serde_json::json!({"command": "cache-get", "cache": "nothing", "key": "k"}),
    );
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["error"].as_str().unwrap_or("").contains("seen"),
        "{refused}"
    );

    // node2 dies and comes back empty: the snapshot cache is sent to it whole, and the
    // connections it had open are no longer counted.
    two.0.kill().expect("kill -9");
    let _ = two.0.wait();
    until(
        one_api,
        &["DOMAIN.COUNT", "example.com"],
        "1",
        Duration::from_secs(10),
        logs,
    );
    let _two = crate::cluster::start_with(&lab, 2, &node_config(2, &sockets[1]));
    until(
        two_api,
        &["GET", "seen:msgid-1"],
        "first",
        Duration::from_secs(15),
        logs,
    );
    until(
        two_api,
        &["DOMAIN.COUNT", "example.com"],
        "1",
        Duration::from_secs(5),
        logs,
    );
}
