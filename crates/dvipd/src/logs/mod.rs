//! dvipd's log inputs: the syslog listener and the followed files, filling journals.
//!
//! Owns starting and stopping the inputs a configuration names. Each socket and each followed
//! file runs on a thread of its own, never on the daemon's loop, so a slow disk or a flood of
//! log lines cannot slow a failover. It must not decide routes (the configuration does) nor
//! serve journals to subscribers.

mod follow;
pub mod metrics;
pub mod service;
pub mod syslog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dvip_config::{LogInputs, SyslogListen};
use tracing::info;

use self::metrics::LogMetrics;
use self::syslog::{Router, Sinks, Socket};

/// How soon an input tries again after a failure (an append, a receive, a follow).
const RETRY: Duration = Duration::from_secs(1);

/// How often a waiting input looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Why the inputs did not start; none is running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A syslog socket could not be bound.
    #[error("cannot listen for syslog on {listen}: {source}")]
    Listen {
        /// The socket.
        listen: SyslogListen,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The system would not start another thread.
    #[error("cannot start a thread for the log inputs: {0}")]
    Thread(#[source] std::io::Error),
}

/// The running inputs; dropping it leaves them running until [`Inputs::stop`].
#[derive(Default)]
pub struct Inputs {
    running: Option<LogInputs>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Inputs {
    /// Binds every syslog socket, then starts a thread per socket and per followed file. When
    /// a socket cannot be bound, nothing is started.
    pub fn start(config: &LogInputs, metrics: &LogMetrics) -> Result<Self, InputError> {
        let mut sockets = Vec::new();
        for listen in &config.syslog {
            let socket = Socket::bind(listen).map_err(|source| InputError::Listen {
                listen: listen.clone(),
                source,
            })?;
            sockets.push((listen.clone(), socket));
        }
        let mut inputs = Self {
            running: Some(config.clone()),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for (listen, socket) in sockets {
            let router = Router::new(config.routes.clone());
            let sinks = Sinks::new(config.journals.clone());
            let (metrics, stop) = (metrics.clone(), Arc::clone(&inputs.stop));
            info!(listener = %listen, routes = config.routes.len(), "listening for syslog");
            inputs.spawn("dvip-syslog", move || {
                syslog::run(&socket, &listen, &router, sinks, &metrics, &stop);
            })?;
        }
        for follow in &config.follows {
            let Some(journal) = config.journal(&follow.log).cloned() else {
                continue;
            };
            let follow = follow.clone();
            let (metrics, stop) = (metrics.clone(), Arc::clone(&inputs.stop));
            info!(file = %follow.file.display(), journal = journal.log, "following");
            inputs.spawn("dvip-follow", move || {
                follow::run(&follow, &journal, &metrics, &stop);
            })?;
        }
        Ok(inputs)
    }

    /// Starts `f` on a thread of its own; when it cannot, stops those already started.
    fn spawn(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), InputError> {
        match std::thread::Builder::new().name(name.to_owned()).spawn(f) {
            Ok(thread) => {
                self.threads.push(thread);
                Ok(())
            }
            Err(e) => {
                self.stop();
                Err(InputError::Thread(e))
            }
        }
    }

    /// Whether these inputs are the ones `config` names.
    pub fn runs(&self, config: &LogInputs) -> bool {
        self.running
            .as_ref()
            .map_or(config.is_empty(), |r| r == config)
    }

    /// Stops every input: each writes what it has already received, then its thread ends.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.running = None;
    }
}

/// Opens an input's journal, making it with the subscribers the configuration names when it
/// is not there yet, so nothing is removed before they read it.
fn open_journal(
    journal: &dvip_config::InputJournal,
) -> dvip_journal::Result<dvip_journal::Journal> {
    let options = dvip_journal::CreateOptions {
        subscribers: journal.subscribers.clone(),
        ..dvip_journal::CreateOptions::default()
    };
    dvip_journal::Journal::open_or_create(&journal.path, &options)
}

/// Waits `how_long`, or less once `stop` is set.
fn wait(stop: &AtomicBool, how_long: Duration) {
    let until = Instant::now() + how_long;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}
