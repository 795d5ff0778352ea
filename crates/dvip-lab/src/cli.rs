//! The lab's command line: `dvip lab ...`, parsed by `dvip` and carried out here.
//!
//! Owns the names and documentation of the lab's subcommands and flags. It must not do any
//! work.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab and start every node; returns once the addresses are spread over them.
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
        nodes: u16,
        /// How many DuraVIP addresses (bindings on 198.18.0.10 and up).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=10_240))]
        addresses: u32,
        /// Seconds a plumbed address lives unless its dvipd refreshes it (default: dvipd's
        /// choice for the address count).
        #[arg(long, value_parser = clap::value_parser!(u64).range(2..=86400))]
        address_lifetime: Option<u64>,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// Run keepalived (the benchmark's baseline) instead of corosync and dvipd, advertising
        /// every ADVERT_MS milliseconds.
        #[arg(long, value_name = "ADVERT_MS", value_parser = clap::value_parser!(u32).range(10..=40_950))]
        keepalived: Option<u32>,
        /// Run corosync without crypto (the lab encrypts and signs by default, as production
        /// must); for measuring what crypto costs.
        #[arg(long, conflicts_with = "keepalived")]
        no_crypto: bool,
        /// Make N addresses, spread over the range, SMTP listeners on port 25 that dvipd
        /// forwards to 127.0.0.1:2525 on its node (instead of bindings).
        #[arg(long, default_value_t = 0)]
        listeners: u32,
        /// Replicate every kind (counts, domains, throttles, a snapshot cache `seen`) and
        /// serve each node's local API on `api-I.sock` in the lab's directory.
        #[arg(long, conflicts_with = "keepalived")]
        replication: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Every node: its link, corosync, dvipd, the addresses it holds, its console socket.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a node fail: by default its host dies (link cut, then every process of the node killed).
    Kill {
        /// The node (`node2` or `2`), or `busiest`: the one holding the most addresses.
        node: String,
        /// How it fails.
        #[command(flatten)]
        how: FaultArg,
        /// Measure from the client how long until a survivor answers ARP for each of the
        /// node's addresses.
        #[arg(long)]
        measure: bool,
        /// Print JSON: the measurement, or without `--measure` the node, the fault and its
        /// time (`fault_at_ms`, the clock of dvipd's events).
        #[arg(long)]
        json: bool,
    },
    /// Bring a node back (or every node that is down): link up, corosync and dvipd started if
    /// they are not running; waits until the addresses are spread again.
    Start {
        /// The node (`node2` or `2`); every node that is down when left out.
        node: Option<String>,
    },
    /// Measure failovers many times from the client, per address count and fault, with the
    /// time split into phases; builds and removes its own lab.
    Bench {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=16))]
        nodes: u16,
        /// Address counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1024")]
        sizes: Vec<u32>,
        /// Faults to inject, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            value_enum,
            default_value = "host,daemon,corosync,stop"
        )]
        faults: Vec<crate::Fault>,
        /// Runs of each fault per address count.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// Also measure keepalived (the baseline) with these VRRP advertisement intervals in
        /// milliseconds, comma-separated (e.g. 100,20); needs keepalived installed.
        #[arg(long, value_delimiter = ',', value_name = "ADVERT_MS", value_parser = clap::value_parser!(u32).range(10..=40_950))]
        keepalived: Vec<u32>,
        /// Also measure dvip with corosync's crypto off, as a baseline: the ratio is what
        /// encrypting and signing the bus costs failover.
        #[arg(long)]
        no_crypto_baseline: bool,
        /// Make N addresses, spread over the range, forwarded SMTP listeners (port 25) and time
        /// a TCP connect to those the failed node held too; a server on each node answers
        /// `220 NODE`.
        #[arg(long, default_value_t = 6)]
        listeners: u32,
        /// Write every run whose worst address (by ARP, or by TCP to a listener) took longer
        /// than MS milliseconds, or in which an address was claimed by two survivors, moved
        /// again or went dark again (its per-address answers and the survivors' events) to
        /// `bench-slow-SYSTEM-SIZE-FAULT-RUN.json` in the current directory, for a look.
        #[arg(long, value_name = "MS")]
        keep_slow: Option<u64>,
        /// Draw the results into FILE.svg: per address count and fault, each system's median
        /// of the worst address, with a whisker to its p99.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Also measure dvip while an aggregator replays every node's journal (3 million
        /// lines each) from the first line at full speed: the ratio is what a replay costs
        /// failover.
        #[arg(long)]
        replay_baseline: bool,
        /// Also measure dvip while every node's MTA counts connection events through the
        /// local API as fast as it can, every kind replicated: the ratio is what
        /// replication's load costs a failover.
        #[arg(long)]
        replication_baseline: bool,
        /// Also measure dvip with ownership leases (docs/leases.md), a member being suspected
        /// after MS milliseconds without a heartbeat (heartbeats every --heartbeat-interval),
        /// as its own row beside the default and the baselines.
        #[arg(long, value_name = "MS", conflicts_with = "heartbeats",
              value_parser = clap::value_parser!(u32).range(5..=10_000))]
        with_leases: Option<u32>,
        /// With --with-leases: also measure dvip with leases and pre-plumbing (`dvipd
        /// --pre-plumb`: each node's successors' addresses plumbed ahead of need, silent), as
        /// its own row.
        #[arg(long, requires = "with_leases")]
        with_pre_plumbing: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Draw a saved `bench --json` report as an SVG, as `bench --plot` would have.
    Plot {
        /// The report `dvip lab bench --json` printed.
        #[arg(long, value_name = "FILE.json")]
        from: PathBuf,
        /// Where to write the picture.
        #[arg(long, value_name = "FILE.svg")]
        out: PathBuf,
    },
    /// Break a lab cluster over and over (seeded faults: host deaths, killed daemons,
    /// partitions, loss, reloads, standby, moves) and check after every round that it settled
    /// with every address on exactly one node per side; builds and removes its own lab.
    Chaos {
        /// The seed that chooses the faults (default: the time); a failing run prints it.
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds of faults before the last round repairs everything.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=604_800))]
        duration: u64,
        /// How many nodes.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=16))]
        nodes: u16,
        /// How many DuraVIP addresses.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
        addresses: u32,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// On a violation, leave the lab up as it failed, for a look.
        #[arg(long)]
        keep: bool,
        /// Collect logs too: every node's journal takes RATE numbered lines a second, an
        /// aggregator pulls them all, the aggregator's faults join the others, and every
        /// check proves each line is in the aggregated files once, in order.
        #[arg(long, value_name = "RATE", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        logs: Option<u32>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Measure clustered logging on a lab: CPU with and without lines going into every node's
    /// journal, the lag from a node's journal to the aggregated file, and a replay of
    /// everything against a local copy; builds and removes its own lab.
    LogBench {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
        nodes: u16,
        /// Lines a second into each node's journal.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate: u32,
        /// Seconds of each measurement (without lines, then with).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure replication on a lab whose nodes replicate every kind and serve the local
    /// API: connection events every node sustains at once against PING alone, bytes on the
    /// bridge per event, dvipd's CPU, and a cache write's lag between two nodes under that
    /// load and idle; builds and removes its own lab.
    ReplBench {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=16))]
        nodes: u16,
        /// Seconds of the baseline and of the load, each.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// Cache writes timed idle, one after the other (each takes about max_delay).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        idle_samples: u32,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure a lab with nothing failing: CPU of each node's processes, packets into the
    /// bridge, view and ownership changes; builds and removes its own lab.
    Steady {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
        nodes: u16,
        /// How many DuraVIP addresses.
        #[arg(long, default_value_t = 10_240, value_parser = clap::value_parser!(u32).range(1..=10_240))]
        addresses: u32,
        /// How long to watch, in seconds.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// Threads spinning meanwhile, to keep the CPUs busy (2 keeps both cores of a
        /// two-core machine busy).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
        busy: u16,
        /// Run keepalived (advertising every ADVERT_MS milliseconds) instead of corosync and
        /// dvipd.
        #[arg(long, value_name = "ADVERT_MS", value_parser = clap::value_parser!(u32).range(10..=40_950))]
        keepalived: Option<u32>,
        /// The dvipd to run (default: the one next to this dvip).
        #[arg(long, value_name = "PATH")]
        dvipd: Option<PathBuf>,
        /// Before the lab is removed, copy its logs (every daemon's, corosync's) and the
        /// events each dvipd streamed (`events-N.jsonl`) into DIR, to find out why something
        /// changed.
        #[arg(long, value_name = "DIR")]
        keep_logs: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Stop every process of the lab and remove everything it made (also after a crash).
    Down,
}

