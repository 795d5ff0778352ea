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

fn log_len(state: &LabState, i: usize) -> usize {
    std::fs::read_to_string(state.dir().join(format!("keepalived-{i}.log"))).map_or(0, |t| t.len())
}

/// keepalived's state changes logged by node `i` after byte `from` of its log.
fn keepalived_changes(state: &LabState, i: usize, from: usize) -> u64 {
    let text = std::fs::read_to_string(state.dir().join(format!("keepalived-{i}.log")))
        .unwrap_or_default();
    text.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("Entering MASTER STATE") || l.contains("Entering BACKUP STATE"))
        .count() as u64
}

/// Builds the lab, measures, removes the lab; prints the report (JSON with `json_out`).
pub(crate) fn run(plan: &SteadyPlan, json_out: bool) -> Result<(), LabError> {
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
    let changes = match state.system {
        System::Dvip { .. } => {
            let events: Vec<Value> = followers.into_iter().flat_map(Follower::finish).collect();
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
            }
        }
        System::Keepalived { .. } => {
            let changes: u64 = nodes
                .iter()
                .zip(&logs)
                .map(|(&i, &from)| keepalived_changes(state, i, from))
                .sum();
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
    if report.changes.events_missed > 0 {
        println!(
            "  at least: {} events came too fast for the lab to read (dvipd counted them)",
            report.changes.events_missed
        );
    }
}
