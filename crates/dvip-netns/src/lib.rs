//! Network namespaces for tests (and, later, the lab): each made with a veth pair, used,
//! and removed on drop, even when a test fails.
//!
//! Owns the `ip` invocations that build and tear down a namespace. Shelling out to iproute2 is
//! fine here: this crate sets up test hosts, it is not the daemon (which speaks netlink).
//! Addresses used in namespaces come from the documentation ranges only.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on a new thread moved into the network namespace `name` (a name `ip netns` knows).
pub fn in_namespace<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    let path = format!("/var/run/netns/{name}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `ip` with `args`.
pub fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's ip runs")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {} (needs root)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace holding a veth pair `dv0`/`dv1`, both up; deleted on drop. With
/// [`Netns::with_client`], `dv1` sits in a second namespace instead: a client on the link.
pub struct Netns {
    name: String,
    client: Option<String>,
}

impl Netns {
    /// Makes a namespace with a unique name starting with `prefix`. Panics with the reason if
    /// it cannot (tests need root).
    pub fn new(prefix: &str) -> Self {
        let name = format!(
            "{prefix}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip_ok(&["netns", "add", &name]);
        let netns = Self { name, client: None };
        netns.ip(&["link", "add", "dv0", "type", "veth", "peer", "name", "dv1"]);
        netns.ip(&["link", "set", "dv0", "up"]);
        netns.ip(&["link", "set", "dv1", "up"]);
        netns
    }

    /// Like [`Netns::new`], with `dv1` moved into a client namespace that has 198.51.100.200/24
    /// and 2001:db8::200/64 and accepts gratuitous ARP into its neighbour table, so a test can
    /// see announcements.
    pub fn with_client(prefix: &str) -> Self {
        let mut netns = Self::new(prefix);
        let client = format!("{}-c", netns.name);
        ip_ok(&["netns", "add", &client]);
        netns.client = Some(client.clone());
        netns.ip(&["link", "set", "dv1", "netns", &client]);
        ip_ok(&["-n", &client, "link", "set", "dv1", "up"]);
        ip_ok(&[
            "-n",
            &client,
            "addr",
            "add",
            "198.51.100.200/24",
            "dev",
            "dv1",
        ]);
        ip_ok(&[
            "-n",
            &client,
            "addr",
            "add",
            "2001:db8::200/64",
            "dev",
            "dv1",
            "nodad",
        ]);
        let sysctl = Command::new("ip")
            .args([
                "netns",
                "exec",
                &client,
                "sysctl",
                "-qw",
                "net.ipv4.conf.dv1.arp_accept=1",
            ])
            .status();
        assert!(
            sysctl.is_ok_and(|s| s.success()),
            "sysctl arp_accept in {client}"
        );
        netns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a thread that lives in this namespace: sockets it makes belong to the
    /// namespace and stay there after `f` returns them.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_namespace(&self.name, f)
    }

    /// Like [`Netns::run`], in the client namespace of [`Netns::with_client`].
    pub fn run_in_client<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_namespace(self.client.as_deref().expect("made with_client"), f)
    }

    /// Brings the namespace's loopback up, for services bound to 127.0.0.1.
    pub fn loopback_up(&self) {
        self.ip(&["link", "set", "lo", "up"]);
    }

    /// Runs `ip -n NAME args`, panicking if it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip_ok(&all);
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// The global addresses on `dv0`: (address, valid lifetime in seconds, or `None` for
    /// forever).
    pub fn addresses(&self) -> Vec<(String, Option<u64>)> {
        let out = ip(&["-n", &self.name, "-j", "addr", "show", "dev", "dv0"]);
        let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
        links[0]["addr_info"]
            .as_array()
            .map(|infos| {
                infos
                    .iter()
                    .filter(|a| a["scope"] != "link")
                    .map(|a| {
                        let lifetime = a["valid_life_time"]
                            .as_u64()
                            .filter(|&s| s != u64::from(u32::MAX));
                        (a["local"].as_str().unwrap_or_default().to_owned(), lifetime)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Just the addresses on `dv0`, sorted.
    pub fn address_list(&self) -> Vec<String> {
        let mut list: Vec<String> = self.addresses().into_iter().map(|(a, _)| a).collect();
        list.sort();
        list
    }

    /// Puts `address` in the client's neighbour table at `mac`, as if it had talked to the
    /// address's previous owner.
    pub fn client_remembers(&self, address: &str, mac: &str) {
        let client = self
            .client
            .as_deref()
            .expect("a client namespace (Netns::with_client)");
        ip_ok(&[
            "-n", client, "neigh", "replace", address, "lladdr", mac, "dev", "dv1", "nud", "stale",
        ]);
    }

    /// The MAC address of `dv0`.
    pub fn mac(&self) -> String {
        link_mac(&self.name, "dv0")
    }

    /// The MAC address of the client's `dv1`.
    pub fn client_mac(&self) -> String {
        link_mac(
            self.client
                .as_deref()
                .expect("a client namespace (Netns::with_client)"),
            "dv1",
        )
    }

    /// The client's neighbour table: (address, MAC) pairs it has learned.
    pub fn client_neighbours(&self) -> Vec<(String, String)> {
        let Some(client) = &self.client else {
            return Vec::new();
        };
        let out = ip(&["-n", client, "-j", "neigh", "show", "dev", "dv1"]);
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        entries
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        Some((
                            e["dst"].as_str()?.to_owned(),
                            e["lladdr"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn link_mac(namespace: &str, link: &str) -> String {
    let out = ip(&["-n", namespace, "-j", "link", "show", "dev", link]);
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    links[0]["address"].as_str().unwrap_or_default().to_owned()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        if let Some(client) = &self.client {
            let _ = ip(&["netns", "del", client]);
        }
    }
}

/// A LAN of node namespaces on a bridge (itself in a namespace of its own), each node with
/// `eth0` at 198.51.100.N/24 and a corosync (knet, the lab's fast timing) in its own mount
/// namespace. Everything it started is killed, by pid, and every namespace removed on drop.
pub struct Lab {
    prefix: String,
    nodes: usize,
    dir: std::path::PathBuf,
    corosync: Vec<Option<std::process::Child>>,
}

impl Lab {
    /// Builds the LAN and starts corosync on every node.
    pub fn new(prefix: &str, nodes: usize) -> Self {
        let prefix = format!(
            "{prefix}{}-{}-",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("{prefix}lab"));
        std::fs::create_dir_all(&dir).expect("lab directory");
        let mut lab = Self {
            prefix,
            nodes,
            dir,
            corosync: Vec::new(),
        };
        let switch = lab.switch();
        ip_ok(&["netns", "add", &switch]);
        ip_ok(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip_ok(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 1..=nodes {
            let ns = lab.node(i);
            let port = format!("p{i}");
            ip_ok(&["netns", "add", &ns]);
            ip_ok(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip_ok(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            ip_ok(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("198.51.100.{i}/24"),
                "dev",
                "eth0",
            ]);
            ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        for i in 1..=nodes {
            let conf = lab.dir.join(format!("corosync-{i}.conf"));
            std::fs::write(&conf, lab.corosync_conf()).expect("corosync.conf");
            lab.corosync.push(Some(lab.start_corosync(i, &conf)));
        }
        // Ready when every corosync answers its tools: dvipd needs it to join.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        for i in 1..=nodes {
            loop {
                let ready = Command::new("ip")
                    .args(["netns", "exec", &lab.node(i), "corosync-cfgtool", "-s"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ready {
                    break;
                }
                let log = std::fs::read_to_string(lab.dir.join(format!("corosync-{i}.log")))
                    .unwrap_or_default();
                assert!(
                    std::time::Instant::now() < deadline,
                    "corosync on node {i} never came up:\n{log}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        // And when they have formed one ring, so a test starts from a whole cluster.
        loop {
            let members = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.node(1),
                    "corosync-cmapctl",
                    "runtime.members",
                ])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .matches("status (str) = joined")
                        .count()
                })
                .unwrap_or(0);
            if members == nodes {
                break;
            }
            let log = std::fs::read_to_string(lab.dir.join("corosync-1.log")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "corosync never formed one ring of {nodes}:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        lab
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of node `i` (from 1).
    pub fn node(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// A scratch directory removed with the lab.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn corosync_conf(&self) -> String {
        let mut nodes = String::new();
        for i in 1..=self.nodes {
            nodes.push_str(&format!("  node {{\n    nodeid: {i}\n    name: node{i}\n    ring0_addr: 198.51.100.{i}\n  }}\n"));
        }
        let two = if self.nodes == 2 {
            "  two_node: 1\n"
        } else {
            ""
        };
        format!(
            "totem {{\n  version: 2\n  cluster_name: dviplab\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n  token: 100\n  consensus: 150\n  token_coefficient: 0\n  token_retransmits_before_loss_const: 3\n  interface {{\n    linknumber: 0\n    knet_ping_interval: 200\n    knet_ping_timeout: 600\n  }}\n}}\nnodelist {{\n{nodes}}}\nquorum {{\n  provider: corosync_votequorum\n{two}}}\nlogging {{\n  to_stderr: yes\n  to_syslog: no\n}}\n"
        )
    }

    fn start_corosync(&self, i: usize, conf: &std::path::Path) -> std::process::Child {
        // corosync keeps its pid file and state under /run and /var/lib/corosync: a private
        // tmpfs for each, in a mount namespace of its own.
        let script = format!(
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/corosync && exec corosync -f -c {}",
            conf.display()
        );
        let log = std::fs::File::create(self.dir.join(format!("corosync-{i}.log"))).expect("log");
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node(i),
                "unshare",
                "-m",
                "sh",
                "-c",
                &script,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("corosync starts")
    }

    /// A command that runs `program` on node `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.node(i), program]);
        command
    }

    /// The DuraVIP-range addresses (198.51.100.10 and up) on node `i`'s `eth0`, sorted.
    pub fn addresses(&self, i: usize) -> Vec<String> {
        let out = ip(&["-n", &self.node(i), "-j", "addr", "show", "dev", "eth0"]);
        let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut list: Vec<String> = links[0]["addr_info"]
            .as_array()
            .map(|infos| {
                infos
                    .iter()
                    .filter(|a| a["prefixlen"] == 32)
                    .filter_map(|a| a["local"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list
    }

    /// Kills node `i`'s corosync (SIGKILL, by pid) and waits for it to be gone.
    pub fn kill_corosync(&mut self, i: usize) {
        if let Some(mut child) = self.corosync[i - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i`'s corosync again (after [`Lab::kill_corosync`]).
    pub fn start_corosync_again(&mut self, i: usize) {
        self.kill_corosync(i);
        let conf = self.dir.join(format!("corosync-{i}.conf"));
        self.corosync[i - 1] = Some(self.start_corosync(i, &conf));
    }

    /// Puts node `i` back on the LAN after [`Lab::cut`].
    pub fn uncut(&self, i: usize) {
        ip_ok(&["-n", &self.switch(), "link", "set", &format!("p{i}"), "up"]);
    }

    /// Cuts node `i` off the LAN (its switch port goes down), as if its host died.
    pub fn cut(&self, i: usize) {
        ip_ok(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{i}"),
            "down",
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.corosync.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 1..=self.nodes {
            let _ = ip(&["netns", "del", &self.node(i)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
