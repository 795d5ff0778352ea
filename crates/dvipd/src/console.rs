//! The console's daemon side: the socket, one request line in, one reply line out.
//!
//! Owns binding the socket, reading a request (bounded in size and time), logging who asked
//! for a change, and writing the reply or the event stream. The protocol itself (requests,
//! typed replies, events) is `dvip_console`'s. It must not act on a request: the daemon's
//! loop, which owns the core, does that, so a console request is just one more input in the
//! agreed order.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use dvip_console::{
    AddressPlan, AddressStatus, Answer, ClusterStatus, ConfigStatus, ConsoleError, ErrorKind,
    EventLine, InTransit, LeaseStatus, MarkedAddress, NodeState, NodeStatus, OwnerChange, Request,
    Status, ViewStatus,
};
use dvip_core::Node;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

pub use dvip_console::SOCKET_DEFAULT;

/// The longest request line accepted.
const REQUEST_LEN_MAX: usize = 64 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon answers a request with.
pub type Reply = Result<Answer, ConsoleError>;

/// A request and where its reply goes.
pub type Pending = (Request, oneshot::Sender<Reply>);

/// The reply when the daemon's loop is gone.
fn stopping() -> ConsoleError {
    ConsoleError::new(ErrorKind::Unavailable, "dvipd is stopping")
}

/// The largest view (members times addresses) whose next owners `show` computes: one
/// election per member, on the daemon's loop, must stay well under a failover's time. 3 nodes
/// with 10,240 addresses are within it; 64 nodes with 10,240 (half a second) are not, and
/// their NEXT column stays empty.
pub const NEXT_OWNERS_BUDGET: usize = 100_000;

/// The reply to `show`, but for the configuration and the bus the daemon adds: the view,
/// and one entry per address with its owner, why, its marks, its candidates and whether this
/// node holds it; plus the same as a table.
pub fn status(
    node: &Node,
    config: ConfigStatus,
    waiting_for_corosync: bool,
    lease: Option<LeaseStatus>,
    readied: &BTreeSet<IpAddr>,
) -> Status {
    let plan = node.plan();
    let failing = node.unplumbed();
    let members = node.table().map_or(0, BTreeMap::len);
    let next = if members.saturating_mul(plan.addresses.len()) <= NEXT_OWNERS_BUDGET {
        node.next_owners()
    } else {
        BTreeMap::new()
    };
    let addresses = plan
        .addresses
        .iter()
        .map(|(address, d)| {
            let held = node.plumbed().contains(address);
            AddressStatus {
                plan: AddressPlan::new(*address, d),
                held_here: held,
                plumbed_here: held && !failing.contains(address),
                readied_here: readied.contains(address),
                next_owner: next.get(address).cloned().flatten(),
            }
        })
        .collect();
    Status {
        node: node.name().to_owned(),
        standby: node.is_standby(),
        view: view_status(node),
        addresses,
        table: plan.table_here(node.plumbed(), &failing, readied, &next),
        moves: standing_moves(node),
        not_plumbed: failing,
        given_up_interfaces: node.given_up().clone(),
        config,
        waiting_for_corosync,
        lease,
    }
}

/// The view part of a report.
fn view_status(node: &Node) -> ViewStatus {
    ViewStatus {
        id: node.view_id(),
        members: node.members(),
        silent: node.silent(),
        ready: node.is_ready(),
        mature: node.is_mature(),
        stable_ms: node.view_age().map(millis),
    }
}

