//! dvipd on corosync: real clusters of namespaces on a bridge, each node with its own
//! corosync (root required, as in CI). The failover times asserted are generous bounds for a
//! loaded CI machine; measured ones belong in BENCHMARKS.md.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dvip_netns::Lab;

const ALL: [&str; 4] = [
    "198.51.100.11",
    "198.51.100.12",
    "198.51.100.13",
    "198.51.100.14",
];

fn config(node: usize) -> String {
    format!(
        "cluster {{ nodename = node{node}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }} }}\n\
         Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}\n\
         Binding \"b\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.12 }}\n\
         Binding \"c\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.13 }}\n\
         Binding \"d\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.14 }}\n"
    )
}

/// dvipd on node `i` of the lab, killed on drop.
pub(crate) struct Daemon(pub(crate) Child);

impl Daemon {
    /// Sends `signal` (e.g. `TERM`) to dvipd: `ip netns exec` execs it, so the child's pid is
    /// dvipd's.
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(lab: &Lab, i: usize) -> Daemon {
    start_with(lab, i, &config(i))
}

/// dvipd on node `i` with the configuration `text`.
pub(crate) fn start_with(lab: &Lab, i: usize, text: &str) -> Daemon {
    start_with_flags(lab, i, text, &[])
}

/// dvipd's flags for leases: beats every 5 ms, a member promised about after 40 ms.
pub(crate) const LEASES: [&str; 4] = [
    "--heartbeat-port",
    "5409",
    "--heartbeat-suspect-after",
    "40",
];

/// dvipd on node `i` running leases.
fn start_leased(lab: &Lab, i: usize) -> Daemon {
    start_with_flags(lab, i, &config(i), &LEASES)
}

/// dvipd on node `i` with the configuration `text` and more flags.
pub(crate) fn start_with_flags(lab: &Lab, i: usize, text: &str, flags: &[&str]) -> Daemon {
    let conf = lab.dir().join(format!("dvip-{i}.conf"));
    std::fs::write(&conf, text).expect("config");
    let log = std::fs::File::create(lab.dir().join(format!("dvipd-{i}.log"))).expect("log");
    let child = lab
        .command(i, env!("CARGO_BIN_EXE_dvipd"))
        .args(["--config", conf.to_str().expect("utf-8")])
        .args([
            "--socket",
            lab.dir()
                .join(format!("dvipd-{i}.sock"))
                .to_str()
                .expect("utf-8"),
        ])
        .args(["--state-dir", lab.dir().to_str().expect("utf-8")])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("dvipd starts");
    Daemon(child)
}

pub(crate) fn logs(lab: &Lab) -> String {
    (1..=lab.topology().nodes)
        .map(|i| {
            let d = std::fs::read_to_string(lab.dir().join(format!("dvipd-{i}.log")))
                .unwrap_or_default();
            format!("--- dvipd on node{i}:\n{d}")
        })
        .collect()
}

/// Waits until `done` holds for the nodes' addresses; returns how long it took.
pub(crate) fn wait(
    lab: &Lab,
    within: Duration,
    what: &str,
    done: impl Fn(&[Vec<String>]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let held: Vec<Vec<String>> = (1..=lab.topology().nodes)
            .map(|i| lab.addresses(i))
            .collect();
        if done(&held) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; holding {}\n{}",
            show_held(&held),
            logs(lab)
        );
        // Reading thousands of addresses takes the kernel's lock that plumbing needs: look
        // less often when there are many.
        let many = held.iter().map(Vec::len).sum::<usize>() > 1_000;
        std::thread::sleep(Duration::from_millis(if many { 250 } else { 5 }));
    }
}

/// What each node holds: the addresses when few, else how many.
fn show_held(held: &[Vec<String>]) -> String {
    if held.iter().map(Vec::len).sum::<usize>() <= 16 {
        format!("{held:?}")
    } else {
        let counts: Vec<usize> = held.iter().map(Vec::len).collect();
        format!("{counts:?} addresses")
    }
}

/// Whether one node holds every address.
/// Every address is held once among `some` and `more` (nodes' holdings).
fn held_once_by(some: &[Vec<String>], more: &[Vec<String>]) -> bool {
    let mut all: Vec<&String> = some.iter().chain(more).flatten().collect();
    all.sort();
    all.iter().map(|s| s.as_str()).eq(ALL)
}

