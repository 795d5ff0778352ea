//! `dvip lab chaos`: a seeded nemesis breaks a lab cluster over and over, and after every
//! round a checker verifies that the cluster settled into a state a user can trust.
//!
//! Owns the run: building its lab, the rounds (faults, settling, looking, checking), the
//! report and the exit status. It must not decide what a fault is ([`nemesis`]) or what is
//! right ([`check`]).

mod check;
mod nemesis;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dvip_netns::{mac_text, LabError};
use serde::Serialize;
use serde_json::Value;

use self::check::{Causes, NodeSeen, Record, Seen};
use self::nemesis::{Dice, Health, Op, World};
use super::follow::Follower;
use super::handle::Lab;
use super::interrupt;
use super::logging::{self, writer::LineWriter};
use super::measure::{client_prober, quantile};
use super::state::LabState;
use super::{addresses, down, err, up, Spec};

/// How long the lab may take to settle after a round before that is a violation.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// How long a settled look must stay the same before it is checked.
const STEADY: Duration = Duration::from_millis(600);

/// What to run.
pub(crate) struct ChaosPlan {
    pub(crate) name: String,
    pub(crate) seed: Option<u64>,
    pub(crate) duration: Duration,
    pub(crate) nodes: usize,
    pub(crate) addresses: u32,
    pub(crate) dvipd: Option<std::path::PathBuf>,
    pub(crate) keep: bool,
    /// Lines a second into each node's journal, collected by an aggregator (`None`: no logs).
    pub(crate) logs: Option<u32>,
    /// corosync's timing, and dvipd's leases when it runs them.
    pub(crate) timing: dvip_netns::Timing,
}

/// Counts for the report.
struct Tally {
    started: Instant,
    rounds: u64,
    faults: BTreeMap<&'static str, u64>,
    refused: u64,
    settles: Vec<f64>,
    events: BTreeMap<String, u64>,
    violations: Vec<Violation>,
    lines: Option<Lines>,
}

/// A round whose end the checker refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Violation {
    round: u64,
    /// What the nemesis did in it, in words.
    after: Vec<String>,
    /// What the checker found.
    violations: Vec<String>,
}

/// How long the lab took to settle after a round, over the rounds, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SettleTimes {
    median: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

/// What `dvip lab chaos` reports: the text form prints it, `--json` serializes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ChaosReport {
    seed: u64,
    duration_s: u64,
    ran_s: u64,
    interrupted: bool,
    nodes: usize,
    addresses: u32,
    rounds: u64,
    faults_injected: u64,
    faults: BTreeMap<&'static str, u64>,
    commands_refused: u64,
    settles_checked: usize,
    settle_s: SettleTimes,
    events: BTreeMap<String, u64>,
    violations: Vec<Violation>,
    /// With logs: lines each node's journal took and the aggregated files hold, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<Lines>,
    replay: String,
}

/// The lines of a chaos run that collects logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Lines {
    written: u64,
    collected: u64,
}

/// Runs the plan; the report goes to stdout (JSON with `json`), progress to stderr. Fails
/// (non-zero exit) on any violation, naming the seed that replays the run.
pub(crate) fn run(plan: &ChaosPlan, json_out: bool) -> Result<(), LabError> {
    let seed = plan.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let replay = format!(
        "dvip lab --name {} chaos --seed {seed} --duration {} --nodes {} --addresses {}{}{}",
        plan.name,
        plan.duration.as_secs(),
        plan.nodes,
        plan.addresses,
        plan.logs
            .map_or(String::new(), |rate| format!(" --logs {rate}")),
        crate::cli::timing_flags(&plan.timing)
    );
    eprintln!("chaos: seed {seed} (replay: {replay})");
    up(Spec {
        logs: plan.logs.is_some(),
        timing: plan.timing,
        ..Spec::new(&plan.name, plan.nodes, plan.addresses, plan.dvipd.clone())
    })?;
    let mut lab = Lab::load(&plan.name)?;
    let mut tally = Tally {
        started: Instant::now(),
        rounds: 0,
        faults: BTreeMap::new(),
        refused: 0,
        settles: Vec::new(),
        events: BTreeMap::new(),
        violations: Vec::new(),
        lines: None,
    };
    let result = nemesis::make_second_switch(&lab.state)
        .and_then(|()| rounds(plan, seed, &mut lab, &mut tally))
        .or_else(|e| {
            // A second Ctrl-C never gets here; an `ip` of a round cut by the first may.
            if !interrupt::requested() {
                return Err(e);
            }
            eprintln!("chaos: the round in flight was cut by the interrupt: {e}");
            Ok(())
        });
    let elapsed = tally.started.elapsed();
    let report = report(plan, seed, elapsed, &tally, &replay);
    if json_out {
        crate::print_json(&report);
    } else {
        print(&report);
    }
    let failed = result.is_err() || !tally.violations.is_empty();
    if failed && plan.keep {
        eprintln!(
            "chaos: the lab is left as it failed: `dvip lab --name {} status`, logs in {}; `dvip lab --name {} down` removes it",
            plan.name,
            lab.state.dir().display(),
            plan.name
        );
    } else {
        down(&plan.name);
    }
    result?;
    if tally.violations.is_empty() {
        Ok(())
    } else {
        Err(err(format!(
            "{} violations; replay with: {replay}",
            tally.violations.len()
        )))
    }
}