/// How a lab node fails.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct FaultArg {
    /// kill -9 its dvipd only (corosync sees the process leave at once).
    #[arg(long)]
    pub daemon: bool,
    /// kill -9 its corosync only.
    #[arg(long)]
    pub corosync: bool,
    /// Cut its link only (processes keep running, cut off).
    #[arg(long)]
    pub link: bool,
    /// Stop its dvipd cleanly (SIGTERM: it hands its addresses over).
    #[arg(long)]
    pub stop: bool,
}

pub fn lab_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 12
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then(|| text.to_owned())
        .ok_or_else(|| "a lab name is 1-12 lowercase letters and digits".to_owned())
}

/// corosync's membership timing in the lab (default: DESIGN.md's).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TimingArgs {
    /// corosync's token timeout, in ms.
    #[arg(long, value_name = "MS", default_value_t = dvip_netns::Timing::default().token_ms,
          value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub token: u32,
    /// Token retransmits before corosync counts the token lost (each at least 30 ms apart).
    #[arg(long, value_name = "N", default_value_t = dvip_netns::Timing::default().token_retransmits,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub token_retransmits: u32,
    /// corosync's consensus timeout, in ms (at least 1.2 times the token).
    #[arg(long, value_name = "MS", default_value_t = dvip_netns::Timing::default().consensus_ms,
          value_parser = clap::value_parser!(u32).range(12..=72_000))]
    pub consensus: u32,
    /// How often knet pings each peer, in ms.
    #[arg(long, value_name = "MS", default_value_t = dvip_netns::Timing::default().knet_ping_interval_ms,
          value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub knet_ping: u32,
    /// How long knet waits for a ping's answer before it calls the link down, in ms.
    #[arg(long, value_name = "MS", default_value_t = dvip_netns::Timing::default().knet_ping_timeout_ms,
          value_parser = clap::value_parser!(u32).range(20..=120_000))]
    pub knet_ping_timeout: u32,
    /// dvipd runs ownership leases (docs/leases.md): heartbeats of its own, a member being
    /// suspected after this many ms without one, and its addresses taken over as soon as its
    /// lease is over.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(5..=10_000))]
    pub heartbeats: Option<u32>,
    /// Milliseconds between dvipd's heartbeats (with --heartbeats or --with-leases).
    #[arg(long, value_name = "MS",
          default_value_t = dvip_lease::LeaseOptions::INTERVAL_DEFAULT_MS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub heartbeat_interval: u32,
    /// With --heartbeats: dvipd plumbs the addresses each node would take ahead of need,
    /// silent until a takeover (`dvipd --pre-plumb`, docs/leases.md).
    #[arg(long, requires = "heartbeats")]
    pub pre_plumb: bool,
}

