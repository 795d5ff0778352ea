//! Forward-mode listeners: while this node owns a listener's address, dvipd accepts there and
//! relays every connection to a local backend.
//!
//! Owns the listening sockets and the relays. It must not decide when a listener runs: the
//! daemon starts one when the core says the node holds the address and stops it when the core
//! lets the address go. Stopping closes the listening socket only: connections already
//! relayed carry on until either side closes them, so a message in flight is not cut off by a
//! planned move.
//!
//! Relays are bounded: at most [`Forwards::new`]'s limit at once across every listener (a
//! connection over it is closed at once), and each ends after [`IDLE_TIMEOUT`] without a
//! byte either way, so idle clients cannot take the descriptors the console and corosync
//! need.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::proxy_header;

/// How long a relay waits for its backend to accept before giving the client up.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The listening socket's backlog: a takeover can bring a burst of reconnecting clients.
const BACKLOG: i32 = 1024;
/// How long a relay may carry nothing either way before it is closed: twice the five minutes
/// RFC 5321 gives an SMTP server to wait for a command, so no client within the protocol's
/// timeouts is cut.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The most relays at once, when descriptors allow (each takes two).
pub const RELAYS_MAX: usize = 4096;
/// Descriptors kept for everything but relays: corosync, netlink, the console, hooks.
pub const DESCRIPTORS_KEPT: u64 = 256;

/// What one listener relays, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Where connections go.
    pub backend: SocketAddr,
    /// Whether each starts with a PROXY protocol v2 header.
    pub proxy_protocol: bool,
}

/// Counters of the relays (the daemon's metrics).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Connections accepted on a forward-mode listener.
    pub accepted: Counter,
    /// Connections given up because the backend did not accept them.
    pub backend_failures: Counter,
    /// Connections closed at once because the relay limit was reached.
    pub refused: Counter,
    /// Relays closed for carrying nothing for [`IDLE_TIMEOUT`].
    pub idle_closed: Counter,
}

/// How many relays fit in `descriptors` (the process's limit on open files), at most
/// [`RELAYS_MAX`]: each takes two, and [`DESCRIPTORS_KEPT`] stay for the rest.
pub fn relays_for(descriptors: u64) -> usize {
    let spare = descriptors.saturating_sub(DESCRIPTORS_KEPT) / 2;
    usize::try_from(spare).unwrap_or(usize::MAX).min(RELAYS_MAX)
}

struct Running {
    route: Route,
    stop: watch::Sender<bool>,
}

/// The forward-mode listeners this node runs, by address and port.
pub struct Forwards {
    running: BTreeMap<(IpAddr, u16), Running>,
    counters: Arc<Counters>,
    /// One permit per relay that may run.
    relays: Arc<Semaphore>,
}

impl Forwards {
    /// No listeners yet; at most `relays` relays at once, counted into `counters`.
    pub fn new(counters: Counters, relays: usize) -> Self {
        Self {
            running: BTreeMap::new(),
            counters: Arc::new(counters),
            relays: Arc::new(Semaphore::new(relays)),
        }
    }

    /// The listeners running now, with their routes.
    pub fn running(&self) -> impl Iterator<Item = (SocketAddr, Route)> + '_ {
        self.running
            .iter()
            .map(|(&(a, p), r)| (SocketAddr::new(a, p), r.route))
    }

    /// Starts accepting on `address:port` (restarting it if its route changed). The socket is
    /// bound with `IP_FREEBIND`, so it can be made before the address has settled on the
    /// interface.
    pub fn start(&mut self, address: IpAddr, port: u16, route: Route) -> std::io::Result<()> {
        if self
            .running
            .get(&(address, port))
            .is_some_and(|r| r.route == route)
        {
            return Ok(());
        }
        self.stop(address, port);
        let listener = bind(SocketAddr::new(address, port))?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            route,
            stopped,
            Arc::clone(&self.counters),
            Arc::clone(&self.relays),
        ));
        info!(%address, port, backend = %route.backend, "forwarding");
        self.running
            .insert((address, port), Running { route, stop });
        Ok(())
    }

    /// Stops accepting on `address:port`; open connections finish by themselves.
    pub fn stop(&mut self, address: IpAddr, port: u16) {
        if let Some(running) = self.running.remove(&(address, port)) {
            let _ = running.stop.send(true);
            info!(%address, port, "no longer forwarding");
        }
    }

    /// Stops every listener on `address`.
    pub fn stop_address(&mut self, address: IpAddr) {
        let ports: Vec<u16> = self
            .running
            .range((address, 0)..=(address, u16::MAX))
            .map(|(&(_, p), _)| p)
            .collect();
        for port in ports {
            self.stop(address, port);
        }
    }
}

