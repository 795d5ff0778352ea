//! A TCP prober and the backends it reaches: how the lab sees a failover of a listener the
//! way a mail client does, by connecting to it.
//!
//! Owns the client's connection attempts and each node's banner server. A connection that
//! completes and reads a banner says which node accepted it (`220 nodeN`). It must not judge
//! the answers; callers do (first answer from a survivor).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Socket, Type};

use crate::recorder::Recorder;
use crate::LabError;

/// How long an attempt may wait for its handshake and then its banner before it is dropped:
/// one sent to a dead host would otherwise wait for TCP's own retransmission (a second).
const ATTEMPT_MAX: Duration = Duration::from_millis(100);

/// A connection that completed and the banner it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The address connected to.
    pub target: SocketAddrV4,
    /// When the handshake completed.
    pub at: Instant,
    /// The first line the server sent (empty if it closed without a word).
    pub banner: String,
}

/// A thread in a namespace starting a connection to every target each interval; stopped on
/// drop.
pub struct TcpProber {
    recorder: Recorder<Connected>,
}

/// One attempt in flight.
struct Attempt {
    target: SocketAddrV4,
    socket: Socket,
    started: Instant,
    /// When the handshake completed; then it waits for the banner.
    connected: Option<Instant>,
}

fn start_attempt(target: SocketAddrV4) -> std::io::Result<Attempt> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    // Closed with a reset: thousands of attempts a second must not fill TIME_WAIT.
    socket.set_linger(Some(Duration::ZERO))?;
    match socket.connect(&SocketAddr::V4(target).into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(Attempt {
        target,
        socket,
        started: Instant::now(),
        connected: None,
    })
}

impl TcpProber {
    /// Starts connecting, from namespace `ns`, to every one of `targets` once per `interval`
    /// (each attempt lives at most 100 ms).
    pub fn start(
        ns: &str,
        targets: Vec<SocketAddrV4>,
        interval: Duration,
    ) -> Result<Self, LabError> {
        let mut next = Instant::now();
        let recorder = Recorder::start(
            ns,
            "TCP prober",
            || Ok(Vec::<Attempt>::new()),
            move |attempts, sink| {
                if Instant::now() >= next {
                    next = Instant::now() + interval;
                    // A refused or unreachable attempt is an answer too: no one is there.
                    attempts.extend(targets.iter().filter_map(|&t| start_attempt(t).ok()));
                }
                sink.record(step(attempts));
                Ok(())
            },
        )?;
        Ok(Self { recorder })
    }

    /// The connections after the first `seen`, in the order they completed.
    pub fn connected_since(&self, seen: usize) -> Vec<Connected> {
        self.recorder.since(seen)
    }

    /// Stops probing and returns every connection.
    pub fn stop(self) -> Result<Vec<Connected>, LabError> {
        self.recorder.finish()
    }
}

/// Waits up to a millisecond for the attempts to progress; returns those that read a banner
/// (or were closed after connecting) and drops those that failed or took too long.
fn step(attempts: &mut Vec<Attempt>) -> Vec<Connected> {
    let ready: Vec<PollFlags> = {
        let mut fds: Vec<PollFd<'_>> = attempts
            .iter()
            .map(|a| {
                let wanted = if a.connected.is_some() {
                    PollFlags::POLLIN
                } else {
                    PollFlags::POLLOUT
                };
                PollFd::new(a.socket.as_fd(), wanted)
            })
            .collect();
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            return Vec::new();
        }
        if poll(&mut fds, PollTimeout::from(1u8)).is_err() {
            return Vec::new();
        }
        fds.iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect()
    };
    let now = Instant::now();
    let mut done = Vec::new();
    let mut keep = Vec::with_capacity(attempts.len());
    for (mut attempt, events) in std::mem::take(attempts).into_iter().zip(ready) {
        if attempt.connected.is_none() && !events.is_empty() {
            // Writable or failed: the handshake is over either way.
            match attempt.socket.take_error() {
                Ok(None) => attempt.connected = Some(now),
                _ => continue,
            }
        } else if let Some(at) = attempt.connected.filter(|_| !events.is_empty()) {
            let mut buffer = [0u8; 128];
            let banner = match attempt.socket.read(&mut buffer) {
                Ok(n) => String::from_utf8_lossy(&buffer[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    keep.push(attempt);
                    continue;
                }
                Err(_) => String::new(),
            };
            done.push(Connected {
                target: attempt.target,
                at,
                banner,
            });
            continue;
        }
        if now.duration_since(attempt.started) < ATTEMPT_MAX {
            keep.push(attempt);
        }
    }
    *attempts = keep;
    done
}

/// Banner servers, one thread per namespace, each answering every connection with
/// `220 NAME` and closing it; stopped on drop.
pub struct Backends {
    _servers: Vec<Recorder<()>>,
}

impl Backends {
    /// Listens on `listen` in each of `namespaces` (name, namespace), greeting as the name.
    pub fn start(namespaces: &[(String, String)], listen: SocketAddr) -> Result<Self, LabError> {
        let servers = namespaces
            .iter()
            .map(|(name, ns)| {
                let (place, banner) = (ns.clone(), format!("220 {name}\r\n"));
                Recorder::start(
                    ns,
                    "backend",
                    move || {
                        let listener = std::net::TcpListener::bind(listen).map_err(|e| {
                            LabError(format!("backend on {listen} in {place}: {e}"))
                        })?;
                        listener
                            .set_nonblocking(true)
                            .map_err(|e| LabError(format!("backend in {place}: {e}")))?;
                        Ok(listener)
                    },
                    move |listener, _| {
                        match listener.accept() {
                            Ok((mut stream, _)) => {
                                let _ = stream.write_all(banner.as_bytes());
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(1)),
                        }
                        Ok(())
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { _servers: servers })
    }
}
