//! Forward-mode listeners: while this node owns a listener's address, dvipd accepts there and
//! relays every connection to a local backend.
//!
//! Owns the listening sockets and the relays. It must not decide when a listener runs: the
//! daemon starts one when the core says the node holds the address and stops it when the core
//! lets the address go. Stopping closes the listening socket only: connections already
//! relayed carry on until either side closes them, so a message in flight is not cut off by a
//! planned move.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::proxy_header;

/// How long a relay waits for its backend to accept before giving the client up.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The listening socket's backlog: a takeover can bring a burst of reconnecting clients.
const BACKLOG: i32 = 1024;

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
}

struct Running {
    route: Route,
    stop: watch::Sender<bool>,
}

/// The forward-mode listeners this node runs, by address and port.
#[derive(Default)]
pub struct Forwards {
    running: BTreeMap<(IpAddr, u16), Running>,
    counters: Arc<Counters>,
}

impl Forwards {
    /// No listeners yet; relays count into `counters`.
    pub fn new(counters: Counters) -> Self {
        Self {
            running: BTreeMap::new(),
            counters: Arc::new(counters),
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
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    counters.accepted.inc();
                    tokio::spawn(relay(client, peer, route, Arc::clone(&counters)));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!("cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn relay(mut client: TcpStream, peer: SocketAddr, route: Route, counters: Arc<Counters>) {
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
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => debug!(%peer, %local, up, down, "relay closed"),
        Err(e) => debug!(%peer, %local, "relay ended: {e}"),
    }
}
