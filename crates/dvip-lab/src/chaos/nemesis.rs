//! The chaos run's nemesis: chooses, from a seed, what goes wrong next, and does it to the lab.
//!
//! Owns the faults (their choice, their weights, how each is carried out) and the world they
//! leave (which side of a partition each node is on, which addresses each configuration
//! drops, who was put on standby). It must not judge the outcome; [`super::check`] does.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use dvip_netns::{try_ip, LabError};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::handle::Lab;
use crate::logging::{self, writer::LineWriter};
use crate::state::LabState;
use crate::{inject, start_corosync, start_dvipd, write_dvip_conf, Fault};

/// The seeded dice.
pub(super) struct Dice(ChaCha8Rng);

impl Dice {
    pub(super) fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// 0..n (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    /// lo..=hi.
    pub(super) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }

    pub(super) fn one_of<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// One thing the nemesis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    /// One of the faults `dvip lab kill` and `bench` inject too: a host death, a killed or
    /// stopped daemon, a killed corosync, a link cut.
    Fault {
        node: usize,
        fault: Fault,
    },
    /// Link up, corosync and dvipd started where they are not running.
    Restart(usize),
    /// Loss (and delay, where the kernel has netem) on a node's link both ways, for a while.
    Degrade {
        node: usize,
        loss_pct: u64,
        delay_ms: u64,
        hold_ms: u64,
    },
    /// These nodes are moved to a switch of their own, away from the others and the client.
    Partition(Vec<usize>),
    Heal,
    /// The node's configuration is rewritten without these addresses (by index; empty: the
    /// whole set) and its dvipd told to reload (SIGHUP).
    Reload {
        node: usize,
        without: Range<usize>,
    },
    AnnounceView(usize),
    Standby(usize),
    Online(usize),
    /// `dvip move ADDRESS to NODE`, sent to node `via`.
    Move {
        address: usize,
        to: usize,
        via: usize,
    },
    /// dvipd alone stopped (SIGSTOP) for a while, then continued; its corosync runs on.
    PauseDaemon {
        node: usize,
        hold_ms: u64,
    },
    /// corosync alone stopped (SIGSTOP) for a while, then continued; dvipd runs on.
    PauseCorosync {
        node: usize,
        hold_ms: u64,
    },
    /// The node's `eth0` deleted, with its addresses, and created again after a while.
    LinkDeleted {
        node: usize,
        hold_ms: u64,
    },
    /// The node's configuration cut short (`empty`: emptied) and its dvipd told to reload,
    /// then the file put back as it was: dvipd must keep running on the old one.
    BadReload {
        node: usize,
        empty: bool,
    },
    /// kill -9 of the log aggregator.
    AggregatorKill,
    /// The log aggregator started again.
    AggregatorStart,
    /// The aggregator's disk filled to the last byte for a while, then given space again.
    AggregatorDiskFull {
        hold_ms: u64,
    },
    /// The aggregator stopped while a burst of lines goes into the node's journal, started
    /// again, and the node's host killed once the replay of the burst has begun.
    ReplayDeath(usize),
}

/// Lines of a burst before a death during replay: enough that the replay takes a while.
const BURST: u64 = 100_000;