/// Every address is held once, and every node holds some.
fn shared_by_all(held: &[Vec<String>]) -> bool {
    held_once_by(held, &[]) && held.iter().all(|n| !n.is_empty())
}

fn holds_all(node: &[String]) -> bool {
    node.iter().map(String::as_str).eq(ALL)
}

/// Waits for both nodes to be up with two addresses each.
fn wait_balanced(lab: &Lab) {
    wait(
        lab,
        Duration::from_secs(15),
        "both nodes up and balanced",
        balanced,
    );
}

fn balanced(held: &[Vec<String>]) -> bool {
    let mut all: Vec<&String> = held.iter().flatten().collect();
    all.sort();
    all.iter().map(|s| s.as_str()).eq(ALL) && held.iter().all(|h| h.len() == 2)
}

#[test]
fn two_nodes_share_the_addresses_and_a_killed_daemon_s_move_at_once() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let mut two = start(&lab, 2);
    wait_balanced(&lab);

    two.0.kill().expect("kill -9");
    let took = wait(&lab, Duration::from_secs(2), "node1 takes over", |h| {
        holds_all(&h[0])
    });
    eprintln!("failover after kill -9 of dvipd: {took:?}");
    // node2's copies are nobody's now: its guardian removes them.
    wait(
        &lab,
        Duration::from_secs(5),
        "node2's addresses expire",
        |h| h[1].is_empty(),
    );
}

#[test]
fn a_node_cut_off_the_lan_has_its_addresses_taken_over_within_a_second() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait_balanced(&lab);
    lab.cut(2);
    let took = wait(&lab, Duration::from_secs(2), "node1 takes over", |h| {
        holds_all(&h[0])
    });
    eprintln!("failover after node2 was cut off: {took:?}");
}

#[test]
fn a_returning_node_takes_its_share_back() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let mut two = start(&lab, 2);
    wait_balanced(&lab);
    two.0.kill().expect("kill -9");
    wait(
        &lab,
        Duration::from_secs(5),
        "node1 alone holds everything",
        |h| holds_all(&h[0]) && h[1].is_empty(),
    );
    let _back = start(&lab, 2);
    wait(
        &lab,
        Duration::from_secs(10),
        "rebalanced after node2's return",
        balanced,
    );
}

pub(crate) fn socket(lab: &Lab, i: usize) -> std::path::PathBuf {
    lab.dir().join(format!("dvipd-{i}.sock"))
}

#[test]
fn a_broadcast_runs_on_every_node_and_gathers_their_replies() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait_balanced(&lab);
    let reply = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "broadcast", "request": {"command": "show"}}),
    );
    assert_eq!(reply["ok"], true, "{reply}\n{}", logs(&lab));
    assert_eq!(reply["missing"], serde_json::json!([]));
    for node in ["node1", "node2"] {
        let answer = &reply["replies"][node];
        assert_eq!(answer["node"], node, "{reply}");
        assert_eq!(
            answer["view"]["members"],
            serde_json::json!(["node1", "node2"])
        );
        // Each node names the other as the next owner of every address the first holds.
        let addresses = answer["addresses"].as_array().expect("addresses");
        assert!(!addresses.is_empty(), "{answer}");
        for a in addresses {
            let other = if a["owner"] == "node1" {
                "node2"
            } else {
                "node1"
            };
            assert_eq!(a["next_owner"], other, "{a}");
        }
        let header = answer["table"].as_str().and_then(|t| t.lines().next());
        assert!(header.is_some_and(|h| h.contains(" NEXT ")), "{answer}");
    }
    let announced = crate::call(
        &socket(&lab, 2),
        &serde_json::json!({"command": "broadcast", "request": {"command": "announce-view"}}),
    );
    assert_eq!(announced["ok"], true, "{announced}");
    assert_eq!(announced["replies"]["node1"]["ok"], true, "{announced}");
    wait_balanced(&lab);
}

#[test]
fn a_node_whose_corosync_dies_lets_go_and_takes_its_share_back_when_it_returns() {
    let mut lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait_balanced(&lab);
    lab.kill_corosync(2);
    let took = wait(
        &lab,
        Duration::from_secs(3),
        "node2 lets go and node1 takes over",
        |h| holds_all(&h[0]) && h[1].is_empty(),
    );
    eprintln!("failover after corosync died on node2: {took:?}");
    lab.start_corosync_again(2);
    wait(
        &lab,
        Duration::from_secs(15),
        "node2 rejoins and takes its share back",
        balanced,
    );
}

