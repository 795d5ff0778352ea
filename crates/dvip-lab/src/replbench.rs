//! `dvip lab repl-bench`: what replication sustains and how fast it converges, on a lab whose
//! nodes replicate every kind and serve the local API.
//!
//! Owns three measurements on one lab, one after the other: the local API's rate with PING
//! alone on every node at once (the baseline: the socket and dvipd's loop, nothing counted or
//! sent); the rate of connection events (opens and closes, inbound and outbound, per domain
//! and binding group) every node sustains at once, with the bytes the nodes put on the bridge
//! and dvipd's CPU; and the lag of a cache write from node1 until node2 reads it, under that
//! load and then idle, against `max_delay`. It must not inject faults.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_netns::LabError;
use serde::Serialize;

use super::logbench::{cpu_since, ticks, Cpu, Spread};
use super::state::LabState;
use super::steady::bridge_counters;
use super::{err, interrupt, Spec};

/// What to measure.
pub(crate) struct ReplBenchPlan {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    /// How long the baseline and the load each last.
    pub(crate) duration: Duration,
    /// Cache writes timed idle, one after the other.
    pub(crate) idle_samples: usize,
    pub(crate) dvipd: Option<std::path::PathBuf>,
}

/// Commands sent before their replies are read: an MTA's client library pipelines too.
const PIPELINE: usize = 200;

/// How long a cache write may take to reach node2 before the bench gives up on it.
const LAG_LIMIT: Duration = Duration::from_secs(10);

/// The report.
#[derive(Debug, Clone, Serialize)]
struct ReplBenchReport {
    nodes: usize,
    seconds: f64,
    /// PINGs answered a second, per node, all nodes at once.
    pings_per_s: Vec<f64>,
    /// Connection events counted a second, per node, all nodes at once.
    events_per_s: Vec<f64>,
    /// The median node's events over its PINGs.
    ratio: Option<f64>,
    /// Bytes the nodes put on the bridge per event, their idle traffic taken out.
    bus_bytes_per_event: Option<f64>,
    /// CPU of each node's dvipd and corosync during the load, in % of a core.
    cpu_percent: Cpu,
    /// A cache write on node1 until node2 reads it, in ms.
    lag_under_load_ms: Spread,
    lag_idle_ms: Spread,
    max_delay_ms: u128,
    interrupted: bool,
}

/// A client of one node's local API.
struct Api {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    pending: Vec<u8>,
    sent: usize,
}

impl Api {
    fn connect(state: &LabState, i: usize) -> Result<Self, LabError> {
        let path = state.api_socket(i);
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(err(format!("node{i}'s API at {}: {e}", path.display())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        // A paused node must not hold the bench forever.
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| err(format!("node{i}'s API: {e}")))?;
        let writer = stream
            .try_clone()
            .map_err(|e| err(format!("node{i}'s API: {e}")))?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            pending: Vec::new(),
            sent: 0,
        })
    }

    fn queue(&mut self, args: &[&str]) {
        self.pending
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.pending
                .extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        self.sent += 1;
    }

    /// Sends what is queued and reads every reply; an error reply is a failure.
    fn exchange(&mut self) -> Result<Vec<Option<String>>, LabError> {
        self.writer
            .write_all(&self.pending)
            .map_err(|e| err(format!("API: {e}")))?;
        self.pending.clear();
        let replies = (0..std::mem::take(&mut self.sent))
            .map(|_| self.reply())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(replies)
    }

    fn reply(&mut self) -> Result<Option<String>, LabError> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| err(format!("API reply: {e}")))?;
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+" | ":", rest)) => Ok(Some(rest.to_owned())),
            Some(("$", "-1")) => Ok(None),
            Some(("$", len)) => {
                let len: usize = len.parse().map_err(|_| err(format!("API: {line}")))?;
                let mut value = vec![0; len + 2];
                self.reader
                    .read_exact(&mut value)
                    .map_err(|e| err(format!("API reply: {e}")))?;
                value.truncate(len);
                Ok(Some(String::from_utf8_lossy(&value).into_owned()))
            }
            _ => Err(err(format!("the API answered {line:?}"))),
        }
    }
}

