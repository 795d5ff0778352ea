//! A lab's network: a bridge in a switch namespace, one namespace per node with `eth0` on the
//! bridge, an optional client and an optional log aggregator namespace on the same bridge,
//! and corosync's configuration for the nodes.
//!
//! Owns the names, addresses and `ip` commands of a lab, for the tests' [`crate::Lab`] and for
//! `dvip lab`. Every step returns an error instead of panicking, so a command can say what
//! failed; [`Topology::destroy`] removes whatever exists of it, whatever state it is in.
//!
//! Addresses: node `i` is 198.51.100.`i`/24 (corosync's ring), the aggregator
//! 198.51.100.201/24, the client 198.51.100.200/24 and 2001:db8::200/64, with 198.18.0.0/15
//! on-link so it asks for DuraVIP addresses there directly.

use std::process::Command;

/// What went wrong building or changing a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

/// Writes a new corosync authkey to `path`: 256 random bytes, readable by root alone, as
/// `corosync-keygen` makes one. Every node of a lab shares the one file.
pub fn write_authkey(path: &std::path::Path) -> Result<(), LabError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| LabError(format!("authkey {}: {e}", path.display()));
    let mut key = [0u8; 256];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(fail)?;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut file| file.write_all(&key))
        .map_err(fail)
}

/// Runs `ip args`; an error carries `ip`'s complaint.
pub fn try_ip(args: &[&str]) -> Result<(), LabError> {
    try_iproute2("ip", args)
}

/// Runs one of iproute2's programs (`ip`, `tc`) with `args`; an error carries its complaint.
pub fn try_iproute2(program: &str, args: &[&str]) -> Result<(), LabError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| LabError(format!("cannot run {program}: {e} (iproute2 installed?)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The client's address on the lab's LAN.
pub const CLIENT_ADDRESS: &str = "198.51.100.200";

/// The log aggregator's address on the lab's LAN.
pub const AGGREGATOR_ADDRESS: &str = "198.51.100.201";

/// corosync's membership timing in the lab. The default is DESIGN.md's: token 100 ms,
/// consensus 150 ms, knet pings every 200 ms with a 600 ms timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub token_ms: u32,
    /// Token retransmits before the token counts as lost (`token_retransmits_before_loss_const`).
    pub token_retransmits: u32,
    pub consensus_ms: u32,
    pub knet_ping_interval_ms: u32,
    pub knet_ping_timeout_ms: u32,
    /// dvipd's ownership leases (docs/leases.md): `None` runs none.
    #[serde(default)]
    pub heartbeats: Option<Heartbeats>,
}

/// The MTU of the lab's LAN (veth pairs on a bridge), which knet is told instead of finding
/// it: with path-MTU discovery on, a corosync whose interface went away just after it started
/// came back at knet's smallest MTU and probed its peers again one per 30 s round, and the
/// ring could not hold a membership with it until the last (chaos seed 47, round 733: 60 s of
/// memberships formed and broken).
pub(crate) const LAN_MTU: u32 = 1500;

/// The timing of dvip's own heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeats {
    pub interval_ms: u32,
    pub suspect_after_ms: u32,
    /// dvipd plumbs its successors' addresses ahead of need, silent (`--pre-plumb`).
    #[serde(default)]
    pub pre_plumb: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            token_ms: 100,
            token_retransmits: 3,
            consensus_ms: 150,
            knet_ping_interval_ms: 200,
            knet_ping_timeout_ms: 600,
            heartbeats: None,
        }
    }
}