/// Without its corosync a node cannot know the view, so its heartbeats stop too: its lease
/// ends and the survivors take its share on it, before corosync's view says it left. Were it to
/// beat on, they would acknowledge it and wait for the view.
#[test]
fn with_leases_a_node_whose_corosync_dies_stops_beating_and_its_share_is_taken_on_its_lease() {
    let mut lab = Lab::new("dvl", 3);
    let _daemons: Vec<Daemon> = (1..=3).map(|i| start_leased(&lab, i)).collect();
    wait(
        &lab,
        Duration::from_secs(15),
        "three nodes share the addresses",
        shared_by_all,
    );
    // `show` says who acknowledges a node's beats and whom it does not acknowledge: here
    // everyone acknowledges everyone.
    let shown =
        |lab: &Lab, i: usize| crate::call(&socket(lab, i), &serde_json::json!({"command": "show"}));
    let start = Instant::now();
    loop {
        let lease = &shown(&lab, 1)["lease"];
        let acks: Vec<&str> = lease["acknowledged_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["age_ms"].as_u64().is_some_and(|ms| ms < 1_000))
            .filter_map(|a| a["member"].as_str())
            .collect();
        let withholding = lease["withholding"].as_array().map(Vec::len);
        if acks.contains(&"node2") && acks.contains(&"node3") && withholding == Some(0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "node1's lease: {lease}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    lab.kill_corosync(2);
    wait(
        &lab,
        Duration::from_secs(3),
        "node2 lets go and the survivors take its share",
        |h| held_once_by(&h[0..1], &h[2..]) && h[1].is_empty(),
    );
    let survivors: String = [1, 3]
        .map(|i| {
            std::fs::read_to_string(lab.dir().join(format!("dvipd-{i}.log"))).unwrap_or_default()
        })
        .concat();
    assert!(
        survivors.contains("TookOver { about: \"node2\""),
        "no survivor took node2's share on its lease:\n{}",
        logs(&lab)
    );
    // `show` says where each kernel lease stands: a survivor's answers once its epoch settles.
    let lease = |i: usize| shown(&lab, i)["lease"]["state"].as_str().map(str::to_owned);
    let start = Instant::now();
    while lease(1).as_deref() != Some("answering") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "node1's lease: {:?}",
            lease(1)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The client's neighbour table names every address's owner, as the kernels hold them.
fn client_told_each_owner(lab: &Lab, within: Duration) {
    let start = Instant::now();
    loop {
        let owners: Vec<(String, String)> = (1..=lab.topology().nodes)
            .flat_map(|i| {
                let mac = lab.topology().mac(i);
                lab.addresses(i).into_iter().map(move |a| (a, mac.clone()))
            })
            .collect();
        let known = lab.client_neighbours();
        let wrong: Vec<&(String, String)> = owners.iter().filter(|o| !known.contains(o)).collect();
        if wrong.is_empty() && owners.len() == ALL.len() {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the client was not told these owners {wrong:?}; it knows {known:?}\n{}",
            logs(lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With one announcement an address (`announce_count = 1`), none to spare: an announcement
/// the kernel's lease table refused (a node not answering yet, or held back after a pause)
/// must be made again once the kernel answers, or the LAN keeps sending to the address's
/// previous owner.
#[test]
fn with_leases_a_restarted_or_paused_node_s_announcements_reach_the_lan_once_it_answers() {
    let lab = Lab::new("dvl", 3);
    let once = |i: usize| config(i).replacen("nodename", "announce_count = 1  nodename", 1);
    let start = |i: usize| start_with_flags(&lab, i, &once(i), &LEASES);
    for address in ALL {
        lab.client_remembers(address, "02:00:00:00:00:99");
    }
    let mut daemons: Vec<Daemon> = (1..=3).map(start).collect();
    wait(
        &lab,
        Duration::from_secs(15),
        "three nodes share the addresses",
        shared_by_all,
    );
    client_told_each_owner(&lab, Duration::from_secs(5));
    // kill -9: node2's addresses stay in its kernel, unanswered once its lease table's
    // renewals stop, and the survivors take them on its lease.
    drop(daemons.remove(1));
    wait(
        &lab,
        Duration::from_secs(5),
        "the survivors take node2's share",
        |h| held_once_by(&h[0..1], &h[2..]),
    );
    daemons.insert(1, start(2));
    wait(
        &lab,
        Duration::from_secs(15),
        "node2 is back with a share of its own",
        shared_by_all,
    );
    client_told_each_owner(&lab, Duration::from_secs(5));
    // Paused past its lease: the survivors take its share, and on waking it answers for
    // nothing until its epoch settles, then takes its share back.
    daemons[1].signal("STOP");
    wait(
        &lab,
        Duration::from_secs(5),
        "the survivors take the paused node's share",
        |h| held_once_by(&h[0..1], &h[2..]),
    );
    daemons[1].signal("CONT");
    wait(
        &lab,
        Duration::from_secs(15),
        "the paused node lets go and takes its share back",
        shared_by_all,
    );
    client_told_each_owner(&lab, Duration::from_secs(5));
}

#[test]
fn a_node_whose_interface_goes_down_lets_go_and_a_survivor_takes_over() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait_balanced(&lab);
    dvip_netns::ip(&["-n", &lab.node(2), "link", "set", "eth0", "down"]);
    let took = wait(
        &lab,
        Duration::from_secs(3),
        "node2 lets go and node1 takes over",
        |h| holds_all(&h[0]) && h[1].is_empty(),
    );
    eprintln!("failover after node2's interface went down: {took:?}");
    dvip_netns::ip(&["-n", &lab.node(2), "link", "set", "eth0", "up"]);
    wait(
        &lab,
        Duration::from_secs(15),
        "node2's interface is back and it takes its share again",
        balanced,
    );
}

#[test]
fn a_dvipd_started_before_corosync_waits_for_it_then_takes_its_share() {
    let mut lab = Lab::new("dvl", 2);
    lab.kill_corosync(2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait(
        &lab,
        Duration::from_secs(10),
        "node1 holds everything alone",
        |h| holds_all(&h[0]) && h[1].is_empty(),
    );
    let console = socket(&lab, 2);
    let waiting = || crate::call(&console, &serde_json::json!({"command": "show"}));
    let start_wait = Instant::now();
    loop {
        let shown = waiting();
        if shown["waiting_for_corosync"] == true {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(10),
            "{shown}\n{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        logs(&lab).contains("waiting for corosync"),
        "{}",
        logs(&lab)
    );
    lab.start_corosync_again(2);
    wait(
        &lab,
        Duration::from_secs(20),
        "node2 joins once corosync is up and takes its share",
        balanced,
    );
    assert_eq!(waiting()["waiting_for_corosync"], false);
}

#[test]
fn a_node_corosync_gives_no_name_is_refused_with_what_to_fix() {
    let mut lab = Lab::new("dvl", 2);
    let conf = lab.dir().join("corosync-2.conf");
    let text = std::fs::read_to_string(&conf).expect("corosync.conf");
    assert!(text.contains("    name: node2\n"), "{text}");
    std::fs::write(&conf, text.replace("    name: node2\n", "")).expect("rewritten");
    lab.start_corosync_again(2);
    let mut two = start(&lab, 2);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = two.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dvipd runs on without a name in corosync:\n{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = logs(&lab);
    assert!(
        log.contains("gives this node (nodeid 2) no name: add `name: node2`"),
        "{log}"
    );
    assert!(lab.addresses(2).is_empty(), "nothing plumbed");
}

#[test]
fn migrate_never_removes_the_address_corosync_knows_the_node_by() {
    let lab = Lab::new("dvl", 2);
    let conf = lab.dir().join("dvip-2.conf");
    // A copy-paste slip: the node's own ring address among the DuraVIP bindings.
    std::fs::write(
        &conf,
        "cluster { nodename = node2  Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n\
         Binding \"a\" { Enable_Duravip = true  Bind_Address = 198.51.100.2 }\n",
    )
    .expect("config");
    let log = lab.dir().join("dvipd-2.log");
    let child = lab
        .command(2, env!("CARGO_BIN_EXE_dvipd"))
        .args(["--config", conf.to_str().expect("utf-8"), "--migrate"])
        .args(["--socket", socket(&lab, 2).to_str().expect("utf-8")])
        .args(["--state-dir", lab.dir().to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("dvipd starts");
    let mut two = Daemon(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = two.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(
        logs(&lab).contains("198.51.100.2 is configured as DuraVIP but is this node's own address"),
        "{}",
        logs(&lab)
    );
    assert_eq!(lab.topology().ring_size(1), 2, "node2 is still in the ring");
}

#[test]
fn a_node_whose_corosync_is_stopped_lets_go_stays_answerable_and_comes_back() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait_balanced(&lab);
    let view_id = |i: usize| {
        let shown = crate::call(&socket(&lab, i), &serde_json::json!({"command": "show"}));
        shown["view"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("a view id: {shown}"))
    };
    let before = view_id(2);
    lab.signal_corosync(2, "STOP");
    let took = wait(
        &lab,
        Duration::from_secs(6),
        "node2 lets go (its echo stalls) and node1 takes over",
        |h| holds_all(&h[0]) && h[1].is_empty(),
    );
    eprintln!("takeover after corosync was stopped on node2: {took:?}");
    // Its loop is not stuck behind the stopped corosync: the console answers.
    let shown = crate::call(&socket(&lab, 2), &serde_json::json!({"command": "show"}));
    assert_eq!(shown["ok"], true, "{shown}");
    lab.signal_corosync(2, "CONT");
    wait(
        &lab,
        Duration::from_secs(20),
        "node2 rejoins and takes its share back",
        balanced,
    );
    // node2 saw nobody leave, only a new ring; the members are those of before. Its view must
    // still be new, and node1's: a message composed before the stop must not pass for current.
    let after = view_id(2);
    assert_ne!(
        after, before,
        "the view after the stop has the id of the one before"
    );
    assert_eq!(view_id(1), after, "both nodes name the view alike");
}

#[test]
fn status_lists_every_configured_node_and_says_who_took_what_and_why() {
    let lab = Lab::new("dvl", 3);
    let _one = start(&lab, 1);
    let _two = start(&lab, 2);
    wait(
        &lab,
        Duration::from_secs(15),
        "nodes 1 and 2 up and balanced, node3 without dvipd",
        |held| held[0].len() == 2 && held[1].len() == 2,
    );
    let status = crate::call(&socket(&lab, 1), &serde_json::json!({"command": "status"}));
    assert_eq!(status["ok"], true, "{status}");
    let states: Vec<(String, String, u64)> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_owned(),
                n["state"].as_str().expect("state").to_owned(),
                n["owns"].as_u64().expect("owns"),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("node1".to_owned(), "online".to_owned(), 2),
            ("node2".to_owned(), "online".to_owned(), 2),
            ("node3".to_owned(), "offline".to_owned(), 0),
        ],
        "{status}"
    );
    assert_eq!(status["marked"], serde_json::json!([]));

    let standby = crate::call(&socket(&lab, 2), &serde_json::json!({"command": "standby"}));
    assert_eq!(standby["ok"], true, "{standby}");
    wait(
        &lab,
        Duration::from_secs(10),
        "node2's addresses on node1",
        |held| holds_all(&held[0]) && held[1].is_empty(),
    );
    let status = crate::call(&socket(&lab, 1), &serde_json::json!({"command": "status"}));
    assert_eq!(status["nodes"][1]["state"], "standby", "{status}");
    let moved: Vec<&serde_json::Value> = status["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["from"] == "node2")
        .collect();
    assert_eq!(moved.len(), 2, "{status}");
    for change in moved {
        assert_eq!(change["to"], "node1", "{status}");
        assert!(change["at_ms"].as_u64().is_some_and(|ms| ms > 0));
    }
}

#[test]
fn standby_asked_from_another_node_holds_across_a_restart_until_online() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let two = start(&lab, 2);
    wait_balanced(&lab);
    let asked = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "standby", "node": "node2"}),
    );
    assert_eq!(asked["ok"], true, "{asked}\n{}", logs(&lab));
    wait(&lab, Duration::from_secs(10), "node2 drained", |held| {
        holds_all(&held[0]) && held[1].is_empty()
    });
    let kept = std::fs::read_to_string(lab.dir().join("state-node2.json")).expect("kept");
    assert!(kept.contains("\"standby\": true"), "{kept}");

    drop(two);
    let _two = start(&lab, 2);
    let node2_is = |state: &str| {
        let status = crate::call(&socket(&lab, 1), &serde_json::json!({"command": "status"}));
        status["nodes"][1]["state"] == state
            && status["view"]["members"].as_array().map(Vec::len) == Some(2)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !node2_is("standby") {
        assert!(
            Instant::now() < deadline,
            "node2 never came back on standby\n{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        lab.addresses(2).is_empty() && holds_all(&lab.addresses(1)),
        "a restarted node on standby took addresses\n{}",
        logs(&lab)
    );

    let unknown = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "online", "node": "node9"}),
    );
    assert_eq!(unknown["kind"], "unavailable", "{unknown}");
    let online = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "online", "node": "node2"}),
    );
    assert_eq!(online["ok"], true, "{online}");
    wait_balanced(&lab);
}

#[test]
fn a_move_stands_across_a_restart_of_its_node_until_cleared() {
    let lab = Lab::new("dvl", 2);
    let _one = start(&lab, 1);
    let two = start(&lab, 2);
    wait_balanced(&lab);
    // Move one of node1's addresses to node2, asking node1.
    let address = lab.addresses(1)[0].clone();
    let moved = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "move", "address": address, "to": "node2"}),
    );
    assert_eq!(moved["ok"], true, "{moved}");
    wait(&lab, Duration::from_secs(10), "the move", |held| {
        held[1].contains(&address) && held[1].len() == 3
    });
    // node1 keeps the move when it handles the agreed message, which may be after node2 has
    // already plumbed the address.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kept = std::fs::read_to_string(lab.dir().join("state-node1.json")).unwrap_or_default();
        if kept.contains(&address) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node1 never kept the move: {kept:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // node2 restarts: when it is back, the address goes back to it (node1 remembers).
    drop(two);
    wait(&lab, Duration::from_secs(10), "node2 gone", |held| {
        holds_all(&held[0])
    });
    let _two = start(&lab, 2);
    wait(
        &lab,
        Duration::from_secs(15),
        "the move after node2's restart",
        |held| held[1].contains(&address),
    );
    let show = crate::call(&socket(&lab, 2), &serde_json::json!({"command": "show"}));
    assert_eq!(
        show["moves"],
        serde_json::json!([{"address": address, "to": "node2"}]),
        "node2 learnt the move again: {show}"
    );

    let cleared = crate::call(
        &socket(&lab, 2),
        &serde_json::json!({"command": "move-clear", "address": address}),
    );
    assert_eq!(cleared["ok"], true, "{cleared}");
    let status = || crate::call(&socket(&lab, 1), &serde_json::json!({"command": "status"}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while status()["moves"] != serde_json::json!([]) {
        assert!(
            Instant::now() < deadline,
            "the clearing never reached node1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = crate::call(
        &socket(&lab, 1),
        &serde_json::json!({"command": "move-clear", "address": address}),
    );
    assert_eq!(again["kind"], "refused", "nothing left to clear: {again}");
}

/// With pre-plumbing (`--pre-plumb`) each node has the addresses it would take already on its
/// interface, silent: the client hears one owner for every address, even after a firewall
/// flushed a node's nftables ruleset, and when a node is cut off the survivors let its share
/// answer on its lease (one nftables change, no plumbing), each address from one of them.
#[test]
fn with_pre_plumbing_readied_addresses_stay_silent_until_their_holder_is_cut_off() {
    let lab = Lab::new("dvr", 3);
    let flags: Vec<&str> = LEASES.iter().copied().chain(["--pre-plumb"]).collect();
    let _daemons: Vec<Daemon> = (1..=3)
        .map(|i| start_with_flags(&lab, i, &config(i), &flags))
        .collect();
    wait(
        &lab,
        Duration::from_secs(15),
        "three nodes share the addresses",
        shared_by_all,
    );
    // Every address readied on one other node: plumbed on two, answered on one.
    let start = Instant::now();
    loop {
        let plumbed: Vec<Vec<String>> = (1..=3).map(|i| lab.plumbed(i)).collect();
        let on = |a: &str| plumbed.iter().filter(|p| p.iter().any(|x| x == a)).count();
        if ALL.iter().all(|a| on(a) == 2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not readied: plumbed {plumbed:?}\n{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // `show` says what is readied where: what each node has plumbed and does not hold.
    for i in 1..=3 {
        let shown = crate::call(&socket(&lab, i), &serde_json::json!({"command": "show"}));
        let said: Vec<&str> = shown["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["readied_here"] == true)
            .filter_map(|a| a["address"].as_str())
            .collect();
        let held = lab.addresses(i);
        let readied: Vec<String> = lab
            .plumbed(i)
            .into_iter()
            .filter(|a| !held.contains(a))
            .collect();
        assert_eq!(said, readied, "node{i}'s show");
        assert!(
            readied.is_empty()
                || shown["table"]
                    .as_str()
                    .is_some_and(|t| t.contains("readied"))
        );
    }
    // A firewall flushing the whole ruleset takes dvipd's tables with it: they are loaded
    // again, the silent set as it was.
    let flushed = (1..=3)
        .find(|&i| !lab.topology().silent(i).is_empty())
        .expect("a node readies something");
    let silent = lab.topology().silent(flushed);
    let nft = |args: &[&str]| {
        lab.command(flushed, "nft")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(nft(&["flush", "ruleset"]), "nft flush ruleset");
    let start = Instant::now();
    while lab.topology().silent(flushed) != silent
        || !nft(&["list", "table", "netdev", "dvip_lease"])
    {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "node{flushed}'s tables not back after a flush: silent {:?}, was {silent:?}\n{}",
            lab.topology().silent(flushed),
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let topology = lab.topology();
    let targets: Vec<std::net::Ipv4Addr> = ALL.iter().map(|a| a.parse().expect("v4")).collect();
    let prober = dvip_netns::Prober::start(
        &topology.client(),
        "eth0",
        dvip_netns::CLIENT_ADDRESS.parse().expect("v4"),
        targets.clone(),
        Duration::from_millis(2),
    )
    .expect("the prober starts");
    // The last answer for each address, by MAC.
    let last = |answers: &[dvip_netns::Answer]| -> Vec<Option<String>> {
        targets
            .iter()
            .map(|t| {
                let a = answers.iter().rev().find(|a| a.address == *t);
                a.map(|a| dvip_netns::mac_text(a.mac))
            })
            .collect()
    };
    let owners = |lab: &Lab| -> Vec<Option<String>> {
        ALL.iter()
            .map(|a| {
                (1..=3)
                    .find(|&i| lab.addresses(i).iter().any(|x| x == a))
                    .map(|i| lab.topology().mac(i))
            })
            .collect()
    };
    let heard_owners = |lab: &Lab, within: Duration, what: &str| {
        let start = Instant::now();
        loop {
            let (heard, owners) = (last(&prober.answers()), owners(lab));
            if heard == owners {
                return;
            }
            assert!(
                start.elapsed() < within,
                "{what}: the client hears {heard:?}, the owners are {owners:?}\n{}",
                logs(lab)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    heard_owners(&lab, Duration::from_secs(2), "before the cut");
    let victim = (1..=3)
        .max_by_key(|&i| lab.addresses(i).len())
        .expect("three nodes");
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != victim).collect();
    lab.cut(victim);
    wait(
        &lab,
        Duration::from_secs(3),
        "the survivors answer for the cut node's share",
        |h| {
            held_once_by(
                &[],
                &[h[survivors[0] - 1].clone(), h[survivors[1] - 1].clone()],
            )
        },
    );
    heard_owners(&lab, Duration::from_secs(2), "after the cut");
    let answers = prober.stop().expect("the prober ran");
    let mut by_round: std::collections::BTreeMap<_, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for a in &answers {
        by_round
            .entry((a.address, a.round))
            .or_default()
            .insert(dvip_netns::mac_text(a.mac));
    }
    let doubled: Vec<_> = by_round.iter().filter(|(_, macs)| macs.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "two nodes answered at once: {doubled:?}"
    );
    // The survivors let readied addresses answer instead of plumbing them.
    let told = survivors
        .iter()
        .map(|i| {
            std::fs::read_to_string(lab.dir().join(format!("dvipd-{i}.log"))).unwrap_or_default()
        })
        .collect::<String>();
    assert!(
        told.lines()
            .any(|l| l.contains(" plumbed") && l.contains("readied=") && !l.contains("readied=0")),
        "no survivor let a readied address answer:\n{}",
        logs(&lab)
    );
}
