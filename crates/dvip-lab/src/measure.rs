//! Measuring a failover the way a client sees it: ARP from the lab's client namespace, before
//! and after a fault, until a survivor answers for every address the failed node held.
//!
//! Owns the measurement and its report. It must not choose the fault; the caller injects it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use dvip_netns::{mac_text, Answer, Connected, LabError, Prober, TcpProber};
use serde::Serialize;

use super::state::LabState;

/// How long a fault may take to be repaired before the measurement gives up.
const REPAIR_DEADLINE: Duration = Duration::from_secs(15);

/// How long the client goes on asking once every address has been answered: long enough for
/// corosync's view, the plan after it and any move it makes to fall inside, so an address that
/// a survivor answered for and then dropped is seen going dark again.
const WATCH_AFTER: Duration = Duration::from_millis(1_500);

/// Rounds an address may go unanswered, once answered, before it counts as dark again: one
/// lost request or late reply is noise on a busy bridge, three in a row are not.
const DARK_ROUNDS: u64 = 3;

/// When a survivor first answered for one address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AddressAnswer {
    pub(crate) address: Ipv4Addr,
    /// After the fault.
    pub(crate) ms: f64,
    /// The node that answered.
    pub(crate) owner: Option<String>,
    /// The longest time without a survivor's answer after this first one, and when it
    /// began (ms after the fault).
    pub(crate) longest_silence_ms: f64,
    pub(crate) silent_from_ms: f64,
}

/// When a survivor first accepted a connection on one listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ListenerAnswer {
    pub(crate) listener: String,
    pub(crate) ms: f64,
    /// What it said first (`220 NODE`).
    pub(crate) banner: String,
}

/// The TCP side of a measurement: the failed node's forwarded listeners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TcpMeasure {
    pub(crate) listeners: usize,
    pub(crate) worst_ms: Option<f64>,
    pub(crate) median_ms: Option<f64>,
    pub(crate) unanswered: Vec<String>,
    /// Each listener's answer; dropped from a bench run's report once summarised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) per_listener: Vec<ListenerAnswer>,
}

/// When the survivors, by their own events, saw the new view, planned, plumbed the last moved
/// address and announced it, in ms after the fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct Phases {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) view_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) planned_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plumbed_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) announced_ms: Option<f64>,
    /// When a survivor's heartbeats first said a lease takeover of the failed node would be
    /// allowed (with `--heartbeats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) takeover_ready_ms: Option<f64>,
    /// When a survivor first took some of the failed node's addresses on its lease, before
    /// any view (with leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) took_over_ms: Option<f64>,
}

impl Phases {
    /// When the survivors decided to move the failed node's addresses: the first of a lease
    /// takeover and the new view. What follows is dvip's own share.
    pub(crate) fn decided_ms(&self) -> Option<f64> {
        match (self.took_over_ms, self.view_ms) {
            (Some(took), Some(view)) => Some(took.min(view)),
            (took, view) => took.or(view),
        }
    }
}

