//! Debian's Postfix as the policy server's client: on two corosync nodes, each node's smtpd
//! asks its own dvipd (`check_policy_service inet:127.0.0.1:10031`), and an SMTP client on
//! the LAN connects from several addresses of one /24 to both. Once the cluster-wide limit is
//! reached, both nodes defer, and a node's death does not reset the count.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dvip_netns::Lab;

const LIMIT: usize = 3;

fn node_config(node: usize) -> String {
    format!(
        "cluster {{ nodename = node{node}  Topology \"198.51.100.0/24\" {{ interface = \"eth0\" }}\n\
           replicate [ type = \"inbound_cidr\" ]\n\
           policy_listener = \"127.0.0.1:10031\"\n\
           inbound_limit [ prefix = 24 connections = {LIMIT} window = 60 ] }}\n\
         Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}\n"
    )
}

/// Postfix's master for node `i`, in the node's namespace, stopped on drop.
struct Postfix(Child);

impl Drop for Postfix {
    fn drop(&mut self) {
        // SIGTERM: the master stops its children (smtpd, qmgr...) before it goes.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Postfix instance of node `i`: its own configuration and queue under the lab's directory,
/// listening on the node's address, asking dvipd about every client.
fn postfix(lab: &Lab, i: usize) -> Postfix {
    let master = Path::new("/usr/lib/postfix/sbin/master");
    assert!(
        master.exists(),
        "Debian's postfix is not installed (scripts/setup.sh installs it)"
    );
    let dir: PathBuf = lab.dir().join(format!("postfix-{i}"));
    std::fs::create_dir_all(dir.join("queue")).expect("queue");
    std::fs::create_dir_all(dir.join("data")).expect("data");
    run(Command::new("chown")
        .args(["postfix"])
        .arg(dir.join("data")));
    std::fs::copy("/etc/postfix/master.cf", dir.join("master.cf")).expect("master.cf");
    let main = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {q}\n\
         data_directory = {d}\n\
         myhostname = node{i}.example.net\n\
         mydestination =\n\
         inet_interfaces = 198.51.100.{i}\n\
         inet_protocols = ipv4\n\
         mynetworks = 203.0.113.0/24\n\
         smtpd_client_restrictions = check_policy_service inet:127.0.0.1:10031\n\
         maillog_file = /dev/stdout\n",
        q = dir.join("queue").display(),
        d = dir.join("data").display(),
    );
    std::fs::write(dir.join("main.cf"), main).expect("main.cf");
    run(Command::new("postconf")
        .arg("-c")
        .arg(&dir)
        .args(["-F", "smtp/inet/chroot=n"]));
    run(lab.command(i, "postfix").arg("-c").arg(&dir).arg("check"));
    let log = std::fs::File::create(lab.dir().join(format!("postfix-{i}.log"))).expect("log");
    let child = lab
        .command(i, master.to_str().expect("utf-8"))
        .arg("-c")
        .arg(&dir)
        .arg("-d")
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("postfix's master starts");
    Postfix(child)
}

/// From the client, an SMTP session from `from` to node `i`: the reply code to RCPT.
fn rcpt(lab: &Lab, from: &str, i: usize) -> u16 {
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('198.51.100.{i}', 25, timeout=10, source_address=('{from}', 0))\n\
         s.ehlo('client.example')\n\
         s.mail('a@example.com')\n\
         print(s.rcpt('b@example.net')[0])\n\
         s.quit()\n"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.topology().client(),
                "python3",
                "-c",
                &script,
            ])
            .output()
            .expect("python3 runs");
        if let Some(code) = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|_| out.status.success())
        {
            return code;
        }
        // Postfix may still be starting.
        assert!(
            Instant::now() < deadline,
            "no SMTP answer from node{i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(lab.dir().join(format!("postfix-{i}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connections from 203.0.113.0/24 in the last minute, as node `i`'s dvipd counts them.
fn counted(lab: &Lab, i: usize) -> u64 {
    let report = crate::call(
        &lab.dir().join(format!("dvipd-{i}.sock")),
        &serde_json::json!({"command": "cidr", "query": {
            "network": "203.0.113.0", "len": 24, "direction": "inbound", "sizes": [24, 24],
            "order": "cidr", "limit": null, "threshold": null, "window_s": 60
        }}),
    );
    report["rows"][0]["recent"].as_u64().unwrap_or(0)
}

#[test]
fn postfix_on_two_nodes_defers_a_slash24_past_the_cluster_s_limit_even_after_a_death() {
    let lab = Lab::new("dvpfx", 2);
    let client = lab.topology().client();
    for k in 1..=8 {
        let address = format!("203.0.113.{k}/32");
        run(Command::new("ip").args(["-n", &client, "addr", "add", &address, "dev", "eth0"]));
    }
    for i in 1..=2 {
        run(Command::new("ip").args([
            "-n",
            &lab.node(i),
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            dvip_netns::CLIENT_ADDRESS,
        ]));
    }
    let mut one = crate::cluster::start_with(&lab, 1, &node_config(1));
    let _two = crate::cluster::start_with(&lab, 2, &node_config(2));
    let _postfix: Vec<Postfix> = (1..=2).map(|i| postfix(&lab, i)).collect();
    crate::cluster::wait(&lab, Duration::from_secs(15), "one owner", |held| {
        held.iter().map(Vec::len).sum::<usize>() == 1
    });
    // Three connections of 203.0.113.0/24, spread over both nodes: each accepted.
    for (k, node) in [(1, 1), (2, 2), (3, 1)] {
        assert_eq!(
            rcpt(&lab, &format!("203.0.113.{k}"), node),
            250,
            "connection {k}"
        );
    }
    // Both nodes hear of all three within max_delay (asked on the console, which counts
    // nothing); then the limit is the cluster's, and both defer the next connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (1..=2).any(|i| counted(&lab, i) < LIMIT as u64) {
        assert!(
            Instant::now() < deadline,
            "the nodes count {:?}\n{}",
            (1..=2).map(|i| counted(&lab, i)).collect::<Vec<_>>(),
            crate::cluster::logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rcpt(&lab, "203.0.113.4", 2), 450);
    assert_eq!(rcpt(&lab, "203.0.113.5", 1), 450);
    // node1's dvipd dies: what it counted still counts on node2.
    one.0.kill().expect("kill -9");
    crate::cluster::wait(&lab, Duration::from_secs(5), "node2 takes over", |held| {
        held[1].len() == 1
    });
    assert_eq!(rcpt(&lab, "203.0.113.6", 2), 450);
}
