//! Detectors on a modelled network, in real time, with every clock drifting at its own rate:
//! beats are delayed, lost, cut one way, nodes pause, die and restart. At every step, no node
//! may hold its lease once another has taken it over (safety), and without faults nobody is
//! suspected while a dead node is taken over within `T` and a few beats (liveness). Each
//! planted flaw must be caught.

use std::collections::BTreeSet;
use std::time::Duration;

use dvip_lease::{Beat, Detector, Flaw, Lease, LeaseOptions};

const STEP_NS: u64 = 250_000;

/// A small deterministic generator: each seed is one reproducible history.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Beats from one node to another are lost.
    Cut { from: usize, to: usize },
    /// Nodes on one side hear nothing from the other.
    Split { side: u8 },
    /// The node's daemon runs nothing (messages to it wait).
    Pause(usize),
    /// The daemon dies, and starts afresh when the fault ends.
    Restart(usize),
}

#[derive(Debug, Clone)]
struct Scenario {
    nodes: usize,
    drift_ppm: Vec<i64>,
    offset_ns: Vec<u64>,
    /// Base delay per directed pair, and jitter.
    delay_ns: Vec<Vec<u64>>,
    jitter_ns: u64,
    loss_per_mille: u64,
    faults: Vec<(u64, u64, Fault)>,
    /// Real time at which a node dies for good, if one does.
    death: Option<(usize, u64)>,
    duration_ns: u64,
}

impl Scenario {
    fn random(seed: u64, faults: bool) -> Self {
        let mut d = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let nodes = 2 + d.below(4) as usize;
        let ms = 1_000_000;
        let mut list = Vec::new();
        if faults {
            for _ in 0..d.below(6) {
                let start = d.below(1500) * ms;
                let length = (1 + d.below(300)) * ms;
                let a = d.below(nodes as u64) as usize;
                let b = (a + 1 + d.below(nodes as u64 - 1) as usize) % nodes;
                let fault = match d.below(4) {
                    0 => Fault::Cut { from: a, to: b },
                    1 => Fault::Split {
                        side: d.below(256) as u8,
                    },
                    2 => Fault::Pause(a),
                    _ => Fault::Restart(a),
                };
                list.push((start, start + length, fault));
            }
        }
        Self {
            nodes,
            drift_ppm: (0..nodes).map(|_| d.below(1981) as i64 - 990).collect(),
            offset_ns: (0..nodes).map(|_| d.below(1_000_000) * ms).collect(),
            delay_ns: (0..nodes)
                .map(|_| (0..nodes).map(|_| 50_000 + d.below(3 * ms)).collect())
                .collect(),
            jitter_ns: d.below(2 * ms),
            loss_per_mille: if faults { d.below(300) } else { 0 },
            faults: list,
            death: d
                .chance(500)
                .then(|| (d.below(nodes as u64) as usize, (300 + d.below(1200)) * ms)),
            duration_ns: 2_000 * ms,
        }
    }

    fn clock(&self, node: usize, t: u64) -> Duration {
        let rate = 1_000_000 + self.drift_ppm[node];
        let local = self.offset_ns[node] as i128 + t as i128 * rate as i128 / 1_000_000;
        Duration::from_nanos(local as u64)
    }

    fn active(&self, t: u64) -> impl Iterator<Item = Fault> + '_ {
        self.faults
            .iter()
            .filter(move |(s, e, _)| (*s..*e).contains(&t))
            .map(|(_, _, f)| *f)
    }

    fn lost(&self, from: usize, to: usize, t: u64, d: &mut Dice) -> bool {
        let side = |mask: u8, n: usize| (mask >> n) & 1;
        self.active(t).any(|f| match f {
            Fault::Cut { from: a, to: b } => a == from && b == to,
            Fault::Split { side: mask } => side(mask, from) != side(mask, to),
            _ => false,
        }) || d.chance(self.loss_per_mille)
    }

    fn paused(&self, node: usize, t: u64) -> bool {
        self.active(t)
            .any(|f| matches!(f, Fault::Pause(n) if n == node))
    }

    fn down(&self, node: usize, t: u64) -> bool {
        self.death.is_some_and(|(n, at)| n == node && t >= at)
            || self
                .active(t)
                .any(|f| matches!(f, Fault::Restart(n) if n == node))
    }
}

