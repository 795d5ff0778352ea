//! Following a node's event stream (`dvip events`) from a thread of its own, for reports
//! that line the daemons' events up with what the client saw.
//!
//! Owns the thread and the lines gathered. It must not interpret them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Follows one node's event stream on a thread of its own until told to stop.
pub(crate) struct Follower {
    /// The daemon accepted the request: the stream is open.
    pub(crate) following: bool,
    lines: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    pub(crate) fn start(socket: PathBuf) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let follow = dvipd::console::follow(&socket, |line| {
                    if let Ok(value) = serde_json::from_str::<Value>(line) {
                        if value.get("ok").is_some() {
                            let _ = ready_tx.send(());
                        } else if let Ok(mut all) = sink.lock() {
                            all.push(value);
                        }
                    }
                });
                tokio::select! {
                    _ = follow => {}
                    _ = stopped => {}
                }
            });
        });
        // The stream is open once the daemon said so (or the follower gave up).
        let following = ready_rx.recv_timeout(Duration::from_secs(2)).is_ok();
        Self {
            following,
            lines,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Value> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
