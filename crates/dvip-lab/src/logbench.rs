//! `dvip lab log-bench`: what clustered logging costs and how fast it is, on a lab whose
//! nodes serve their journals to an aggregator in a namespace of its own.
//!
//! Owns three measurements, one after the other on one lab: CPU of every node's processes
//! and of the aggregator with no lines (the baseline) and with RATE lines a second going into
//! every node's journal; the lag from a line in a node's journal to the line in its
//! aggregated file, meanwhile; and a replay of everything written, from the first line, timed
//! against a local copy of the same journals. It must not inject faults.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dvip_netns::LabError;
use serde::Serialize;

use super::logging::{self, writer::LineWriter};
use super::measure::quantile;
use super::state::LabState;
use super::steady::{cpu_ticks, roles};
use super::{err, interrupt, Spec};

/// What to measure.
pub(crate) struct LogBenchPlan {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    /// Lines a second into each node's journal.
    pub(crate) rate: u32,
    /// How long each of the idle and the busy measurement lasts.
    pub(crate) duration: Duration,
    pub(crate) dvipd: Option<std::path::PathBuf>,
}

/// CPU in % of a core, per process: `node1 dvipd`, `node1 corosync`, ..., `aggregator`.
pub(crate) type Cpu = BTreeMap<String, f64>;

/// Quantiles of a series, in ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub(crate) samples: usize,
    pub(crate) median: Option<f64>,
    pub(crate) p99: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Self {
        Self {
            samples: values.len(),
            median: quantile(values, 0.5),
            p99: quantile(values, 0.99),
            max: values.iter().copied().reduce(f64::max),
        }
    }
}

/// The replay of everything written, and its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Replay {
    lines: u64,
    seconds: f64,
    lines_per_s: f64,
    /// The same journals read and written to files on this host, no network in between.
    local_copy_lines_per_s: f64,
    /// Replay over local copy.
    ratio: f64,
}

/// What `dvip lab log-bench` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct LogBenchReport {
    nodes: usize,
    rate_per_node: u32,
    seconds: f64,
    interrupted: bool,
    lines_written: u64,
    /// From a line in its node's journal to the line in the aggregated file.
    lag_ms: Spread,
    cpu_idle_percent: Cpu,
    cpu_lines_percent: Cpu,
    replay: Option<Replay>,
}

/// How often the aggregated files are looked at for the lines of the marks.
const LOOK_EVERY: Duration = Duration::from_millis(1);

/// How long the aggregator has to catch up after the lines stop, and to replay them all.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Builds the lab, measures, removes the lab; prints the report (JSON with `json_out`).
pub(crate) fn run(plan: &LogBenchPlan, json_out: bool) -> Result<(), LabError> {
    let spec = Spec {
        logs: true,
        ..Spec::new(&plan.name, plan.nodes, 3, plan.dvipd.clone())
    };
    super::measure_on_a_lab(spec, json_out, |state| measure(state, plan), print)
}

/// The CPU ticks so far of every process measured.
pub(crate) fn ticks(state: &LabState) -> BTreeMap<String, u64> {
    let mut all: Vec<(String, u32)> = (1..=state.nodes)
        .flat_map(|i| {
            roles(state, i)
                .into_iter()
                .map(move |(role, pid)| (format!("node{i} {role}"), pid))
        })
        .collect();
    all.extend(logging::aggregator_pid(state).map(|pid| ("aggregator".to_owned(), pid)));
    all.into_iter()
        .filter_map(|(name, pid)| Some((name, cpu_ticks(pid)?)))
        .collect()
}

/// % of a core each process used between `before` and now, `seconds` apart.
pub(crate) fn cpu_since(state: &LabState, before: &BTreeMap<String, u64>, seconds: f64) -> Cpu {
    // `/proc` counts in USER_HZ, which Linux fixes at 100.
    ticks(state)
        .into_iter()
        .filter_map(|(name, now)| {
            let used = now.checked_sub(*before.get(&name)?)?;
            Some((
                name,
                (used as f64 / 100.0 / seconds * 1000.0).round() / 10.0,
            ))
        })
        .collect()
}

