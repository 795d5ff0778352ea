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
    /// and accepts gratuitous ARP into its neighbour table, so a test can see announcements.
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

    /// The MAC address of `dv0`.
    pub fn mac(&self) -> String {
        let out = ip(&["-n", &self.name, "-j", "link", "show", "dev", "dv0"]);
        let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
        links[0]["address"].as_str().unwrap_or_default().to_owned()
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

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        if let Some(client) = &self.client {
            let _ = ip(&["netns", "del", client]);
        }
    }
}
