//! What a lab is made of, on disk: its name, its size, and the processes it started, so any
//! later `dvip lab` command (or a `down` after a crash) finds them.
//!
//! Owns the state file (`/var/lib/dvip-lab/NAME/state.json`; not under /run, which each
//! node's corosync sees replaced by a private tmpfs) and the identity of processes: a
//! process is the lab's only while its pid has the start time recorded when it was started,
//! so a recycled pid is never signalled. It must not build or change the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dvip_netns::{stat_fields, LabError, Topology};
use serde::{Deserialize, Serialize};

/// Where labs keep their state.
pub(crate) const LABS_DIR: &str = "/var/lib/dvip-lab";

/// A process the lab started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    /// Clock ticks after boot when it started (`/proc/PID/stat`, field 22).
    pub(crate) started: u64,
}

impl Process {
    /// Records a process just started.
    pub(crate) fn of(pid: u32) -> Option<Self> {
        start_time(pid).map(|started| Self { pid, started })
    }

    /// Whether the process is still the one recorded and not a zombie.
    pub(crate) fn alive(self) -> bool {
        start_time(self.pid) == Some(self.started) && !zombie(self.pid)
    }

    /// Sends `signal` if it is still the recorded process.
    pub(crate) fn signal(self, signal: nix::sys::signal::Signal) {
        if self.alive() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// SIGKILL, then wait (up to 2 s) until it is gone.
    pub(crate) fn kill(self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Every process running in network namespace `ns` (`ip netns pids`).
pub(crate) fn processes_in(ns: &str) -> Vec<Process> {
    std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .filter_map(Process::of)
        .collect()
}

/// Field 22 of `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z"))
}

/// What runs on a lab's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum System {
    /// corosync and dvipd; corosync encrypts and signs its traffic unless `crypto` is false
    /// (the benchmark's measure of what crypto costs).
    Dvip { crypto: bool },
    /// keepalived alone, advertising every `advert_ms` milliseconds (the benchmark's baseline).
    Keepalived { advert_ms: u32 },
}

impl Default for System {
    /// What production runs: dvipd over corosync with crypto on.
    fn default() -> Self {
        Self::Dvip { crypto: true }
    }
}

impl System {
    /// From the command line's choices: keepalived's advertisement interval when given, else
    /// dvipd with crypto unless `no_crypto`.
    pub(crate) fn chosen(keepalived: Option<u32>, no_crypto: bool) -> Self {
        match keepalived {
            Some(advert_ms) => Self::Keepalived { advert_ms },
            None => Self::Dvip { crypto: !no_crypto },
        }
    }

    /// Whether the nodes run corosync and dvipd.
    pub(crate) fn runs_dvipd(self) -> bool {
        matches!(self, Self::Dvip { .. })
    }

    /// What the system is called in reports.
    pub(crate) fn label(self) -> String {
        match self {
            Self::Dvip { crypto: true } => "dvip".to_owned(),
            Self::Dvip { crypto: false } => "dvip no-crypto".to_owned(),
            Self::Keepalived { advert_ms } => format!("keepalived {advert_ms}ms"),
        }
    }
}

/// A lab as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    pub(crate) addresses: u32,
    /// `None`: dvipd's own choice.
    pub(crate) address_lifetime: Option<u64>,
    pub(crate) dvipd: PathBuf,
    /// `corosync-I` and `dvipd-I` (or `keepalived-I`) for node I.
    pub(crate) processes: BTreeMap<String, Process>,
    /// What runs on the nodes.
    #[serde(default)]
    pub(crate) system: System,
    /// How many of the addresses (spread over the range) are forwarded SMTP listeners.
    #[serde(default)]
    pub(crate) listeners: u32,
    /// Each node serves a journal on its cluster listener and an aggregator collects them.
    #[serde(default)]
    pub(crate) logs: bool,
    /// Every kind is replicated and each node serves the local API (`api-I.sock`).
    #[serde(default)]
    pub(crate) replication: bool,
    /// corosync's membership timing.
    #[serde(default)]
    pub(crate) timing: dvip_netns::Timing,
}

impl LabState {
    pub(crate) fn dir_of(name: &str) -> PathBuf {
        Path::new(LABS_DIR).join(name)
    }

    pub(crate) fn dir(&self) -> PathBuf {
        Self::dir_of(&self.name)
    }

    /// The namespaces' common prefix.
    pub(crate) fn prefix_of(name: &str) -> String {
        format!("dvlab-{name}-")
    }

    pub(crate) fn topology(&self) -> Topology {
        Topology {
            prefix: Self::prefix_of(&self.name),
            nodes: self.nodes,
        }
    }

    /// Node `i`'s console socket.
    pub(crate) fn socket(&self, i: usize) -> PathBuf {
        self.dir().join(format!("node{i}.sock"))
    }

    /// Node `i`'s local API socket (with `replication`).
    pub(crate) fn api_socket(&self, i: usize) -> PathBuf {
        self.dir().join(format!("api-{i}.sock"))
    }

    pub(crate) fn load(name: &str) -> Result<Self, LabError> {
        let path = Self::dir_of(name).join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LabError(format!(
                "no lab `{name}` ({}: {e}); start one with `dvip lab up`",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| LabError(format!("{}: not a lab state: {e}", path.display())))
    }

    /// Writes the state (atomically: a crash leaves the old or the new file, never half).
    pub(crate) fn save(&self) -> Result<(), LabError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError(format!("{}: {e} (run as root)", dir.display())))?;
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join("state.json")))
            .map_err(|e| LabError(format!("{}: {e}", dir.display())))
    }

    pub(crate) fn process(&self, what: &str, i: usize) -> Option<Process> {
        self.processes.get(&format!("{what}-{i}")).copied()
    }

    pub(crate) fn alive(&self, what: &str, i: usize) -> bool {
        self.process(what, i).is_some_and(Process::alive)
    }

    /// The process that holds a node's addresses: `dvipd` or `keepalived`.
    pub(crate) fn daemon(&self) -> &'static str {
        match self.system {
            System::Dvip { .. } => "dvipd",
            System::Keepalived { .. } => "keepalived",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_its_pid_and_start_time() {
        let me = Process::of(std::process::id()).expect("this process has a stat");
        assert!(me.alive());
        let recycled = Process {
            started: me.started + 1,
            ..me
        };
        assert!(!recycled.alive(), "same pid, other start time: not ours");
    }
}