/// Rounds until the time is up or a violation is found, then a last round that repairs
/// everything and checks the whole cluster.
fn rounds(plan: &ChaosPlan, seed: u64, lab: &mut Lab, tally: &mut Tally) -> Result<(), LabError> {
    let mut dice = Dice::new(seed);
    let mut world = World::new(
        lab.state.nodes,
        addresses(lab.state.addresses)
            .map(|a| a.to_string())
            .collect(),
    );
    world.has_netem = nemesis::kernel_has_netem(&lab.state);
    world.logs = plan.logs.is_some();
    let mut lines = plan
        .logs
        .map(|rate| LineWriter::start(&lab.state, rate, false))
        .transpose()?;
    if !world.has_netem {
        eprintln!("chaos: this kernel has no netem: links are degraded by loss alone, no delay");
    }
    let mut previous: Option<Record> = None;
    let mut last = false;
    loop {
        tally.rounds += 1;
        let health_before = health(&lab.state);
        // Every node is followed, down or not: a daemon started in the round (a restart, or
        // one that replaced a killed one) is seen from its first events on.
        let followers: Vec<(String, bool, Follower)> = (1..=lab.state.nodes)
            .map(|i| {
                let running = lab.state.alive("dvipd", i);
                let follower = Follower::reconnecting(lab.state.socket(i), running);
                (format!("node{i}"), running, follower)
            })
            .collect();
        let repairs = last.then(|| repair_all(&lab.state, &world));
        let count = repairs.as_ref().map_or_else(|| 1 + dice.below(3), Vec::len);
        let mut ops = Vec::new();
        let mut causes = Causes::default();
        for k in 0..count {
            if k > 0 && repairs.is_none() {
                std::thread::sleep(Duration::from_millis(dice.between(0, 600)));
            }
            // Chosen after the op before it was carried out, from the lab as it is now.
            let op = match &repairs {
                Some(repairs) => repairs[k].clone(),
                None => nemesis::choose(
                    &mut dice,
                    &health(&lab.state),
                    &world,
                    logging::aggregator_alive(&lab.state),
                ),
            };
            eprintln!(
                "chaos {:>6.1} s  round {:>4}  {}",
                tally.started.elapsed().as_secs_f64(),
                tally.rounds,
                op.describe(&world.addresses)
            );
            *tally.faults.entry(op.kind()).or_default() += 1;
            causes.membership |= op.touches_membership();
            if let Some(node) = op.changes() {
                causes.changed.insert(format!("node{node}"));
            }
            if let Some(refusal) = nemesis::apply(&op, lab, &mut world, lines.as_ref())? {
                tally.refused += 1;
                eprintln!("chaos            refused: {refusal}");
            }
            ops.push(op);
        }
        // A process that died or came back by itself (a daemon that did not survive its
        // reload) changes membership too.
        causes.membership |= health(&lab.state) != health_before;
        // Read each round: a node whose interface was deleted and created again answers
        // with a new MAC.
        let macs: Vec<String> = (1..=lab.state.nodes)
            .map(|i| lab.state.topology().mac(i))
            .collect();
        let settled = settle(lab, &world, &macs);
        let mut events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, running, follower) in followers {
            // A daemon running at the start whose stream did not open at once may have done
            // things unseen; one started later is known from its first line.
            let following = follower.following || (!running && follower.ever_opened());
            let lines = follower.finish();
            for line in &lines {
                let kind = line["event"].as_str().unwrap_or("?").to_owned();
                *tally.events.entry(kind).or_default() += 1;
            }
            // A node whose stream did not open is left out: what it did is not known.
            if following {
                events.insert(name, lines);
            }
        }
        let mut violations = match settled {
            Ok((mut seen, took)) => {
                tally.settles.push(took.as_secs_f64());
                seen.arp = Some(arp(&lab.state, &world)?);
                let bad = check::check(&seen, previous.as_ref(), &causes, &events);
                previous = Some(check::record(&seen));
                bad
            }
            Err(why) => {
                // What corosync itself sees tells a ring that cannot form from dvip not
                // following one.
                let rings: Vec<String> = (1..=lab.state.nodes)
                    .map(|i| match lab.state.alive("corosync", i) {
                        true => format!("node{i} {}", lab.state.topology().ring_size(i)),
                        false => format!("node{i} -"),
                    })
                    .collect();
                vec![format!(
                    "not settled within {} s: {why} (corosync ring sizes: {})",
                    SETTLE_DEADLINE.as_secs(),
                    rings.join(", ")
                )]
            }
        };
        if let Some(lines) = lines.as_mut() {
            violations.extend(judge_lines(&lab.state, lines, last, tally)?);
        }
        if !violations.is_empty() {
            for v in &violations {
                eprintln!("chaos VIOLATION in round {}: {v}", tally.rounds);
            }
            // The lab is torn down next: what each daemon said in the round is the trail
            // left to explain the violation.
            for (name, lines) in &events {
                for line in lines {
                    eprintln!("chaos   {name}: {line}");
                }
            }
            tally.violations.push(Violation {
                round: tally.rounds,
                after: ops.iter().map(|op| op.describe(&world.addresses)).collect(),
                violations,
            });
            return Ok(());
        }
        if last {
            return Ok(());
        }
        // Ctrl-C ends the run as the time running out does: with the repairing round.
        last = tally.started.elapsed() >= plan.duration || interrupt::requested();
    }
}

