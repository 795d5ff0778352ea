//! What the log inputs count, and each journal's subscribers' backlog, as metrics.
//!
//! Owns the names and help texts of the journal and syslog metrics, and reading the backlog
//! of every configured journal when the metrics are scraped (a subscriber that never reads
//! makes its journal grow without bound, and this is where an operator sees it). It must not
//! write a journal or move a checkpoint.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dvip_journal::Journal;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One journal, by its log key.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JournalLabel {
    /// The key in the cluster `logs`.
    pub journal: String,
}

/// One subscriber of one journal.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriberLabel {
    /// The journal's log key.
    pub journal: String,
    /// The subscriber's name.
    pub subscriber: String,
}

/// One syslog socket, as `unix:PATH` or `udp:ADDR:PORT`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// The socket.
    pub listener: String,
}

/// The log metrics; clones share their values.
#[derive(Clone, Default)]
pub struct LogMetrics {
    /// Records appended by dvipd's inputs, per journal.
    pub records: Family<JournalLabel, Counter>,
    /// Their payload bytes.
    pub bytes: Family<JournalLabel, Counter>,
    /// Appends that failed (the lines wait and are tried again).
    pub write_errors: Family<JournalLabel, Counter>,
    /// Syslog messages received, per socket.
    pub received: Family<ListenerLabel, Counter>,
    /// Syslog messages no route took (dropped).
    pub unrouted: Counter,
    /// Journals whose status could not be read at the last scrape.
    pub unreadable: Gauge,
    /// Aggregators connected to the log service.
    pub connections: Gauge,
    /// Records the log service sent, per journal.
    pub sent_records: Family<JournalLabel, Counter>,
    /// Their payload bytes.
    pub sent_bytes: Family<JournalLabel, Counter>,
    backlog_records: Family<SubscriberLabel, Gauge>,
    backlog_bytes: Family<SubscriberLabel, Gauge>,
    backlog_age: Family<SubscriberLabel, Gauge<f64, AtomicU64>>,
    journal_size: Family<JournalLabel, Gauge>,
    /// The configured journals (log key, directory), whose backlog is read at each scrape.
    journals: Arc<Mutex<Vec<(String, PathBuf)>>>,
}

impl LogMetrics {
    /// Registers every log metric in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "journal_records_written",
            "Records dvipd's log inputs appended, per journal",
            m.records.clone(),
        );
        registry.register(
            "journal_bytes_written",
            "Payload bytes dvipd's log inputs appended, per journal",
            m.bytes.clone(),
        );
        registry.register(
            "journal_write_errors",
            "Appends that failed; their lines are held and tried again",
            m.write_errors.clone(),
        );
        registry.register(
            "journal_bytes",
            "Bytes the journal's segments take on disk",
            m.journal_size.clone(),
        );
        registry.register(
            "journals_unreadable",
            "Configured journals whose status could not be read at this scrape",
            m.unreadable.clone(),
        );
        registry.register(
            "subscriber_backlog_records",
            "Records a subscriber has not read yet",
            m.backlog_records.clone(),
        );
        registry.register(
            "subscriber_backlog_bytes",
            "Payload bytes a subscriber has not read yet",
            m.backlog_bytes.clone(),
        );
        registry.register(
            "subscriber_backlog_age_seconds",
            "Age of the oldest record a subscriber has not read; 0 when it has read everything",
            m.backlog_age.clone(),
        );
        registry.register(
            "log_service_connections",
            "Aggregators connected to the log service",
            m.connections.clone(),
        );
        registry.register(
            "log_service_records_sent",
            "Records the log service sent to aggregators, per journal",
            m.sent_records.clone(),
        );
        registry.register(
            "log_service_bytes_sent",
            "Payload bytes the log service sent to aggregators, per journal",
            m.sent_bytes.clone(),
        );
        registry.register(
            "syslog_received",
            "Syslog messages received, per socket",
            m.received.clone(),
        );
        registry.register(
            "syslog_unrouted",
            "Syslog messages that no Log_Route took, dropped",
            m.unrouted.clone(),
        );
        m
    }

    /// The configured journals, shared: the log service serves the same list, so a reload
    /// that sets it here changes both.
    pub fn journals(&self) -> Arc<Mutex<Vec<(String, PathBuf)>>> {
        Arc::clone(&self.journals)
    }

    /// The journals whose backlog the next scrapes read, and the log service serves: the
    /// cluster `logs`.
    pub fn set_journals(&self, journals: Vec<(String, PathBuf)>) {
        if let Ok(mut kept) = self.journals.lock() {
            *kept = journals;
        }
    }

    /// Counts `records` appended to `journal`, holding `bytes` of payload.
    pub fn appended(&self, journal: &str, records: u64, bytes: u64) {
        let label = JournalLabel {
            journal: journal.to_owned(),
        };
        self.records.get_or_create(&label).inc_by(records);
        self.bytes.get_or_create(&label).inc_by(bytes);
    }

    /// Counts `records` of `journal` sent to an aggregator, holding `bytes` of payload.
    pub fn served(&self, journal: &str, records: u64, bytes: u64) {
        let label = JournalLabel {
            journal: journal.to_owned(),
        };
        self.sent_records.get_or_create(&label).inc_by(records);
        self.sent_bytes.get_or_create(&label).inc_by(bytes);
    }

    /// Counts one failed append to `journal`.
    pub fn write_failed(&self, journal: &str) {
        self.write_errors
            .get_or_create(&JournalLabel {
                journal: journal.to_owned(),
            })
            .inc();
    }

    /// Reads every configured journal's size and backlog. A journal not made yet has none;
    /// one that cannot be read is counted in `journals_unreadable`. Blocking file reads: call
    /// it off the daemon's loop.
    pub fn refresh(&self) {
        let journals = self.journals.lock().map(|j| j.clone()).unwrap_or_default();
        self.backlog_records.clear();
        self.backlog_bytes.clear();
        self.backlog_age.clear();
        self.journal_size.clear();
        let now = SystemTime::now();
        let mut unreadable = 0;
        for (name, path) in journals {
            let status = match Journal::open(&path).and_then(|j| j.status()) {
                Ok(status) => status,
                Err(dvip_journal::Error::NotFound { .. }) => continue,
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            self.journal_size
                .get_or_create(&JournalLabel {
                    journal: name.clone(),
                })
                .set(i64::try_from(status.bytes).unwrap_or(i64::MAX));
            for subscriber in status.subscribers {
                let label = SubscriberLabel {
                    journal: name.clone(),
                    subscriber: subscriber.name,
                };
                let backlog = subscriber.backlog;
                self.backlog_records
                    .get_or_create(&label)
                    .set(i64::try_from(backlog.records).unwrap_or(i64::MAX));
                self.backlog_bytes
                    .get_or_create(&label)
                    .set(i64::try_from(backlog.bytes).unwrap_or(i64::MAX));
                let age = backlog.oldest.map_or(0.0, |t| {
                    now.duration_since(t.to_system())
                        .unwrap_or_default()
                        .as_secs_f64()
                });
                self.backlog_age.get_or_create(&label).set(age);
            }
        }
        self.unreadable.set(unreadable);
    }
}
