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

/// A network namespace holding a veth pair `dv0`/`dv1`, both up; deleted on drop.
pub struct Netns {
    name: String,
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
        let made = ip(&["netns", "add", &name]);
        assert!(
            made.status.success(),
            "ip netns add: {} (needs root)",
            String::from_utf8_lossy(&made.stderr)
        );
        let netns = Self { name };
        for args in [
            &["link", "add", "dv0", "type", "veth", "peer", "name", "dv1"][..],
            &["link", "set", "dv0", "up"],
            &["link", "set", "dv1", "up"],
        ] {
            netns.ip(args);
        }
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
        let out = ip(&all);
        assert!(
            out.status.success(),
            "ip {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
