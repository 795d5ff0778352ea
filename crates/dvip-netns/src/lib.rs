//! Network namespaces for tests and the lab: each made, used, and removed on drop (or by
//! `dvip lab down`), even when a test fails.
//!
//! Owns the `ip` invocations that build and tear down a namespace. Shelling out to iproute2 is
//! fine here: this crate sets up test hosts, it is not the daemon (which speaks netlink).
//! Addresses used in namespaces come from the documentation ranges only.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

mod connect;
mod ipc;
mod probe;
mod process;
mod recorder;
mod topology;

pub use connect::{Backends, Connected, TcpProber};
pub use ipc::reap_stale;
pub use probe::{mac_text, Answer, Prober};
pub use process::stat_fields;
pub use topology::{
    try_ip, try_iproute2, write_authkey, Heartbeats, LabError, Timing, Topology,
    AGGREGATOR_ADDRESS, CLIENT_ADDRESS,
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Moves the calling thread into the network namespace `ns` (a name `ip netns` knows).
fn enter(ns: &str) -> Result<(), LabError> {
    let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
        .map_err(|e| LabError(format!("namespace {ns}: {e}")))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| LabError(format!("entering {ns}: {e}")))
}

/// Runs `f` on a new thread moved into the network namespace `name` (a name `ip netns` knows).
pub fn in_namespace<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(name).unwrap_or_else(|e| panic!("{e}"));
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

    /// The client namespace's name, with [`Netns::with_client`].
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
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
        self.client
            .as_deref()
            .map(|client| neighbours(client, "dv1"))
            .unwrap_or_default()
    }
}

/// The neighbour table of `link` in `namespace`: (address, MAC) pairs.
fn neighbours(namespace: &str, link: &str) -> Vec<(String, String)> {
    let out = ip(&["-n", namespace, "-j", "neigh", "show", "dev", link]);
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

pub(crate) fn link_mac(namespace: &str, link: &str) -> String {
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

/// A cluster on one machine for tests: a [`Topology`] with a client, corosync running on every
/// node and formed into one ring. Everything is killed (by pid) and removed on drop, even
/// when a test fails.
pub struct Lab {
    topology: Topology,
    dir: std::path::PathBuf,
    corosync: Vec<Option<std::process::Child>>,
}

impl Lab {
    /// Builds a lab of `nodes` nodes whose namespaces start with `prefix` and a unique suffix;
    /// panics with the reason (and corosync's log) if it cannot.
    pub fn new(prefix: &str, nodes: usize) -> Self {
        let prefix = format!(
            "{prefix}{}-{}-",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("{prefix}lab"));
        std::fs::create_dir_all(&dir).expect("lab directory");
        let mut lab = Self {
            topology: Topology { prefix, nodes },
            dir,
            corosync: Vec::new(),
        };
        lab.topology
            .build(true)
            .expect("the lab's namespaces (needs root)");
        // Crypto on, as production runs it (docs/security.md).
        let authkey = lab.dir.join("authkey");
        write_authkey(&authkey).expect("corosync authkey");
        for i in 1..=nodes {
            let conf = lab.dir.join(format!("corosync-{i}.conf"));
            std::fs::write(&conf, lab.topology.corosync_conf(Some(&authkey)))
                .expect("corosync.conf");
            lab.corosync.push(Some(lab.start_corosync(i)));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        for i in 1..=nodes {
            while lab.topology.ring_size(i) != nodes {
                let log = std::fs::read_to_string(lab.dir.join(format!("corosync-{i}.log")))
                    .unwrap_or_default();
                assert!(
                    std::time::Instant::now() < deadline,
                    "corosync on node {i} never saw a ring of {nodes}:\n{log}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        lab
    }

    /// The lab's network.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The namespace of node `i` (from 1).
    pub fn node(&self, i: usize) -> String {
        self.topology.node(i)
    }

    /// A scratch directory removed with the lab.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn start_corosync(&self, i: usize) -> std::process::Child {
        let conf = self.dir.join(format!("corosync-{i}.conf"));
        let log = std::fs::File::create(self.dir.join(format!("corosync-{i}.log"))).expect("log");
        self.topology
            .corosync_command(i, &conf)
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

    /// The DuraVIP addresses (the /32s and /128s) node `i` answers for, on `eth0` or a
    /// holder, sorted: silent ones (`dvipd --pre-plumb`) left out.
    pub fn addresses(&self, i: usize) -> Vec<String> {
        self.topology.held(i)
    }

    /// The DuraVIP addresses plumbed on node `i`, silent ones included, sorted.
    pub fn plumbed(&self, i: usize) -> Vec<String> {
        self.topology.plumbed(i)
    }

    /// Kills node `i`'s corosync (SIGKILL, by pid) and waits for it to be gone.
    /// Makes the client believe `address` is at `mac` (a stale entry, which an announcement
    /// corrects and nothing else does without traffic).
    pub fn client_remembers(&self, address: &str, mac: &str) {
        ip_ok(&[
            "-n",
            &self.topology.client(),
            "neigh",
            "replace",
            address,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "stale",
        ]);
    }

    /// The client's neighbour table: (address, MAC) pairs.
    pub fn client_neighbours(&self) -> Vec<(String, String)> {
        neighbours(&self.topology.client(), "eth0")
    }

    pub fn kill_corosync(&mut self, i: usize) {
        if let Some(mut child) = self.corosync[i - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i`'s corosync again (after [`Lab::kill_corosync`]).
    pub fn start_corosync_again(&mut self, i: usize) {
        self.kill_corosync(i);
        self.corosync[i - 1] = Some(self.start_corosync(i));
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `i`'s corosync, by pid.
    pub fn signal_corosync(&self, i: usize, signal: &str) {
        let Some(child) = self.corosync[i - 1].as_ref() else {
            panic!("corosync on node {i} is not running");
        };
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} corosync");
    }

    /// Cuts node `i` off the LAN (its switch port goes down), as if its host died.
    pub fn cut(&self, i: usize) {
        self.topology.set_port(i, false).expect("port down");
    }

    /// Puts node `i` back on the LAN after [`Lab::cut`].
    pub fn uncut(&self, i: usize) {
        self.topology.set_port(i, true).expect("port up");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.corosync.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        reap_stale();
        self.topology.destroy();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
