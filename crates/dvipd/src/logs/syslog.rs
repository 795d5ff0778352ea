//! The syslog listener: datagrams from a unix socket or loopback UDP, parsed, routed and
//! appended to journals in batches.
//!
//! Owns one socket's thread: receiving (the first datagram waits, the ones queued behind it
//! are taken at once, up to a batch), reading each message's program, facility and severity
//! (RFC 3164 or RFC 5424, through `syslog_loose`), asking the configuration's routes where it
//! goes, and appending each journal's share of the batch in one write. A record holds the
//! message as it arrived, trailing newline and NUL cut, stamped with the time it was received.
//!
//! A journal that cannot be written holds the batch, tried again every second, and no more is
//! read from the socket meanwhile: the messages wait in the kernel (a unix socket's senders
//! then wait too; UDP drops once its buffer is full). It must not decide routes (that is
//! `dvip_config::syslog`) nor touch the daemon's loop.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use dvip_config::syslog::{route, Facility, Severity};
use dvip_config::{InputJournal, LogRoute, SyslogListen};
use dvip_journal::{Durability, Timestamp, Writer};
use nix::sys::socket::{recv, MsgFlags};
use syslog_loose::Variant;
use tracing::{info, warn};

use super::metrics::{ListenerLabel, LogMetrics};
use super::{open_journal, wait, RETRY, STOP_CHECK};

/// The largest datagram taken whole: UDP's limit, and far above any syslog sender's.
const DATAGRAM_MAX: usize = 64 * 1024;

/// Messages taken from the socket before the batch is written.
const BATCH_MAX: usize = 512;

/// A bound syslog socket.
pub(super) enum Socket {
    Unix(UnixDatagram, PathBuf),
    Udp(UdpSocket),
}

impl Socket {
    /// Binds `listen`: a unix socket's stale file is removed first and the new one made
    /// writable by every local user, as `/dev/log` is.
    pub(super) fn bind(listen: &SyslogListen) -> std::io::Result<Self> {
        let socket = match listen {
            SyslogListen::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                let socket = UnixDatagram::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                Self::Unix(socket, path.clone())
            }
            SyslogListen::Udp(at) => Self::Udp(UdpSocket::bind(at)?),
        };
        match &socket {
            Self::Unix(s, _) => s.set_read_timeout(Some(STOP_CHECK))?,
            Self::Udp(s) => s.set_read_timeout(Some(STOP_CHECK))?,
        }
        Ok(socket)
    }

    /// Waits (up to [`STOP_CHECK`]) for one datagram.
    fn recv_wait(&self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Unix(s, _) => s.recv(buffer),
            Self::Udp(s) => s.recv(buffer),
        }
    }

    /// One datagram if one is queued, without waiting.
    fn recv_now(&self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let fd = match self {
            Self::Unix(s, _) => s.as_raw_fd(),
            Self::Udp(s) => s.as_raw_fd(),
        };
        recv(fd, buffer, MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What routing needs to know of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified<'m> {
    /// RFC 3164's tag or RFC 5424's APP-NAME, if the message has one.
    pub program: Option<&'m str>,
    pub facility: Facility,
    pub severity: Severity,
}

/// Reads a message's program, facility and severity; a message without a priority is
/// `user.notice`. `year` stands in for RFC 3164's missing year (it does not matter here, but
/// the parser asks, and asking the clock per message costs).
pub fn classify(text: &str, year: i32) -> Classified<'_> {
    // A fixed zone: the time is not used, and the local zone costs a look at /etc/localtime
    // per message.
    let parsed = syslog_loose::parse_message_with_year_tz(
        text,
        |_| year,
        Some(chrono::Utc),
        Variant::Either,
    );
    let code = |c: Option<i32>| c.and_then(|c| u8::try_from(c).ok());
    // An RFC 3164 header with one word after the time is a host or a tag; the parser takes
    // it for a host unless a `[pid]` follows. What a local sender (glibc's syslog(3) without
    // LOG_PID, `logger`) writes is `TAG: MSG`, and a host is never followed by a colon.
    let program = parsed.appname.or_else(|| {
        let host = parsed.hostname?;
        let end = (host.as_ptr() as usize).checked_sub(text.as_ptr() as usize)? + host.len();
        (text.as_bytes().get(end) == Some(&b':')).then_some(host)
    });
    Classified {
        program: program.filter(|p| !p.is_empty()),
        facility: code(parsed.facility.map(|f| f as i32))
            .and_then(Facility::from_code)
            .unwrap_or(Facility::USER),
        severity: code(parsed.severity.map(|s| s as i32))
            .and_then(Severity::from_code)
            .unwrap_or(Severity::NOTICE),
    }
}