fn bind(at: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    match at {
        SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
        SocketAddr::V6(_) => {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&at.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    route: Route,
    mut stopped: watch::Receiver<bool>,
    counters: Arc<Counters>,
    relays: Arc<Semaphore>,
) {
    let mut backoff = crate::accept::Backoff::new("forwarded");
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    backoff.accepted();
                    counters.accepted.inc();
                    // Taken and closed rather than left in the backlog: the client learns at
                    // once, and its descriptor is back.
                    let Ok(permit) = Arc::clone(&relays).try_acquire_owned() else {
                        counters.refused.inc();
                        debug!(%peer, "relay limit reached: connection closed");
                        continue;
                    };
                    let counters = Arc::clone(&counters);
                    tokio::spawn(async move {
                        relay(client, peer, route, &counters).await;
                        drop(permit);
                    });
                }
                Err(e) => backoff.failed(&e).await,
            },
        }
    }
}

/// Copies both ways until both sides have closed, or until `idle` passes with nothing to
/// copy; the bytes sent up (to `b`) and down, or `TimedOut`.
async fn pipe<A, B>(a: &mut A, b: &mut B, idle: Duration) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let (mut up, mut down) = (0u64, 0u64);
    let (mut a_done, mut b_done) = (false, false);
    while !(a_done && b_done) {
        tokio::select! {
            read = a_read.read(&mut up_buf), if !a_done => match read? {
                0 => {
                    a_done = true;
                    b_write.shutdown().await?;
                }
                n => {
                    b_write.write_all(&up_buf[..n]).await?;
                    up += n as u64;
                }
            },
            read = b_read.read(&mut down_buf), if !b_done => match read? {
                0 => {
                    b_done = true;
                    a_write.shutdown().await?;
                }
                n => {
                    a_write.write_all(&down_buf[..n]).await?;
                    down += n as u64;
                }
            },
            () = tokio::time::sleep(idle) => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"));
            }
        }
    }
    Ok((up, down))
}

async fn relay(mut client: TcpStream, peer: SocketAddr, route: Route, counters: &Counters) {
    let local = match client.local_addr() {
        Ok(local) => local,
        Err(e) => return debug!(%peer, "connection gone before relaying: {e}"),
    };
    let connected =
        tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, TcpStream::connect(route.backend)).await;
    let mut backend = match connected {
        Ok(Ok(backend)) => backend,
        Ok(Err(e)) => {
            counters.backend_failures.inc();
            return warn!(%peer, %local, backend = %route.backend, "backend refused: {e}");
        }
        Err(_) => {
            counters.backend_failures.inc();
            return warn!(%peer, %local, backend = %route.backend, "backend did not answer");
        }
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    if route.proxy_protocol {
        if let Err(e) = backend.write_all(&proxy_header::encode(peer, local)).await {
            return warn!(%peer, backend = %route.backend, "cannot send the PROXY header: {e}");
        }
    }
    match pipe(&mut client, &mut backend, IDLE_TIMEOUT).await {
        Ok((up, down)) => debug!(%peer, %local, up, down, "relay closed"),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            counters.idle_closed.inc();
            debug!(%peer, %local, "relay idle for {} s: closed", IDLE_TIMEOUT.as_secs());
        }
        Err(e) => debug!(%peer, %local, "relay ended: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_fit_the_descriptor_limit() {
        assert_eq!(relays_for(1024), 384);
        assert_eq!(relays_for(65_536), RELAYS_MAX);
        assert_eq!(relays_for(100), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipe_carries_both_ways_and_ends_when_idle() {
        let (mut client, mut near) = tokio::io::duplex(1024);
        let (mut far, mut backend) = tokio::io::duplex(1024);
        let relay =
            tokio::spawn(async move { pipe(&mut near, &mut far, Duration::from_secs(60)).await });
        client.write_all(b"HELO").await.expect("write");
        let mut got = [0u8; 4];
        backend.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"HELO");
        backend.write_all(b"250").await.expect("write");
        let mut got = [0u8; 3];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"250");
        // Nothing more either way: the paused clock runs to the idle timeout.
        let ended = relay.await.expect("joined");
        assert_eq!(
            ended.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
    }

    #[tokio::test]
    async fn a_pipe_ends_when_both_sides_close() {
        let (mut client, mut near) = tokio::io::duplex(1024);
        let (mut far, mut backend) = tokio::io::duplex(1024);
        let relay =
            tokio::spawn(async move { pipe(&mut near, &mut far, Duration::from_secs(60)).await });
        client.write_all(b"QUIT").await.expect("write");
        client.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"QUIT");
        backend.shutdown().await.expect("shutdown");
        assert_eq!(relay.await.expect("joined").expect("clean"), (4, 0));
    }
}