fn measure(state: &mut LabState, plan: &LogBenchPlan) -> Result<LogBenchReport, LabError> {
    logging::hold_journals(state)?;
    let seconds = plan.duration.as_secs_f64();
    eprintln!("log-bench: {seconds} s with no lines (the baseline)");
    let before = ticks(state);
    let started = Instant::now();
    while started.elapsed() < plan.duration && !interrupt::requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu_idle = cpu_since(state, &before, started.elapsed().as_secs_f64());

    eprintln!(
        "log-bench: {seconds} s with {} lines a second into each of {} journals",
        plan.rate, state.nodes
    );
    let mut lines = LineWriter::start(state, plan.rate, true)?;
    let before = ticks(state);
    let started = Instant::now();
    let mut pending: Vec<logging::writer::Mark> = Vec::new();
    let mut lags = Vec::new();
    while started.elapsed() < plan.duration && !interrupt::requested() {
        pending.extend(lines.take_marks());
        let arrived: Vec<u64> = (1..=state.nodes)
            .map(|i| logging::collected(state, i) / logging::writer::width(i))
            .collect();
        let now = Instant::now();
        pending.retain(|m| {
            let there = arrived[m.node - 1] >= m.through;
            if there {
                lags.push(now.duration_since(m.at).as_secs_f64() * 1000.0);
            }
            !there
        });
        std::thread::sleep(LOOK_EVERY);
    }
    let busy_seconds = started.elapsed().as_secs_f64();
    let cpu_lines = cpu_since(state, &before, busy_seconds);
    lines.stop()?;
    let (_, wrong) = logging::judge_complete(state, &lines, CATCH_UP);
    if !wrong.is_empty() {
        return Err(err(format!(
            "the aggregated files are wrong: {}",
            wrong.join("; ")
        )));
    }
    let written: u64 = lines.written().iter().sum();
    let replay = if interrupt::requested() {
        None
    } else {
        Some(replay(state, &lines)?)
    };
    Ok(LogBenchReport {
        nodes: state.nodes,
        rate_per_node: plan.rate,
        seconds: busy_seconds.round(),
        interrupted: interrupt::requested(),
        lines_written: written,
        lag_ms: Spread::of(&lags),
        cpu_idle_percent: cpu_idle,
        cpu_lines_percent: cpu_lines,
        replay,
    })
}

/// Times the aggregator replaying every line from the first, then a local copy of the same.
fn replay(state: &mut LabState, lines: &LineWriter) -> Result<Replay, LabError> {
    let written: u64 = lines.written().iter().sum();
    eprintln!("log-bench: replaying all {written} lines from the first");
    let started = logging::replay_from_start(state)?;
    let deadline = started + CATCH_UP;
    // Timed by the files' sizes (their lines are of one width), so reading them does not slow
    // the replay it times; they are read and judged once, after.
    let expected: Vec<u64> = lines
        .written()
        .iter()
        .enumerate()
        .map(|(k, &n)| n * logging::writer::width(k + 1))
        .collect();
    while (1..=state.nodes).any(|i| logging::collected(state, i) < expected[i - 1]) {
        if Instant::now() > deadline {
            let bytes: u64 = (1..=state.nodes)
                .map(|i| logging::collected(state, i))
                .sum();
            return Err(err(format!(
                "the replay brought {bytes} of {} bytes in {} s",
                expected.iter().sum::<u64>(),
                CATCH_UP.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed().as_secs_f64();
    let (counts, wrong) = logging::judge_all(state, lines);
    if !wrong.is_empty() || counts != lines.written() {
        return Err(err(format!(
            "the replay is wrong: {} ({counts:?} lines of {:?})",
            wrong.join("; "),
            lines.written()
        )));
    }
    let copy_started = Instant::now();
    let copied = logging::local_copy(state)?;
    let copy_took = copy_started.elapsed().as_secs_f64();
    let lines_per_s = written as f64 / took;
    let local = copied as f64 / copy_took;
    Ok(Replay {
        lines: written,
        seconds: (took * 100.0).round() / 100.0,
        lines_per_s: lines_per_s.round(),
        local_copy_lines_per_s: local.round(),
        ratio: ((lines_per_s / local) * 100.0).round() / 100.0,
    })
}

fn print(report: &LogBenchReport) {
    println!(
        "clustered logging on {} nodes, {} lines a second into each journal, {} s{}:",
        report.nodes,
        report.rate_per_node,
        report.seconds,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    println!(
        "lag from a node's journal to the aggregated file: median {}, p99 {}, worst {} ({} samples)",
        ms(report.lag_ms.median),
        ms(report.lag_ms.p99),
        ms(report.lag_ms.max),
        report.lag_ms.samples
    );
    println!("{:<20} {:>10} {:>12}", "PROCESS", "CPU IDLE", "CPU LINES");
    for (name, busy) in &report.cpu_lines_percent {
        let idle = report
            .cpu_idle_percent
            .get(name)
            .map_or("-".to_owned(), |p| format!("{p:.1} %"));
        println!("{name:<20} {idle:>10} {:>12}", format!("{busy:.1} %"));
    }
    if let Some(r) = &report.replay {
        println!(
            "replay of all {} lines from the first: {:.2} s, {} lines/s; a local copy of the same journals: {} lines/s (ratio {:.2})",
            r.lines, r.seconds, r.lines_per_s, r.local_copy_lines_per_s, r.ratio
        );
    }
}