/// One fault measured from the client: `dvip lab kill --measure` prints it, a bench run
/// summarises it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FaultMeasure {
    pub(crate) node: String,
    pub(crate) fault: String,
    /// When the fault was injected (Unix ms, the clock of dvipd's events).
    pub(crate) fault_at_ms: u64,
    /// The addresses the failed node held.
    pub(crate) addresses: usize,
    pub(crate) probe_interval_ms: f64,
    /// The last address's first answer from a survivor.
    pub(crate) worst_ms: Option<f64>,
    pub(crate) median_ms: f64,
    pub(crate) p99_ms: f64,
    /// How many addresses each survivor took.
    pub(crate) new_owners: BTreeMap<String, usize>,
    /// Addresses no survivor answered for in time.
    pub(crate) unanswered: Vec<Ipv4Addr>,
    /// Answers from the failed node after a survivor had answered.
    pub(crate) double_answers: usize,
    pub(crate) failed_node_answered_until_ms: Option<f64>,
    /// Addresses claimed by two survivors at once, with who claimed them.
    pub(crate) claimed_by_two_survivors: BTreeMap<Ipv4Addr, BTreeSet<String>>,
    /// Addresses claimed by one survivor, then by another: moved again after the failover.
    pub(crate) handed_over_among_survivors: usize,
    /// Addresses that went unanswered again, after a survivor's first answer, for
    /// [`DARK_ROUNDS`] rounds of requests in a row or more.
    pub(crate) dark_again: usize,
    /// The longest silence in rounds, over every answered address, dark or not, in ms.
    pub(crate) longest_silence_after_answer_ms: Option<f64>,
    /// Each address's answer; dropped from a bench run's report once summarised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) per_address: Vec<AddressAnswer>,
    pub(crate) tcp: Option<TcpMeasure>,
    /// Filled in by the bench from the survivors' events.
    #[serde(flatten)]
    pub(crate) phases: Phases,
    /// Filled in by the bench: each time a node's corosync logged meanwhile that it had not
    /// been scheduled for longer than it tolerates, how long (ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) corosync_pauses_ms: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The `q` quantile (0..=1) of `values` (nearest rank), `None` when there are none.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let rank = (q * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

/// Starts asking, from the lab's client, who has each of `targets`, every `interval`.
pub(super) fn client_prober(
    state: &LabState,
    targets: Vec<Ipv4Addr>,
    interval: Duration,
) -> Result<Prober, LabError> {
    let client: Ipv4Addr = dvip_netns::CLIENT_ADDRESS
        .parse()
        .map_err(|_| LabError("client address".into()))?;
    Prober::start(
        &state.topology().client(),
        "eth0",
        client,
        targets,
        interval,
    )
}

/// TCP connects to the failed node's listeners, with the first answer from a survivor for
/// each: a client connecting sees the listener move only once a survivor accepts.
struct TcpWatch {
    prober: TcpProber,
    targets: Vec<SocketAddrV4>,
    seen: usize,
    /// The failed node's banner.
    victim: String,
    /// Targets the failed node answered before the fault.
    before: BTreeSet<SocketAddrV4>,
    first: BTreeMap<SocketAddrV4, Connected>,
}

impl TcpWatch {
    /// Connects to those of `held` that are the lab's listeners; `None` if there are none.
    fn start(state: &LabState, i: usize, held: &[Ipv4Addr]) -> Result<Option<Self>, LabError> {
        let listeners: Vec<Ipv4Addr> = super::addresses(state.addresses)
            .enumerate()
            .filter(|&(k, _)| super::is_listener(state, k))
            .map(|(_, a)| a)
            .collect();
        let targets: Vec<SocketAddrV4> = held
            .iter()
            .filter(|a| listeners.contains(a))
            .map(|&a| SocketAddrV4::new(a, super::LISTENER_PORT))
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let prober = TcpProber::start(
            &state.topology().client(),
            targets.clone(),
            Duration::from_millis(2),
        )?;
        Ok(Some(Self {
            prober,
            targets,
            seen: 0,
            victim: format!("220 node{i}"),
            before: Default::default(),
            first: BTreeMap::new(),
        }))
    }

    /// Reads what connected since the last look: before the fault (`since` none) who answers
    /// what, after it the first survivor per target.
    fn read(&mut self, since: Option<Instant>) {
        let new = self.prober.connected_since(self.seen);
        self.seen += new.len();
        for c in new {
            match since {
                None if c.banner == self.victim => {
                    self.before.insert(c.target);
                }
                Some(t0)
                    if c.at >= t0 && c.banner.starts_with("220 ") && c.banner != self.victim =>
                {
                    self.first.entry(c.target).or_insert(c);
                }
                _ => {}
            }
        }
    }

    fn ready(&self) -> bool {
        self.before.len() == self.targets.len()
    }

    fn done(&self) -> bool {
        self.first.len() == self.targets.len()
    }

