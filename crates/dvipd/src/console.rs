//! The console: requests from `dvip` over a unix socket, one JSON line each way.
//!
//! Owns the request and reply formats and the socket plumbing on both ends (the daemon's
//! listener, the client's call). It must not act on a request: the daemon's loop, which owns
//! the core, does that, so a console request is just one more input in the agreed order.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use dvip_core::{Command, Decision, Node};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

/// Where dvipd listens unless told otherwise.
pub const SOCKET_DEFAULT: &str = "/run/dvip/dvipd.sock";
/// The longest request line accepted.
const REQUEST_LEN_MAX: usize = 64 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What an operator asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Report the view, the plan and this node's holdings.
    Show,
    /// Stream what happens, one JSON line per event, until the client goes away.
    Events,
    /// Report how each held address was announced.
    Arp,
    /// Report the daemon itself: version, configuration, bus, uptime.
    Info,
    /// Run the inner request on every node and gather the replies.
    Broadcast(Value),
    /// A command for the core.
    Command(Command),
    /// Read the configuration again, as SIGHUP does; `force` applies one that defines no
    /// address while some run.
    Reload {
        /// Apply it even if it drops every address.
        force: bool,
    },
}

impl Request {
    /// Whether it changes the cluster (a command, or a broadcast that may carry one): those
    /// are logged with who asked.
    pub fn changes_something(&self) -> bool {
        matches!(
            self,
            Self::Command(_) | Self::Broadcast(_) | Self::Reload { .. }
        )
    }
}

/// A request and where its reply goes.
pub type Pending = (Request, oneshot::Sender<Value>);

/// Parses one request line: `{"command": "show" | "events" | "arp-show" | "info" | "broadcast" | "announce-view" |
/// "standby" | "online" | "move" | "reload", "address": ..., "to": ..., "force": bool,
/// "request": {...}}`.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON request: {e}"))?;
    let command = value["command"]
        .as_str()
        .ok_or("the request has no \"command\"")?;
    Ok(match command {
        "show" => Request::Show,
        "events" => Request::Events,
        "arp-show" => Request::Arp,
        "info" => Request::Info,
        "broadcast" => Request::Broadcast(crate::broadcast::inner_request(&value)?),
        "announce-view" => Request::Command(Command::AnnounceView),
        "standby" => Request::Command(Command::Standby),
        "online" => Request::Command(Command::Online),
        "reload" => Request::Reload {
            force: value["force"].as_bool().unwrap_or(false),
        },
        "move" => {
            let address: IpAddr = value["address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .ok_or("move needs an \"address\"")?;
            let to = value["to"]
                .as_str()
                .ok_or("move needs a \"to\" node")?
                .to_owned();
            Request::Command(Command::Move { address, to })
        }
        other => return Err(format!("unknown command `{other}`")),
    })
}

/// One address of a plan as JSON: `address`, `owner`, `reason`, `marks`, `candidates`,
/// `bindings`, `listener_ports`, `follows`. `dvip plan --json` prints the same.
pub fn decision_json(address: &IpAddr, d: &Decision) -> Value {
    json!({
        "address": address,
        "owner": d.owner,
        "reason": d.reason,
        "marks": d.marks,
        "candidates": d.candidates,
        "bindings": d.bindings(),
        "listener_ports": d.listener_ports(),
        "follows": d.follows,
    })
}

/// The reply to `show`: the view, and one entry per address with its owner, why, its marks,
/// its candidates and whether this node holds it; plus the same as a table.
pub fn status(node: &Node) -> Value {
    let plan = node.plan();
    let failing = node.unplumbed();
    let addresses: Vec<Value> = plan
        .addresses
        .iter()
        .map(|(address, d)| {
            let mut entry = decision_json(address, d);
            let held = node.plumbed().contains(address);
            entry["held_here"] = Value::Bool(held);
            entry["plumbed_here"] = Value::Bool(held && !failing.contains(address));
            entry
        })
        .collect();
    json!({
        "ok": true,
        "node": node.name(),
        "standby": node.is_standby(),
        "view": {
            "id": node.view_id(),
            "members": node.members(),
            "silent": node.silent(),
            "ready": node.is_ready(),
            "mature": node.is_mature(),
            "stable_ms": node.view_age().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
        "addresses": addresses,
        "not_plumbed": failing,
        "given_up_interfaces": node.given_up(),
        "table": plan.table_here(node.plumbed(), &failing),
    })
}

/// Events as the console streams them: one JSON object per line.
pub type EventStream = tokio::sync::broadcast::Sender<String>;

/// Wall-clock milliseconds since the Unix epoch: the `at_ms` of every event, for lining events
/// up across nodes.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Binds the socket (root only: mode 0600), forwards each request to `requests` and streams
/// `events` to clients that ask for them.
pub fn listen(
    path: &Path,
    requests: mpsc::Sender<Pending>,
    events: EventStream,
) -> std::io::Result<()> {
    let listener = bind_private(path)?;
    tokio::spawn(async move {
        let mut backoff = crate::accept::Backoff::new("console");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.accepted();
                    tokio::spawn(serve(stream, requests.clone(), events.clone()));
                }
                Err(e) => backoff.failed(&e).await,
            }
        }
    });
    Ok(())
}