/// How an owner's lease is enforced while its daemon is paused.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Enforcement {
    /// By the kernel, at the deadline the daemon last set: a paused daemon's addresses stop
    /// answering on time.
    Kernel,
    /// By the daemon alone: a paused daemon's addresses answer as they did when it paused.
    Daemon,
}

struct Node {
    detector: Option<Detector>,
    started_ns: u64,
    /// Whether its addresses answered when its daemon last ran.
    answering: bool,
}

#[derive(Debug)]
struct Outcome {
    /// (real time, taker, subject).
    takeovers: Vec<(u64, usize, usize)>,
    promises_made: usize,
    /// The first time a node held its lease after being taken over.
    violation: Option<String>,
    /// The first time after warm-up a live node's lease was not held.
    lapse: Option<u64>,
}

fn name(i: usize) -> String {
    format!("node{}", i + 1)
}

fn run(s: &Scenario, options: LeaseOptions, enforcement: Enforcement, seed: u64) -> Outcome {
    let mut dice = Dice(seed | 1);
    let names: BTreeSet<String> = (0..s.nodes).map(name).collect();
    let start = |i: usize, t: u64| {
        // Each run of a daemon is told apart by when it started.
        let mut d = Detector::new(name(i), options, s.clock(i, t), t);
        d.set_members(&names, s.clock(i, t));
        d
    };
    let mut nodes: Vec<Node> = (0..s.nodes)
        .map(|i| Node {
            detector: Some(start(i, 0)),
            started_ns: 0,
            answering: false,
        })
        .collect();
    let mut in_flight: Vec<(u64, usize, Beat)> = Vec::new();
    let mut out = Outcome {
        takeovers: Vec::new(),
        promises_made: 0,
        violation: None,
        lapse: None,
    };
    let mut t = 0;
    while t < s.duration_ns && out.violation.is_none() {
        for i in 0..s.nodes {
            match (s.down(i, t), nodes[i].detector.is_some()) {
                (true, true) => nodes[i].detector = None,
                (false, false) => {
                    nodes[i] = Node {
                        detector: Some(start(i, t)),
                        started_ns: t,
                        answering: false,
                    }
                }
                _ => {}
            }
        }
        // Beats in: a paused daemon's wait in its socket, a dead one's are gone.
        let mut kept = Vec::with_capacity(in_flight.len());
        for (at, to, beat) in in_flight.drain(..) {
            if at > t || s.paused(to, t) {
                kept.push((at, to, beat));
            } else if let Some(d) = nodes[to].detector.as_mut() {
                d.receive(&beat, s.clock(to, t));
            }
        }
        in_flight = kept;
        // Each running daemon: its promises and takeovers, then its beat.
        for i in 0..s.nodes {
            if s.paused(i, t) {
                continue;
            }
            let now = s.clock(i, t);
            let Some(d) = nodes[i].detector.as_mut() else {
                continue;
            };
            let ticked = d.tick(now);
            for takeover in ticked.takeovers {
                let subject = (0..s.nodes)
                    .find(|&n| name(n) == takeover.about)
                    .expect("a member");
                out.takeovers.push((t, i, subject));
            }
            out.promises_made += ticked.due.len();
            for due in &ticked.due {
                d.promise(&due.about, due.epoch, 0, now);
            }
            let answering = matches!(d.lease(now), Lease::Held { .. });
            if now >= d.next_beat() {
                let beat = d.beat(now);
                for j in (0..s.nodes).filter(|&j| j != i) {
                    if !s.lost(i, j, t, &mut dice) {
                        let at = t + s.delay_ns[i][j] + dice.below(s.jitter_ns + 1);
                        in_flight.push((at, j, beat.clone()));
                    }
                }
            }
            nodes[i].answering = answering;
        }
        // Safety: a node answers only while no takeover of its incarnation is held by a
        // taker still running (a taker that dies takes what it took with it).
        for (o, node) in nodes.iter().enumerate() {
            let Some(d) = node.detector.as_ref() else {
                continue;
            };
            let answering = match enforcement {
                Enforcement::Daemon if s.paused(o, t) => node.answering,
                _ => matches!(d.lease(s.clock(o, t)), Lease::Held { .. }),
            };
            if let Some(&(at, taker, _)) = out.takeovers.iter().find(|(at, taker, subject)| {
                let by = &nodes[*taker];
                *subject == o
                    && *at >= node.started_ns
                    && by.detector.is_some()
                    && by.started_ns <= *at
            }) {
                if answering {
                    out.violation = Some(format!(
                        "{} answers at {} µs, taken over by {} at {} µs",
                        name(o),
                        t / 1000,
                        name(taker),
                        at / 1000
                    ));
                }
            }
            let warm = t > 2 * options.suspect_after.as_nanos() as u64;
            if warm && !answering && out.lapse.is_none() && s.nodes > 1 {
                out.lapse = Some(t);
            }
        }
        t += STEP_NS;
    }
    out
}

