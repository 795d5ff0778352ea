//! `dvip lab steady`: what a cluster costs and whether it stays put while nothing fails.
//!
//! Owns the measurement of a quiet lab over a while: CPU of each node's processes (from
//! `/proc`), packets and bytes the nodes send into the bridge, and every view change and
//! ownership change (dvipd's events; keepalived's state changes from its log), optionally
//! with both cores kept busy by spinning threads. It must not inject faults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_netns::{stat_fields, LabError};
use serde::Serialize;
use serde_json::Value;

use super::follow::Follower;
use super::interrupt;
use super::state::{processes_in, LabState, System};
use super::{err, Spec};

/// What to measure.
pub(crate) struct SteadyPlan {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    pub(crate) addresses: u32,
    pub(crate) duration: Duration,
    /// Spinning threads that keep the CPUs busy meanwhile (0: none).
    pub(crate) busy: usize,
    pub(crate) dvipd: Option<std::path::PathBuf>,
    pub(crate) system: System,
    /// corosync's membership timing.
    pub(crate) timing: dvip_netns::Timing,
    /// Where to copy the lab's logs and the events before the lab goes.
    pub(crate) keep_logs: Option<std::path::PathBuf>,
}

/// Clock ticks of CPU a process has used (user + system: fields 14 and 15 of
/// `/proc/PID/stat`).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Packets and bytes the lab's ports received from their namespaces (what nodes and the
/// client sent into the bridge).
pub(crate) fn bridge_counters(state: &LabState) -> (u64, u64) {
    let out = std::process::Command::new("ip")
        .args(["-n", &state.topology().switch(), "-j", "-s", "link", "show"])
        .output();
    let Ok(out) = out else {
        return (0, 0);
    };
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"].as_str().is_some_and(|n| n.starts_with('p')))
        .fold((0, 0), |(p, b), l| {
            let rx = &l["stats64"]["rx"];
            (
                p + rx["packets"].as_u64().unwrap_or(0),
                b + rx["bytes"].as_u64().unwrap_or(0),
            )
        })
}

/// The processes that make node `i` a cluster member, by role.
pub(crate) fn roles(state: &LabState, i: usize) -> Vec<(&'static str, u32)> {
    match state.system {
        System::Dvip { .. } => ["dvipd", "corosync"]
            .into_iter()
            .filter_map(|what| state.process(what, i).map(|p| (what, p.pid)))
            .collect(),
        System::Keepalived { .. } => processes_in(&state.topology().node(i))
            .into_iter()
            .map(|p| ("keepalived", p.pid))
            .collect(),
    }
}

/// The log of node `i`'s membership daemon: corosync's, or keepalived's.
pub(crate) fn membership_log(state: &LabState, i: usize) -> std::path::PathBuf {
    let daemon = match state.system {
        System::Dvip { .. } => "corosync",
        System::Keepalived { .. } => "keepalived",
    };
    state.dir().join(format!("{daemon}-{i}.log"))
}

pub(crate) fn log_len(state: &LabState, i: usize) -> usize {
    std::fs::read_to_string(membership_log(state, i)).map_or(0, |t| t.len())
}

/// What node `i`'s membership daemon logged after byte `from` of its log.
pub(crate) fn logged_since(state: &LabState, i: usize, from: usize) -> String {
    let text = std::fs::read_to_string(membership_log(state, i)).unwrap_or_default();
    text.get(from..).unwrap_or("").to_owned()
}

/// keepalived's state changes in `log`.
fn keepalived_changes(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("Entering MASTER STATE") || l.contains("Entering BACKUP STATE"))
        .count() as u64
}

/// How long, in ms, each time corosync found its main loop had not been scheduled for
/// longer than it tolerates: the host, not the cluster, stalled (the cause of a view change
/// in a quiet run, when there is one).
pub(crate) fn corosync_pauses(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("main process was not scheduled"))
        .filter_map(|l| {
            let after = &l[l.find(") for ")? + ") for ".len()..];
            after.split_whitespace().next()?.parse::<f64>().ok()
        })
        .collect()
}

/// Builds the lab, measures, removes the lab; prints the report (JSON with `json_out`).
pub(crate) fn run(plan: &SteadyPlan, json_out: bool) -> Result<(), LabError> {
    if let Some(dir) = &plan.keep_logs {
        // Before ten minutes are spent, not after.
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("--keep-logs {}: {e}", dir.display())))?;
    }
    let spec = Spec {
        system: plan.system,
        timing: plan.timing,
        ..Spec::new(&plan.name, plan.nodes, plan.addresses, plan.dvipd.clone())
    };
    super::measure_on_a_lab(spec, json_out, |state| measure(state, plan), print)
}

/// One node over the measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeLoad {
    node: String,
    /// Addresses it held at the end.
    held: usize,
    /// CPU per process role, in % of a core.
    cpu_percent: BTreeMap<String, f64>,
    /// Whether what it held changed (it should not, in a steady state).
    holdings_changed: bool,
}