/// How long the aggregator has, once the lines stop, to write the last of them.
const CATCH_UP: Duration = Duration::from_secs(60);

/// The aggregated files after a round: every line so far once and in order; after the last
/// round, with the lines stopped, every line written.
fn judge_lines(
    state: &LabState,
    lines: &mut LineWriter,
    last: bool,
    tally: &mut Tally,
) -> Result<Vec<String>, LabError> {
    if last {
        lines.stop()?;
    }
    let (collected, wrong) = if last {
        logging::judge_complete(state, lines, CATCH_UP)
    } else {
        logging::judge_all(state, lines)
    };
    tally.lines = Some(Lines {
        written: lines.written().iter().sum(),
        collected: collected.iter().sum(),
    });
    Ok(wrong)
}

fn health(state: &LabState) -> Vec<Health> {
    (1..=state.nodes).map(|i| Health::of(state, i)).collect()
}

/// The ops of the last round: every node whole, on one switch, online, with its whole
/// configuration.
fn repair_all(state: &LabState, world: &World) -> Vec<Op> {
    let mut ops = vec![Op::Heal];
    for i in 1..=state.nodes {
        if !Health::of(state, i).whole() {
            ops.push(Op::Restart(i));
        }
        if !world.without[i - 1].is_empty() {
            ops.push(Op::Reload {
                node: i,
                without: 0..0,
            });
        }
        if world.standby[i - 1] {
            ops.push(Op::Online(i));
        }
    }
    if world.logs && !logging::aggregator_alive(state) {
        ops.push(Op::AggregatorStart);
    }
    ops
}

/// Looks at every node: its health, side, configuration, kernel addresses and `show`.
fn look(lab: &Lab, world: &World, macs: &[String]) -> Seen {
    let state = &lab.state;
    let topology = state.topology();
    let nodes = (1..=state.nodes)
        .map(|i| {
            let health = Health::of(state, i);
            let show = if health.daemon {
                lab.show(i, Duration::from_secs(3))
            } else {
                None
            };
            NodeSeen {
                name: format!("node{i}"),
                mac: macs[i - 1].clone(),
                member: health.whole(),
                side: world.side[i - 1],
                configured: world.configured(i),
                held: if health.dead() {
                    BTreeSet::new()
                } else {
                    topology.held(i).into_iter().collect()
                },
                show,
            }
        })
        .collect();
    Seen {
        nodes,
        addresses: world.addresses.clone(),
        arp: None,
    }
}

