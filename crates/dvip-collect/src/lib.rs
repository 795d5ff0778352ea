//! The aggregator (`dvip collect`): every node's logs pulled over the log service into files
//! named by time, log and node, each line once whatever crashes.
//!
//! Owns running the pullers: one thread per node that lists its logs, and one per node and
//! log that pulls it, reconnecting with a growing pause after any failure. Synchronous, with
//! no tokio. It must not parse the configuration file (the `dvip` command turns it into a
//! [`Collector`]) nor serve logs.

mod files;
pub mod metrics;
mod pull;
mod state;
mod status;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_tls::rustls::ClientConfig;
use tracing::{info, warn};

pub use dvip_config::logfile::{Template, TemplateError};
pub use files::{OpenFiles, MAX_IDLE_DEFAULT, MAX_OPEN_DEFAULT};
pub use state::{Stream, StreamState};
pub use status::{read as read_status, status_path, Board, CollectStatus, StreamStatus};

/// A node to pull from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The node's name: its certificate must name it.
    pub node: String,
    /// Its log service.
    pub address: SocketAddr,
    /// Subscriber names tried in order: the first the node's log has is used.
    pub subscribers: Vec<String>,
}

/// Where and how the lines are written.
#[derive(Clone, Debug)]
pub struct Output {
    pub template: Template,
    pub file_mode: u32,
    pub dir_mode: u32,
    /// The files held open between batches, shared by every puller.
    pub files: Arc<OpenFiles>,
}

/// Everything an aggregator needs.
#[derive(Clone, Debug)]
pub struct Collector {
    /// This aggregator's name (its certificate's).
    pub name: String,
    pub sources: Vec<Source>,
    pub output: Output,
    /// Where what was written is recorded.
    pub state_dir: PathBuf,
}

/// Why collecting a log stopped for a while.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    #[error("{path}: cannot {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    State { path: PathBuf, why: String },
    #[error("node {node}: {why}")]
    Connect { node: String, why: String },
    #[error("node {node} refused: {why}")]
    Refused { node: String, why: String },
    #[error(
        "another dvip collect runs with the state directory {path}: two aggregators writing \
         one node's log would each write its lines; give each its own state_dir and subscriber"
    )]
    AlreadyRunning { path: PathBuf },
    #[error(
        "node {node}'s log {log} has none of the subscribers {tried:?}: add one to its \
         logger's URI (`=>NAME`) or with `dvip log subscriber add`"
    )]
    NoSubscriber {
        node: String,
        log: String,
        tried: Vec<String>,
    },
}

impl CollectError {
    pub(crate) fn io(path: &Path, doing: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            doing,
            source,
        }
    }
}

/// Takes the state directory for this process alone, for as long as the returned lock lives.
pub fn lock_state(state_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, CollectError> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| CollectError::io(state_dir, "create the state directory", e))?;
    let path = state_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CollectError::io(&path, "open the lock", e))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(locked),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(CollectError::AlreadyRunning {
            path: state_dir.to_owned(),
        }),
        Err((_, errno)) => Err(CollectError::io(&path, "lock", errno.into())),
    }
}

/// The pause after a failure: 1 s, doubling to 30 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How often a node's list of logs is read again.
const RELIST: Duration = Duration::from_secs(60);

/// Runs until `stop`: a thread per node, and per node and log.
pub fn run(collector: Collector, tls: ClientConfig, board: &Board, stop: &Arc<AtomicBool>) {
    let tls = Arc::new(tls);
    let collector = Arc::new(collector);
    let board = board.clone();
    for source in &collector.sources {
        board.update(&source.node, "", |s| {
            s.error = Some("not listed yet".into());
        });
    }
    let reporter = {
        let (collector, board, stop) = (Arc::clone(&collector), board.clone(), Arc::clone(stop));
        std::thread::Builder::new()
            .name("collect-status".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    status::write(&collector.state_dir, &board.report(&collector.name));
                    collector.output.files.close_idle();
                    wait(&stop, Duration::from_secs(1));
                }
            })
    };
    let threads: Vec<_> = collector
        .sources
        .iter()
        .cloned()
        .map(|source| {
            let (collector, tls, board, stop) = (
                Arc::clone(&collector),
                Arc::clone(&tls),
                board.clone(),
                Arc::clone(stop),
            );
            std::thread::Builder::new()
                .name(format!("collect-{}", source.node))
                .spawn(move || watch_node(&source, &collector, &tls, &board, &stop))
        })
        .collect();
    for thread in threads.into_iter().flatten() {
        let _ = thread.join();
    }
    if let Ok(reporter) = reporter {
        let _ = reporter.join();
    }
    status::write(&collector.state_dir, &board.report(&collector.name));
}