impl Op {
    /// The kind, as the report counts it.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Fault { fault, .. } => fault.in_words(),
            Self::Restart(_) => "restart",
            Self::Degrade { .. } => "loss and delay",
            Self::Partition(_) => "partition",
            Self::Heal => "heal",
            Self::Reload { .. } => "reload",
            Self::AnnounceView(_) => "announce view",
            Self::Standby(_) => "standby",
            Self::Online(_) => "online",
            Self::Move { .. } => "move",
            Self::PauseDaemon { .. } => "dvipd SIGSTOP",
            Self::PauseCorosync { .. } => "corosync SIGSTOP",
            Self::LinkDeleted { .. } => "interface deleted",
            Self::BadReload { empty: true, .. } => "reload of an empty file",
            Self::BadReload { empty: false, .. } => "reload of a cut-short file",
            Self::AggregatorKill => "aggregator kill -9",
            Self::AggregatorStart => "aggregator start",
            Self::AggregatorDiskFull { .. } => "aggregator disk full",
            Self::ReplayDeath(_) => "host death during replay",
        }
    }

    /// The op in words, for the log.
    pub(super) fn describe(&self, addresses: &[String]) -> String {
        match self {
            Self::Degrade {
                node,
                loss_pct,
                delay_ms,
                hold_ms,
            } => format!(
                "node{node}: {loss_pct}% loss and {delay_ms} ms delay both ways for {hold_ms} ms"
            ),
            Self::Partition(cut) => {
                let names: Vec<String> = cut.iter().map(|i| format!("node{i}")).collect();
                format!("partition: {} cut off from the rest", names.join(", "))
            }
            Self::Heal => "heal: every node back on one switch".to_owned(),
            Self::Reload { node, without } if without.is_empty() => {
                format!("node{node}: reload with every address")
            }
            Self::Reload { node, without } => format!(
                "node{node}: reload without {} addresses from {}",
                without.len(),
                addresses.get(without.start).map_or("?", String::as_str)
            ),
            Self::Move { address, to, via } => format!(
                "node{via}: move {} to node{to}",
                addresses.get(*address).map_or("?", String::as_str)
            ),
            Self::PauseDaemon { node, hold_ms }
            | Self::PauseCorosync { node, hold_ms }
            | Self::LinkDeleted { node, hold_ms } => {
                format!("node{node}: {} for {hold_ms} ms", self.kind())
            }
            Self::BadReload { node, .. } | Self::Fault { node, .. } => {
                format!("node{node}: {}", self.kind())
            }
            Self::Restart(i)
            | Self::AnnounceView(i)
            | Self::Standby(i)
            | Self::Online(i)
            | Self::ReplayDeath(i) => {
                format!("node{i}: {}", self.kind())
            }
            Self::AggregatorKill | Self::AggregatorStart => self.kind().to_owned(),
            Self::AggregatorDiskFull { hold_ms } => format!("{} for {hold_ms} ms", self.kind()),
        }
    }

    /// Whether views may change because of it.
    pub(super) fn touches_membership(&self) -> bool {
        matches!(
            self,
            Self::Fault { .. }
                | Self::Restart(_)
                | Self::Degrade { .. }
                | Self::Partition(_)
                | Self::Heal
                | Self::PauseDaemon { .. }
                | Self::PauseCorosync { .. }
                | Self::LinkDeleted { .. }
                | Self::ReplayDeath(_)
        )
    }

    /// The node whose side may re-plan without a view change because of it: what it offers
    /// changed (its configuration, standby, an interface losing or regaining its carrier, a
    /// restart), or an address was pinned to it. A node alone on its side keeps its view
    /// when its link goes down and up, yet lets everything go and takes it back.
    pub(super) fn changes(&self) -> Option<usize> {
        match self {
            Self::Reload { node, .. }
            | Self::Standby(node)
            | Self::Online(node)
            | Self::Fault {
                node,
                fault: Fault::Link | Fault::Host,
            }
            | Self::Restart(node)
            | Self::ReplayDeath(node) => Some(*node),
            Self::Move { to, .. } => Some(*to),
            // A paused node lets everything go and takes its share back, possibly in one
            // view; a deleted interface takes its addresses out of what the node offers.
            Self::PauseDaemon { node, .. }
            | Self::PauseCorosync { node, .. }
            | Self::LinkDeleted { node, .. } => Some(*node),
            _ => None,
        }
    }
}

/// How each node is, as far as its processes and link go (index 0 is node1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Health {
    pub(super) link: bool,
    pub(super) corosync: bool,
    pub(super) daemon: bool,
}

impl Health {
    pub(super) fn whole(self) -> bool {
        self.link && self.corosync && self.daemon
    }

    /// Nothing runs and the link is down: a dead host. What its namespace still lists is
    /// nobody's (a real dead host's addresses died with it) until it starts again, when the lab
    /// removes them first.
    pub(super) fn dead(self) -> bool {
        !self.link && !self.corosync && !self.daemon
    }

