//! Pulling one node's log into files: connect, open the log as the first subscriber the node
//! knows, and for each batch received write, sync, record, then acknowledge.
//!
//! Owns one connection's life and the order of a batch's steps (see `state.rs` for why that
//! order makes each line land once). It must not decide file names (`template.rs`) or keep
//! the state's format (`state.rs`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_logwire::{ErrorKind, Framed, Reply, Request, WireRecord, PROTOCOL_VERSION};
use dvip_tls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use tracing::info;

use crate::state::Stream;
use crate::status::Board;
use crate::{CollectError, Output, Source};

/// Records asked for at once, and granted again as each batch is written.
pub(crate) const CREDIT: u32 = 16_384;

/// How long one read waits; the loop then looks at the clock and the stop flag.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the open log's backlog is asked for; the answers are the node's heartbeat.
const BACKLOG_EVERY: Duration = Duration::from_secs(2);

/// A node silent this long (no records, no answer to `Backlog`) is taken for gone: a cut link
/// or a dead host.
const SILENCE_MAX: Duration = Duration::from_secs(10);

type Conn = Framed<StreamOwned<ClientConnection, TcpStream>>;

/// The connection to `source` failed, for `why`.
fn broke(source: &Source, why: impl std::fmt::Display) -> CollectError {
    CollectError::Connect {
        node: source.node.clone(),
        why: why.to_string(),
    }
}

/// Connects to `source` and says Hello.
pub(crate) fn connect(
    source: &Source,
    tls: &Arc<ClientConfig>,
    me: &str,
) -> Result<Conn, CollectError> {
    let tcp = TcpStream::connect_timeout(&source.address, Duration::from_secs(5))
        .map_err(|e| broke(source, e))?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(READ_TIMEOUT)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(|e| broke(source, e))?;
    let name = dvip_tls::server_name(&source.node).map_err(|e| broke(source, e))?;
    let connection = ClientConnection::new(Arc::clone(tls), name).map_err(|e| broke(source, e))?;
    let mut conn = Framed::new(StreamOwned::new(connection, tcp)).with_stall_limit(SILENCE_MAX);
    match ask(
        &mut conn,
        source,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            client: me.to_owned(),
        },
    )? {
        Reply::Welcome { .. } => Ok(conn),
        other => Err(refused(source, other)),
    }
}

/// The logs `source` serves.
pub(crate) fn list(conn: &mut Conn, source: &Source) -> Result<Vec<String>, CollectError> {
    match ask(conn, source, &Request::List)? {
        Reply::Logs { logs } => Ok(logs.into_iter().map(|l| l.name).collect()),
        other => Err(refused(source, other)),
    }
}

fn ask(conn: &mut Conn, source: &Source, request: &Request) -> Result<Reply, CollectError> {
    let lost = |e| broke(source, e);
    conn.send(request).map_err(lost)?;
    let asked = Instant::now();
    loop {
        if let Some(reply) = conn.receive::<Reply>().map_err(lost)? {
            return Ok(reply);
        }
        if asked.elapsed() > SILENCE_MAX {
            return Err(broke(
                source,
                format!("no answer within {} s", SILENCE_MAX.as_secs()),
            ));
        }
    }
}

fn refused(source: &Source, reply: Reply) -> CollectError {
    CollectError::Refused {
        node: source.node.clone(),
        why: match reply {
            Reply::Error { message, .. } => message,
            other => format!("unexpected answer: {other:?}"),
        },
    }
}

/// Opens `log` as the first of the source's subscribers the node knows.
fn open(conn: &mut Conn, source: &Source, log: &str) -> Result<String, CollectError> {
    for subscriber in &source.subscribers {
        let reply = ask(
            conn,
            source,
            &Request::Open {
                log: log.to_owned(),
                subscriber: subscriber.clone(),
                credit: CREDIT,
            },
        )?;
        match reply {
            Reply::Opened { checkpoint, .. } => {
                info!(node = source.node, log, subscriber, %checkpoint, "replaying");
                return Ok(subscriber.clone());
            }
            Reply::Error {
                kind: ErrorKind::UnknownSubscriber,
                ..
            } => continue,
            other => return Err(refused(source, other)),
        }
    }
    Err(CollectError::NoSubscriber {
        node: source.node.clone(),
        log: log.to_owned(),
        tried: source.subscribers.clone(),
    })
}

