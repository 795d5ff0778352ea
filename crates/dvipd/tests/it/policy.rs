//! The policy server of a running dvipd, asked as Postfix's `check_policy_service` asks: on
//! loopback inside the test's namespace, several requests on one connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use dvip_netns::Netns;

use crate::{wait_for, Daemon};

const PORT: u16 = 10031;

fn config() -> String {
    format!(
        r#"
ESMTP_Listener {{ Listen "198.51.100.32:25" {{ Enable_Duravip = true }} }}
cluster {{
  nodename = solo
  policy_listener = "127.0.0.1:{PORT}"
  inbound_limit [ prefix = 24 connections = 2 window = 60 ]
  Topology "198.51.100.0/24" {{ interface = "dv0" }}
}}
"#
    )
}

/// One request of Postfix's policy delegation, and the answer's `action=` line.
fn ask(stream: &mut TcpStream, client: &str, state: &str) -> String {
    let request = format!(
        "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\nclient_address={client}\nclient_name=unknown\n\n"
    );
    stream.write_all(request.as_bytes()).expect("sent");
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut action = String::new();
    reader.read_line(&mut action).expect("an answer");
    let mut blank = String::new();
    reader.read_line(&mut blank).expect("the empty line");
    assert_eq!(blank, "\n", "an answer ends with an empty line");
    action.trim_end().to_owned()
}

#[test]
fn a_prefix_past_its_limit_is_deferred_and_other_prefixes_are_not() {
    let ns = Netns::new("dvipd-policy");
    ns.loopback_up();
    let conf = crate::config(&ns, &config());
    let daemon = Daemon::start_with(&ns, &conf, &["--metrics", "127.0.0.1:19474"], &[]);
    wait_for(&ns, &["198.51.100.32"], Duration::from_secs(5), &daemon);
    ns.run(|| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", PORT)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the policy server does not answer: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout");
        assert_eq!(ask(&mut stream, "203.0.113.1", "CONNECT"), "action=DUNNO");
        assert_eq!(ask(&mut stream, "203.0.113.2", "CONNECT"), "action=DUNNO");
        let third = ask(&mut stream, "203.0.113.3", "CONNECT");
        assert!(
            third.starts_with("action=DEFER 4.7.1 Too many connections from 203.0.113.0/24"),
            "{third}"
        );
        // Another /24 has its own allowance; a later stage of a counted connection is only
        // checked (its /24 is at the limit), and does not count again.
        assert_eq!(ask(&mut stream, "198.18.5.1", "CONNECT"), "action=DUNNO");
        assert!(ask(&mut stream, "203.0.113.1", "RCPT").starts_with("action=DEFER"));
        assert_eq!(ask(&mut stream, "198.18.5.1", "RCPT"), "action=DUNNO");
        // A request without a usable client is let through to the other restrictions.
        assert_eq!(ask(&mut stream, "unknown", "CONNECT"), "action=DUNNO");
    });
    // The console shows the counts by prefix: the deferred connection was not counted.
    let rows = |sizes: [u8; 2], limit: Option<usize>| {
        let report = crate::call(
            &conf.with_extension("sock"),
            &serde_json::json!({"command": "cidr", "query": {
                "network": "203.0.113.0", "len": 16, "direction": "inbound", "sizes": sizes,
                "order": "count", "limit": limit, "threshold": null, "window_s": 60
            }}),
        );
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["shared"], false, "{report}");
        report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let prefix = r["prefix"].as_str().unwrap_or("").to_owned();
                (prefix, r["recent"].as_u64().unwrap_or(0))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows([24, 24], None), [("203.0.113.0/24".to_owned(), 2)]);
    assert_eq!(rows([32, 32], None).len(), 2);
    assert_eq!(rows([24, 32], Some(3)).len(), 3);
    // Every verdict is counted; the unreadable request is not a verdict.
    let metrics = crate::operations::scrape(&ns, 19474).expect("metrics");
    for line in [
        "dvip_policy_requests_total{verdict=\"accept\"} 4",
        "dvip_policy_requests_total{verdict=\"defer\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    drop(daemon);
}

fn node_config(node: usize) -> String {
    format!(
        "cluster {{ nodename = node{node}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }}\n\
           replicate [ type = \"inbound_cidr\" ]\n\
           policy_listener = \"127.0.0.1:{PORT}\"\n\
           inbound_limit [ prefix = 24 connections = 3 window = 60 ] }}\n\
         Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}\n"
    )
}

/// Asks node `i`'s policy server about `client` at `state`, connecting anew (the server may
/// still be starting).
fn ask_node(lab: &dvip_netns::Lab, i: usize, client: &str, state: &str) -> String {
    dvip_netns::in_namespace(&lab.node(i), || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", PORT)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "node{i}'s policy server: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout");
        ask(&mut stream, client, state)
    })
}

/// Asks node `i` (checking only) until it defers `client`, within `within`.
fn wait_deferred(lab: &dvip_netns::Lab, i: usize, client: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let action = ask_node(lab, i, client, "RCPT");
        if action.starts_with("action=DEFER") {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "node{i} still says {action} for {client} after {within:?}\n{}",
            crate::cluster::logs(lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_limit_holds_across_two_nodes_and_a_node_s_death_does_not_reset_it() {
    let lab = dvip_netns::Lab::new("dvpol", 2);
    let mut one = crate::cluster::start_with(&lab, 1, &node_config(1));
    let _two = crate::cluster::start_with(&lab, 2, &node_config(2));
    crate::cluster::wait(&lab, Duration::from_secs(15), "one owner", |held| {
        held.iter().map(Vec::len).sum::<usize>() == 1
    });
    // Three connections of one /24 on node1: its limit, over the cluster.
    for last in 1..=3 {
        let client = format!("203.0.113.{last}");
        assert_eq!(ask_node(&lab, 1, &client, "CONNECT"), "action=DUNNO");
    }
    // node2 learns them within max_delay (1 s) and defers the /24 too.
    let took = wait_deferred(&lab, 2, "203.0.113.200", Duration::from_secs(5));
    eprintln!("node2 deferred the /24 {took:?} after node1 reached the limit");
    assert_eq!(ask_node(&lab, 2, "198.18.0.1", "CONNECT"), "action=DUNNO");
    // node1 dies: what it counted still counts on node2 for the rest of the window.
    one.0.kill().expect("kill -9");
    crate::cluster::wait(&lab, Duration::from_secs(5), "node2 takes over", |held| {
        held[1].len() == 1
    });
    let after = ask_node(&lab, 2, "203.0.113.201", "CONNECT");
    assert!(after.starts_with("action=DEFER"), "{after}");
}