    fn report(self, t0: Instant) -> TcpMeasure {
        let mut times: Vec<f64> = self.first.values().map(|c| ms(c.at - t0)).collect();
        times.sort_by(f64::total_cmp);
        let unanswered: Vec<String> = self
            .targets
            .iter()
            .filter(|t| !self.first.contains_key(t))
            .map(ToString::to_string)
            .collect();
        TcpMeasure {
            listeners: self.targets.len(),
            worst_ms: times.last().copied(),
            median_ms: quantile(&times, 0.5),
            unanswered,
            per_listener: self
                .first
                .values()
                .map(|c| ListenerAnswer {
                    listener: c.target.to_string(),
                    ms: ms(c.at - t0),
                    banner: c.banner.clone(),
                })
                .collect(),
        }
    }
}

/// Probes node `i`'s addresses (and with `tcp`, connects to its listeners), injects the
/// fault, and reports when a survivor first answered for each.
pub(super) fn fault(
    state: &LabState,
    i: usize,
    what: &str,
    tcp: bool,
    inject: impl FnOnce() -> Result<(), LabError>,
) -> Result<FaultMeasure, LabError> {
    let topology = state.topology();
    let targets: Vec<Ipv4Addr> = topology
        .held(i)
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    if targets.is_empty() {
        return Err(LabError(format!("node{i} holds no address to measure")));
    }
    let names: BTreeMap<String, String> = (1..=state.nodes)
        .map(|n| (topology.mac(n), format!("node{n}")))
        .collect();
    let victim = topology.mac(i);
    // One round of requests for every address; rounds close enough to time a move to a few
    // milliseconds, far enough apart that thousands of addresses do not flood the bridge.
    let interval = Duration::from_micros((targets.len() as u64 * 5).max(2_000));
    let prober = client_prober(state, targets.clone(), interval)?;
    let mut tcp = if tcp {
        TcpWatch::start(state, i, &targets)?
    } else {
        None
    };

    // Before the fault: the node answers for all of them (or the probe is wrong). Every loop
    // below reads only the answers that arrived since it last looked; announcements are no
    // answers (they count only as claims, from the whole record at the end).
    let mut seen = 0;
    let mut fresh = || {
        let new = prober.answers_since(seen);
        seen += new.len();
        new.into_iter()
            .filter(|a| !a.gratuitous)
            .collect::<Vec<_>>()
    };
    let baseline = Instant::now();
    let mut answered = BTreeSet::new();
    // The failed node's last answer, before the fault or after it.
    let mut last_victim: Option<Instant> = None;
    loop {
        for a in fresh().iter().filter(|a| mac_text(a.mac) == victim) {
            answered.insert(a.address);
            last_victim = Some(a.at);
        }
        if let Some(tcp) = tcp.as_mut() {
            tcp.read(None);
        }
        if answered.len() == targets.len() && tcp.as_ref().is_none_or(TcpWatch::ready) {
            break;
        }
        if baseline.elapsed() > Duration::from_secs(5) {
            return Err(LabError(format!(
                "node{i} answered ARP for only {} of its {} addresses (and TCP on {} of its listeners) before the fault",
                answered.len(),
                targets.len(),
                tcp.as_ref().map_or(0, |t| t.before.len()),
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let t0 = Instant::now();
    let fault_at_ms = now_ms();
    inject()?;
    let mut first: BTreeMap<Ipv4Addr, Answer> = BTreeMap::new();
    let mut read = |first: &mut BTreeMap<Ipv4Addr, Answer>, last_victim: &mut Option<Instant>| {
        for a in fresh() {
            if mac_text(a.mac) == victim {
                *last_victim = Some(a.at);
            } else if a.at >= t0 {
                first.entry(a.address).or_insert(a);
            }
        }
    };
    loop {
        read(&mut first, &mut last_victim);
        if let Some(tcp) = tcp.as_mut() {
            tcp.read(Some(t0));
        }
        let tcp_done = tcp.as_ref().is_none_or(TcpWatch::done);
        if (first.len() == targets.len() && tcp_done) || t0.elapsed() > REPAIR_DEADLINE {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let tcp = tcp.map(|t| t.report(t0));
    // Then until the failed node has been silent a while. A killed dvipd's addresses go at
    // once (its guardian) or with their lifetime at the latest; a killed keepalived's stay
    // until someone removes them, so two seconds show it as well as any longer wait would.
    let linger = match state.system {
        // The lifetime dvipd chose, as it chooses it, unless the lab set one.
        super::state::System::Dvip { .. } => {
            state.address_lifetime.unwrap_or_else(|| {
                dvip_core::address_lifetime_for(state.addresses as usize).as_secs()
            }) + 3
        }
        super::state::System::Keepalived { .. } => 2,
    };
    let give_up = Instant::now() + Duration::from_secs(linger);
    let watched = Instant::now() + WATCH_AFTER;
    loop {
        read(&mut first, &mut last_victim);
        let quiet = last_victim.is_none_or(|at| at.elapsed() > Duration::from_millis(300));
        let now = Instant::now();
        if (quiet && now > watched) || now > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let answers = prober.stop()?;

    let mut times: Vec<f64> = first.values().map(|a| ms(a.at - t0)).collect();
    times.sort_by(f64::total_cmp);
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for a in first.values() {
        let name = names
            .get(&mac_text(a.mac))
            .cloned()
            .unwrap_or_else(|| mac_text(a.mac));
        *owners.entry(name).or_default() += 1;
    }
    // The failed node answering after a survivor did for the same address: two owners.
    let doubled: Vec<&Answer> = answers
        .iter()
        .filter(|a| !a.gratuitous && mac_text(a.mac) == victim && a.at >= t0)
        .filter(|a| first.get(&a.address).is_some_and(|f| a.round >= f.round))
        .collect();
    let last_double = doubled
        .iter()
        .map(|a| ms(a.at - t0))
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
    let two_survivors = claimed_by_two_survivors(&answers, t0, &victim, &names);
    let handovers = handed_over(&answers, t0, &victim, &names);
    let silences = silences_after_answer(&answers, &first, &victim);
    let unanswered: Vec<Ipv4Addr> = targets
        .iter()
        .filter(|t| !first.contains_key(t))
        .copied()
        .collect();
    let per_address = first
        .iter()
        .map(|(address, a)| {
            let silence = silences[address];
            AddressAnswer {
                address: *address,
                ms: ms(a.at - t0),
                owner: names.get(&mac_text(a.mac)).cloned(),
                longest_silence_ms: ms(silence.length),
                silent_from_ms: ms(silence.from - t0),
            }
        })
        .collect();
    Ok(FaultMeasure {
        node: format!("node{i}"),
        fault: what.to_owned(),
        fault_at_ms,
        addresses: targets.len(),
        probe_interval_ms: ms(interval),
        worst_ms: times.last().copied(),
        median_ms: quantile(&times, 0.5).unwrap_or(0.0),
        p99_ms: quantile(&times, 0.99).unwrap_or(0.0),
        new_owners: owners,
        unanswered,
        double_answers: doubled.len(),
        failed_node_answered_until_ms: last_double,
        claimed_by_two_survivors: two_survivors,
        handed_over_among_survivors: handovers,
        dark_again: silences
            .values()
            .filter(|s| s.rounds >= DARK_ROUNDS)
            .count(),
        longest_silence_after_answer_ms: silences.values().map(|s| ms(s.length)).reduce(f64::max),
        per_address,
        tcp,
        phases: Phases::default(),
        corosync_pauses_ms: Vec::new(),
    })
}

/// The addresses two or more survivors claimed *at once* after the fault (at `t0`), by
/// answering or by announcing them, with who claimed each: a second owner besides the failed
/// node (`victim`, a MAC), as when two keepalived backups both take over for a moment. A
/// client's neighbour entry follows the last announcement it heard and then ignores plain
/// answers for a second (the kernel's locktime): if that was the one that gave the address
/// up, the client's connections go nowhere meanwhile. At once means their claims overlap in
/// time; one survivor's claims all before another's is a handover ([`handed_over`]).
fn claimed_by_two_survivors(
    answers: &[Answer],
    t0: Instant,
    victim: &str,
    names: &BTreeMap<String, String>,
) -> BTreeMap<Ipv4Addr, BTreeSet<String>> {
    claim_spans(answers, t0, victim, names)
        .into_iter()
        .filter_map(|(address, spans)| {
            let at_once: BTreeSet<String> = spans
                .iter()
                .filter(|(who, span)| {
                    spans
                        .iter()
                        .any(|(other, o)| other != *who && span.0 <= o.1 && o.0 <= span.1)
                })
                .map(|(who, _)| who.clone())
                .collect();
            (at_once.len() > 1).then_some((address, at_once))
        })
        .collect()
}

/// The addresses more than one survivor claimed after the fault, one after the other: moved
/// again among the survivors (the client's entry changes twice), not two owners at once.
fn handed_over(
    answers: &[Answer],
    t0: Instant,
    victim: &str,
    names: &BTreeMap<String, String>,
) -> usize {
    let at_once = claimed_by_two_survivors(answers, t0, victim, names);
    claim_spans(answers, t0, victim, names)
        .into_iter()
        .filter(|(address, spans)| spans.len() > 1 && !at_once.contains_key(address))
        .count()
}

/// An address's longest time without an answer from a survivor after its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Silence {
    /// Whole rounds of requests that went unanswered: what makes it dark, since a prober
    /// that stalls (it does, for 10 to 20 ms on a busy machine) stalls its rounds too.
    rounds: u64,
    length: Duration,
    /// The answer it followed.
    from: Instant,
}

/// Per answered address, its longest [`Silence`]: an owner that drops the address (let go
/// and placed again, say) leaves the client's packets going nowhere meanwhile. The silence
/// up to the end counts too, the end being the last answer of all: probing's own end lags
/// its last round by however long the prober took to stop.
fn silences_after_answer(
    answers: &[Answer],
    first: &BTreeMap<Ipv4Addr, Answer>,
    victim: &str,
) -> BTreeMap<Ipv4Addr, Silence> {
    let mut last: BTreeMap<Ipv4Addr, &Answer> =
        first.iter().map(|(address, a)| (*address, a)).collect();
    let mut longest: BTreeMap<Ipv4Addr, Silence> = first
        .iter()
        .map(|(address, a)| {
            let none = Silence {
                rounds: 0,
                length: Duration::ZERO,
                from: a.at,
            };
            (*address, none)
        })
        .collect();
    let mut note = |from: &Answer, to: &Answer| {
        if let Some(worst) = longest.get_mut(&from.address) {
            // An answer is read in the round its request went out or the next.
            let silence = Silence {
                rounds: to.round.saturating_sub(from.round + 1),
                length: to.at.saturating_duration_since(from.at),
                from: from.at,
            };
            if (silence.rounds, silence.length) > (worst.rounds, worst.length) {
                *worst = silence;
            }
        }
    };
    let mut survivors: Vec<&Answer> = answers
        .iter()
        .filter(|a| !a.gratuitous && mac_text(a.mac) != victim)
        .collect();
    survivors.sort_by_key(|a| a.at);
    for &a in &survivors {
        if let Some(previous) = last.get_mut(&a.address) {
            if a.at > previous.at {
                let from = std::mem::replace(previous, a);
                note(from, a);
            }
        }
    }
    if let Some(&end) = survivors.last() {
        for from in last.into_values() {
            let end = Answer {
                address: from.address,
                ..*end
            };
            note(from, &end);
        }
    }
    longest
}

/// Per address, each survivor's first and last claim after `t0`.
fn claim_spans(
    answers: &[Answer],
    t0: Instant,
    victim: &str,
    names: &BTreeMap<String, String>,
) -> BTreeMap<Ipv4Addr, BTreeMap<String, (Instant, Instant)>> {
    let mut spans: BTreeMap<Ipv4Addr, BTreeMap<String, (Instant, Instant)>> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.at >= t0) {
        let mac = mac_text(a.mac);
        if mac != victim {
            let name = names.get(&mac).cloned().unwrap_or(mac);
            let span = spans
                .entry(a.address)
                .or_default()
                .entry(name)
                .or_insert((a.at, a.at));
            span.0 = span.0.min(a.at);
            span.1 = span.1.max(a.at);
        }
    }
    spans
}

/// The report as text.
pub(super) fn print(report: &FaultMeasure) {
    let or_dash = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "{} held {} addresses; fault: {}",
        report.node, report.addresses, report.fault
    );
    if !report.unanswered.is_empty() {
        println!(
            "NOT REPAIRED: {} addresses had no answer from a survivor within {} s",
            report.unanswered.len(),
            REPAIR_DEADLINE.as_secs()
        );
    }
    println!(
        "a survivor answered ARP for every address (seen from the client, probing every {} ms): worst {} ms, median {} ms",
        report.probe_interval_ms,
        or_dash(report.worst_ms),
        report.median_ms
    );
    if let Some(tcp) = &report.tcp {
        println!(
            "a survivor accepted a TCP connection on each of its {} listeners: worst {} ms",
            tcp.listeners,
            or_dash(tcp.worst_ms)
        );
    }
    let owners: Vec<String> = report
        .new_owners
        .iter()
        .map(|(node, n)| format!("{node} {n}"))
        .collect();
    println!("new owners: {}", owners.join(", "));
    if report.double_answers > 0 {
        println!(
            "the failed node still answered next to the new owner {} times, until {} ms after the fault",
            report.double_answers,
            or_dash(report.failed_node_answered_until_ms)
        );
    }
    if !report.claimed_by_two_survivors.is_empty() {
        println!(
            "TWO OWNERS: {} addresses were claimed (answered or announced) by two survivors at once after the fault",
            report.claimed_by_two_survivors.len()
        );
    }
    if report.dark_again > 0 {
        println!(
            "DARK AGAIN: {} addresses went unanswered for {DARK_ROUNDS} rounds of requests or more after a survivor had answered (the longest silence {} ms)",
            report.dark_again,
            or_dash(report.longest_silence_after_answer_ms)
        );
    }
    if report.handed_over_among_survivors > 0 {
        println!(
            "{} addresses moved again among the survivors after the failover (one survivor's claims, then another's)",
            report.handed_over_among_survivors
        );
    }
}

/// The wall clock in Unix milliseconds, the clock of dvipd's events, so a fault's time and the
/// survivors' events can be set side by side.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(address: u8, mac: u8, at: Instant, gratuitous: bool) -> Answer {
        Answer {
            address: Ipv4Addr::new(198, 18, 0, address),
            mac: [2, 0, 0, 0, 0, mac],
            at,
            round: 0,
            gratuitous,
        }
    }

    /// Three nodes' MACs and names, and node1's MAC: the failed node.
    fn three_nodes() -> (BTreeMap<String, String>, String) {
        let names = (1..=3)
            .map(|n| (mac_text([2, 0, 0, 0, 0, n]), format!("node{n}")))
            .collect();
        (names, mac_text([2, 0, 0, 0, 0, 1]))
    }

    #[test]
    fn a_second_survivor_announcing_an_address_is_a_second_owner() {
        let ms = Duration::from_millis;
        let before = Instant::now();
        let t0 = before + ms(5);
        let (names, victim) = three_nodes();
        let answers = [
            // .10: node2 answers, node3 only announces it, as a backup turned master does.
            claim(10, 2, t0 + ms(60), false),
            claim(10, 3, t0 + ms(60), true),
            // .11: node2 alone, with the failed node still answering: a double of another kind.
            claim(11, 2, t0 + ms(60), false),
            claim(11, 1, t0 + ms(70), false),
            // .12: node3 announced it before the fault only; node2 claims it after.
            claim(12, 3, before, true),
            claim(12, 2, t0 + ms(60), false),
        ];
        let two = claimed_by_two_survivors(&answers, t0, &victim, &names);
        assert_eq!(two.len(), 1, "{two:?}");
        assert_eq!(
            two[&Ipv4Addr::new(198, 18, 0, 10)],
            BTreeSet::from(["node2".to_owned(), "node3".to_owned()])
        );
        assert_eq!(handed_over(&answers, t0, &victim, &names), 0);
    }

    #[test]
    fn one_survivor_s_claims_then_another_s_are_a_handover_not_two_owners() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let (names, victim) = three_nodes();
        let answers = [
            // .10: node2 from 50 to 80 ms, then node3 from 90 ms: moved again.
            claim(10, 2, t0 + ms(50), false),
            claim(10, 2, t0 + ms(80), false),
            claim(10, 3, t0 + ms(90), false),
            claim(10, 3, t0 + ms(120), false),
            // .11: node2, node3, node2 again: both at once.
            claim(11, 2, t0 + ms(50), false),
            claim(11, 3, t0 + ms(60), false),
            claim(11, 2, t0 + ms(70), false),
        ];
        let two = claimed_by_two_survivors(&answers, t0, &victim, &names);
        assert_eq!(
            two.keys().copied().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(198, 18, 0, 11)]
        );
        assert_eq!(handed_over(&answers, t0, &victim, &names), 1);
    }

    #[test]
    fn an_address_a_survivor_stops_answering_for_is_dark_and_a_stalled_prober_is_not() {
        let t0 = Instant::now();
        let (_, victim) = three_nodes();
        // Rounds of 5 ms: an answer `at` ms after the fault is read in round `at / 5`, unless
        // the prober stalled.
        let answer = |address, mac, at: u64, gratuitous| Answer {
            round: at / 5,
            ..claim(address, mac, t0 + Duration::from_millis(at), gratuitous)
        };
        let answers = [
            // .10: node2 every round, then a 40 ms hole, then on to the end.
            answer(10, 2, 50, false),
            answer(10, 2, 55, false),
            answer(10, 2, 95, false),
            answer(10, 2, 100, false),
            // .11: answered once, then nothing until the last answer of all.
            answer(11, 3, 60, false),
            // Neither the failed node nor an announcement is an answer.
            answer(11, 1, 80, false),
            answer(11, 3, 90, true),
            answer(12, 2, 102, false),
        ];
        let first: BTreeMap<Ipv4Addr, Answer> = [answers[0], answers[4], answers[7]]
            .into_iter()
            .map(|a| (a.address, a))
            .collect();
        let silences = silences_after_answer(&answers, &first, &victim);
        let of_in = |silences: &BTreeMap<Ipv4Addr, Silence>, last: u8| {
            let s = silences[&Ipv4Addr::new(198, 18, 0, last)];
            (s.rounds, s.length.as_millis(), (s.from - t0).as_millis())
        };
        let of = |last| of_in(&silences, last);
        assert_eq!(of(10), (7, 40, 55));
        assert_eq!(of(11), (7, 42, 60));
        assert_eq!(of(12), (0, 0, 102));

        // A 40 ms hole for every address in which the prober sent no round: it stalled.
        let stalled = [10, 11].map(|address| {
            [(50, 10), (90, 11), (95, 12)].map(|(at, round)| Answer {
                round,
                ..answer(address, 2, at, false)
            })
        });
        let answers: Vec<Answer> = stalled.iter().flatten().copied().collect();
        let first = stalled.iter().map(|a| (a[0].address, a[0])).collect();
        let silences = silences_after_answer(&answers, &first, &victim);
        assert_eq!(of_in(&silences, 10), (0, 40, 50));
        assert_eq!(of_in(&silences, 11), (0, 40, 50));
    }
}
