//! Hooks: the operator's program, run after this node acquires an address and after it lets
//! one go.
//!
//! Owns running the program: one at a time, in the order the node acquired and released
//! (so a release and a later acquire of one address are never seen reversed), each with a
//! deadline, outside the daemon's loop (a slow hook never delays a failover). It must not
//! decide when a hook runs; the daemon asks after the core's acquisitions and releases.
//!
//! The program gets the event and the address as arguments and, in its environment,
//! `DVIP_EVENT` (`acquire` or `release`), `DVIP_ADDRESS`, `DVIP_BINDINGS` and `DVIP_PORTS`
//! (space-separated, possibly empty) and `DVIP_NODE`.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_console::{Event, EventLine};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::console::{now_ms, EventStream};
use crate::metrics::Metrics;

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping dvipd waits for the hooks still queued or running (the release hooks
/// of its hand-over among them): within systemd's 10 s stop timeout, with room for the rest.
pub const HOOKS_AT_STOP: Duration = Duration::from_secs(5);

/// Acquired or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// The node took the address.
    Acquire,
    /// The node let the address go.
    Release,
}

impl HookEvent {
    /// The word the program sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acquire => "acquire",
            Self::Release => "release",
        }
    }
}

/// One run of the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The program.
    pub program: String,
    /// Why it runs.
    pub event: HookEvent,
    /// The address.
    pub address: IpAddr,
    /// Binding names on the address.
    pub bindings: Vec<String>,
    /// Listener ports on the address.
    pub ports: Vec<u16>,
    /// This node's name.
    pub node: String,
}

/// The queue of hook runs and the task that works through it.
#[derive(Debug)]
pub struct Hooks {
    /// `None` once finishing: nothing more is queued.
    queue: Option<mpsc::UnboundedSender<HookRun>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Hooks {
    /// Starts the worker on the current runtime; each run's outcome becomes a `hook` event on
    /// `events`.
    pub fn start(events: EventStream, metrics: Arc<Metrics>) -> Self {
        let (queue, mut runs) = mpsc::unbounded_channel::<HookRun>();
        let worker = tokio::spawn(async move {
            while let Some(run) = runs.recv().await {
                let started = Instant::now();
                let outcome = execute(&run).await;
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let error = match outcome {
                    Ok(Some(0)) => {
                        info!(address = %run.address, hook = run.event.as_str(), ms, "hook done");
                        None
                    }
                    Ok(code) => {
                        metrics.error("hook");
                        warn!(address = %run.address, hook = run.event.as_str(), ?code, "hook failed");
                        Some(format!("exit status {code:?}"))
                    }
                    Err(e) => {
                        metrics.error("hook");
                        warn!(address = %run.address, hook = run.event.as_str(), "hook could not run: {e}");
                        Some(e.to_string())
                    }
                };
                let _ = events.send(EventLine {
                    event: Event::Hook {
                        hook: run.event.as_str().to_owned(),
                        address: run.address,
                        ms,
                        ok: error.is_none(),
                        error,
                    },
                    at_ms: now_ms(),
                });
            }
        });
        Self {
            queue: Some(queue),
            worker: Some(worker),
        }
    }

    /// Queues a run.
    pub fn run(&self, run: HookRun) {
        if let Some(queue) = &self.queue {
            let _ = queue.send(run);
        }
    }

    /// Runs what is queued to its end, for at most `within`; a hook still running then is
    /// killed, and nothing queued afterwards runs. Whether everything ran.
    pub async fn finish(&mut self, within: Duration) -> bool {
        self.queue = None;
        let Some(mut worker) = self.worker.take() else {
            return true;
        };
        if tokio::time::timeout(within, &mut worker).await.is_ok() {
            return true;
        }
        warn!(
            "hooks still running after {} s at stop: killed",
            within.as_secs()
        );
        worker.abort();
        false
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the program to its end (or kills it at the deadline); its exit code, `None` when a
/// signal ended it.
async fn execute(run: &HookRun) -> std::io::Result<Option<i32>> {
    let mut child = tokio::process::Command::new(&run.program)
        .arg(run.event.as_str())
        .arg(run.address.to_string())
        .env("DVIP_EVENT", run.event.as_str())
        .env("DVIP_ADDRESS", run.address.to_string())
        .env("DVIP_BINDINGS", join(&run.bindings))
        .env("DVIP_PORTS", join(&run.ports))
        .env("DVIP_NODE", &run.node)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
        Ok(status) => Ok(status?.code()),
        Err(_) => {
            let _ = child.kill().await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("killed after {} s", HOOK_TIMEOUT.as_secs()),
            ))
        }
    }
}
