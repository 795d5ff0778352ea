//! The journal's tests: behaviour on its own, failures injected, arbitrary bytes, and
//! interop with jlog's own C library.

mod failure;
mod follow;
mod fuzz;
mod interop;
mod journal;
mod oracle;

use std::path::PathBuf;

use dvip_journal::{CreateOptions, Journal, Reader, Record};

/// A new journal in a fresh temporary directory, with `subscribers`, and a small unit size
/// so tests cross segments.
pub(crate) fn fresh(
    unit_limit: u32,
    subscribers: &[&str],
) -> (tempfile::TempDir, PathBuf, Journal) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("j");
    let options = CreateOptions {
        unit_limit,
        subscribers: subscribers.iter().map(|s| (*s).to_owned()).collect(),
        ..CreateOptions::default()
    };
    let journal = Journal::create(&path, &options).expect("journal created");
    (dir, path, journal)
}

/// Every record `subscriber` can read now, checkpointing as it goes if asked.
pub(crate) fn read_all(path: &std::path::Path, subscriber: &str, checkpoint: bool) -> Vec<Record> {
    let mut reader = Reader::open(Journal::open(path).expect("journal opens"), subscriber)
        .expect("reader opens");
    let mut all = Vec::new();
    loop {
        let batch = reader.read(1000).expect("read");
        if batch.records.is_empty() {
            break;
        }
        all.extend(batch.records);
        if checkpoint {
            reader.checkpoint_read().expect("checkpoint");
        }
    }
    all
}

pub(crate) fn payloads(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect()
}
