//! Announcing held addresses: when, to whom, and what was sent.
//!
//! Owns the repeats after a plumb, the choice between the whole link and the known neighbours
//! (`arp_all_hosts`), and the record `dvip arp show` reports. It must not build frames (that
//! is [`crate::announce`]) nor decide which addresses are held.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Daemon;
use crate::announce::Audience;
use crate::console;
use crate::plumb::Neighbour;

/// How old a neighbour list may be before a unicast announcement reads it again: short, so a
/// neighbour the node just learned is told, long enough that thousands of acquisitions in one
/// takeover share one read of the table.
const NEIGHBOURS_MAX_AGE: Duration = Duration::from_millis(100);

/// The announcements made for one held address.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Announced {
    /// Announcements sent (each to the whole link or to every known neighbour).
    pub(super) rounds: u32,
    /// Frames sent in the last one.
    pub(super) frames: usize,
    /// When the last one went out (wall clock, ms since the epoch).
    pub(super) last_ms: u64,
}

impl Daemon {
    /// One announcement (gratuitous ARP or unsolicited neighbour advertisement) for a held
    /// address, to the whole link or, with `arp_all_hosts = false`, to the known neighbours.
    pub(super) async fn announce(&mut self, address: IpAddr) {
        let Some(interface) = self.plumbed.get(&address).map(|h| h.interface.clone()) else {
            return;
        };
        let neighbours = if self.config.arp_all_hosts {
            None
        } else {
            Some(self.neighbours_of(&interface).await)
        };
        let audience = neighbours
            .as_deref()
            .map_or(Audience::Everyone, Audience::Neighbours);
        match self.announcer.announce(&interface, address, audience) {
            Ok(frames) => {
                let record = self.announced.entry(address).or_default();
                record.rounds += 1;
                record.frames = frames;
                record.last_ms = console::now_ms();
                self.announcements_refused = false;
                self.refused.remove(&address);
            }
            // Refused for the moment: the kernel's lease table drops what a node answering
            // for nothing sends, and a full queue drops a burst's tail. Thousands of addresses
            // are refused alike: said once, and the repeats try again.
            Err(e) if e.queue_full() => {
                self.metrics.error("announce");
                self.refused.insert(address);
                if !std::mem::replace(&mut self.announcements_refused, true) {
                    warn!(%address, "announcements refused by the kernel (the lease table or a full queue): the repeats try again: {e}");
                } else {
                    debug!(%address, "announcement refused: {e}");
                }
            }
            Err(e) => {
                self.metrics.error("announce");
                warn!(%address, "cannot announce: {e}");
            }
        }
    }

    /// The kernel's neighbours on `interface`, from a list at most [`NEIGHBOURS_MAX_AGE`] old.
    pub(super) async fn neighbours_of(&mut self, interface: &str) -> Vec<Neighbour> {
        if let Some((read, list)) = self.neighbours.get(interface) {
            if read.elapsed() < NEIGHBOURS_MAX_AGE {
                return list.clone();
            }
        }
        match self.plumber.neighbours(interface).await {
            Ok(list) => {
                self.neighbours
                    .insert(interface.to_owned(), (Instant::now(), list.clone()));
                list
            }
            Err(e) => {
                warn!(interface, "cannot read the neighbour table: {e}");
                Vec::new()
            }
        }
    }

    /// The kernel answers again: every held address whose last announcement it refused is
    /// announced now, with its repeats, as after a plumb. Without this, a refusal that
    /// outlasted the repeats (a hold-back of more than a second) would leave the LAN's
    /// caches pointing at the address's previous owner.
    pub(super) async fn announce_refused(&mut self) {
        let due: Vec<IpAddr> = std::mem::take(&mut self.refused)
            .into_iter()
            .filter(|a| self.plumbed.contains_key(a))
            .collect();
        if due.is_empty() {
            return;
        }
        info!(
            addresses = due.len(),
            "the kernel answers again: announcing what it refused meanwhile"
        );
        for address in due {
            self.announce_with_repeats(address).await;
        }
    }

    /// A fresh announcement of `address`, and its repeats (`announce_count` in all).
    pub(super) async fn announce_with_repeats(&mut self, address: IpAddr) {
        self.announced.remove(&address);
        self.announce(address).await;
        if self.config.announce_count > 1 {
            self.repeats.push_back((
                Instant::now() + self.config.announce_interval,
                address,
                self.config.announce_count - 1,
            ));
        }
    }

    /// Sends the repeats that are due.
    pub(super) async fn announce_due(&mut self) {
        let now = Instant::now();
        while self.repeats.front().is_some_and(|(due, ..)| *due <= now) {
            let Some((_, address, left)) = self.repeats.pop_front() else {
                break;
            };
            self.announce(address).await;
            if left > 1 {
                self.repeats
                    .push_back((now + self.config.announce_interval, address, left - 1));
            }
        }
    }

    /// The reply to `arp show`: every held address with where and how it was announced.
    pub(super) fn arp_report(&self) -> dvip_console::Arp {
        let addresses = self
            .plumbed
            .iter()
            .map(|(address, hint)| {
                let a = self.announced.get(address).copied().unwrap_or_default();
                dvip_console::Announced {
                    address: *address,
                    interface: hint.interface.clone(),
                    announcements: a.rounds,
                    frames_last: a.frames,
                    last_at_ms: (a.rounds > 0).then_some(a.last_ms),
                }
            })
            .collect();
        dvip_console::Arp {
            node: self.name.clone(),
            mode: if self.config.arp_all_hosts {
                dvip_console::ArpMode::AllHosts
            } else {
                dvip_console::ArpMode::Neighbours
            },
            addresses,
        }
    }
}
