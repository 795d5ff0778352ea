//! `dvip lab bench`: failovers measured many times, the way a client sees them, with the time
//! split into the phases the daemons report.
//!
//! Owns the runs and the report: for each address count, a lab of that size; for each fault,
//! `runs` times: fail the busiest node, measure from the client (ARP) until a survivor answers
//! for each of its addresses, read the survivors' event streams to see when they saw the new
//! view, planned, plumbed and announced, then bring the node back. It must not inject faults
//! or probe by itself; [`super::inject`] and [`super::measure`] do.

use std::path::PathBuf;

use dvip_netns::LabError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::follow::Follower;
use super::handle::Lab;
use super::interrupt;
use super::logging;
use super::measure::{quantile, FaultMeasure, Phases};
use super::state::{LabState, System};
use super::steady;
use super::{down, inject, last_lines, measure, node_index, start_node, up, Fault, Spec};

/// What to measure.
pub(crate) struct BenchPlan {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    pub(crate) sizes: Vec<u32>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) runs: u32,
    pub(crate) dvipd: Option<PathBuf>,
    /// keepalived's advertisement intervals to measure as the baseline, in ms.
    pub(crate) keepalived: Vec<u32>,
    /// Also measure dvip with corosync's crypto off.
    pub(crate) no_crypto_baseline: bool,
    /// How many of each lab's addresses are forwarded listeners, timed by TCP too.
    pub(crate) listeners: u32,
    /// Runs slower than this (worst address by ARP or TCP, ms) are written out in full.
    pub(crate) keep_slow: Option<u64>,
    /// Where to draw the results, if anywhere.
    pub(crate) plot: Option<PathBuf>,
    /// Also measure dvip with an aggregator replaying every journal at full speed.
    pub(crate) replay_baseline: bool,
    /// Also measure dvip with every node's MTA counting connections through the local API
    /// at full speed, every kind replicated.
    pub(crate) replication_baseline: bool,
    /// corosync's membership timing for dvip's labs.
    pub(crate) timing: dvip_netns::Timing,
    /// Also measure dvip with ownership leases on this heartbeat timing (docs/leases.md).
    pub(crate) with_leases: Option<dvip_netns::Heartbeats>,
    /// Also measure dvip with leases on that timing and pre-plumbing.
    pub(crate) with_pre_plumbing: bool,
}

/// What else the cluster does while it fails over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Nothing,
    /// An aggregator replays every node's journal from its first line.
    Replay,
    /// Every node counts connection events through the local API as fast as it can.
    Replication,
}

/// What runs on the nodes of one series of labs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Measured {
    system: System,
    load: Load,
    /// dvipd runs ownership leases on this heartbeat timing, beyond the plan's own.
    leases: Option<dvip_netns::Heartbeats>,
}

impl Measured {
    fn label(self) -> String {
        match self.load {
            Load::Nothing if self.leases.is_some_and(|h| h.pre_plumb) => {
                format!("{} with leases, pre-plumbed", self.system.label())
            }
            Load::Nothing if self.leases.is_some() => {
                format!("{} with leases", self.system.label())
            }
            Load::Nothing => self.system.label(),
            Load::Replay => format!("{} replaying", self.system.label()),
            Load::Replication => format!("{} replicating", self.system.label()),
        }
    }
}

/// Lines in each node's journal for a replay: enough that replaying them all takes longer
/// than a failover.
const REPLAY_LINES: u64 = 3_000_000;

/// A slow run's evidence: the report with its per-address answers, and the survivors' events.
struct Evidence {
    report: FaultMeasure,
    events: Vec<Value>,
    moved: Vec<String>,
}