impl Timing {
    /// corosync's own rules, checked before it refuses to start: a token retransmit (the
    /// token over retransmits + 0.2) of at least 30 ms, consensus at least 1.2 times the
    /// token and at least the join timeout (50 ms); and a knet ping timeout above its
    /// interval.
    pub fn check(&self) -> Result<(), String> {
        // 5 * token / (5 * retransmits + 1) >= 30, in integers.
        if u64::from(self.token_ms) * 5 < 30 * (5 * u64::from(self.token_retransmits) + 1) {
            return Err(format!(
                "a token of {} ms with {} retransmits retransmits every {:.1} ms; corosync needs 30 ms at least (fewer retransmits, or a longer token)",
                self.token_ms,
                self.token_retransmits,
                f64::from(self.token_ms) / (f64::from(self.token_retransmits) + 0.2)
            ));
        }
        if self.consensus_ms < 50 {
            return Err(format!(
                "consensus ({} ms) may not be shorter than corosync's join timeout (50 ms)",
                self.consensus_ms
            ));
        }
        if u64::from(self.consensus_ms) * 5 < u64::from(self.token_ms) * 6 {
            return Err(format!(
                "consensus ({} ms) must be at least 1.2 times the token ({} ms)",
                self.consensus_ms, self.token_ms
            ));
        }
        if self.knet_ping_timeout_ms <= self.knet_ping_interval_ms {
            return Err(format!(
                "the knet ping timeout ({} ms) must be longer than its interval ({} ms)",
                self.knet_ping_timeout_ms, self.knet_ping_interval_ms
            ));
        }
        Ok(())
    }
}

/// A lab's namespaces, by a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Every namespace of the lab starts with it.
    pub prefix: String,
    /// How many nodes.
    pub nodes: usize,
}

