//! `dvip collect`: the aggregator in the foreground.
//!
//! Owns reading the aggregator's file (with located errors), turning it into what
//! `dvip_collect` runs, and stopping it on SIGTERM or Ctrl-C. It must not pull or write logs
//! itself: that is `dvip_collect`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dvip_collect::{Collector, Output, Source};
use dvip_config::collect::load_collect;
use dvip_config::{DiskFiles, Severity};
use tokio::signal::unix::{signal, SignalKind};

use crate::Outcome;

/// Reads the aggregator's file for `name`, or for the only Manager, or for this host's.
fn load(path: &Path, name: Option<&str>) -> dvip_config::collect::CheckedCollect {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    load_collect(path, name, &hostname, &DiskFiles)
}

pub(crate) fn status(path: &Path, name: Option<&str>, json: bool) -> Outcome {
    let checked = load(path, name);
    let Some(config) = checked.config else {
        for d in &checked.diagnostics {
            eprint!("{}", d.render(&checked.sources));
        }
        return Outcome::Failed;
    };
    let report = match dvip_collect::read_status(&config.state_dir) {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "dvip collect status: no status in {} ({e}): is the aggregator running?",
                dvip_collect::status_path(&config.state_dir).display()
            );
            return Outcome::Failed;
        }
    };
    let age_ms = report.age_ms();
    let running = report.running();
    if json {
        let value = serde_json::json!({
            "running": running,
            "age_seconds": age_ms as f64 / 1000.0,
            "aggregator": report.aggregator,
            "streams": report.streams,
        });
        say!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        if running {
            say!("aggregator {}", report.aggregator);
        } else {
            say!(
                "aggregator {}: NOT RUNNING; what it said {} s ago:",
                report.aggregator,
                age_ms / 1000
            );
        }
        say!(
            "{:<16} {:<16} {:<12} {:<18} {:>12} {:>12} {:>10}",
            "NODE",
            "LOG",
            "STATE",
            "LAST WRITTEN",
            "LAG RECORDS",
            "LAG BYTES",
            "LAG S"
        );
        let dash = || "-".to_owned();
        for s in &report.streams {
            let state = if s.connected { "connected" } else { "away" };
            say!(
                "{:<16} {:<16} {:<12} {:<18} {:>12} {:>12} {:>10}",
                s.node,
                if s.log.is_empty() { "(all)" } else { &s.log },
                state,
                s.last.map_or_else(dash, |l| l.to_string()),
                s.lag_records.map_or_else(dash, |n| n.to_string()),
                s.lag_bytes.map_or_else(dash, |n| n.to_string()),
                s.lag_seconds.map_or_else(dash, |n| format!("{n:.1}")),
            );
            if let Some(why) = &s.error {
                say!("  {why}");
            }
        }
    }
    if running {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

pub(crate) fn run(
    path: &Path,
    name: Option<&str>,
    check: bool,
    json: bool,
    metrics: Option<std::net::SocketAddr>,
) -> Outcome {
    let checked = load(path, name);
    if check && json {
        let report = serde_json::json!({
            "valid": checked.config.is_some(),
            "config": checked.config,
            "diagnostics": checked
                .diagnostics
                .iter()
                .map(|d| d.to_json(&checked.sources))
                .collect::<Vec<_>>(),
        });
        say!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return if checked.config.is_some() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
    }
    for d in &checked.diagnostics {
        eprint!("{}", d.render(&checked.sources));
    }
    let Some(config) = checked.config else {
        return Outcome::Failed;
    };
    if check {
        let warnings = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        say!(
            "{}: valid for aggregator {} ({} nodes, {warnings} warnings)",
            path.display(),
            config.name,
            config.nodes.len(),
        );
        return Outcome::Ok;
    }
    let _lock = match dvip_collect::lock_state(&config.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("dvip collect: {e}");
            return Outcome::Failed;
        }
    };
    let tls = match dvip_tls::TlsDir::new(&config.tls_dir).client_config(&config.name) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("dvip collect: {e}");
            return Outcome::Failed;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let collector = Collector {
        name: config.name.clone(),
        sources: config
            .nodes
            .iter()
            .map(|n| Source {
                node: n.name.clone(),
                address: n.address,
                subscribers: n.subscribers.clone(),
            })
            .collect(),
        output: Output {
            template: config.logfile.clone(),
            file_mode: config.file_mode,
            dir_mode: config.dir_mode,
            files: Arc::new(dvip_collect::OpenFiles::new(
                config.max_open,
                config.max_idle,
            )),
        },
        state_dir: config.state_dir.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let board = dvip_collect::Board::default();
    if let Some(at) = metrics {
        if let Err(e) =
            dvip_collect::metrics::serve(at, board.clone(), config.name, Arc::clone(&stop))
        {
            eprintln!("dvip collect: cannot serve metrics on {at}: {e}");
            return Outcome::Failed;
        }
    }
    let worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || dvip_collect::run(collector, tls, &board, &stop))
    };
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            runtime.block_on(async {
                let mut terminate = signal(SignalKind::terminate())?;
                let mut interrupt = signal(SignalKind::interrupt())?;
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                Ok(())
            })
        });
    if let Err(e) = signals {
        eprintln!("dvip collect: cannot wait for signals ({e}); stopping");
    }
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
    Outcome::Ok
}