/// The phases of one failover, in ms after the fault, from the survivors' events: the first
/// new view, the first plan in it, the last of the failed node's addresses plumbed and the
/// last first announcement of one.
fn phases(events: &[Value], fault_at_ms: u64, moved: &[String], failed: &str) -> Phases {
    let after = |e: &Value| e["at_ms"].as_u64().filter(|&t| t >= fault_at_ms);
    let rel = |t: u64| (t - fault_at_ms) as f64;
    let first = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .filter_map(after)
            .min()
    };
    let first_about = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["node"] == failed)
            .filter_map(after)
            .min()
            .map(rel)
    };
    let last_of_moved = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .filter(|e| {
                e["address"]
                    .as_str()
                    .is_some_and(|a| moved.iter().any(|m| m == a))
            })
            .filter_map(after)
            .max()
    };
    Phases {
        view_ms: first("view").map(rel),
        planned_ms: first("planned").map(rel),
        plumbed_ms: last_of_moved("acquire").map(rel),
        announced_ms: last_of_moved("announce").map(rel),
        takeover_ready_ms: first_about("takeover_ready"),
        took_over_ms: first_about("took_over"),
    }
}

/// Whether the survivors did more than take the failed node's addresses once each.
fn troubled(report: &FaultMeasure) -> bool {
    !report.claimed_by_two_survivors.is_empty()
        || report.handed_over_among_survivors > 0
        || report.dark_again > 0
}

/// Writes a slow run's evidence to the current directory (a failure to write is reported,
/// not fatal: the measurement goes on).
fn keep(evidence: &Evidence, system: &str, size: u32, fault: Fault, run: u32) {
    let file = format!(
        "bench-slow-{}-{size}-{}-{run}.json",
        system.replace(' ', "-"),
        fault.name()
    );
    let text = json!({
        "report": evidence.report,
        "moved": evidence.moved,
        "survivors_events": evidence.events,
    });
    match std::fs::write(&file, format!("{text:#}\n")) {
        Ok(()) => eprintln!("bench: slow run kept in {file}"),
        Err(e) => eprintln!("bench: cannot write {file}: {e}"),
    }
}

/// One run: fail the busiest node, measure, bring it back. Returns the summary report and,
/// if it took longer than `keep_slow` ms, everything seen.
fn one_run(
    lab: &mut Lab,
    fault: Fault,
    keep_slow: Option<u64>,
    load: Load,
) -> Result<(FaultMeasure, Option<Evidence>), LabError> {
    let state = &mut lab.state;
    if load == Load::Replay {
        logging::replay_from_start(state)?;
    }
    let counting = (load == Load::Replication).then(|| super::replbench::Counting::start(state));
    let i = node_index(state, "busiest")?;
    let moved = state.topology().held(i);
    let followers: Vec<Follower> = (1..=state.nodes)
        .filter(|&n| n != i && state.system.runs_dvipd() && state.alive("dvipd", n))
        .map(|n| Follower::start(state.socket(n)))
        .collect();
    let tcp = state.listeners > 0;
    let nodes: Vec<usize> = (1..=state.nodes).collect();
    let logs: Vec<usize> = nodes.iter().map(|&n| steady::log_len(state, n)).collect();
    let measured = measure::fault(state, i, fault.describe(), tcp, || inject(state, i, fault));
    // A stalled host explains a slow or troubled run: corosync says when it was not run.
    let corosync_pauses_ms: Vec<f64> = match state.system {
        System::Dvip { .. } => nodes
            .iter()
            .zip(&logs)
            .flat_map(|(&n, &from)| steady::corosync_pauses(&steady::logged_since(state, n, from)))
            .collect(),
        System::Keepalived { .. } => Vec::new(),
    };
    let events: Vec<Value> = followers.into_iter().flat_map(Follower::finish).collect();
    if let Some(counting) = counting {
        eprintln!(
            "bench: the nodes counted {} connection events a second meanwhile",
            counting.finish()
        );
    }
    if load == Load::Replay {
        let lines = logging::stop_replay(state);
        eprintln!(
            "bench: the replay had brought {lines} of {} lines by the end of the measurement",
            REPLAY_LINES * state.nodes as u64
        );
    }
    let mut report = measured?;
    report.phases = phases(&events, report.fault_at_ms, &moved, &report.node);
    report.corosync_pauses_ms = corosync_pauses_ms;
    // Slow by ARP or by TCP: a listener can be served late although its address answered.
    // A run that moved an address twice or let one go dark again is kept however fast its
    // first answers were: that is what needs a look.
    let slow = keep_slow.is_some_and(|limit| {
        let late = |worst: Option<f64>| worst.is_none_or(|w| w > limit as f64);
        late(report.worst_ms)
            || (tcp && report.tcp.as_ref().is_some_and(|t| late(t.worst_ms)))
            || troubled(&report)
    });
    let evidence = slow.then(|| Evidence {
        report: report.clone(),
        events,
        moved,
    });
    report.per_address.clear();
    if let Some(tcp) = report.tcp.as_mut() {
        tcp.per_listener.clear();
    }
    start_node(state, i)?;
    lab.wait_spread()?;
    Ok((report, evidence))
}