/// Waits until the lab has settled and stayed so for [`STEADY`]; returns that look and how
/// long it took, or why it did not settle.
fn settle(lab: &Lab, world: &World, macs: &[String]) -> Result<(Seen, Duration), String> {
    let start = Instant::now();
    let mut steady: Option<(String, Instant)> = None;
    loop {
        let seen = look(lab, world, macs);
        match check::unsettled(&seen) {
            None => {
                let print = check::fingerprint(&seen);
                match &steady {
                    Some((same, since)) if *same == print => {
                        if since.elapsed() >= STEADY {
                            return Ok((seen, start.elapsed()));
                        }
                    }
                    _ => steady = Some((print, Instant::now())),
                }
            }
            Some(why) => {
                steady = None;
                if start.elapsed() > SETTLE_DEADLINE {
                    return Err(why);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Which MACs claim each address over a few rounds of the client's ARP requests: by
/// answering, or by announcing it unasked (a node announcing an address it should not hold
/// misleads clients as much as one answering for it).
fn arp(state: &LabState, world: &World) -> Result<BTreeMap<String, BTreeSet<String>>, LabError> {
    let targets: Vec<Ipv4Addr> = world
        .addresses
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let prober = client_prober(state, targets, Duration::from_millis(20))?;
    std::thread::sleep(Duration::from_millis(200));
    let answers = prober.stop()?;
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in answers {
        seen.entry(IpAddr::V4(a.address).to_string())
            .or_default()
            .insert(mac_text(a.mac));
    }
    Ok(seen)
}

fn report(
    plan: &ChaosPlan,
    seed: u64,
    elapsed: Duration,
    tally: &Tally,
    replay: &str,
) -> ChaosReport {
    ChaosReport {
        seed,
        duration_s: plan.duration.as_secs(),
        ran_s: elapsed.as_secs(),
        interrupted: interrupt::requested(),
        nodes: plan.nodes,
        addresses: plan.addresses,
        rounds: tally.rounds,
        faults_injected: tally.faults.values().sum(),
        faults: tally.faults.clone(),
        commands_refused: tally.refused,
        settles_checked: tally.settles.len(),
        settle_s: SettleTimes {
            median: quantile(&tally.settles, 0.5),
            p99: quantile(&tally.settles, 0.99),
            max: tally.settles.iter().copied().reduce(f64::max),
        },
        events: tally.events.clone(),
        violations: tally.violations.clone(),
        lines: tally.lines.clone(),
        replay: replay.to_owned(),
    }
}

fn print(report: &ChaosReport) {
    println!(
        "chaos seed {}: {} s{}, {} nodes, {} addresses",
        report.seed,
        report.ran_s,
        if report.interrupted {
            format!(" of {} (interrupted)", report.duration_s)
        } else {
            String::new()
        },
        report.nodes,
        report.addresses
    );
    println!(
        "{} rounds, {} faults injected, {} settles checked, {} violations",
        report.rounds,
        report.faults_injected,
        report.settles_checked,
        report.violations.len()
    );
    // `{"host death": 3, ...}` as `host death 3, ...`.
    fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
        map.iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    println!("faults: {}", counts(&report.faults));
    let secs = |t: Option<f64>| t.map_or("-".to_owned(), |t| format!("{t:.1} s"));
    println!(
        "settled after each round in: median {}, p99 {}, worst {}",
        secs(report.settle_s.median),
        secs(report.settle_s.p99),
        secs(report.settle_s.max)
    );
    println!("events seen: {}", counts(&report.events));
    if let Some(lines) = &report.lines {
        println!(
            "log lines: {} written into the nodes' journals, {} in the aggregated files once and in order",
            lines.written, lines.collected
        );
    }
    for v in &report.violations {
        println!("VIOLATION in round {} after:", v.round);
        for op in &v.after {
            println!("  {op}");
        }
        for what in &v.violations {
            println!("  - {what}");
        }
    }
    if !report.violations.is_empty() {
        println!("replay: {}", report.replay);
    }
}