fn watch_node(
    source: &Source,
    collector: &Arc<Collector>,
    tls: &Arc<ClientConfig>,
    board: &Board,
    stop: &Arc<AtomicBool>,
) {
    let mut pulling = BTreeSet::new();
    let mut pullers = Vec::new();
    let mut retry = RETRY_FIRST;
    while !stop.load(Ordering::Relaxed) {
        let listed = pull::connect(source, tls, &collector.name)
            .and_then(|mut conn| pull::list(&mut conn, source));
        match listed {
            Ok(logs) => {
                retry = RETRY_FIRST;
                board.remove(&source.node, "");
                for log in logs {
                    if !pulling.insert(log.clone()) {
                        continue;
                    }
                    let (source, collector, tls, board, stop) = (
                        source.clone(),
                        Arc::clone(collector),
                        Arc::clone(tls),
                        board.clone(),
                        Arc::clone(stop),
                    );
                    let spawned = std::thread::Builder::new()
                        .name(format!("collect-{}-{log}", source.node))
                        .spawn(move || pull_log(&source, &log, &collector, &tls, &board, &stop));
                    match spawned {
                        Ok(t) => pullers.push(t),
                        Err(e) => warn!("cannot start a thread to pull a log: {e}"),
                    }
                }
                wait(stop, RELIST);
            }
            Err(e) => {
                warn!("{e}; trying again in {} s", retry.as_secs());
                if pulling.is_empty() {
                    board.update(&source.node, "", |s| s.error = Some(e.to_string()));
                }
                wait(stop, retry);
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    for t in pullers {
        let _ = t.join();
    }
}

fn pull_log(
    source: &Source,
    log: &str,
    collector: &Collector,
    tls: &Arc<ClientConfig>,
    board: &Board,
    stop: &AtomicBool,
) {
    let mut retry = RETRY_FIRST;
    let Some(mut stream) = open_stream(source, log, collector, stop) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match pull::pull(
            source,
            log,
            tls,
            &collector.name,
            &collector.output,
            &mut stream,
            board,
            stop,
        ) {
            Ok(()) => return,
            Err(e) => {
                board.update(&source.node, log, |s| {
                    s.connected = false;
                    s.error = Some(e.to_string());
                    // Not known while away: the node's last word is stale.
                    s.lag_records = None;
                    s.lag_bytes = None;
                    s.lag_seconds = None;
                });
                // A session that ran a while was healthy: start the pauses over.
                if started.elapsed() > RETRY_MAX {
                    retry = RETRY_FIRST;
                }
                warn!(
                    node = source.node,
                    log,
                    "{e}; nothing unwritten was acknowledged; trying again in {} s",
                    retry.as_secs()
                );
                wait(stop, retry);
                retry = (retry * 2).min(RETRY_MAX);
                // What the disk holds is what was written: a batch that failed has reloaded
                // it already, unless even the state could not be read then.
                let Some(again) = open_stream(source, log, collector, stop) else {
                    return;
                };
                stream = again;
            }
        }
    }
    info!(node = source.node, log, "stopped");
}

/// The stream of `log` from `source`, opened from its state on disk, tried again with growing
/// pauses until it opens; `None` once `stop` is set.
fn open_stream(
    source: &Source,
    log: &str,
    collector: &Collector,
    stop: &AtomicBool,
) -> Option<Stream> {
    let mut retry = RETRY_FIRST;
    loop {
        match Stream::open(&collector.state_dir, &source.node, log) {
            Ok(stream) => return Some(stream),
            Err(e) => {
                warn!("{e}; trying again in {} s", retry.as_secs());
                wait(stop, retry);
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

fn wait(stop: &AtomicBool, how_long: Duration) {
    let until = Instant::now() + how_long;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}