    pub(super) fn of(state: &LabState, i: usize) -> Self {
        Self {
            link: state.topology().port_up(i),
            corosync: state.alive("corosync", i),
            daemon: state.alive("dvipd", i),
        }
    }
}

/// What the nemesis has made of the lab beyond its processes.
#[derive(Debug, Clone)]
pub(super) struct World {
    pub(super) nodes: usize,
    pub(super) addresses: Vec<String>,
    /// Per node (index 0 is node1): 0 on the client's switch, 1 cut off.
    pub(super) side: Vec<u8>,
    /// Per node: the addresses its configuration leaves out.
    pub(super) without: Vec<Range<usize>>,
    /// Per node: asked to stand by and not put online since (a restart keeps it).
    pub(super) standby: Vec<bool>,
    /// Whether this kernel has netem (delay); without it, links are degraded by loss alone.
    pub(super) has_netem: bool,
    /// The lab collects logs: the aggregator's faults are drawn too.
    pub(super) logs: bool,
}

impl World {
    pub(super) fn new(nodes: usize, addresses: Vec<String>) -> Self {
        Self {
            nodes,
            addresses,
            side: vec![0; nodes],
            without: vec![0..0; nodes],
            standby: vec![false; nodes],
            has_netem: false,
            logs: false,
        }
    }

    /// The addresses node `i`'s configuration manages.
    pub(super) fn configured(&self, i: usize) -> BTreeSet<String> {
        let without = &self.without[i - 1];
        self.addresses
            .iter()
            .enumerate()
            .filter(|(k, _)| !without.contains(k))
            .map(|(_, a)| a.clone())
            .collect()
    }

    fn partitioned(&self) -> bool {
        self.side.iter().any(|&s| s != 0)
    }
}

/// What the nemesis may do next, before the dice say to which node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Fault(Fault),
    Degrade,
    Partition,
    Reload,
    AnnounceView,
    Standby,
    Online,
    Move,
    PauseDaemon,
    PauseCorosync,
    LinkDeleted,
    BadReload,
    AggregatorKill,
    AggregatorDiskFull,
    ReplayDeath,
    /// A draw that does nothing: a round with fewer faults now and then.
    Nothing,
}

/// How often the nemesis picks each thing, out of the total weight. A pick that cannot be
/// done now (a partition while partitioned, online with nobody on standby) is drawn again.
const WEIGHTS: &[(Pick, u32)] = &[
    (Pick::Fault(Fault::Host), 2),
    (Pick::Fault(Fault::Daemon), 2),
    (Pick::Fault(Fault::Corosync), 2),
    (Pick::Fault(Fault::Stop), 1),
    (Pick::Fault(Fault::Link), 2),
    (Pick::Degrade, 1),
    (Pick::Partition, 1),
    (Pick::Reload, 2),
    (Pick::AnnounceView, 1),
    (Pick::Standby, 1),
    (Pick::Online, 2),
    (Pick::Move, 2),
    (Pick::PauseDaemon, 1),
    (Pick::PauseCorosync, 1),
    (Pick::LinkDeleted, 1),
    (Pick::BadReload, 1),
    (Pick::Nothing, 1),
];

/// The aggregator's faults, drawn as well when the lab collects logs (kept apart so that a
/// seed without logs chooses what it always did).
const LOG_WEIGHTS: &[(Pick, u32)] = &[
    (Pick::AggregatorKill, 2),
    (Pick::AggregatorDiskFull, 2),
    (Pick::ReplayDeath, 2),
];

fn weights(logs: bool) -> impl Iterator<Item = &'static (Pick, u32)> {
    WEIGHTS
        .iter()
        .chain(LOG_WEIGHTS.iter().filter(move |_| logs))
}

/// The pick a draw in `0..total weight` lands on.
fn pick(mut draw: u32, logs: bool) -> Pick {
    for &(pick, weight) in weights(logs) {
        if draw < weight {
            return pick;
        }
        draw -= weight;
    }
    Pick::Nothing
}

