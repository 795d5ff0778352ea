//! `dvip-sim`: run the cluster simulator over many seeds.
//!
//! `cargo run --release -p dvip-sim -- --seeds 100000` runs seeds 0..100000;
//! `--seed N` replays one and prints every violation. Exit status 1 when any seed fails.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use dvip_sim::{run, RunOptions};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = RunOptions {
        faults: args.faults,
        verbose: args.verbose,
        transitional_views: !args.no_transitional_views,
        ..RunOptions::default()
    };
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
            eprintln!("  replay: cargo run --release -p dvip-sim -- --seed {seed}");
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
