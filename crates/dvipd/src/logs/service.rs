//! The log service: the cluster `logs` served to aggregators on `cluster_listener`, over
//! mutual TLS 1.3, in the protocol of docs/log-service.md.
//!
//! Owns the listening socket and one thread per connection (never the daemon's loop, so an
//! aggregator replaying at full speed or stuck mid-replay cannot slow a failover): the TLS
//! handshake, turning requests into journal reads and checkpoints as `ServerSession` orders,
//! and sending records as the client's credit allows. It must not decide the protocol's rules
//! (that is `dvip_logwire`) nor write records.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dvip_journal::{Journal, Reader};
use dvip_logwire::{
    ErrorKind as WireErrorKind, Framed, LogInfo, Reply, Request, ServerSession, Step, StreamError,
    WireRecord,
};
use dvip_tls::rustls::{ServerConfig, ServerConnection, StreamOwned};
use tracing::{debug, info, warn};

use super::metrics::LogMetrics;
use super::STOP_CHECK;

/// Connections served at once; more are closed at once (a handful of aggregators is normal).
pub const CONNECTIONS_MAX: usize = 64;

/// How long a write may wait for the client to make room before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client has to finish the handshake and say Hello.
const GREETING_DEADLINE: Duration = Duration::from_secs(10);

/// Records read from the journal and sent in one message, at most.
const RECORDS_PER_MESSAGE: u64 = 4096;

/// How long a busy connection waits for a request before sending more records.
const BUSY_WAIT: Duration = Duration::from_millis(1);

/// How often a caught-up subscriber's journal is looked at for new records: the floor of the
/// lag a line sees from its journal to the aggregator (a read of the metastore and an index
/// each time).
const CAUGHT_UP_WAIT: Duration = Duration::from_millis(20);

/// The logs served: log key and journal directory, replaced at a reload.
pub type ServedLogs = Arc<Mutex<Vec<(String, PathBuf)>>>;

/// The running service; it stops when dropped.
pub struct Service {
    stop: Arc<AtomicBool>,
    /// Where it listens (the port the system chose, if 0 was asked).
    pub local: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Binds `at` and serves `logs` as `node` until the returned [`Service`] is dropped.
pub fn start(
    at: SocketAddr,
    tls: ServerConfig,
    node: String,
    logs: ServedLogs,
    metrics: LogMetrics,
) -> std::io::Result<Service> {
    let listener = TcpListener::bind(at)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let service = Service {
        stop: Arc::clone(&stop),
        local,
    };
    let tls = Arc::new(tls);
    let connections = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("dvip-logserve".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (stream, peer) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(STOP_CHECK);
                        continue;
                    }
                    Err(e) => {
                        warn!("log service: cannot accept: {e}");
                        std::thread::sleep(STOP_CHECK);
                        continue;
                    }
                };
                if connections.load(Ordering::Relaxed) >= CONNECTIONS_MAX {
                    warn!(%peer, "log service: {CONNECTIONS_MAX} connections already; closing this one");
                    continue;
                }
                connections.fetch_add(1, Ordering::Relaxed);
                metrics.connections.inc();
                let (tls, node, logs, metrics, stop, connections) = (
                    Arc::clone(&tls),
                    node.clone(),
                    Arc::clone(&logs),
                    metrics.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&connections),
                );
                let spawned = std::thread::Builder::new()
                    .name("dvip-logconn".into())
                    .spawn(move || {
                        match serve(stream, tls, &node, &logs, &metrics, &stop) {
                            Ok(()) => debug!(%peer, "log service: connection closed"),
                            Err(e) => info!(%peer, "log service: connection ended: {e}"),
                        }
                        metrics.connections.dec();
                        connections.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    warn!(%peer, "log service: cannot start a thread for a connection: {e}");
                }
            }
        })?;
    Ok(service)
}

/// What the client sees of each served log: its key and the journal's subscribers (a journal
/// not made yet has none).
fn infos(logs: &ServedLogs) -> Vec<LogInfo> {
    let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
    logs.into_iter()
        .map(|(name, path)| LogInfo {
            subscribers: Journal::open(&path)
                .and_then(|j| j.subscribers())
                .unwrap_or_default(),
            name,
        })
        .collect()
}

fn path_of(logs: &ServedLogs, log: &str) -> Option<PathBuf> {
    logs.lock()
        .ok()?
        .iter()
        .find(|(name, _)| name == log)
        .map(|(_, path)| path.clone())
}

type Conn = Framed<StreamOwned<ServerConnection, TcpStream>>;