/// The next op, from the dice, the nodes' health and the world. Broken nodes are repaired
/// often enough that the cluster spends most of its time with most nodes in it; at least one
/// node is kept whole by the faults that break one.
pub(super) fn choose(dice: &mut Dice, health: &[Health], world: &World, aggregator: bool) -> Op {
    let n = health.len();
    let node = |k: usize| k + 1;
    let broken: Vec<usize> = (0..n).filter(|&k| !health[k].whole()).map(node).collect();
    let whole: Vec<usize> = (0..n).filter(|&k| health[k].whole()).map(node).collect();
    if !broken.is_empty() && dice.below(100) < 45 {
        return Op::Restart(dice.one_of(&broken));
    }
    if world.partitioned() && dice.below(100) < 30 {
        return Op::Heal;
    }
    if world.logs && !aggregator && dice.below(100) < 45 {
        return Op::AggregatorStart;
    }
    let total: u32 = weights(world.logs).map(|&(_, w)| w).sum();
    loop {
        let any = node(dice.below(n));
        let op = match pick(dice.below(total as usize) as u32, world.logs) {
            Pick::Fault(fault) => Op::Fault { node: any, fault },
            Pick::PauseDaemon => Op::PauseDaemon {
                node: any,
                hold_ms: dice.between(500, 4000),
            },
            Pick::PauseCorosync => Op::PauseCorosync {
                node: any,
                hold_ms: dice.between(500, 4000),
            },
            Pick::LinkDeleted if !world.partitioned() => Op::LinkDeleted {
                node: any,
                hold_ms: dice.between(500, 4000),
            },
            Pick::BadReload => Op::BadReload {
                node: any,
                empty: dice.below(2) == 0,
            },
            Pick::AggregatorKill if world.logs && aggregator => Op::AggregatorKill,
            Pick::AggregatorDiskFull if world.logs && aggregator => Op::AggregatorDiskFull {
                hold_ms: dice.between(500, 4000),
            },
            // The node must be reachable for its replay to begin.
            Pick::ReplayDeath if world.logs && world.side[any - 1] == 0 => Op::ReplayDeath(any),
            Pick::Degrade => Op::Degrade {
                node: any,
                loss_pct: dice.between(1, 10),
                delay_ms: if world.has_netem {
                    dice.between(1, 40)
                } else {
                    0
                },
                hold_ms: dice.between(500, 3000),
            },
            Pick::Partition if n >= 2 && !world.partitioned() => {
                let cut: Vec<usize> = (1..=n).filter(|_| dice.below(2) == 0).collect();
                if cut.is_empty() || cut.len() == n {
                    continue;
                }
                Op::Partition(cut)
            }
            Pick::Reload => {
                let count = world.addresses.len();
                let without = if dice.below(3) == 0 {
                    0..0
                } else {
                    let start = dice.below(count);
                    // Never every address: dvipd refuses that reload (unless forced).
                    let end = (start + 1 + dice.below(count / 3 + 1)).min(count);
                    if end - start >= count {
                        continue;
                    }
                    start..end
                };
                Op::Reload { node: any, without }
            }
            Pick::AnnounceView => Op::AnnounceView(any),
            Pick::Standby if !world.standby[any - 1] => Op::Standby(any),
            Pick::Online if world.standby.iter().any(|&s| s) => {
                let on: Vec<usize> = (1..=n).filter(|&i| world.standby[i - 1]).collect();
                Op::Online(dice.one_of(&on))
            }
            Pick::Move if !whole.is_empty() => Op::Move {
                address: dice.below(world.addresses.len()),
                to: any,
                via: dice.one_of(&whole),
            },
            _ => continue,
        };
        // Breaking the last whole node leaves nothing to fail over to: not what is tested.
        let breaks = matches!(
            op,
            Op::Fault { .. }
                | Op::PauseDaemon { .. }
                | Op::PauseCorosync { .. }
                | Op::LinkDeleted { .. }
                | Op::ReplayDeath(_)
        );
        if breaks && (whole.len() <= 1 || !health[any - 1].whole()) {
            continue;
        }
        return op;
    }
}

