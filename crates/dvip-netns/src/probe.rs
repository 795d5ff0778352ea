//! An ARP prober: from a client namespace, ask for a set of IPv4 addresses over and over and
//! record every answer, with who gave it and when.
//!
//! Owns the raw frames and the probing thread. It is how the lab sees a failover the way a
//! client does: an address has moved when a new owner's MAC answers for it. It must not
//! judge the answers; callers do (first answer from a survivor, two owners answering at once).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use pnet_datalink::{Channel, MacAddr};

use crate::recorder::{Recorder, Sink};
use crate::LabError;

/// How many requests go out at once; a round's slices are spread evenly over the round.
const SLICE: usize = 64;

/// The longest one read of the socket waits: how late a slice can go out.
const READ_WAIT: Duration = Duration::from_micros(200);

/// The client's raw socket: pnet sends on it; replies are read here, with the time the kernel
/// received each.
///
/// A reply stamped when it is read would make a failover look as slow as the prober is busy:
/// the socket also reads back every request it sent, and under load the replies wait behind
/// them.
struct Receiver {
    fd: OwnedFd,
}

impl Receiver {
    /// A packet socket for every frame (pnet binds it to the interface), stamping receptions.
    fn socket() -> Result<OwnedFd, nix::Error> {
        use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockProtocol, SockType};
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        socket::setsockopt(&fd, sockopt::ReceiveTimestamp, &true)?;
        socket::setsockopt(&fd, sockopt::RcvBuf, &(8 << 20))?;
        Ok(fd)
    }

    /// Waits until a frame is waiting or `wait` has passed. ppoll, because its timeout is as
    /// fine as the kernel's high-resolution timers; a socket timeout or poll's would be a
    /// whole clock tick (4 ms), longer than a slice's share of a round.
    fn wait(&self, wait: Duration) {
        use nix::poll::{ppoll, PollFd, PollFlags};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let timeout = nix::sys::time::TimeSpec::from_duration(wait);
        let _ = ppoll(&mut fds, Some(timeout), None);
    }

    /// The next frame waiting, if any, and when the kernel received it.
    fn receive<'a>(&self, buffer: &'a mut [u8]) -> Option<(&'a [u8], Instant)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut control = nix::cmsg_space!(nix::sys::time::TimeVal);
        let (read, stamp) = {
            let mut iov = [std::io::IoSliceMut::new(buffer)];
            let message = recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_DONTWAIT,
            )
            .ok()?;
            let stamp = message.cmsgs().ok().and_then(|mut all| {
                all.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestamp(t) => Some(t),
                    _ => None,
                })
            });
            (message.bytes, stamp)
        };
        let at = stamp.map_or_else(Instant::now, |t| {
            let received = SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(t.tv_sec()).unwrap_or(0),
                    u32::try_from(t.tv_usec()).unwrap_or(0) * 1_000,
                );
            let age = SystemTime::now()
                .duration_since(received)
                .unwrap_or_default();
            Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
        });
        Some((&buffer[..read], at))
    }
}

/// One ARP reply, or one gratuitous ARP (a node announcing an address unasked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The address asked for.
    pub address: Ipv4Addr,
    /// Who answered.
    pub mac: [u8; 6],
    /// When the kernel received the reply.
    pub at: Instant,
    /// The round of requests it answers (the latest round sent when it arrived).
    pub round: u64,
    /// An announcement rather than a reply: the sender claims the address, and a client's
    /// neighbour entry follows it at once, but it answered nothing.
    pub gratuitous: bool,
}

/// A probing thread in a namespace; stopped on drop.
pub struct Prober {
    recorder: Recorder<Answer>,
}

/// An ARP request for `target` from `source` (`mac`), broadcast.
fn request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes());
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&source.octets());
    frame[38..42].copy_from_slice(&target.octets());
    frame
}

