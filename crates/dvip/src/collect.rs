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

pub(crate) fn run(path: &Path, name: Option<&str>, check: bool, json: bool) -> Outcome {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let short = hostname.split('.').next().unwrap_or(&hostname).to_owned();
    let checked = load_collect(path, name, &DiskFiles);
    // With no --name and several Managers, this host's short name is the one meant.
    let checked = if checked.config.is_none() && name.is_none() {
        let again = load_collect(path, Some(&short), &DiskFiles);
        if again.config.is_some() {
            again
        } else {
            checked
        }
    } else {
        checked
    };
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
        println!(
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
        println!(
            "{}: valid for aggregator {} ({} nodes, {warnings} warnings)",
            path.display(),
            config.name,
            config.nodes.len(),
        );
        return Outcome::Ok;
    }
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
        },
        state_dir: config.state_dir.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || dvip_collect::run(collector, tls, &stop))
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
