//! `dvipd`, the daemon: one per node.
//!
//! This build reads and validates its configuration the way the running daemon will (the
//! same loader, the same located errors) and can check it with `--check`, like `nginx -t`.
//! Running a node needs the corosync bus, netlink plumbing and the console, which are not
//! built yet; without `--check` dvipd says so and exits 1 instead of pretending to run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dvip_config::{load, DiskFiles, LoadOptions, Severity};

/// The dvip daemon: keeps this node's share of the cluster's virtual IP addresses alive.
#[derive(Debug, Parser)]
#[command(name = "dvipd", version, about)]
struct Args {
    /// The node's configuration file (2.x or 3.x dialect).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// This node's name, overriding the configuration's `nodename` and the host name.
    #[arg(long, value_name = "NAME")]
    nodename: Option<String>,

    /// Check the configuration, print what is wrong, and exit: 0 valid, 1 invalid.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut options = LoadOptions::new(gethostname::gethostname().to_string_lossy());
    options.nodename = args.nodename;
    let checked = load(&args.config, &options, &DiskFiles);
    for diagnostic in &checked.diagnostics {
        eprintln!("{}", diagnostic.render(&checked.sources));
    }
    if !checked.is_valid() {
        let errors = checked.of(Severity::Error).count();
        eprintln!(
            "dvipd: {}: {errors} error(s); not starting",
            args.config.display()
        );
        return ExitCode::from(1);
    }
    let config = &checked.config;
    if args.check {
        println!(
            "dvipd: {}: valid for node {} with {} DuraVIP addresses",
            args.config.display(),
            config.nodename,
            config.addresses.len()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "dvipd: this build can only check its configuration (--check); \
         running node {} needs the corosync bus, which is not built yet",
        config.nodename
    );
    ExitCode::from(1)
}