/// The (address, MAC, gratuitous) of a frame in which a node claims an address: an ARP reply,
/// or a gratuitous ARP (sender and target address the same, request or reply). Any other
/// request is someone asking, not claiming.
fn claim(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6], bool)> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
        return None;
    }
    let mac: [u8; 6] = frame[22..28].try_into().ok()?;
    let sender: [u8; 4] = frame[28..32].try_into().ok()?;
    let gratuitous = frame[28..32] == frame[38..42];
    match frame[20..22] {
        [0, 2] => Some((Ipv4Addr::from(sender), mac, gratuitous)),
        [0, 1] if gratuitous => Some((Ipv4Addr::from(sender), mac, true)),
        _ => None,
    }
}

/// The prober's thread: its socket, the requests, where it is in a round.
struct Probing {
    tx: Box<dyn pnet_datalink::DataLinkSender>,
    /// Kept so pnet keeps the socket open.
    _rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    receiver: Receiver,
    frames: Vec<[u8; 42]>,
    /// What it asks for, and its own MAC: only a reply about one of these, from someone else,
    /// is an answer. The socket also sees the client's kernel's own replies (a node asking
    /// for the client's address), which are about the client.
    asked: std::collections::HashSet<Ipv4Addr>,
    mac: [u8; 6],
    interval: Duration,
    round: u64,
    sent: usize,
    /// When the current round began, and when the next one begins.
    started: Instant,
    next: Instant,
}

impl Probing {
    fn open(
        interface: &str,
        source: Ipv4Addr,
        targets: &[Ipv4Addr],
        interval: Duration,
    ) -> Result<Self, LabError> {
        let link = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| LabError(format!("no {interface} here")))?;
        let MacAddr(a, b, c, d, e, f) = link.mac.unwrap_or_default();
        let mac = [a, b, c, d, e, f];
        let fd =
            Receiver::socket().map_err(|e| LabError(format!("raw socket on {interface}: {e}")))?;
        // pnet gets a duplicate of the socket to own and close; this end stays ours, so it
        // can be polled. pnet may make the socket non-blocking or not: reads here pass
        // MSG_DONTWAIT either way and wait in ppoll.
        let for_pnet = fd
            .try_clone()
            .map_err(|e| LabError(format!("raw socket on {interface}: {e}")))?
            .into_raw_fd();
        let config = pnet_datalink::Config {
            socket_fd: Some(for_pnet),
            promiscuous: false,
            ..pnet_datalink::Config::default()
        };
        // pnet owns its duplicate from here (and closes it); `_rx` keeps it open.
        let (tx, rx) = match pnet_datalink::channel(&link, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => return Err(LabError("not an Ethernet channel".into())),
            Err(e) => return Err(LabError(format!("raw socket on {interface}: {e}"))),
        };
        let frames: Vec<[u8; 42]> = targets.iter().map(|t| request(mac, source, *t)).collect();
        Ok(Self {
            tx,
            _rx: rx,
            receiver: Receiver { fd },
            sent: frames.len(),
            frames,
            asked: targets.iter().copied().collect(),
            mac,
            interval,
            round: 0,
            started: Instant::now(),
            next: Instant::now(),
        })
    }

    /// Sends the slices that are due, then reads replies until the next one is. A round's
    /// slices are spread evenly over the round, so a round of thousands of addresses neither
    /// floods the bridge's queues at once nor lasts longer than the interval: every address is
    /// asked once per interval, which is what bounds how late an answer can be seen.
    fn step(&mut self, sink: &Sink<Answer>) -> Result<(), LabError> {
        let total = self.frames.len();
        if self.sent == total && Instant::now() >= self.next {
            self.round += 1;
            self.sent = 0;
            self.started = Instant::now();
            self.next = self.started + self.interval;
        }
        while self.sent < total
            && slice_due(self.started, self.interval, self.sent, total) <= Instant::now()
        {
            let slice = (self.sent + SLICE).min(total);
            for frame in &self.frames[self.sent..slice] {
                if let Some(Err(e)) = self.tx.send_to(frame, None) {
                    return Err(LabError(format!("sending a request: {e}")));
                }
            }
            self.sent = slice;
        }
        let until = if self.sent < total {
            slice_due(self.started, self.interval, self.sent, total)
        } else {
            self.next
        };
        let mut buffer = [0u8; 128];
        let mut answers = Vec::new();
        loop {
            match self.receiver.receive(&mut buffer) {
                Some((frame, at)) => {
                    let answer = claim(frame).filter(|(address, mac, _)| {
                        *mac != self.mac && self.asked.contains(address)
                    });
                    if let Some((address, mac, gratuitous)) = answer {
                        answers.push(Answer {
                            address,
                            mac,
                            at,
                            round: self.round,
                            gratuitous,
                        });
                    }
                }
                // Drained (what is waiting is this prober's own requests, read back, and the
                // replies: finite, since nothing is sent meanwhile).
                None => {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    self.receiver.wait((until - now).min(READ_WAIT));
                }
            }
        }
        sink.record(answers);
        Ok(())
    }
}