/// How long the nemesis gives a node's console to answer.
const ASK_WITHIN: Duration = Duration::from_secs(3);

/// Loss on node `i`'s switch port both ways (`None`: none), by an nftables rule on the
/// bridge (this works on kernels without netem), and delay by netem where there is one.
fn degrade(state: &LabState, i: usize, rule: Option<(u64, u64)>) -> Result<(), LabError> {
    let switch = state.topology().switch();
    let port = format!("p{i}");
    let table = format!("dvipchaos{i}");
    // Re-created each time: one table per port, so removing one port's loss leaves the others.
    let _ = nft(&switch, &format!("delete table bridge {table}"));
    let _ = try_tc(&["-n", &switch, "qdisc", "del", "dev", &port, "root"]);
    let Some((loss, delay)) = rule else {
        return Ok(());
    };
    nft(
        &switch,
        &format!(
            "add table bridge {table}\n\
             add chain bridge {table} forward {{ type filter hook forward priority 0; policy accept; }}\n\
             add rule bridge {table} forward iifname \"{port}\" numgen random mod 100 < {loss} drop\n\
             add rule bridge {table} forward oifname \"{port}\" numgen random mod 100 < {loss} drop\n"
        ),
    )?;
    if delay > 0 {
        let delay = format!("{delay}ms");
        try_tc(&[
            "-n", &switch, "qdisc", "replace", "dev", &port, "root", "netem", "delay", &delay,
        ])?;
    }
    Ok(())
}

/// Whether this kernel can delay packets (netem), tried on the switch's loopback.
pub(super) fn kernel_has_netem(state: &LabState) -> bool {
    let switch = state.topology().switch();
    let _ = try_ip(&["-n", &switch, "link", "set", "lo", "up"]);
    let added = try_tc(&[
        "-n", &switch, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ]);
    let _ = try_tc(&["-n", &switch, "qdisc", "del", "dev", "lo", "root"]);
    added.is_ok()
}