impl TimingArgs {
    /// The heartbeat timing of a `--with-leases` row suspecting after `suspect_after_ms`,
    /// refused as dvipd would refuse it.
    pub(crate) fn leases(
        self,
        suspect_after_ms: Option<u32>,
    ) -> Result<Option<dvip_netns::Heartbeats>, dvip_netns::LabError> {
        let Some(suspect_after_ms) = suspect_after_ms else {
            return Ok(None);
        };
        let heartbeats = dvip_netns::Heartbeats {
            interval_ms: self.heartbeat_interval,
            suspect_after_ms,
            pre_plumb: false,
        };
        check_heartbeats(heartbeats, "--with-leases")?;
        Ok(Some(heartbeats))
    }

    /// The timing, refused as corosync would refuse it.
    pub(crate) fn timing(self) -> Result<dvip_netns::Timing, dvip_netns::LabError> {
        let timing = dvip_netns::Timing {
            token_ms: self.token,
            token_retransmits: self.token_retransmits,
            consensus_ms: self.consensus,
            knet_ping_interval_ms: self.knet_ping,
            knet_ping_timeout_ms: self.knet_ping_timeout,
            heartbeats: self
                .heartbeats
                .map(|suspect_after_ms| dvip_netns::Heartbeats {
                    interval_ms: self.heartbeat_interval,
                    suspect_after_ms,
                    pre_plumb: self.pre_plumb,
                }),
        };
        timing.check().map_err(dvip_netns::LabError)?;
        if let Some(h) = timing.heartbeats {
            check_heartbeats(h, "--heartbeats")?;
        }
        Ok(timing)
    }
}