/// When the request at `index` of a round of `total` that began at `started` goes out.
fn slice_due(started: Instant, interval: Duration, index: usize, total: usize) -> Instant {
    started + interval.mul_f64(index as f64 / total.max(1) as f64)
}

impl Prober {
    /// Starts asking, from `interface` in namespace `ns` as `source`, for every one of
    /// `targets` once per round; a round lasts at least `interval` (longer when there are so
    /// many targets that sending them in slices takes longer).
    pub fn start(
        ns: &str,
        interface: &str,
        source: Ipv4Addr,
        targets: Vec<Ipv4Addr>,
        interval: Duration,
    ) -> Result<Self, LabError> {
        let (interface, place) = (interface.to_owned(), ns.to_owned());
        let recorder = Recorder::start(
            ns,
            "ARP prober",
            move || {
                Probing::open(&interface, source, &targets, interval)
                    .map_err(|e| LabError(format!("{place}: {}", e.0)))
            },
            Probing::step,
        )?;
        Ok(Self { recorder })
    }

    /// Every answer so far, in arrival order.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers_since(0)
    }

    /// The answers after the first `seen`, in arrival order.
    pub fn answers_since(&self, seen: usize) -> Vec<Answer> {
        self.recorder.since(seen)
    }

    /// Stops probing and returns every answer.
    pub fn stop(self) -> Result<Vec<Answer>, LabError> {
        self.recorder.finish()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_a_broadcast_who_has_and_a_reply_is_read_back() {
        let mac = [2, 0, 0, 0, 0, 1];
        let frame = request(
            mac,
            Ipv4Addr::new(198, 51, 100, 200),
            Ipv4Addr::new(198, 18, 0, 10),
        );
        assert_eq!(&frame[0..6], &[0xff; 6]);
        assert_eq!(&frame[20..22], &[0, 1]);
        assert_eq!(claim(&frame), None, "a request asks; it claims nothing");
        let mut answer = frame;
        answer[21] = 2;
        answer[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        answer[28..32].copy_from_slice(&[198, 18, 0, 10]);
        answer[38..42].copy_from_slice(&[198, 51, 100, 200]);
        assert_eq!(
            claim(&answer),
            Some((Ipv4Addr::new(198, 18, 0, 10), [2, 0, 0, 0, 0, 9], false))
        );
        assert_eq!(mac_text([2, 0, 0, 0, 0, 9]), "02:00:00:00:00:09");
    }

    #[test]
    fn a_gratuitous_arp_is_a_claim_but_not_an_answer() {
        let node = [2, 0, 0, 0, 0, 7];
        let address = Ipv4Addr::new(198, 18, 0, 10);
        // A node announcing an address asks for it as if for someone else: sender = target.
        let announcement = request(node, address, address);
        assert_eq!(claim(&announcement), Some((address, node, true)));
        let mut as_reply = announcement;
        as_reply[21] = 2;
        assert_eq!(claim(&as_reply), Some((address, node, true)));
    }
}