fn options(flaw: Option<Flaw>) -> LeaseOptions {
    LeaseOptions {
        flaw,
        ..LeaseOptions::default()
    }
}

const SEEDS: u64 = 300;

#[test]
fn no_node_answers_once_it_has_been_taken_over_whatever_the_network_and_clocks_do() {
    let mut takeovers = 0;
    for seed in 0..SEEDS {
        let s = Scenario::random(seed, true);
        let out = run(&s, options(None), Enforcement::Kernel, seed);
        if let Some(v) = out.violation {
            panic!("seed {seed}: {v}\n{s:#?}");
        }
        takeovers += out.takeovers.len();
    }
    // The faults must have made takeovers happen, or the check above checked nothing.
    assert!(takeovers > SEEDS as usize, "only {takeovers} takeovers");
}

#[test]
fn without_faults_nobody_is_suspected_and_every_lease_holds() {
    for seed in 0..50 {
        let mut s = Scenario::random(seed, false);
        s.death = None;
        let out = run(&s, options(None), Enforcement::Kernel, seed);
        assert_eq!(out.promises_made, 0, "seed {seed}");
        assert_eq!(out.lapse, None, "seed {seed}: a lease lapsed\n{s:#?}");
    }
}

#[test]
fn a_dead_node_is_taken_over_by_every_survivor_within_t_and_a_few_beats() {
    let o = options(None);
    for seed in 0..50 {
        let mut s = Scenario::random(seed, false);
        let dies = (seed as usize) % s.nodes;
        let at = 500_000_000;
        s.death = Some((dies, at));
        let out = run(&s, o, Enforcement::Kernel, seed);
        // T on the fastest clock, two beats, the slowest delay and the step.
        let bound = at
            + o.suspect_after.as_nanos() as u64 * 1_001 / 1_000
            + 2 * o.interval.as_nanos() as u64
            + 3_050_000
            + s.jitter_ns
            + 2 * STEP_NS;
        let takers: BTreeSet<usize> = out
            .takeovers
            .iter()
            .filter(|(t, _, subject)| *subject == dies && *t <= bound)
            .map(|(_, taker, _)| *taker)
            .collect();
        // A pair's survivor loses its own lease with the other's acknowledgements, and takes
        // nothing without it: leases are for three nodes and more.
        let expected = if s.nodes > 2 { s.nodes - 1 } else { 0 };
        assert_eq!(
            takers.len(),
            expected,
            "seed {seed}: {takers:?} took over in time; all: {:?}",
            out.takeovers
        );
        assert!(out.violation.is_none());
    }
}

fn caught(flaw: Option<Flaw>, enforcement: Enforcement) -> Option<(u64, String)> {
    (0..SEEDS).find_map(|seed| {
        let s = Scenario::random(seed, true);
        run(&s, options(flaw), enforcement, seed)
            .violation
            .map(|v| (seed, v))
    })
}

#[test]
fn every_planted_flaw_is_caught() {
    for flaw in [
        Flaw::LeaseFromArrival,
        Flaw::AckAfterPromise,
        Flaw::PromiseEarly,
    ] {
        assert!(
            caught(Some(flaw), Enforcement::Kernel).is_some(),
            "{flaw:?} went unnoticed"
        );
    }
    // A lease the daemon alone enforces does not survive the daemon being paused: why the
    // deadline must be the kernel's.
    assert!(caught(None, Enforcement::Daemon).is_some());
}