/// Runs the whole plan, printing progress to stderr; the summary table (or JSON) to stdout.
pub(crate) fn run(plan: &BenchPlan, json_out: bool) -> Result<(), LabError> {
    let mut rows = Vec::new();
    let plain = plan
        .no_crypto_baseline
        .then_some(System::Dvip { crypto: false });
    let loaded = |wanted: bool, load| {
        wanted.then_some(Measured {
            system: System::default(),
            load,
            leases: None,
        })
    };
    let leased = plan.with_leases.map(|h| Measured {
        system: System::default(),
        load: Load::Nothing,
        leases: Some(h),
    });
    let pre_plumbed = plan
        .with_leases
        .filter(|_| plan.with_pre_plumbing)
        .map(|h| Measured {
            system: System::default(),
            load: Load::Nothing,
            leases: Some(dvip_netns::Heartbeats {
                pre_plumb: true,
                ..h
            }),
        });
    let replaying = loaded(plan.replay_baseline, Load::Replay);
    let replicating = loaded(plan.replication_baseline, Load::Replication);
    let systems = std::iter::once(System::default())
        .chain(plain)
        .chain(
            plan.keepalived
                .iter()
                .map(|&advert_ms| System::Keepalived { advert_ms }),
        )
        .map(|system| Measured {
            system,
            load: Load::Nothing,
            leases: None,
        })
        .chain(leased)
        .chain(pre_plumbed)
        .chain(replaying)
        .chain(replicating);
    // A failure part-way still reports what was measured before it.
    let mut failed = None;
    for measured in systems {
        if let Err(e) = measure_system(plan, measured, &mut rows) {
            // After Ctrl-C, a run cut short (an `ip` of its own interrupted too) is dropped,
            // not a failure.
            if !interrupt::requested() {
                failed = Some(e);
            }
            break;
        }
        if interrupt::requested() {
            break;
        }
    }
    let ratios = ratios(&rows);
    if let Some(path) = &plan.plot {
        let title = format!(
            "failover seen from the client, {} nodes, {} runs a row",
            plan.nodes, plan.runs
        );
        std::fs::write(path, super::plot::svg(&rows, &title))
            .map_err(|e| LabError(format!("{}: {e}", path.display())))?;
        eprintln!("bench: drew {}", path.display());
    }
    if json_out {
        crate::print_json(&json!({
            "nodes": plan.nodes,
            "corosync": plan.timing,
            "results": rows,
            "ratios": ratios,
            "interrupted": interrupt::requested(),
        }));
    } else {
        let t = plan.timing;
        println!(
            "corosync: token {} ms ({} retransmits), consensus {} ms, knet pings every {} ms, {} ms timeout",
            t.token_ms, t.token_retransmits, t.consensus_ms, t.knet_ping_interval_ms, t.knet_ping_timeout_ms
        );
        print_table(&rows);
        if let Some(h) = t.heartbeats.or(plan.with_leases) {
            for r in rows.iter().filter(|r| r.takeover_ready_median_ms.is_some()) {
                let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |f| format!("{f:.1}"));
                println!(
                    "{} at {} addresses, {}: dvipd's heartbeats (every {} ms, suspect after {} ms) ended the failed node's lease at {} ms median, {} ms p99; a survivor took over at {} ms median",
                    r.system,
                    r.addresses,
                    r.fault,
                    h.interval_ms,
                    h.suspect_after_ms,
                    cell(r.takeover_ready_median_ms),
                    cell(r.takeover_ready_p99_ms),
                    cell(r.took_over_median_ms)
                );
            }
        }
        if !ratios.is_empty() {
            print_ratios(&ratios);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// A server on every node for the listeners to reach: behind dvipd's forward, or for
/// keepalived on port 25 of every address, as an MTA listening on the wildcard would.
fn backends(state: &LabState) -> Result<Option<dvip_netns::Backends>, LabError> {
    if state.listeners == 0 {
        return Ok(None);
    }
    let listen: std::net::SocketAddr = match state.system {
        System::Dvip { .. } => super::FORWARD_TO
            .parse()
            .map_err(|_| super::err("FORWARD_TO"))?,
        System::Keepalived { .. } => {
            std::net::SocketAddr::from(([0, 0, 0, 0], super::LISTENER_PORT))
        }
    };
    let topology = state.topology();
    let nodes: Vec<(String, String)> = (1..=state.nodes)
        .map(|i| (format!("node{i}"), topology.node(i)))
        .collect();
    dvip_netns::Backends::start(&nodes, listen).map(Some)
}

fn measure_system(
    plan: &BenchPlan,
    measured: Measured,
    rows: &mut Vec<BenchRow>,
) -> Result<(), LabError> {
    let system = measured.system;
    // keepalived runs no corosync: that fault has no counterpart.
    let faults: Vec<Fault> = plan
        .faults
        .iter()
        .copied()
        .filter(|f| system.runs_dvipd() || *f != Fault::Corosync)
        .collect();
    for &size in &plan.sizes {
        up(Spec {
            system,
            listeners: plan.listeners,
            logs: measured.load == Load::Replay,
            replication: measured.load == Load::Replication,
            timing: dvip_netns::Timing {
                heartbeats: measured.leases.or(plan.timing.heartbeats),
                ..plan.timing
            },
            ..Spec::new(&plan.name, plan.nodes, size, plan.dvipd.clone())
        })?;
        let result = (|| -> Result<(), LabError> {
            let mut lab = Lab::load(&plan.name)?;
            let _backends = backends(&lab.state)?;
            if measured.load == Load::Replay {
                logging::fill_journals(&mut lab.state, REPLAY_LINES)?;
            }
            for &fault in &faults {
                let mut runs = Vec::new();
                for run in 1..=plan.runs {
                    if interrupt::requested() {
                        break;
                    }
                    let (report, evidence) =
                        one_run(&mut lab, fault, plan.keep_slow, measured.load)?;
                    let paused = match report.corosync_pauses_ms.as_slice() {
                        [] => String::new(),
                        pauses => format!(
                            " (corosync not run for {} ms)",
                            pauses
                                .iter()
                                .map(f64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    eprintln!(
                        "bench: {}, {size} addresses, {}, run {run}/{}: worst {} ms{paused}",
                        measured.label(),
                        fault.name(),
                        plan.runs,
                        report
                            .worst_ms
                            .map_or_else(|| "-".to_owned(), |w| w.to_string())
                    );
                    if let Some(evidence) = evidence {
                        keep(&evidence, &measured.label(), size, fault, run);
                    }
                    runs.push(report);
                }
                if runs.is_empty() {
                    break;
                }
                rows.push(summary(&measured.label(), size, fault, &runs));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let logs = LabState::load(&plan.name)
                .map(|s| last_lines(&s))
                .unwrap_or_default();
            down(&plan.name);
            return Err(LabError(format!("{e}\n{logs}")));
        }
        down(&plan.name);
        if interrupt::requested() {
            break;
        }
    }
    Ok(())
}

/// dvip's worst-address p99 against each baseline row of the same size and fault.
fn ratios(rows: &[BenchRow]) -> Vec<Ratio> {
    let dvip = |size: u32, fault: &str| {
        rows.iter()
            .find(|r| r.system == "dvip" && r.addresses == size && r.fault == fault)
    };
    rows.iter()
        .filter(|r| r.system != "dvip")
        .filter_map(|k| {
            let d = dvip(k.addresses, &k.fault)?;
            let (dp, kp) = (d.worst_p99_ms?, k.worst_p99_ms?);
            Some(Ratio {
                addresses: k.addresses,
                fault: k.fault.clone(),
                baseline: k.system.clone(),
                dvip_p99_ms: dp,
                baseline_p99_ms: kp,
                ratio: if kp > 0.0 { dp / kp } else { f64::NAN },
                dvip_doubles: d.double_answers,
                baseline_doubles: k.double_answers,
                dvip_survivor_doubles: d.survivor_doubles,
                baseline_survivor_doubles: k.survivor_doubles,
            })
        })
        .collect()
}

fn print_ratios(ratios: &[Ratio]) {
    let mut table = vec![[
        "ADDRESSES",
        "FAULT",
        "BASELINE",
        "DVIP P99",
        "BASELINE P99",
        "DVIP/BASELINE",
        "DVIP DOUBLES",
        "BASELINE DOUBLES",
        "DVIP SURVIVOR DOUBLES",
        "BASELINE SURVIVOR DOUBLES",
    ]
    .map(str::to_owned)
    .to_vec()];
    for r in ratios {
        table.push(vec![
            r.addresses.to_string(),
            r.fault.clone(),
            r.baseline.clone(),
            format!("{:.1}", r.dvip_p99_ms),
            format!("{:.1}", r.baseline_p99_ms),
            format!("{:.2}", r.ratio),
            r.dvip_doubles.to_string(),
            r.baseline_doubles.to_string(),
            r.dvip_survivor_doubles.to_string(),
            r.baseline_survivor_doubles.to_string(),
        ]);
    }
    println!();
    print!("{}", dvip_core::election::table::columns(&table));
}

/// Each run's worst listener, where the failed node had any.
fn series_tcp(runs: &[FaultMeasure]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.tcp.as_ref()?.worst_ms)
        .collect()
}

/// One line of the report: a system, an address count and a fault, over its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BenchRow {
    /// `dvip`, `dvip without crypto`, `keepalived 20ms`...
    pub(crate) system: String,
    /// Addresses in the lab.
    pub(crate) addresses: u32,
    /// Addresses the failed node held, in the first run.
    pub(crate) moved_per_run: Option<u64>,
    /// The fault, as `--faults` names it.
    pub(crate) fault: String,
    /// Runs measured.
    pub(crate) runs: usize,
    /// The worst address's time to an answer, median over the runs.
    pub(crate) worst_median_ms: Option<f64>,
    /// The same, p99.
    pub(crate) worst_p99_ms: Option<f64>,
    /// The survivors' first new view, median.
    pub(crate) view_median_ms: Option<f64>,
    /// Their first plan in it, median.
    pub(crate) planned_median_ms: Option<f64>,
    /// The last moved address plumbed, median.
    pub(crate) plumbed_median_ms: Option<f64>,
    /// The last moved address announced, median.
    pub(crate) announced_median_ms: Option<f64>,
    /// The first survivor's heartbeats allowing a lease takeover, median
    /// and p99.
    #[serde(default)]
    pub(crate) takeover_ready_median_ms: Option<f64>,
    #[serde(default)]
    pub(crate) takeover_ready_p99_ms: Option<f64>,
    /// The first survivor's takeover on the failed node's lease, median.
    #[serde(default)]
    pub(crate) took_over_median_ms: Option<f64>,
    /// The worst address's time past the decision to move (the new view, or a lease takeover
    /// when one came first): what dvip itself took, median.
    pub(crate) dvip_share_median_ms: Option<f64>,
    /// The same, p99.
    pub(crate) dvip_share_p99_ms: Option<f64>,
    /// ARP answers from two MACs at once, over the runs.
    pub(crate) double_answers: u64,
    /// Addresses claimed by two survivors at once, over the runs.
    pub(crate) survivor_doubles: usize,
    /// Addresses claimed by one survivor and then another, over the runs: moved again.
    #[serde(default)]
    pub(crate) survivor_handovers: usize,
    /// Addresses that went dark again after a survivor's first answer, over the runs.
    #[serde(default)]
    pub(crate) dark_again: usize,
    /// The longest silence after an address's first answer, over the runs.
    #[serde(default)]
    pub(crate) longest_silence_after_answer_ms: Option<f64>,
    /// Runs during which a node's corosync logged that it had not been scheduled in time:
    /// the host stalled.
    #[serde(default)]
    pub(crate) runs_with_corosync_paused: usize,
    /// The worst forwarded listener's time to a TCP answer, median.
    pub(crate) tcp_worst_median_ms: Option<f64>,
    /// The same, p99.
    pub(crate) tcp_worst_p99_ms: Option<f64>,
    /// Runs in which the failed node had listeners.
    pub(crate) tcp_runs: usize,
    /// Listeners never answered, over the runs.
    pub(crate) tcp_unanswered: usize,
    /// Addresses never answered, over the runs.
    pub(crate) unanswered: usize,
    /// Each run's worst address and phases, in the order run: where a tail comes from.
    #[serde(default)]
    pub(crate) per_run: Vec<RunPoint>,
}

/// One run of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunPoint {
    pub(crate) worst_ms: Option<f64>,
    #[serde(flatten)]
    pub(crate) phases: Phases,
}

/// dvip against one baseline row of the same address count and fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ratio {
    pub(crate) addresses: u32,
    pub(crate) fault: String,
    /// The baseline's system.
    pub(crate) baseline: String,
    pub(crate) dvip_p99_ms: f64,
    pub(crate) baseline_p99_ms: f64,
    /// dvip's p99 over the baseline's.
    pub(crate) ratio: f64,
    pub(crate) dvip_doubles: u64,
    pub(crate) baseline_doubles: u64,
    pub(crate) dvip_survivor_doubles: usize,
    pub(crate) baseline_survivor_doubles: usize,
}

fn summary(system: &str, size: u32, fault: Fault, runs: &[FaultMeasure]) -> BenchRow {
    let series =
        |of: fn(&FaultMeasure) -> Option<f64>| -> Vec<f64> { runs.iter().filter_map(of).collect() };
    let worst = series(|r| r.worst_ms);
    let dvip_share = series(|r| Some(r.worst_ms? - r.phases.decided_ms()?));
    let tcp = series_tcp(runs);
    BenchRow {
        system: system.to_owned(),
        addresses: size,
        moved_per_run: runs.first().map(|r| r.addresses as u64),
        fault: fault.name().to_owned(),
        runs: runs.len(),
        worst_median_ms: quantile(&worst, 0.5),
        worst_p99_ms: quantile(&worst, 0.99),
        view_median_ms: quantile(&series(|r| r.phases.view_ms), 0.5),
        planned_median_ms: quantile(&series(|r| r.phases.planned_ms), 0.5),
        plumbed_median_ms: quantile(&series(|r| r.phases.plumbed_ms), 0.5),
        announced_median_ms: quantile(&series(|r| r.phases.announced_ms), 0.5),
        takeover_ready_median_ms: quantile(&series(|r| r.phases.takeover_ready_ms), 0.5),
        takeover_ready_p99_ms: quantile(&series(|r| r.phases.takeover_ready_ms), 0.99),
        took_over_median_ms: quantile(&series(|r| r.phases.took_over_ms), 0.5),
        dvip_share_median_ms: quantile(&dvip_share, 0.5),
        dvip_share_p99_ms: quantile(&dvip_share, 0.99),
        double_answers: runs.iter().map(|r| r.double_answers as u64).sum(),
        survivor_doubles: runs.iter().map(|r| r.claimed_by_two_survivors.len()).sum(),
        survivor_handovers: runs.iter().map(|r| r.handed_over_among_survivors).sum(),
        dark_again: runs.iter().map(|r| r.dark_again).sum(),
        longest_silence_after_answer_ms: runs
            .iter()
            .filter_map(|r| r.longest_silence_after_answer_ms)
            .reduce(f64::max),
        runs_with_corosync_paused: runs
            .iter()
            .filter(|r| !r.corosync_pauses_ms.is_empty())
            .count(),
        tcp_worst_median_ms: quantile(&tcp, 0.5),
        tcp_worst_p99_ms: quantile(&tcp, 0.99),
        tcp_runs: tcp.len(),
        tcp_unanswered: runs
            .iter()
            .filter_map(|r| r.tcp.as_ref())
            .map(|t| t.unanswered.len())
            .sum(),
        unanswered: runs.iter().map(|r| r.unanswered.len()).sum(),
        per_run: runs
            .iter()
            .map(|r| RunPoint {
                worst_ms: r.worst_ms,
                phases: r.phases.clone(),
            })
            .collect(),
    }
}

fn print_table(rows: &[BenchRow]) {
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |f| format!("{f:.1}"));
    let mut table = vec![[
        "SYSTEM",
        "ADDRESSES",
        "MOVED",
        "FAULT",
        "RUNS",
        "WORST MEDIAN",
        "WORST P99",
        "VIEW",
        "PLANNED",
        "PLUMBED",
        "ANNOUNCED",
        "DVIP SHARE P99",
        "DOUBLES",
        "SURVIVOR DOUBLES",
        "MOVED AGAIN",
        "DARK AGAIN",
        "TCP MEDIAN",
        "TCP P99",
    ]
    .map(str::to_owned)
    .to_vec()];
    for r in rows {
        table.push(vec![
            r.system.clone(),
            r.addresses.to_string(),
            r.moved_per_run
                .map_or_else(|| "-".to_owned(), |m| m.to_string()),
            r.fault.clone(),
            r.runs.to_string(),
            cell(r.worst_median_ms),
            cell(r.worst_p99_ms),
            cell(r.view_median_ms),
            cell(r.planned_median_ms),
            cell(r.plumbed_median_ms),
            cell(r.announced_median_ms),
            cell(r.dvip_share_p99_ms),
            r.double_answers.to_string(),
            r.survivor_doubles.to_string(),
            r.survivor_handovers.to_string(),
            r.dark_again.to_string(),
            cell(r.tcp_worst_median_ms),
            cell(r.tcp_worst_p99_ms),
        ]);
    }
    println!(
        "times in ms after the fault; phases are medians over the runs, from the survivors' events"
    );
    print!("{}", dvip_core::election::table::columns(&table));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_takeover_on_a_lease_before_the_view_is_where_dvip_s_share_starts() {
        let fault = 1_000;
        let moved = vec!["198.18.0.10".to_owned()];
        let events = [
            json!({"event": "took_over", "node": "node2", "addresses": 1, "at_ms": 1_052}),
            json!({"event": "took_over", "node": "node3", "addresses": 1, "at_ms": 1_040}),
            json!({"event": "acquire", "address": "198.18.0.10", "at_ms": 1_060}),
            json!({"event": "view", "at_ms": 1_096}),
            json!({"event": "planned", "at_ms": 1_100}),
        ];
        let p = phases(&events, fault, &moved, "node2");
        assert_eq!(p.took_over_ms, Some(52.0), "about the failed node only");
        assert_eq!(p.view_ms, Some(96.0));
        assert_eq!(p.decided_ms(), Some(52.0));
        let without = phases(&events[2..], fault, &moved, "node2");
        assert_eq!(without.decided_ms(), Some(96.0), "no takeover: the view");
    }
}
