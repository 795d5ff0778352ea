//! An ARP prober: from a client namespace, ask for a set of IPv4 addresses over and over and
//! record every answer, with who gave it and when.
//!
//! Owns the raw frames and the probing thread. It is how the lab sees a failover the way a
//! client does: an address has moved when a new owner's MAC answers for it. It must not
//! judge the answers; callers do (first answer from a survivor, two owners answering at once).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, MacAddr};

use crate::LabError;

/// How many requests go out between two reads of the replies.
const SLICE: usize = 64;

/// One ARP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The address asked for.
    pub address: Ipv4Addr,
    /// Who answered.
    pub mac: [u8; 6],
    /// When the reply arrived.
    pub at: Instant,
    /// The round of requests it answers (the latest round sent when it arrived).
    pub round: u64,
}

/// A probing thread in a namespace; stopped on drop.
pub struct Prober {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), LabError>>>,
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

/// The (address, MAC) of an ARP reply frame.
fn reply(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 2] {
        return None;
    }
    let mac: [u8; 6] = frame[22..28].try_into().ok()?;
    let ip: [u8; 4] = frame[28..32].try_into().ok()?;
    Some((Ipv4Addr::from(ip), mac))
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
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, interface) = (ns.to_owned(), interface.to_owned());
        let (sink, stopped) = (Arc::clone(&answers), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let run = || -> Result<(), LabError> {
                let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
                    .map_err(|e| LabError(format!("namespace {ns}: {e}")))?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| LabError(format!("entering {ns}: {e}")))?;
                let link = pnet_datalink::interfaces()
                    .into_iter()
                    .find(|i| i.name == interface)
                    .ok_or_else(|| LabError(format!("no {interface} in {ns}")))?;
                let MacAddr(a, b, c, d, e, f) = link.mac.unwrap_or_default();
                let mac = [a, b, c, d, e, f];
                let config = pnet_datalink::Config {
                    read_timeout: Some(Duration::from_millis(1)),
                    ..pnet_datalink::Config::default()
                };
                let (mut tx, mut rx) = match pnet_datalink::channel(&link, config) {
                    Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
                    Ok(_) => return Err(LabError("not an Ethernet channel".into())),
                    Err(e) => return Err(LabError(format!("raw socket on {interface}: {e}"))),
                };
                let frames: Vec<[u8; 42]> =
                    targets.iter().map(|t| request(mac, source, *t)).collect();
                let _ = ready_tx.send(Ok(()));
                // Requests go out in slices between reads, so neither the bridge's queues nor
                // this socket's receive buffer overflow with thousands of addresses.
                let mut round = 0u64;
                let mut sent = frames.len();
                let mut next = Instant::now();
                while !stopped.load(Ordering::Relaxed) {
                    if sent == frames.len() && Instant::now() >= next {
                        round += 1;
                        sent = 0;
                        next = Instant::now() + interval;
                    }
                    let slice = (sent + SLICE).min(frames.len());
                    for frame in &frames[sent..slice] {
                        if let Some(Err(e)) = tx.send_to(frame, None) {
                            return Err(LabError(format!("sending a request: {e}")));
                        }
                    }
                    sent = slice;
                    // Read what is waiting (each read waits at most a millisecond), enough to
                    // keep up with the replies to a slice and then some.
                    let mut read = 0;
                    while let Ok(frame) = rx.next() {
                        read += 1;
                        if let Some((address, mac)) = reply(frame) {
                            let answer = Answer {
                                address,
                                mac,
                                at: Instant::now(),
                                round,
                            };
                            if let Ok(mut all) = sink.lock() {
                                all.push(answer);
                            }
                        }
                        if read >= 4 * SLICE {
                            break;
                        }
                    }
                }
                Ok(())
            };
            let result = run();
            if let Err(e) = &result {
                let _ = ready_tx.send(Err(e.clone()));
            }
            result
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                answers,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError("the prober died while starting".into())),
        }
    }

    /// Every answer so far, in arrival order.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers_since(0)
    }

    /// The answers after the first `seen`, in arrival order: a caller polling keeps the count
    /// it has read instead of copying every answer again.
    pub fn answers_since(&self, seen: usize) -> Vec<Answer> {
        self.answers
            .lock()
            .map(|a| a.get(seen..).map(<[Answer]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Stops probing and returns every answer.
    pub fn stop(mut self) -> Result<Vec<Answer>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| LabError("the prober panicked".into()))??;
        }
        Ok(self.answers())
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
        assert_eq!(reply(&frame), None, "a request is not a reply");
        let mut answer = frame;
        answer[21] = 2;
        answer[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        answer[28..32].copy_from_slice(&[198, 18, 0, 10]);
        assert_eq!(
            reply(&answer),
            Some((Ipv4Addr::new(198, 18, 0, 10), [2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(mac_text([2, 0, 0, 0, 0, 9]), "02:00:00:00:00:09");
    }
}