fn serve(
    stream: TcpStream,
    tls: Arc<ServerConfig>,
    node: &str,
    logs: &ServedLogs,
    metrics: &LogMetrics,
    stop: &AtomicBool,
) -> Result<(), StreamError> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(STOP_CHECK))?;
    // An aggregator that stops reading (a hung process, a host gone without a word) would
    // otherwise hold this thread in a write until TCP gives up, a quarter of an hour later:
    // writes come back every second to see whether the stall limit has passed.
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let connection = ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut conn: Conn =
        Framed::new(StreamOwned::new(connection, stream)).with_stall_limit(WRITE_TIMEOUT);
    let mut session = ServerSession::new(node, infos(logs));
    let started = Instant::now();
    let mut greeted = false;
    let mut reader: Option<(String, Reader)> = None;
    let mut busy = false;
    while !stop.load(Ordering::Relaxed) {
        conn.get_mut().sock.set_read_timeout(Some(if busy {
            BUSY_WAIT
        } else if reader.is_some() {
            CAUGHT_UP_WAIT
        } else {
            STOP_CHECK
        }))?;
        match conn.receive::<Request>()? {
            Some(request) => {
                greeted |= matches!(request, Request::Hello { .. });
                for step in session.handle(request) {
                    if !carry_out(step, &mut conn, &mut session, &mut reader, logs)? {
                        return Ok(());
                    }
                }
            }
            None if !greeted && started.elapsed() > GREETING_DEADLINE => {
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    "no Hello within the deadline",
                )
                .into())
            }
            None => {}
        }
        busy = false;
        let credit = session.credit();
        if let (Some((log, r)), true) = (reader.as_mut(), credit > 0) {
            // usize::MAX is far above any u64 this takes, so the cast cannot cut.
            let want = credit.min(RECORDS_PER_MESSAGE) as usize;
            let batch = match r.read(want) {
                Ok(batch) => batch,
                Err(e) => {
                    conn.send(&Reply::Error {
                        kind: WireErrorKind::Journal,
                        message: format!("cannot read the journal: {e}"),
                    })?;
                    return Ok(());
                }
            };
            for damage in &batch.damage {
                warn!(log, "log service: {damage}");
            }
            if let Some(last) = batch.records.last().map(|r| r.id) {
                let count = batch.records.len() as u64;
                let bytes: u64 = batch.records.iter().map(|r| r.payload.len() as u64).sum();
                session.sending(count, last);
                let records = batch
                    .records
                    .into_iter()
                    .map(|r| WireRecord {
                        id: r.id,
                        time: r.time,
                        payload: r.payload,
                    })
                    .collect();
                conn.send(&Reply::Records { records })?;
                metrics.served(log, count, bytes);
                busy = true;
            }
        }
    }
    Ok(())
}

/// Does one step; `false` when the connection is to close.
fn carry_out(
    step: Step,
    conn: &mut Conn,
    session: &mut ServerSession,
    reader: &mut Option<(String, Reader)>,
    logs: &ServedLogs,
) -> Result<bool, StreamError> {
    match step {
        Step::Reply(reply) => conn.send(&reply)?,
        Step::Close => return Ok(false),
        Step::Open { log, subscriber } => {
            let opened = path_of(logs, &log)
                .ok_or_else(|| format!("log `{log}` is no longer served"))
                .and_then(|path| {
                    Journal::open(&path)
                        .and_then(|j| Reader::open(j, &subscriber))
                        .map_err(|e| e.to_string())
                });
            match opened {
                Ok(r) => {
                    let checkpoint = r.cursor();
                    *reader = Some((log, r));
                    conn.send(&session.opened(checkpoint))?;
                }
                Err(why) => {
                    session.open_failed();
                    conn.send(&Reply::Error {
                        kind: WireErrorKind::Journal,
                        message: format!("cannot open `{log}` as `{subscriber}`: {why}"),
                    })?;
                }
            }
        }
        Step::Backlog => {
            let Some((log, r)) = reader.as_ref() else {
                return Ok(true);
            };
            // The journal the reader already holds: no second open, no path to look up.
            let subscriber = r.subscriber();
            let backlog = r
                .journal()
                .status()
                .map_err(|e| e.to_string())
                .map(|status| {
                    status
                        .subscribers
                        .into_iter()
                        .find(|s| s.name == subscriber)
                        .map(|s| s.backlog)
                });
            match backlog {
                Ok(Some(b)) => conn.send(&Reply::Backlog {
                    records: b.records,
                    bytes: b.bytes,
                    oldest: b.oldest,
                })?,
                Ok(None) => conn.send(&Reply::Error {
                    kind: WireErrorKind::UnknownSubscriber,
                    message: format!("`{subscriber}` is no longer a subscriber of `{log}`"),
                })?,
                Err(why) => conn.send(&Reply::Error {
                    kind: WireErrorKind::Journal,
                    message: format!("cannot read the journal's status: {why}"),
                })?,
            }
        }
        Step::Checkpoint { through } => {
            let Some((_, r)) = reader.as_mut() else {
                return Ok(true);
            };
            match r.checkpoint(through) {
                Ok(()) => conn.send(&session.checkpointed(through))?,
                Err(e) => conn.send(&Reply::Error {
                    kind: WireErrorKind::Journal,
                    message: format!("cannot move the checkpoint: {e}"),
                })?,
            }
        }
    }
    Ok(true)
}