/// What `dvip lab steady` reports: printed as text, or serialized for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SteadyReport {
    system: String,
    nodes: usize,
    addresses: u32,
    seconds: f64,
    interrupted: bool,
    busy_threads: usize,
    per_node: Vec<NodeLoad>,
    bridge_packets_per_s: f64,
    bridge_bytes_per_s: f64,
    #[serde(flatten)]
    changes: Changes,
}

/// What changed while nothing failed: a quiet cluster has none of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Changes {
    view_changes: u64,
    ownership_changes: u64,
    /// Events the lab's followers were too slow to read (dvipd says how many): the two
    /// counts above are at least what they say, by up to this many.
    events_missed: u64,
    /// With `--heartbeats`: members dvipd's heartbeats stopped hearing, and lease takeovers
    /// they allowed.
    unheard: u64,
    takeovers_ready: u64,
    /// Times a node's own lease lapsed (it would have stopped answering).
    leases_lost: u64,
    /// Times a node's corosync logged that it had not been scheduled for longer than it
    /// tolerates, and the longest such pause: a host that stalls its processes, which the
    /// cluster may rightly take for a failure.
    corosync_pauses: u64,
    worst_corosync_pause_ms: f64,
}

fn measure(state: &LabState, plan: &SteadyPlan) -> Result<SteadyReport, LabError> {
    // `/proc` counts in USER_HZ, which Linux fixes at 100 whatever the kernel's own tick.
    let hz = 100.0;
    let nodes: Vec<usize> = (1..=state.nodes).collect();
    let followers: Vec<Follower> = match state.system {
        System::Dvip { .. } => nodes
            .iter()
            .map(|&i| Follower::start(state.socket(i)))
            .collect(),
        System::Keepalived { .. } => Vec::new(),
    };
    if followers.iter().any(|f| !f.following) {
        return Err(err("a dvipd did not open its event stream"));
    }
    let logs: Vec<usize> = nodes.iter().map(|&i| log_len(state, i)).collect();
    let processes: Vec<Vec<(&str, u32)>> = nodes.iter().map(|&i| roles(state, i)).collect();
    let before: Vec<Vec<Option<u64>>> = processes
        .iter()
        .map(|ps| ps.iter().map(|(_, pid)| cpu_ticks(*pid)).collect())
        .collect();
    let held_before: Vec<Vec<String>> = nodes.iter().map(|&i| state.topology().held(i)).collect();
    let (packets0, bytes0) = bridge_counters(state);
    let started = Instant::now();

    let spinning = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..plan.busy)
        .map(|_| {
            let on = Arc::clone(&spinning);
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while on.load(Ordering::Relaxed) {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                    );
                }
            })
        })
        .collect();
    let mut said = Instant::now();
    while started.elapsed() < plan.duration && !interrupt::requested() {
        std::thread::sleep(Duration::from_millis(200));
        if said.elapsed() >= Duration::from_secs(60) {
            eprintln!(
                "steady: {} s of {} s",
                started.elapsed().as_secs(),
                plan.duration.as_secs()
            );
            said = Instant::now();
        }
    }
    spinning.store(false, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let (packets1, bytes1) = bridge_counters(state);
    let held_after: Vec<Vec<String>> = nodes.iter().map(|&i| state.topology().held(i)).collect();

    let mut per_node = Vec::new();
    for (k, &i) in nodes.iter().enumerate() {
        let mut cpu: BTreeMap<String, f64> = BTreeMap::new();
        for ((role, pid), was) in processes[k].iter().zip(&before[k]) {
            let used = match (was, cpu_ticks(*pid)) {
                (Some(a), Some(b)) => Some(((b - a) as f64 / hz / seconds * 1000.0).round() / 10.0),
                _ => None,
            };
            *cpu.entry((*role).to_owned()).or_default() += used.unwrap_or(0.0);
        }
        per_node.push(NodeLoad {
            node: format!("node{i}"),
            held: held_after[k].len(),
            cpu_percent: cpu,
            holdings_changed: held_before[k] != held_after[k],
        });
    }
    let events: Vec<Vec<Value>> = followers.into_iter().map(Follower::finish).collect();
    if let Some(dir) = &plan.keep_logs {
        // The measurement is worth more than the copy: a failed copy is only told.
        if let Err(e) = keep_logs(state, &events, dir) {
            eprintln!("steady: {e}");
        }
    }
    let logged: Vec<String> = nodes
        .iter()
        .zip(&logs)
        .map(|(&i, &from)| logged_since(state, i, from))
        .collect();
    let changes = match state.system {
        System::Dvip { .. } => {
            let pauses: Vec<f64> = logged.iter().flat_map(|l| corosync_pauses(l)).collect();
            let events: Vec<Value> = events.into_iter().flatten().collect();
            let count = |kinds: &[&str]| {
                events
                    .iter()
                    .filter(|e| kinds.iter().any(|k| e["event"] == *k))
                    .count() as u64
            };
            Changes {
                view_changes: count(&["view"]),
                ownership_changes: count(&["acquire", "release"]),
                events_missed: events
                    .iter()
                    .filter(|e| e["event"] == "missed")
                    .filter_map(|e| e["count"].as_u64())
                    .sum(),
                unheard: count(&["unheard"]),
                takeovers_ready: count(&["takeover_ready"]),
                leases_lost: count(&["lease_lost"]),
                corosync_pauses: pauses.len() as u64,
                worst_corosync_pause_ms: pauses.iter().copied().fold(0.0, f64::max),
            }
        }
        System::Keepalived { .. } => {
            let changes: u64 = logged.iter().map(|l| keepalived_changes(l)).sum();
            Changes {
                view_changes: changes,
                ownership_changes: changes,
                ..Changes::default()
            }
        }
    };
    Ok(SteadyReport {
        system: state.system.label(),
        nodes: state.nodes,
        addresses: state.addresses,
        seconds: seconds.round(),
        interrupted: interrupt::requested(),
        busy_threads: plan.busy,
        per_node,
        bridge_packets_per_s: ((packets1 - packets0) as f64 / seconds * 10.0).round() / 10.0,
        bridge_bytes_per_s: ((bytes1 - bytes0) as f64 / seconds).round(),
        changes,
    })
}

