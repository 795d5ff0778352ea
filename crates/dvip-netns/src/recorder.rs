//! A thread in a network namespace that works (and records what it observes) until it is
//! stopped: what the ARP and TCP probers and the bench's banner servers share.
//!
//! Owns the thread, its stop flag and the records. It must not know what is recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::LabError;

/// Where a step puts what it observed.
pub(crate) struct Sink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Sink<T> {
    pub(crate) fn record(&self, items: impl IntoIterator<Item = T>) {
        if let Ok(mut all) = self.records.lock() {
            all.extend(items);
        }
    }
}

/// The thread and what it recorded; stopped on drop.
pub(crate) struct Recorder<T> {
    records: Arc<Mutex<Vec<T>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), LabError>>>,
    what: &'static str,
}

impl<T: Clone + Send + 'static> Recorder<T> {
    /// On a new thread in namespace `ns`: `setup`, then `step` over and over until stopped.
    /// Returns once `setup` is done, with its error if it failed.
    pub(crate) fn start<S, F, G>(
        ns: &str,
        what: &'static str,
        setup: F,
        mut step: G,
    ) -> Result<Self, LabError>
    where
        F: FnOnce() -> Result<S, LabError> + Send + 'static,
        G: FnMut(&mut S, &Sink<T>) -> Result<(), LabError> + Send + 'static,
    {
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_owned();
        let sink = Sink {
            records: Arc::clone(&records),
        };
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut state = match crate::enter(&ns).and_then(|()| setup()) {
                Ok(state) => {
                    let _ = ready_tx.send(Ok(()));
                    state
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            while !stopped.load(Ordering::Relaxed) {
                step(&mut state, &sink)?;
            }
            Ok(())
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                records,
                stop,
                thread: Some(thread),
                what,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError(format!("the {what} died while starting"))),
        }
    }

    /// The records after the first `seen`, in order: a caller polling keeps the count it has
    /// read instead of copying every record again.
    pub(crate) fn since(&self, seen: usize) -> Vec<T> {
        self.records
            .lock()
            .map(|a| a.get(seen..).map(<[T]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Stops the thread and returns every record (or the error that ended it).
    pub(crate) fn finish(mut self) -> Result<Vec<T>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| LabError(format!("the {} panicked", self.what)))??;
        }
        Ok(self.since(0))
    }
}

impl<T> Drop for Recorder<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