/// The timing flags that give `timing`, those at their defaults left out: what a replay line
/// needs to run the same cluster again.
pub(crate) fn timing_flags(timing: &dvip_netns::Timing) -> String {
    let default = dvip_netns::Timing::default();
    let numbers = [
        ("token", timing.token_ms, default.token_ms),
        (
            "token-retransmits",
            timing.token_retransmits,
            default.token_retransmits,
        ),
        ("consensus", timing.consensus_ms, default.consensus_ms),
        (
            "knet-ping",
            timing.knet_ping_interval_ms,
            default.knet_ping_interval_ms,
        ),
        (
            "knet-ping-timeout",
            timing.knet_ping_timeout_ms,
            default.knet_ping_timeout_ms,
        ),
    ];
    let mut flags: String = numbers
        .iter()
        .filter(|(_, value, default)| value != default)
        .map(|(flag, value, _)| format!(" --{flag} {value}"))
        .collect();
    if let Some(h) = timing.heartbeats {
        flags.push_str(&format!(" --heartbeats {}", h.suspect_after_ms));
        if u64::from(h.interval_ms) != dvip_lease::LeaseOptions::INTERVAL_DEFAULT_MS {
            flags.push_str(&format!(" --heartbeat-interval {}", h.interval_ms));
        }
        if h.pre_plumb {
            flags.push_str(" --pre-plumb");
        }
    }
    flags
}

/// Heartbeats dvipd would accept.
fn check_heartbeats(h: dvip_netns::Heartbeats, flag: &str) -> Result<(), dvip_netns::LabError> {
    dvip_lease::LeaseOptions::from_millis(u64::from(h.interval_ms), u64::from(h.suspect_after_ms))
        .check()
        .map_err(|e| dvip_netns::LabError(format!("{flag}: {e}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Timed {
        #[command(flatten)]
        timing: TimingArgs,
    }

    fn parsed(flags: &str) -> dvip_netns::Timing {
        Timed::try_parse_from(std::iter::once("lab").chain(flags.split_whitespace()))
            .unwrap_or_else(|e| panic!("{flags}: {e}"))
            .timing
            .timing()
            .expect("a timing corosync takes")
    }

    #[test]
    fn a_replay_s_timing_flags_give_the_timing_back() {
        for flags in [
            "",
            "--token 40 --token-retransmits 1 --consensus 50 --heartbeats 40",
            "--knet-ping 20 --knet-ping-timeout 60 --heartbeats 30 --heartbeat-interval 3",
            "--heartbeats 40 --pre-plumb",
        ] {
            let timing = parsed(flags);
            assert_eq!(parsed(&timing_flags(&timing)), timing, "from {flags:?}");
        }
        assert_eq!(timing_flags(&dvip_netns::Timing::default()), "");
    }
}
