//! The mail system of the lab's nodes: numbered lines appended to every node's journal at a
//! steady rate, from a thread of this process (the journals are files this host reaches),
//! plus bursts on demand, so a replay can be caught in the middle.
//!
//! Owns the numbering: node `i`'s lines are `nodeI line K` for K from 1, with no gap, and it
//! counts what each journal accepted. It must not read the aggregated files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dvip_journal::{Durability, Journal, Timestamp, Writer};
use dvip_netns::LabError;

use crate::err;
use crate::state::LabState;

/// Line `k` of node `node`: what the writer appends and the checker expects.
pub(crate) fn line(node: usize, k: u64) -> String {
    format!("node{node} line {k:09}")
}

/// Bytes of each of node `node`'s lines in its aggregated file, newline included: its lines
/// are of one width, so a file's size says how many it holds.
pub(crate) fn width(node: usize) -> u64 {
    line(node, 1).len() as u64 + 1
}

/// The most lines appended in one batch: a burst of millions is not built in memory at once.
const BATCH_MAX: u64 = 10_000;

/// One node's journal and how many lines it has accepted.
pub(crate) struct Numbered {
    node: usize,
    writer: Writer,
    written: u64,
    /// Of `written`, those appended by bursts rather than at the steady rate.
    bursts: u64,
}

impl Numbered {
    /// Node `node`'s journal, from its first line.
    pub(crate) fn open(state: &LabState, node: usize) -> Result<Self, LabError> {
        let journal = Journal::open(super::journal(state, node))
            .map_err(|e| err(format!("node{node}'s journal: {e}")))?;
        Ok(Self {
            node,
            writer: Writer::new(journal, Durability::Process),
            written: 0,
            bursts: 0,
        })
    }

    /// Appends the next `count` lines.
    pub(crate) fn append(&mut self, count: u64) -> Result<(), LabError> {
        let end = self.written + count;
        while self.written < end {
            let lines: Vec<String> = (self.written + 1..=end.min(self.written + BATCH_MAX))
                .map(|k| line(self.node, k))
                .collect();
            self.writer
                .append_batch(
                    Timestamp::from_system(std::time::SystemTime::now()),
                    lines.iter().map(String::as_bytes),
                )
                .map_err(|e| err(format!("node{}'s journal: {e}", self.node)))?;
            self.written += lines.len() as u64;
        }
        Ok(())
    }
}

/// When the steady lines of node `node` up to line `through` were in its journal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    pub(crate) node: usize,
    pub(crate) through: u64,
    pub(crate) at: Instant,
}

/// Lines going into every node's journal until stopped.
pub(crate) struct LineWriter {
    journals: Arc<Mutex<Vec<Numbered>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), LabError>>>,
    /// With tracing: a mark per node and tick, for the lag tracer to take.
    marks: Option<Arc<Mutex<Vec<Mark>>>>,
}

/// How often the thread appends: the rate is spread over these ticks.
const TICK: Duration = Duration::from_millis(10);

impl LineWriter {
    /// Starts appending `rate` lines a second to each node's journal; `traced`, it marks when
    /// each tick's lines were in (see [`LineWriter::take_marks`]).
    pub(crate) fn start(state: &LabState, rate: u32, traced: bool) -> Result<Self, LabError> {
        let journals = (1..=state.nodes)
            .map(|node| Numbered::open(state, node))
            .collect::<Result<Vec<_>, LabError>>()?;
        let journals = Arc::new(Mutex::new(journals));
        let stop = Arc::new(AtomicBool::new(false));
        let marks = traced.then(|| Arc::new(Mutex::new(Vec::new())));
        let thread = {
            let (journals, stop) = (Arc::clone(&journals), Arc::clone(&stop));
            let marks = marks.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut ticks: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    ticks += 1;
                    // Due by the end of this tick, from the start: no drift on a slow tick.
                    let due = u64::from(rate) * ticks * TICK.as_millis() as u64 / 1000;
                    let mut journals = journals.lock().map_err(|_| err("writer poisoned"))?;
                    for numbered in journals.iter_mut() {
                        let behind = due.saturating_sub(numbered.written - numbered.bursts);
                        if behind > 0 {
                            numbered.append(behind)?;
                            if let Some(marks) = &marks {
                                marks.lock().map_err(|_| err("marks poisoned"))?.push(Mark {
                                    node: numbered.node,
                                    through: numbered.written,
                                    at: Instant::now(),
                                });
                            }
                        }
                    }
                    drop(journals);
                    let next = started + TICK * u32::try_from(ticks).unwrap_or(u32::MAX);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                Ok(())
            })
        };
        Ok(Self {
            journals,
            stop,
            thread: Some(thread),
            marks,
        })
    }

    /// The marks made since the last call (none without tracing).
    pub(crate) fn take_marks(&self) -> Vec<Mark> {
        self.marks
            .as_ref()
            .and_then(|m| m.lock().ok().map(|mut m| std::mem::take(&mut *m)))
            .unwrap_or_default()
    }

    /// Appends `count` lines at once to node `node`'s journal.
    pub(crate) fn burst(&self, node: usize, count: u64) -> Result<(), LabError> {
        let mut journals = self.journals.lock().map_err(|_| err("writer poisoned"))?;
        let numbered = journals
            .iter_mut()
            .find(|n| n.node == node)
            .ok_or_else(|| err(format!("no journal for node{node}")))?;
        numbered.append(count)?;
        numbered.bursts += count;
        Ok(())
    }

    /// Lines each node's journal accepted so far (index 0 is node1).
    pub(crate) fn written(&self) -> Vec<u64> {
        self.journals
            .lock()
            .map(|j| j.iter().map(|n| n.written).collect())
            .unwrap_or_default()
    }

    /// Stops the steady lines; what the thread met, if it failed.
    pub(crate) fn stop(&mut self) -> Result<(), LabError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(err("the line writer panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