/// Pulls `log` from `source` until the connection ends, an error comes, or `stop`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pull(
    source: &Source,
    log: &str,
    tls: &Arc<ClientConfig>,
    me: &str,
    output: &Output,
    stream: &mut Stream,
    board: &Board,
    stop: &AtomicBool,
) -> Result<(), CollectError> {
    let lost = |e| broke(source, e);
    let mut conn = connect(source, tls, me)?;
    let subscriber = open(&mut conn, source, log)?;
    board.update(&source.node, log, |s| {
        s.connected = true;
        s.subscriber = Some(subscriber);
        s.error = None;
        s.last = stream.state.last;
    });
    let mut heard = Instant::now();
    let mut asked = Instant::now();
    conn.send(&Request::Backlog).map_err(lost)?;
    while !stop.load(Ordering::Relaxed) {
        if asked.elapsed() >= BACKLOG_EVERY {
            conn.send(&Request::Backlog).map_err(lost)?;
            asked = Instant::now();
        }
        let Some(reply) = conn.receive::<Reply>().map_err(lost)? else {
            if heard.elapsed() > SILENCE_MAX {
                return Err(broke(
                    source,
                    format!("silent for {} s", SILENCE_MAX.as_secs()),
                ));
            }
            continue;
        };
        heard = Instant::now();
        match reply {
            Reply::Records { records } => {
                let Some(last) = records.last().map(|r| r.id) else {
                    continue;
                };
                let count = records.len();
                let (lines, bytes) = write_batch(&records, log, &source.node, output, stream)?;
                board.update(&source.node, log, |s| {
                    s.last = stream.state.last;
                    s.written_lines += lines;
                    s.written_bytes += bytes;
                });
                // The node keeps sending while credit lasts: its `Acked` comes among the
                // records, not necessarily next.
                let records = u32::try_from(count).unwrap_or(u32::MAX);
                for request in [Request::Ack { through: last }, Request::More { records }] {
                    conn.send(&request).map_err(lost)?;
                }
            }
            Reply::Acked { .. } => {}
            Reply::Backlog {
                records,
                bytes,
                oldest,
            } => board.update(&source.node, log, |s| {
                s.lag_records = Some(records);
                s.lag_bytes = Some(bytes);
                s.lag_seconds = Some(oldest.map_or(0.0, |t| {
                    std::time::SystemTime::now()
                        .duration_since(t.to_system())
                        .unwrap_or_default()
                        .as_secs_f64()
                }));
            }),
            other => return Err(refused(source, other)),
        }
    }
    Ok(())
}

/// Writes the records not yet written, as `state.rs` orders: intent, append and sync, commit.
/// Returns the lines and bytes (newlines included) written.
pub(crate) fn write_batch(
    records: &[WireRecord],
    log: &str,
    node: &str,
    output: &Output,
    stream: &mut Stream,
) -> Result<(u64, u64), CollectError> {
    let fresh: Vec<&WireRecord> = records.iter().filter(|r| !stream.written(r.id)).collect();
    let Some(last) = fresh.last().map(|r| r.id) else {
        return Ok((0, 0));
    };
    let mut by_file: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    // A name changes at most once a second (the template's finest escape): records of one
    // second share it, so it is worked out once per second, not per record.
    let mut named: Option<(u32, PathBuf)> = None;
    for record in &fresh {
        let path = match &named {
            Some((second, path)) if *second == record.time.seconds => path.clone(),
            _ => {
                let path = output.template.render(record.time, log, node);
                named = Some((record.time.seconds, path.clone()));
                path
            }
        };
        let bytes = by_file.entry(path).or_default();
        bytes.extend_from_slice(&record.payload);
        bytes.push(b'\n');
    }
    let mut before = BTreeMap::new();
    for path in by_file.keys() {
        let len = match fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(CollectError::io(path, "stat", e)),
        };
        before.insert(path.clone(), len);
    }
    stream.intend(&before)?;
    let mut after = BTreeMap::new();
    for (path, bytes) in &by_file {
        if let Err(e) = append(path, bytes, output) {
            // Nothing of this batch counts: the intent on disk names every file it touched at
            // its length before, so reloading cuts what went out back off.
            stream.reload()?;
            return Err(e);
        }
        after.insert(path.clone(), before[path] + bytes.len() as u64);
    }
    stream.commit(last, after)?;
    let bytes = by_file.values().map(|b| b.len() as u64).sum();
    Ok((fresh.len() as u64, bytes))
}

fn append(path: &Path, bytes: &[u8], output: &Output) -> Result<(), CollectError> {
    let file = output.files.get(path, output)?;
    let mut file: &File = &file;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| CollectError::io(path, "write", e))
}