/// A message as a record holds it: trailing newlines and NULs (some senders end with one)
/// cut.
pub fn payload(datagram: &[u8]) -> &[u8] {
    let end = datagram
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r' && b != 0)
        .map_or(0, |i| i + 1);
    &datagram[..end]
}

/// Routes messages to logs, as the configuration orders.
pub struct Router {
    routes: Vec<LogRoute>,
}

impl Router {
    pub fn new(routes: Vec<LogRoute>) -> Self {
        Self { routes }
    }

    /// The log a message goes to, or `None` when no route takes it.
    pub fn log_for(&self, message: &[u8], year: i32) -> Option<&str> {
        let text = String::from_utf8_lossy(message);
        let c = classify(&text, year);
        route(
            self.routes.iter().map(|r| &r.matches),
            c.program,
            c.facility,
            c.severity,
        )
        .map(|i| self.routes[i].log.as_str())
    }
}

/// One writer per journal, opened (and the journal made, with its subscribers) on first use.
pub struct Sinks {
    journals: Vec<InputJournal>,
    writers: BTreeMap<String, Writer>,
}

impl Sinks {
    pub fn new(journals: Vec<InputJournal>) -> Self {
        Self {
            journals,
            writers: BTreeMap::new(),
        }
    }

    /// Appends `payloads` to `log`'s journal as one batch stamped `time`. A failed writer is
    /// dropped, so the next try opens the journal afresh.
    pub fn append<'p>(
        &mut self,
        log: &str,
        time: Timestamp,
        payloads: impl IntoIterator<Item = &'p [u8]>,
    ) -> dvip_journal::Result<()> {
        let writer = match self.writers.get_mut(log) {
            Some(writer) => writer,
            None => {
                let Some(journal) = self.journals.iter().find(|j| j.log == log) else {
                    // The configuration names every routed log's journal.
                    return Ok(());
                };
                self.writers
                    .entry(log.to_owned())
                    .or_insert(Writer::new(open_journal(journal)?, Durability::Process))
            }
        };
        let result = writer.append_batch(time, payloads);
        for repair in writer.take_repairs() {
            warn!(journal = log, "{repair}");
        }
        if result.is_err() {
            self.writers.remove(log);
        }
        result
    }
}

/// Messages received and not yet written: their bytes one after another.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Batch {
    fn push(&mut self, message: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload(message));
        self.spans.push(start..self.bytes.len());
    }

    fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|s| &self.bytes[s.clone()])
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }
}

/// Receives on `socket` until `stop`, then takes what is still queued and writes it.
pub(super) fn run(
    socket: &Socket,
    listen: &SyslogListen,
    router: &Router,
    mut sinks: Sinks,
    metrics: &LogMetrics,
    stop: &AtomicBool,
) {
    // A clone: the guard `get_or_create` returns holds the family's lock while it lives.
    let received = metrics
        .received
        .get_or_create(&ListenerLabel {
            listener: listen.to_string(),
        })
        .clone();
    let mut buffer = vec![0u8; DATAGRAM_MAX];
    let mut batch = Batch::default();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            match socket.recv_wait(&mut buffer) {
                Ok(n) => batch.push(&buffer[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(listener = %listen, "cannot receive: {e}");
                    wait(stop, RETRY);
                }
            }
        }
        while batch.spans.len() < BATCH_MAX {
            match socket.recv_now(&mut buffer) {
                Ok(n) => batch.push(&buffer[..n]),
                Err(_) => break,
            }
        }
        received.inc_by(batch.spans.len() as u64);
        write(&batch, router, &mut sinks, metrics, stop, listen);
        let drained = batch.spans.len() < BATCH_MAX;
        batch.clear();
        if stopping && drained {
            return;
        }
    }
}