/// Builds the lab, measures, removes the lab; prints the report (JSON with `json_out`).
pub(crate) fn run(plan: &ReplBenchPlan, json_out: bool) -> Result<(), LabError> {
    let spec = Spec {
        replication: true,
        ..Spec::new(&plan.name, plan.nodes, 3, plan.dvipd.clone())
    };
    super::measure_on_a_lab(spec, json_out, |state| measure(state, plan), print)
}

/// One node's load: `work` fills a pipeline of commands, again and again until `stop`.
/// Returns the commands answered a second.
fn hammer(
    state: &LabState,
    i: usize,
    stop: &AtomicBool,
    work: impl Fn(&mut Api, u64),
) -> Result<f64, LabError> {
    let mut api = Api::connect(state, i)?;
    let start = Instant::now();
    let mut done = 0u64;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        work(&mut api, round);
        done += api.exchange()?.len() as u64;
        round += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Connection events counted on every node in the background until finished: the load of a
/// failover measured with replication busy.
pub(crate) struct Counting {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<f64, LabError>>>,
}

impl Counting {
    pub(crate) fn start(state: &LabState) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (1..=state.nodes)
            .map(|i| {
                let (state, stop) = (state.clone(), Arc::clone(&stop));
                std::thread::spawn(move || hammer(&state, i, &stop, events))
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops; the events a second summed over the nodes whose API stayed up (a failed
    /// node's connection breaks, and its count is left out).
    pub(crate) fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok()?.ok())
            .sum()
    }
}

/// Runs `work` on every node at once for `duration`, and `meanwhile` beside it until told
/// to stop; each node's rate, and what `meanwhile` found.
fn on_every_node<R: Send>(
    state: &LabState,
    duration: Duration,
    work: impl Fn(&mut Api, u64) + Sync,
    meanwhile: impl FnOnce(&AtomicBool) -> Result<R, LabError> + Send,
) -> Result<(Vec<f64>, R), LabError> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (stop, work) = (&stop, &work);
        let threads: Vec<_> = (1..=state.nodes)
            .map(|i| scope.spawn(move || hammer(state, i, stop, work)))
            .collect();
        let watcher = scope.spawn(move || meanwhile(stop));
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline && !interrupt::requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        let panicked = || err("a load thread panicked");
        let rates = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(panicked())))
            .collect::<Result<Vec<_>, _>>()?;
        let found = watcher.join().unwrap_or_else(|_| Err(panicked()))?;
        Ok((rates, found))
    })
}

/// One pipeline of connection events: a binding opens and closes a connection to a domain
/// of a group, and a client of a /16 opens and closes one, spread over many keys.
fn events(api: &mut Api, round: u64) {
    for k in 0..(PIPELINE / 4) as u64 {
        let n = round
            .wrapping_mul(PIPELINE as u64)
            .wrapping_add(k)
            .wrapping_mul(2_654_435_761);
        let binding = format!("198.51.100.{}", 10 + n % 200);
        let domain = format!("d{}.example", n % 1000);
        let group = format!("g{}", n % 4);
        let client = format!("198.18.{}.{}", (n >> 8) % 256, n % 256);
        api.queue(&["OUTBOUND.OPEN", &binding, &domain, &group]);
        api.queue(&["INBOUND.OPEN", &client]);
        api.queue(&["OUTBOUND.CLOSE", &binding, &domain, &group]);
        api.queue(&["INBOUND.CLOSE", &client]);
    }
}

fn pings(api: &mut Api, _round: u64) {
    for _ in 0..PIPELINE {
        api.queue(&["PING"]);
    }
}