impl Topology {
    /// The switch namespace, holding `br0` and one port `pI` per node.
    pub fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of node `i` (from 1).
    pub fn node(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// The namespace of the lab's log aggregator, made only when the lab collects logs.
    pub fn aggregator(&self) -> String {
        format!("{}agg", self.prefix)
    }

    /// Makes the aggregator's namespace on the client's switch, at [`AGGREGATOR_ADDRESS`].
    pub fn add_aggregator(&self) -> Result<(), LabError> {
        let ns = self.aggregator();
        self.attach(&ns, "pa")?;
        try_ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{AGGREGATOR_ADDRESS}/24"),
            "dev",
            "eth0",
        ])
    }

    /// Makes the switch, the nodes and (with `client`) the client, all links up.
    pub fn build(&self, client: bool) -> Result<(), LabError> {
        let switch = self.switch();
        try_ip(&["netns", "add", &switch])?;
        try_ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        try_ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for i in 1..=self.nodes {
            self.attach(&self.node(i), &format!("p{i}"))?;
            let ns = self.node(i);
            try_ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("198.51.100.{i}/24"),
                "dev",
                "eth0",
            ])?;
        }
        if client {
            let ns = self.client();
            self.attach(&ns, "pc")?;
            try_ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{CLIENT_ADDRESS}/24"),
                "dev",
                "eth0",
            ])?;
            try_ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                "2001:db8::200/64",
                "dev",
                "eth0",
                "nodad",
            ])?;
            try_ip(&["-n", &ns, "route", "add", "198.18.0.0/15", "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Makes namespace `ns` with `eth0` plugged into the bridge at `port`.
    fn attach(&self, ns: &str, port: &str) -> Result<(), LabError> {
        let switch = self.switch();
        try_ip(&["netns", "add", ns])?;
        try_ip(&[
            "-n", &switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        try_ip(&["-n", &switch, "link", "set", port, "master", "br0", "up"])?;
        try_ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        try_ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Removes every namespace of the lab that exists (and with them their links).
    pub fn destroy(&self) {
        for i in 1..=self.nodes {
            let _ = try_ip(&["netns", "del", &self.node(i)]);
        }
        let _ = try_ip(&["netns", "del", &self.client()]);
        let _ = try_ip(&["netns", "del", &self.aggregator()]);
        let _ = try_ip(&["netns", "del", &self.switch()]);
    }

    /// Takes node `i`'s switch port down (`up == false`) or up again: the node is cut off the
    /// LAN as if its host died, or put back.
    pub fn set_port(&self, i: usize, up: bool) -> Result<(), LabError> {
        try_ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{i}"),
            if up { "up" } else { "down" },
        ])
    }

    /// Deletes node `i`'s `eth0` (and with it the switch port it is plugged into), as a udev
    /// rename or a bond being rebuilt would: every address on it goes too.
    pub fn delete_link(&self, i: usize) -> Result<(), LabError> {
        try_ip(&["-n", &self.node(i), "link", "del", "eth0"])
    }

    /// Creates node `i`'s `eth0` again, plugged into the client's switch, with the node's own
    /// address: what [`Topology::delete_link`] took.
    pub fn create_link_again(&self, i: usize) -> Result<(), LabError> {
        let (switch, ns, port) = (self.switch(), self.node(i), format!("p{i}"));
        try_ip(&[
            "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        try_ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
        try_ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        try_ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("198.51.100.{i}/24"),
            "dev",
            "eth0",
        ])
    }

    /// Whether node `i`'s switch port is up.
    pub fn port_up(&self, i: usize) -> bool {
        Command::new("ip")
            .args(["-n", &self.switch(), "-o", "link", "show", &format!("p{i}")])
            .output()
            .is_ok_and(|o| {
                let text = String::from_utf8_lossy(&o.stdout);
                // `N: pI@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> ...`: the flags say it.
                let flags = text
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map_or("", |(flags, _)| flags);
                flags.split(',').any(|f| f == "UP")
            })
    }

    /// corosync's configuration for every node: knet with the timing DESIGN.md explains
    /// ([`Timing::default`]), which forms a new membership about 250 ms after a node dies.
    /// With `authkey` (a file that [`write_authkey`] made), knet encrypts and signs every
    /// packet with it, as production must (docs/security.md); without, the lab measures what
    /// that costs.
    pub fn corosync_conf(&self, authkey: Option<&std::path::Path>) -> String {
        self.corosync_conf_timed(authkey, &Timing::default())
    }

    /// [`Topology::corosync_conf`] with other timing, to measure what it changes.
    pub fn corosync_conf_timed(
        &self,
        authkey: Option<&std::path::Path>,
        timing: &Timing,
    ) -> String {
        let Timing {
            token_ms,
            token_retransmits,
            consensus_ms,
            knet_ping_interval_ms,
            knet_ping_timeout_ms,
            heartbeats: _,
        } = timing;
        let mut nodes = String::new();
        for i in 1..=self.nodes {
            nodes.push_str(&format!(
                "  node {{\n    nodeid: {i}\n    name: node{i}\n    ring0_addr: 198.51.100.{i}\n  }}\n"
            ));
        }
        let two = if self.nodes == 2 {
            "  two_node: 1\n"
        } else {
            ""
        };
        let crypto = match authkey {
            Some(key) => format!(
                "  crypto_cipher: aes256\n  crypto_hash: sha256\n  keyfile: {}\n",
                key.display()
            ),
            None => "  crypto_cipher: none\n  crypto_hash: none\n".to_owned(),
        };
        format!(
            "totem {{\n  version: 2\n  cluster_name: dviplab\n  transport: knet\n{crypto}  token: {token_ms}\n  consensus: {consensus_ms}\n  token_coefficient: 0\n  token_retransmits_before_loss_const: {token_retransmits}\n  knet_mtu: {LAN_MTU}\n  interface {{\n    linknumber: 0\n    knet_ping_interval: {knet_ping_interval_ms}\n    knet_ping_timeout: {knet_ping_timeout_ms}\n  }}\n}}\nnodelist {{\n{nodes}}}\nquorum {{\n  provider: corosync_votequorum\n{two}}}\nlogging {{\n  to_stderr: yes\n  to_syslog: no\n  blackbox: off\n}}\n"
        )
    }

    /// The command that runs corosync on node `i` with `conf`, in the foreground. corosync
    /// keeps its pid file and state under /run and /var/lib/corosync: each gets a private
    /// tmpfs in a mount namespace of its own. The process it starts is corosync itself (every
    /// step execs the next), so its pid is corosync's.
    pub fn corosync_command(&self, i: usize, conf: &std::path::Path) -> Command {
        self.command_with_own_mounts(
            i,
            &format!(
                "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/corosync && exec corosync -f -c {}",
                conf.display()
            ),
        )
    }

    /// A command running shell `script` in node `i`'s namespace and in a mount namespace of
    /// its own, so that what the script mounts (a private /run) is the node's alone.
    pub fn command_with_own_mounts(&self, i: usize, script: &str) -> Command {
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.node(i),
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
        ]);
        command
    }

    /// How many nodes corosync on node `i` sees joined (0 if it does not answer).
    pub fn ring_size(&self, i: usize) -> usize {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node(i),
                "corosync-cmapctl",
                "runtime.members",
            ])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .matches("status (str) = joined")
                    .count()
            })
            .unwrap_or(0)
    }

    /// The /32 and /128 addresses node `i` answers for, on `eth0` or on a holder interface
    /// dvipd spread them to (DuraVIP addresses: the node's own is a /24), sorted: what is
    /// plumbed there, less what dvipd keeps silent.
    pub fn held(&self, i: usize) -> Vec<String> {
        let mut list = self.plumbed(i);
        if !list.is_empty() {
            let silent = self.silent(i);
            list.retain(|a| !silent.contains(a));
        }
        list
    }

    /// The IPv4 addresses node `i`'s dvipd keeps silent (`dvipd --pre-plumb`: plumbed ahead
    /// of need on their successor, answering nowhere until a takeover): the `silent` set of
    /// its `dvip_silence` table, empty when there is none.
    pub fn silent(&self, i: usize) -> std::collections::BTreeSet<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.node(i)])
            .args([
                "nft",
                "-j",
                "list",
                "set",
                "netdev",
                "dvip_silence",
                "silent",
            ])
            .stderr(std::process::Stdio::null())
            .output();
        let Ok(out) = out else {
            return std::collections::BTreeSet::new();
        };
        let listed: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        listed["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["set"]["elem"].as_array())
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect()
    }

    /// The /32 and /128 addresses plumbed on node `i`, silent ones included, sorted.
    pub fn plumbed(&self, i: usize) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.node(i), "-j", "addr", "show"])
            .output();
        let Ok(out) = out else {
            return Vec::new();
        };
        let links: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let mut list: Vec<String> = links
            .as_array()
            .into_iter()
            .flatten()
            .filter(|link| link["ifname"] != "lo")
            .flat_map(|link| link["addr_info"].as_array().into_iter().flatten())
            .filter(|a| a["prefixlen"] == 32 || a["prefixlen"] == 128)
            .filter(|a| a["scope"] != "link")
            .filter_map(|a| a["local"].as_str().map(str::to_owned))
            .collect();
        list.sort();
        list
    }

    /// The MAC address of node `i`'s `eth0` (or of the client's, for `i == 0`).
    pub fn mac(&self, i: usize) -> String {
        let ns = if i == 0 { self.client() } else { self.node(i) };
        crate::link_mac(&ns, "eth0")
    }
}

#[cfg(test)]
mod timing_tests {
    use super::Timing;

    #[test]
    fn timing_corosync_would_refuse_is_refused_with_its_reason() {
        assert_eq!(Timing::default().check(), Ok(()));
        let fast = Timing {
            token_ms: 50,
            token_retransmits: 1,
            consensus_ms: 60,
            knet_ping_interval_ms: 50,
            knet_ping_timeout_ms: 150,
            heartbeats: None,
        };
        assert_eq!(fast.check(), Ok(()));
        let refused = |t: Timing, part: &str| {
            let why = t.check().expect_err("refused");
            assert!(why.contains(part), "{why}");
        };
        refused(
            Timing {
                token_retransmits: 3,
                ..fast
            },
            "30 ms",
        );
        refused(
            Timing {
                consensus_ms: 59,
                ..fast
            },
            "1.2 times",
        );
        refused(
            Timing {
                token_ms: 40,
                consensus_ms: 48,
                ..fast
            },
            "join timeout",
        );
        refused(
            Timing {
                knet_ping_timeout_ms: 50,
                ..fast
            },
            "longer than its interval",
        );
    }
}