/// Writes each journal's share of `batch`, holding it while a journal cannot be written.
fn write(
    batch: &Batch,
    router: &Router,
    sinks: &mut Sinks,
    metrics: &LogMetrics,
    stop: &AtomicBool,
    listen: &SyslogListen,
) {
    if batch.spans.is_empty() {
        return;
    }
    let year = current_year();
    let mut by_log: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for message in batch.messages() {
        match router.log_for(message, year) {
            Some(log) => by_log.entry(log).or_default().push(message),
            None => {
                metrics.unrouted.inc();
            }
        }
    }
    let time = Timestamp::from_system(SystemTime::now());
    for (log, messages) in by_log {
        let mut failing = false;
        loop {
            match sinks.append(log, time, messages.iter().copied()) {
                Ok(()) => {
                    let bytes = messages.iter().map(|m| m.len() as u64).sum();
                    metrics.appended(log, messages.len() as u64, bytes);
                    if failing {
                        info!(listener = %listen, journal = log, "the journal takes lines again");
                    }
                    break;
                }
                Err(e) => {
                    metrics.write_failed(log);
                    if !failing {
                        warn!(
                            listener = %listen,
                            journal = log,
                            held = messages.len(),
                            "cannot append (holding these lines and reading no more until it works): {e}"
                        );
                    }
                    failing = true;
                    if stop.load(Ordering::Relaxed) {
                        warn!(
                            journal = log,
                            lost = messages.len(),
                            "stopping with lines that could not be written"
                        );
                        break;
                    }
                    wait(stop, RETRY);
                }
            }
        }
    }
}

/// The year RFC 3164's timestamps leave out.
fn current_year() -> i32 {
    let days = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    // 365.2425 days per Gregorian year; exact enough for a value that changes nothing here.
    1970 + i32::try_from(days * 10_000 / 3_652_425).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_and_rfc5424_give_program_facility_and_severity() {
        let c = classify(
            "<22>Dec  6 02:05:14 postfix/smtp[4711]: 3F2A: to=<a@b>",
            2026,
        );
        assert_eq!(c.program, Some("postfix/smtp"));
        assert_eq!(c.facility, Facility::MAIL);
        assert_eq!(c.severity, Severity::INFO);
        let c = classify(
            "<20>1 2026-12-06T02:05:14.003Z mx1 exim 4711 - - 1rX deferred",
            2026,
        );
        assert_eq!(c.program, Some("exim"));
        assert_eq!(c.facility, Facility::MAIL);
        assert_eq!(c.severity, Severity::from_name("warning").unwrap());
        let c = classify("<13>Dec  6 02:05:14 mx1 haraka[9]: hello", 2026);
        assert_eq!(c.program, Some("haraka"));
        assert_eq!(c.facility, Facility::USER);
    }

    #[test]
    fn util_linux_logger_s_messages_are_read() {
        let c = classify("<22>Dec  6 02:18:28 postfix/smtp: hello2", 2026);
        assert_eq!(c.program, Some("postfix/smtp"));
        let c = classify("<22>Dec  6 02:18:05 vm postfix/smtp: hello", 2026);
        assert_eq!(c.program, Some("postfix/smtp"));
        assert_eq!(c.facility, Facility::MAIL);
        let c = classify("<21>1 2026-12-06T02:18:05.849145+00:00 vm postfix/qmgr - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] x", 2026);
        assert_eq!(c.program, Some("postfix/qmgr"));
        assert_eq!(c.severity, Severity::NOTICE);
    }

    #[test]
    fn a_message_without_a_priority_is_user_notice() {
        let c = classify("just some text", 2026);
        assert_eq!(c.facility, Facility::USER);
        assert_eq!(c.severity, Severity::NOTICE);
    }

    #[test]
    fn payload_cuts_trailing_newlines_and_nuls_only() {
        assert_eq!(payload(b"<13>a b\n"), b"<13>a b");
        assert_eq!(payload(b"<13>a b\r\n\0"), b"<13>a b");
        assert_eq!(payload(b"\n\n"), b"");
        assert_eq!(payload(b" x "), b" x ");
    }

    #[test]
    fn the_year_is_this_century_s() {
        let year = current_year();
        assert!((2024..2200).contains(&year), "{year}");
    }
}