/// The reply to `status`: every node of `configured` (corosync's node list) and of the view,
/// what each holds and owns, addresses in transit, marks with what each member says, and the
/// last ownership changes stamped by the wall clock `now_ms`.
pub fn cluster_status(
    node: &Node,
    configured: &BTreeSet<String>,
    config: ConfigStatus,
    waiting_for_corosync: bool,
    now_ms: u64,
) -> ClusterStatus {
    let plan = node.plan();
    let empty = BTreeMap::new();
    let table = node.table().unwrap_or(&empty);
    let silent = node.silent();
    let names: BTreeSet<&String> = configured.iter().chain(table.keys()).collect();
    let nodes = names
        .into_iter()
        .map(|name| {
            let member = table.get(name);
            let state = match member {
                None => NodeState::Offline,
                Some(_) if silent.contains(name) => NodeState::Silent,
                Some(m) if m.standby => NodeState::Standby,
                Some(_) => NodeState::Online,
            };
            NodeStatus {
                name: name.clone(),
                state,
                owns: plan.owned_by(name).count(),
                held: member.map(|m| m.holdings.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let in_transit = plan
        .addresses
        .iter()
        .filter_map(|(address, d)| {
            let owner = d.owner.as_deref()?;
            let holds = |n: &str| table.get(n).is_some_and(|m| m.holdings.contains(address));
            (!holds(owner)).then(|| InTransit {
                address: *address,
                owner: owner.to_owned(),
                held_by: table.keys().filter(|n| holds(n)).cloned().collect(),
            })
        })
        .collect();
    let marked = MarkedAddress::all_in(plan, table);
    let clock = node.clock();
    let changes = node
        .changes()
        .map(|c| OwnerChange {
            at_ms: now_ms.saturating_sub(millis(clock.saturating_sub(c.at))),
            view_id: c.view_id,
            address: c.address,
            from: c.from.clone(),
            to: c.to.clone(),
            reason: c.reason,
        })
        .collect();
    let unplumbed = node.unplumbed();
    let not_plumbed = if unplumbed.is_empty() {
        BTreeMap::new()
    } else {
        [(node.name().to_owned(), unplumbed)].into()
    };
    ClusterStatus {
        node: node.name().to_owned(),
        view: view_status(node),
        config,
        waiting_for_corosync,
        addresses: plan.addresses.len(),
        nodes,
        in_transit,
        not_plumbed,
        configurations: node.configuration_groups(),
        marked,
        changes,
        moves: standing_moves(node),
    }
}

/// The standing moves the node knows, as reports carry them.
fn standing_moves(node: &Node) -> Vec<dvip_console::StandingMove> {
    node.standing_moves()
        .map(|(address, to)| dvip_console::StandingMove {
            address,
            to: to.clone(),
        })
        .collect()
}

/// A duration in whole milliseconds, as reports carry them.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Events as the console streams them.
pub type EventStream = tokio::sync::broadcast::Sender<EventLine>;

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
        Ok(Ok(n)) if n > 0 => match Request::from_line(line.trim()) {
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
                    Err(stopping())
                } else {
                    rx.await.unwrap_or_else(|_| Err(stopping()))
                }
            }
            Err(e) => Err(e),
        },
        _ => Err(ConsoleError::new(
            ErrorKind::BadRequest,
            format!("no request line within {} s", REQUEST_TIMEOUT.as_secs()),
        )),
    };
    let _ = write.write_all(reply_line(&reply).as_bytes()).await;
}

/// A reply as its line on the wire.
pub fn reply_line(reply: &Reply) -> String {
    let value = match reply {
        Ok(answer) => answer.to_json(),
        Err(e) => e.to_json(),
    };
    format!("{value}\n")
}

/// Writes `{"ok": true}`, then every event as it happens, until the client goes away. A client
/// too slow to keep up is told how many events it missed.
async fn stream_events(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut events: tokio::sync::broadcast::Receiver<EventLine>,
) {
    use tokio::sync::broadcast::error::RecvError;
    if write
        .write_all(reply_line(&Ok(Answer::Following)).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(count)) => EventLine {
                event: dvip_console::Event::Missed { count },
                at_ms: now_ms(),
            },
            Err(RecvError::Closed) => return,
        };
        let mut line = serde_json::to_string(&event).expect("events hold only plain data");
        line.push('\n');
        if write.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}