/// Writes a fresh cache key on node1 and waits until node2 reads it; the lag in ms.
fn one_lag(writer: &mut Api, reader: &mut Api, n: u64) -> Result<f64, LabError> {
    let key = format!("seen:lag-{n}");
    let value = n.to_string();
    writer.queue(&["SET", &key, &value]);
    writer.exchange()?;
    let start = Instant::now();
    loop {
        reader.queue(&["GET", &key]);
        if reader.exchange()?.first() == Some(&Some(value.clone())) {
            return Ok(start.elapsed().as_secs_f64() * 1000.0);
        }
        if start.elapsed() > LAG_LIMIT {
            return Err(err(format!(
                "node2 did not read {key} within {LAG_LIMIT:?}"
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Lags measured one after another until `stop` (or `count` of them).
fn lags(
    state: &LabState,
    stop: &AtomicBool,
    count: usize,
    first: u64,
) -> Result<Vec<f64>, LabError> {
    let (mut writer, mut reader) = (Api::connect(state, 1)?, Api::connect(state, 2)?);
    let mut samples = Vec::new();
    for n in 0..count as u64 {
        if stop.load(Ordering::Relaxed) || interrupt::requested() {
            break;
        }
        samples.push(one_lag(&mut writer, &mut reader, first + n)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(samples)
}

fn median(values: &[f64]) -> Option<f64> {
    super::measure::quantile(values, 0.5)
}

fn measure(state: &LabState, plan: &ReplBenchPlan) -> Result<ReplBenchReport, LabError> {
    if state.nodes < 2 {
        return Err(err("repl-bench needs at least 2 nodes"));
    }
    let seconds = plan.duration.as_secs_f64();
    eprintln!("repl-bench: PING on every node at once for {seconds} s (the baseline)");
    let (bytes_before, t0) = (bridge_counters(state).1, Instant::now());
    let (pings_per_s, ()) = on_every_node(state, plan.duration, pings, |_| Ok(()))?;
    let idle_bytes_per_s =
        bridge_counters(state).1.saturating_sub(bytes_before) as f64 / t0.elapsed().as_secs_f64();

    eprintln!(
        "repl-bench: connection events on every node at once for {seconds} s, cache writes timed meanwhile"
    );
    let (bytes_before, cpu_before, t0) = (bridge_counters(state).1, ticks(state), Instant::now());
    let (events_per_s, under_load) = on_every_node(state, plan.duration, events, |stop| {
        lags(state, stop, usize::MAX, 0)
    })?;
    let elapsed = t0.elapsed().as_secs_f64();
    let load_bytes = bridge_counters(state).1.saturating_sub(bytes_before) as f64;
    let cpu_percent = cpu_since(state, &cpu_before, elapsed);
    let total_events: f64 = events_per_s.iter().sum::<f64>() * elapsed;
    let bus_bytes_per_event = (total_events > 0.0)
        .then(|| (load_bytes - idle_bytes_per_s * elapsed).max(0.0) / total_events);

    eprintln!(
        "repl-bench: {} cache writes timed one after another, idle",
        plan.idle_samples
    );
    let idle = lags(state, &AtomicBool::new(false), plan.idle_samples, 1 << 40)?;
    Ok(ReplBenchReport {
        nodes: state.nodes,
        seconds,
        ratio: median(&events_per_s)
            .zip(median(&pings_per_s))
            .map(|(e, p)| e / p),
        pings_per_s,
        events_per_s,
        bus_bytes_per_event,
        cpu_percent,
        lag_under_load_ms: Spread::of(&under_load),
        lag_idle_ms: Spread::of(&idle),
        max_delay_ms: dvip_replicate::MAX_DELAY_DEFAULT.as_millis(),
        interrupted: interrupt::requested(),
    })
}

fn print(report: &ReplBenchReport) {
    let rates = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    println!(
        "replication on {} nodes, {} s a measurement{}:",
        report.nodes,
        report.seconds,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    println!(
        "connection events a second, each node, all at once: {} (PING alone: {}; median ratio {})",
        rates(&report.events_per_s),
        rates(&report.pings_per_s),
        report.ratio.map_or("-".to_owned(), |r| format!("{r:.2}"))
    );
    println!(
        "bytes on the bridge per event: {}; CPU meanwhile, % of a core: {}",
        report
            .bus_bytes_per_event
            .map_or("-".to_owned(), |b| format!("{b:.1}")),
        report
            .cpu_percent
            .iter()
            .map(|(name, p)| format!("{name} {p:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, lag) in [
        ("under that load", &report.lag_under_load_ms),
        ("idle", &report.lag_idle_ms),
    ] {
        println!(
            "a cache write on node1 read on node2, {what}: median {}, p99 {}, worst {} ({} samples; max_delay {} ms)",
            ms(lag.median),
            ms(lag.p99),
            ms(lag.max),
            lag.samples,
            report.max_delay_ms
        );
    }
}
