//! `dvip-sim`: run the cluster simulator over many seeds.
//!
//! `cargo run --release -p dvip-sim -- --seeds 100000` runs seeds 0..100000;
//! `--seed N` replays one and prints every violation. Exit status 1 when any seed fails.
//! `--deaths N` kills the busiest host of N settled clusters, with and without leases, and
//! prints when survivors answered for its addresses against when the bus's view came.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use dvip_sim::{host_death, run, RunOptions};

/// Run dvip's cluster simulator.
#[derive(Debug, Parser)]
#[command(name = "dvip-sim", version, about)]
struct Args {
    /// How many seeds to run, starting at --first.
    #[arg(long, default_value_t = 500)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Replay this one seed and print its violations.
    #[arg(long, conflicts_with_all = ["seeds", "first"])]
    seed: Option<u64>,
    /// Print every event of the run (with --seed).
    #[arg(long)]
    verbose: bool,
    /// Faults per seed in the safety phase.
    #[arg(long, default_value_t = 30)]
    faults: usize,
    /// A bus that does not show transitional views (CPG does): members that came from one
    /// view may then disagree on what a new view continues.
    #[arg(long)]
    no_transitional_views: bool,
    /// A bus that orders in the old view what is multicast after a fault (corosync does not:
    /// its ring breaks with the fault).
    #[arg(long)]
    rings_never_break: bool,
    /// Daemons run dvip's own heartbeats and take a silent owner's addresses on its lease's
    /// end (docs/leases.md), with heartbeats delayed, lost and cut one way.
    #[arg(long)]
    leases: bool,
    /// Instead of the seeds: kill the busiest host of this many settled clusters, with and
    /// without leases, and report how soon its addresses were answered for.
    #[arg(long, conflicts_with_all = ["seed", "leases"])]
    deaths: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = RunOptions {
        faults: args.faults,
        verbose: args.verbose,
        transitional_views: !args.no_transitional_views,
        rings_break: !args.rings_never_break,
        leases: args.leases,
        ..RunOptions::default()
    };
    if let Some(count) = args.deaths {
        return deaths(count, &options);
    }
    let seeds = match args.seed {
        Some(s) => s..s + 1,
        None => args.first..args.first + args.seeds,
    };
    let started = Instant::now();
    let (mut failed, mut simulated, mut settles, mut faults) = (0u64, 0f64, 0u64, 0u64);
    let total = seeds.end - seeds.start;
    for (i, seed) in seeds.enumerate() {
        let outcome = run(seed, &options);
        simulated += outcome.simulated.as_secs_f64();
        settles += outcome.stats.settles;
        faults += outcome.stats.faults;
        if !outcome.violations.is_empty() {
            failed += 1;
            eprintln!("seed {seed} FAILED ({} hosts):", outcome.hosts);
            for v in outcome.violations.iter().take(10) {
                eprintln!("  at {:?}: {}", v.at, v.what);
            }
            let leases = if args.leases { " --leases" } else { "" };
            eprintln!("  replay: cargo run --release -p dvip-sim -- --seed {seed}{leases}");
        }
        if total >= 100 && (i as u64 + 1) % (total / 10).max(1) == 0 {
            eprintln!("{} / {total} seeds, {failed} failed", i + 1);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{total} seeds, {failed} failed, {faults} faults, {settles} settled states checked, \
         {simulated:.0} simulated cluster-seconds in {wall:.1} s ({:.0} cluster-seconds per second)",
        simulated / wall.max(1e-9)
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--deaths`: the same deaths with the bus's view alone and with leases.
fn deaths(count: u64, options: &RunOptions) -> ExitCode {
    let mut failed = false;
    for leases in [false, true] {
        let options = RunOptions {
            leases,
            ..options.clone()
        };
        let (mut answered, mut views) = (Vec::new(), Vec::new());
        for seed in 0..count {
            let death = host_death(seed, &options);
            for v in &death.violations {
                failed = true;
                eprintln!("seed {seed} (leases {leases}) at {:?}: {}", v.at, v.what);
            }
            answered.extend(death.answered_after.iter().map(|d| d.as_secs_f64() * 1e3));
            views.push(death.view_after.as_secs_f64() * 1e3);
        }
        let mode = if leases { "leases" } else { "bus view only" };
        println!(
            "{mode:>14}: {} addresses of {count} clusters, two deaths each, answered after {} ms median, {} ms p99, \
             {} ms at most; the bus's view after {} ms median",
            answered.len(),
            quantile(&mut answered, 0.5),
            quantile(&mut answered, 0.99),
            quantile(&mut answered, 1.0),
            quantile(&mut views, 0.5),
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn quantile(values: &mut [f64], q: f64) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    format!("{:.0}", values[i])
}