/// Copies the lab's logs, configurations and state (not its key) and each node's streamed
/// events, one JSON line each, into `dir`; the lab's removal would take them.
fn keep_logs(
    state: &LabState,
    events: &[Vec<Value>],
    dir: &std::path::Path,
) -> Result<(), LabError> {
    let failed = |what: &str, e: std::io::Error| err(format!("keeping the logs: {what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
    let listing = std::fs::read_dir(state.dir()).map_err(|e| failed("the lab's directory", e))?;
    for entry in listing.flatten() {
        let path = entry.path();
        let wanted = path
            .extension()
            .is_some_and(|e| e == "log" || e == "conf" || e == "json");
        if wanted && entry.file_type().is_ok_and(|t| t.is_file()) {
            let to = dir.join(entry.file_name());
            std::fs::copy(&path, &to).map_err(|e| failed(&to.display().to_string(), e))?;
        }
    }
    for (k, lines) in events.iter().enumerate() {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let to = dir.join(format!("events-{}.jsonl", k + 1));
        std::fs::write(&to, text).map_err(|e| failed(&to.display().to_string(), e))?;
    }
    eprintln!("steady: logs kept in {}", dir.display());
    Ok(())
}

fn print(report: &SteadyReport) {
    println!(
        "{} on {} nodes with {} addresses, {} s{}:",
        report.system,
        report.nodes,
        report.addresses,
        report.seconds,
        match report.busy_threads {
            0 => String::new(),
            n => format!(", {n} threads spinning"),
        }
    );
    println!("{:<7} {:>6}  CPU (% of a core)", "NODE", "HELD");
    for n in &report.per_node {
        let cpu: Vec<String> = n
            .cpu_percent
            .iter()
            .map(|(role, p)| format!("{role} {p}"))
            .collect();
        println!("{:<7} {:>6}  {}", n.node, n.held, cpu.join(", "));
    }
    println!(
        "into the bridge: {} packets/s, {} bytes/s",
        report.bridge_packets_per_s, report.bridge_bytes_per_s
    );
    println!(
        "view changes: {}, ownership changes: {}",
        report.changes.view_changes, report.changes.ownership_changes
    );
    if report.system == "dvip" {
        println!(
            "dvipd's heartbeats: {} members unheard, {} lease takeovers allowed, {} leases lapsed (0 without --heartbeats)",
            report.changes.unheard, report.changes.takeovers_ready, report.changes.leases_lost
        );
    }
    if report.changes.corosync_pauses > 0 {
        println!(
            "  the host stalled: corosync logged {} pauses of its main loop, the longest {} ms",
            report.changes.corosync_pauses, report.changes.worst_corosync_pause_ms
        );
    }
    if report.changes.events_missed > 0 {
        println!(
            "  at least: {} events came too fast for the lab to read (dvipd counted them)",
            report.changes.events_missed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_s_own_pause_warnings_are_read_with_their_length() {
        let log = "Dec 08 00:39:28.167 warning [MAIN  ] Corosync main process was not scheduled (@1796690368167) for 238.8926 ms (threshold is 32.0000 ms). Consider token timeout increase.\n\
                   Dec 08 00:39:28.275 notice  [TOTEM ] A new membership (1.5) was formed. Members joined: 1\n\
                   Dec 08 00:41:02.001 warning [MAIN  ] Corosync main process was not scheduled (@1796690462001) for 41.5 ms (threshold is 32.0000 ms). Consider token timeout increase.\n";
        assert_eq!(corosync_pauses(log), vec![238.8926, 41.5]);
        assert!(corosync_pauses("A new membership (1.5) was formed.").is_empty());
    }

    #[test]
    fn keepalived_s_state_changes_are_counted() {
        let log = "Keepalived_vrrp: (VI_1) Entering MASTER STATE\nKeepalived_vrrp: (VI_1) sent 5 gratuitous ARPs\nKeepalived_vrrp: (VI_1) Entering BACKUP STATE\n";
        assert_eq!(keepalived_changes(log), 2);
    }
}