/// Binds a unix socket at `path` that only root can use from the moment it exists: it is made
/// in a fresh directory of mode 0700, given mode 0600 there, and renamed into place (which
/// also replaces a socket a dead daemon left). Binding at `path` and chmod'ing afterwards
/// would leave a moment in which anyone could connect.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(format!(".dvipd-socket-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let bound = (|| {
        let temporary = staging.join("sock");
        let listener = UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

async fn serve(stream: UnixStream, requests: mpsc::Sender<Pending>, events: EventStream) {
    let caller = stream.peer_cred().ok();
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(REQUEST_LEN_MAX as u64));
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => match parse_request(line.trim()) {
            Ok(Request::Events) => return stream_events(write, events.subscribe()).await,
            Ok(request) => {
                if request.changes_something() {
                    // Who asked, for the audit trail: the socket is root's, but root is many
                    // people and scripts.
                    info!(
                        uid = caller.map(|c| c.uid()),
                        pid = caller.and_then(|c| c.pid()),
                        ?request,
                        "console request"
                    );
                }
                let (tx, rx) = oneshot::channel();
                if requests.send((request, tx)).await.is_err() {
                    json!({"ok": false, "error": "dvipd is stopping"})
                } else {
                    rx.await
                        .unwrap_or_else(|_| json!({"ok": false, "error": "dvipd is stopping"}))
                }
            }
            Err(e) => json!({"ok": false, "error": e}),
        },
        _ => json!({"ok": false, "error": "no request line within 5 s"}),
    };
    let mut bytes = reply.to_string().into_bytes();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

/// Writes `{"ok": true}`, then every event as it happens, until the client goes away. A client
/// too slow to keep up is told how many events it missed.
async fn stream_events(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut events: tokio::sync::broadcast::Receiver<String>,
) {
    use tokio::sync::broadcast::error::RecvError;
    if write.write_all(b"{\"ok\":true}\n").await.is_err() {
        return;
    }
    loop {
        let line = match events.recv().await {
            Ok(line) => line,
            Err(RecvError::Lagged(missed)) => {
                json!({"event": "missed", "count": missed}).to_string()
            }
            Err(RecvError::Closed) => return,
        };
        if write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends one request to the daemon at `path` and returns its reply.
pub async fn call(path: &Path, request: &Value) -> std::io::Result<Value> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut bytes = request.to_string().into_bytes();
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Asks the daemon at `path` for its event stream and hands every line to `on_line` until the
/// daemon goes away. The first line is the daemon's `{"ok": true}`.
pub async fn follow(path: &Path, mut on_line: impl FnMut(&str)) -> std::io::Result<()> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(b"{\"command\":\"events\"}\n").await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        on_line(&line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_mistakes_say_what_is_wrong() {
        assert_eq!(parse_request(r#"{"command":"show"}"#), Ok(Request::Show));
        assert_eq!(
            parse_request(r#"{"command":"events"}"#),
            Ok(Request::Events)
        );
        assert_eq!(
            parse_request(r#"{"command":"standby"}"#),
            Ok(Request::Command(Command::Standby))
        );
        let moved = parse_request(r#"{"command":"move","address":"198.51.100.1","to":"n2"}"#);
        assert!(matches!(moved, Ok(Request::Command(Command::Move { .. }))));
        assert!(parse_request(r#"{"command":"move","to":"n2"}"#)
            .unwrap_err()
            .contains("address"));
        assert!(parse_request(r#"{"command":"dance"}"#)
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse_request("show").unwrap_err().contains("JSON"));
    }
}