/// Runs an nftables script in namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), LabError> {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| LabError(format!("nft: {e} (apt-get install nftables)")))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(script.as_bytes())
            .map_err(|e| LabError(format!("nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError(format!("nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError(format!(
            "nft in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn try_tc(args: &[&str]) -> Result<(), LabError> {
    dvip_netns::try_iproute2("tc", args)
}

/// Puts node `i`'s switch port on switch `side` (`br0`, the client's, or `br1`).
fn plug(state: &LabState, i: usize, side: u8) -> Result<(), LabError> {
    try_ip(&[
        "-n",
        &state.topology().switch(),
        "link",
        "set",
        &format!("p{i}"),
        "master",
        &format!("br{side}"),
    ])
}

/// The second switch partitions put nodes on.
pub(super) fn make_second_switch(state: &LabState) -> Result<(), LabError> {
    let switch = state.topology().switch();
    try_ip(&["-n", &switch, "link", "add", "br1", "type", "bridge"])?;
    try_ip(&["-n", &switch, "link", "set", "br1", "up"])
}

/// Carries `op` out. What a refused console command said is returned, not an error: the
/// nemesis may ask for what cannot be done (a move to a node on standby).
pub(super) fn apply(
    op: &Op,
    lab: &mut Lab,
    world: &mut World,
    lines: Option<&LineWriter>,
) -> Result<Option<String>, LabError> {
    let topology = lab.state.topology();
    let refused = |asked: Result<serde_json::Value, String>| asked.err();
    Ok(match op {
        // A node on standby comes back on standby: its dvipd keeps it across a restart.
        Op::Fault { node, fault } => {
            inject(&lab.state, *node, *fault)?;
            None
        }
        Op::Restart(i) => {
            let i = *i;
            degrade(&lab.state, i, None)?;
            if !topology.port_up(i) {
                topology.set_port(i, true)?;
            }
            if !lab.state.alive("corosync", i) {
                start_corosync(&mut lab.state, i)?;
                // dvipd started before corosync answers would back off for seconds.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while topology.ring_size(i) == 0 && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if !lab.state.alive("dvipd", i) {
                start_dvipd(&mut lab.state, i)?;
            }
            None
        }
        Op::Degrade {
            node,
            loss_pct,
            delay_ms,
            hold_ms,
        } => {
            degrade(&lab.state, *node, Some((*loss_pct, *delay_ms)))?;
            std::thread::sleep(Duration::from_millis(*hold_ms));
            degrade(&lab.state, *node, None)?;
            None
        }
        Op::Partition(cut) => {
            for &i in cut {
                plug(&lab.state, i, 1)?;
                world.side[i - 1] = 1;
            }
            None
        }
        Op::Heal => {
            for i in 1..=world.nodes {
                if world.side[i - 1] != 0 {
                    plug(&lab.state, i, 0)?;
                    world.side[i - 1] = 0;
                }
            }
            None
        }
        Op::Reload { node, without } => {
            world.without[node - 1] = without.clone();
            write_dvip_conf(&lab.state, *node, without.clone())?;
            if let Some(p) = lab.state.process("dvipd", *node) {
                p.signal(nix::sys::signal::Signal::SIGHUP);
            }
            None
        }
        Op::AnnounceView(i) => {
            refused(lab.ask(*i, &dvip_console::Request::AnnounceView, ASK_WITHIN))
        }
        Op::Standby(i) => {
            let asked = lab.ask(
                *i,
                &dvip_console::Request::Standby { node: None },
                ASK_WITHIN,
            );
            world.standby[i - 1] = asked.is_ok();
            refused(asked)
        }
        Op::Online(i) => {
            let asked = lab.ask(
                *i,
                &dvip_console::Request::Online { node: None },
                ASK_WITHIN,
            );
            world.standby[i - 1] = false;
            refused(asked)
        }
        Op::PauseDaemon { node, hold_ms } | Op::PauseCorosync { node, hold_ms } => {
            let what = if matches!(op, Op::PauseDaemon { .. }) {
                "dvipd"
            } else {
                "corosync"
            };
            if let Some(p) = lab.state.process(what, *node) {
                p.signal(nix::sys::signal::Signal::SIGSTOP);
                std::thread::sleep(Duration::from_millis(*hold_ms));
                p.signal(nix::sys::signal::Signal::SIGCONT);
            }
            None
        }
        Op::LinkDeleted { node, hold_ms } => {
            topology.delete_link(*node)?;
            std::thread::sleep(Duration::from_millis(*hold_ms));
            topology.create_link_again(*node)?;
            None
        }
        Op::BadReload { node, empty } => {
            let path = lab.state.dir().join(format!("dvip-{node}.conf"));
            let good = std::fs::read_to_string(&path)
                .map_err(|e| LabError(format!("{}: {e}", path.display())))?;
            // Cut just after a `{`, as a write interrupted mid-stanza leaves it: never a
            // shorter file that is valid.
            let half = &good[..good.len() / 2];
            let cut = half.rfind('{').map_or(half.len(), |at| at + 1);
            let bad = if *empty { "" } else { &good[..cut] };
            std::fs::write(&path, bad).map_err(|e| LabError(format!("{}: {e}", path.display())))?;
            if let Some(p) = lab.state.process("dvipd", *node) {
                p.signal(nix::sys::signal::Signal::SIGHUP);
            }
            // Long enough for dvipd to read it (and refuse it); then the file is whole again,
            // and the same as what dvipd still runs.
            std::thread::sleep(Duration::from_millis(500));
            std::fs::write(&path, good)
                .map_err(|e| LabError(format!("{}: {e}", path.display())))?;
            None
        }
        Op::AggregatorKill => {
            logging::kill_aggregator(&lab.state);
            None
        }
        Op::AggregatorStart => {
            logging::start_aggregator(&mut lab.state)?;
            None
        }
        Op::AggregatorDiskFull { hold_ms } => {
            logging::fill_disk(&lab.state)?;
            std::thread::sleep(Duration::from_millis(*hold_ms));
            logging::free_disk(&lab.state);
            None
        }
        Op::ReplayDeath(node) => {
            let lines = lines.ok_or_else(|| LabError("a replay without logging".to_owned()))?;
            logging::kill_aggregator(&lab.state);
            let before = logging::collected(&lab.state, *node);
            lines.burst(*node, BURST)?;
            logging::start_aggregator(&mut lab.state)?;
            // Killed as soon as the burst's first lines land: the replay is in full swing.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while logging::collected(&lab.state, *node) <= before
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            inject(&lab.state, *node, Fault::Host)?;
            let got = logging::collected(&lab.state, *node).saturating_sub(before);
            let burst = BURST * logging::writer::width(*node);
            eprintln!(
                "chaos            node{node} died with {}% of the burst collected",
                (got * 100 / burst).min(100)
            );
            None
        }
        Op::Move { address, to, via } => refused(lab.ask(
            *via,
            &dvip_console::Request::Move {
                address: world.addresses[*address].parse().map_err(|e| {
                    LabError(format!("lab address {}: {e}", world.addresses[*address]))
                })?,
                to: format!("node{to}"),
            },
            ASK_WITHIN,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(n: usize) -> Vec<Health> {
        vec![
            Health {
                link: true,
                corosync: true,
                daemon: true,
            };
            n
        ]
    }

    #[test]
    fn what_a_node_offers_changing_is_a_cause_and_announcing_the_view_is_not() {
        // Found by the hour-long run: a node alone on its side, link down then up, released
        // and took back everything in one view.
        let fault = |node, fault| Op::Fault { node, fault };
        assert_eq!(fault(1, Fault::Link).changes(), Some(1));
        assert_eq!(Op::Restart(2).changes(), Some(2));
        assert_eq!(
            Op::Move {
                address: 0,
                to: 3,
                via: 1
            }
            .changes(),
            Some(3)
        );
        assert_eq!(Op::AnnounceView(1).changes(), None);
        assert_eq!(fault(1, Fault::Corosync).changes(), None);
    }

    #[test]
    fn the_same_seed_chooses_the_same_ops() {
        let world = World::new(4, (0..16).map(|k| format!("198.18.0.{}", 10 + k)).collect());
        let run = |seed| {
            let mut dice = Dice::new(seed);
            (0..200)
                .map(|_| choose(&mut dice, &healthy(4), &world, false))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_pick_of_the_table_is_drawn_as_often_as_its_weight_says() {
        let total: u32 = WEIGHTS.iter().map(|&(_, w)| w).sum();
        let mut counts: Vec<(Pick, u32)> = WEIGHTS.iter().map(|&(p, _)| (p, 0)).collect();
        for draw in 0..total {
            let p = pick(draw, false);
            let at = counts
                .iter()
                .position(|(q, _)| *q == p)
                .expect("in the table");
            counts[at].1 += 1;
        }
        let weights: Vec<(Pick, u32)> = WEIGHTS.to_vec();
        assert_eq!(counts, weights);
    }

    #[test]
    fn the_last_whole_node_is_never_broken() {
        let world = World::new(3, vec!["198.18.0.10".into()]);
        let mut health = healthy(3);
        health[0].daemon = false;
        health[1].link = false;
        let mut dice = Dice::new(1);
        for _ in 0..2000 {
            let op = choose(&mut dice, &health, &world, false);
            let hits_node3 = matches!(op, Op::Fault { node: 3, .. });
            assert!(!hits_node3, "{op:?}");
        }
    }

    #[test]
    fn a_partition_cuts_off_some_nodes_but_never_all_or_none() {
        let world = World::new(4, vec!["198.18.0.10".into()]);
        let mut dice = Dice::new(3);
        let mut seen = 0;
        for _ in 0..5000 {
            if let Op::Partition(cut) = choose(&mut dice, &healthy(4), &world, false) {
                assert!(!cut.is_empty() && cut.len() < 4, "{cut:?}");
                seen += 1;
            }
        }
        assert!(seen > 50, "partitions are chosen ({seen})");
    }
}
