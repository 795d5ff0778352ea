//! `dvipd`, the daemon: one per node.
//!
//! Owns the command line and exit codes (0 after a clean stop, 1 when the configuration or
//! the environment stops it, 2 on a usage error). `--check` validates the configuration like
//! `nginx -t`. The daemon itself is `dvipd::daemon`: on corosync by default, or a cluster of
//! one with `--bus standalone`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use dvip_config::{load, DiskFiles, LoadOptions, Severity};
use dvipd::daemon::{run, BusKind, Settings};

/// The dvip daemon: keeps this node's share of the cluster's virtual IP addresses alive.
#[derive(Debug, Parser)]
#[command(name = "dvipd", version, about)]
struct Args {
    /// The node's configuration file (2.x or 3.x dialect).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["guard", "man"])]
    config: Option<PathBuf>,

    /// This node's name, overriding the configuration's `nodename` and the host name.
    #[arg(long, value_name = "NAME", value_parser = dvip_config::check_node_name)]
    nodename: Option<String>,

    /// Check the configuration, print what is wrong, and exit: 0 valid, 1 invalid.
    #[arg(long)]
    check: bool,

    /// Print dvipd's man page (section 8) and exit; the package installs it.
    #[arg(long, hide = true)]
    man: bool,

    /// Run as the guardian dvipd starts for itself (not for operators).
    #[arg(long, hide = true, conflicts_with = "check")]
    guard: bool,

    /// The group bus: `corosync` for a cluster, `standalone` for a single machine.
    #[arg(long, value_enum, default_value_t = Bus::Corosync)]
    bus: Bus,

    /// Seconds a plumbed address lives unless the daemon refreshes it: how long a daemon's
    /// addresses can outlive it if its guardian dies with it. Default: 6, longer for large
    /// address sets (see docs/plumbing.md).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=86400))]
    address_lifetime: Option<u64>,

    /// Put IPv4 addresses on N holder interfaces (dvip-hold0 and up) instead of the interface
    /// their topology hint names, so no interface's address list grows to thousands; 0 keeps
    /// them where the hint says. Default: 0 up to 1,024 IPv4 addresses in the configuration,
    /// then one holder per 256 (at most 64). See docs/plumbing.md.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=64))]
    spread: Option<u16>,

    /// Serve Prometheus metrics at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9469).
    #[arg(long, value_name = "ADDRESS:PORT")]
    metrics: Option<std::net::SocketAddr>,

    /// Take over configured DuraVIP addresses that another failover system (Momentum,
    /// keepalived) left plumbed: remove them at start, then elect them like the others.
    /// Without it dvipd refuses to start while such an address is on the machine. The
    /// address corosync knows this node by is never removed.
    #[arg(long)]
    migrate: bool,

    /// Run ownership leases: send dvip's own heartbeats to the other members on this UDP
    /// port, at their corosync ring addresses, answer for addresses only while the others
    /// acknowledge them (an nftables table makes the kernel enforce it), and take a silent
    /// member's addresses as soon as its lease is over, before corosync's view
    /// (docs/leases.md). Every member must run with the same timing.
    #[arg(long, value_name = "PORT")]
    heartbeat_port: Option<u16>,

    /// Milliseconds between heartbeats (with --heartbeat-port).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = dvip_lease::LeaseOptions::INTERVAL_DEFAULT_MS,
        requires = "heartbeat_port"
    )]
    heartbeat_interval: u64,

    /// Milliseconds without a heartbeat before a member is promised about (with
    /// --heartbeat-port).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = dvip_lease::LeaseOptions::SUSPECT_AFTER_DEFAULT_MS,
        requires = "heartbeat_port"
    )]
    heartbeat_suspect_after: u64,

    /// With --heartbeat-port: plumb, ahead of need and silent, every IPv4 address this node
    /// would take were another member to leave, so that a takeover only lets them answer (one
    /// nftables change) instead of plumbing them then (docs/leases.md, "Plumbing before it is
    /// needed"). Every such address is then plumbed on two nodes, answering on one.
    #[arg(long, requires = "heartbeat_port")]
    pre_plumb: bool,

    /// The console socket `dvip` talks to (made mode 0600: root only).
    #[arg(long, value_name = "PATH", default_value = dvipd::console::SOCKET_DEFAULT)]
    socket: PathBuf,

    /// Where this node keeps what survives a restart (standby), one file per node.
    #[arg(long, value_name = "DIR", default_value = dvipd::kept::STATE_DIR_DEFAULT)]
    state_dir: PathBuf,

    /// The certificate directory of the log service: ca.pem, and NODE.pem with NODE.key for
    /// this node (made by `dvip tls`).
    #[arg(long, value_name = "DIR", default_value = dvip_tls::TLS_DIR_DEFAULT)]
    tls_dir: PathBuf,
}

/// `dvipd --guard`: see `dvipd::guardian`.
fn guard() -> ExitCode {
    match dvipd::guardian::guard() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(removed) => {
            eprintln!("dvipd guardian: dvipd is gone; removed the {removed} addresses it left");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dvipd guardian: cannot remove dvipd's addresses: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bus {
    Corosync,
    Standalone,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.man {
        let page = clap_mangen::Man::new(<Args as clap::CommandFactory>::command()).section("8");
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dvipd: {e}");
                ExitCode::from(1)
            }
        };
    }
    let Some(config) = args.config.clone() else {
        return guard();
    };
    let mut options = LoadOptions::new(gethostname::gethostname().to_string_lossy());
    options.nodename = args.nodename.clone();
    if args.check {
        let checked = load(&config, &options, &DiskFiles);
        for diagnostic in &checked.diagnostics {
            eprintln!("{}", diagnostic.render(&checked.sources));
        }
        if !checked.is_valid() {
            let errors = checked.of(Severity::Error).count();
            eprintln!("dvipd: {}: {errors} error(s)", config.display());
            return ExitCode::from(1);
        }
        println!(
            "dvipd: {}: valid for node {} with {} DuraVIP addresses",
            config.display(),
            checked.config.nodename,
            checked.config.addresses.len()
        );
        return ExitCode::SUCCESS;
    }
    dvipd::logging::init();
    let settings = Settings {
        config,
        load: options,
        address_lifetime: args.address_lifetime.map(Duration::from_secs),
        spread: args.spread,
        socket: args.socket,
        state_dir: args.state_dir,
        tls_dir: args.tls_dir,
        metrics: args.metrics,
        migrate: args.migrate,
        heartbeats: args.heartbeat_port.map(|port| {
            (
                port,
                dvip_lease::LeaseOptions::from_millis(
                    args.heartbeat_interval,
                    args.heartbeat_suspect_after,
                ),
            )
        }),
        pre_plumb: args.pre_plumb,
        bus: match args.bus {
            Bus::Corosync => BusKind::Corosync,
            Bus::Standalone => BusKind::Standalone,
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dvipd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(settings));
    // A join with a stopped corosync may still wait on its thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvipd: {e}");
            ExitCode::from(1)
        }
    }
}
