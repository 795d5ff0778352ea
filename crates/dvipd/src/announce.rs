//! Announcing: telling the link an address now lives here, with gratuitous ARP (IPv4) or an
//! unsolicited neighbour advertisement (IPv6).
//!
//! Owns the frames and the raw sockets that send them. It must not decide when to announce
//! (the core says so after every plumb) and sends nothing but ARP announcements for
//! addresses this node holds.
//!
//! An announcement is an ARP request from the address to itself, broadcast: every host on the
//! link that has the address in its ARP cache updates it to this node's MAC, so traffic moves
//! at once instead of after the cache expires. It is sent several times, since one frame can
//! be lost. With `arp_all_hosts = false` the same frame goes to each neighbour the kernel
//! knows on the link, addressed to its MAC, instead of to everyone.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_datalink::{Channel, DataLinkSender, MacAddr};

use crate::plumb::Neighbour;

/// Why an announcement was not sent. Nothing else changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// No such interface, or it has no MAC address.
    #[error("interface `{0}` does not exist or has no MAC address")]
    NoInterface(String),
    /// The raw socket could not be opened or written (needs CAP_NET_RAW).
    #[error("cannot send on `{interface}`: {source}")]
    Send {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AnnounceError {
    /// The kernel refused the frame for the moment (`ENOBUFS`, `EAGAIN`): a full queue, or a
    /// netfilter rule that dropped it (the lease table's, while the node answers for nothing).
    /// The interface is there, and a later frame may go.
    pub fn queue_full(&self) -> bool {
        match self {
            Self::Send { source, .. } => is_queue_full(source),
            Self::NoInterface(_) => false,
        }
    }
}

/// `ENOBUFS`: the frame was dropped on its way out (a full queue, a netfilter drop).
fn is_queue_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32)
}

/// Who hears an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'n> {
    /// Every host on the link (broadcast, or all-nodes multicast for IPv6).
    Everyone,
    /// Only these neighbours, each in a frame addressed to its MAC.
    Neighbours(&'n [Neighbour]),
}

/// The 42-byte frame announcing `address` at `mac`: Ethernet header to `to` (broadcast when
/// `None`), then an ARP request whose sender and target are both the address.
pub fn gratuitous_arp(mac: [u8; 6], address: Ipv4Addr, to: Option<[u8; 6]>) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&to.unwrap_or([0xff; 6]));
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
    frame[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&address.octets());
    // Target hardware address stays zero: nobody in particular is asked.
    frame[38..42].copy_from_slice(&address.octets());
    frame
}

/// The 86-byte frame announcing `address` at `mac`: an unsolicited neighbour advertisement
/// (override set, not solicited) carrying the target link-layer address, from the address
/// itself to ff02::1 (all nodes), hop limit 255 as neighbour discovery requires. With `to`,
/// the frame is addressed to that one MAC (the IPv6 destination stays all-nodes, which every
/// host accepts).
pub fn unsolicited_na(mac: [u8; 6], address: Ipv6Addr, to: Option<[u8; 6]>) -> [u8; 86] {
    const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut frame = [0u8; 86];
    frame[0..6].copy_from_slice(&to.unwrap_or([0x33, 0x33, 0, 0, 0, 1]));
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut frame[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&32u16.to_be_bytes()); // payload: the 32-byte advertisement
    ip[6] = 58; // ICMPv6
    ip[7] = 255;
    ip[8..24].copy_from_slice(&address.octets());
    ip[24..40].copy_from_slice(&ALL_NODES);
    let icmp = &mut frame[54..86];
    icmp[0] = 136; // neighbour advertisement
    icmp[4] = 0x20; // override
    icmp[8..24].copy_from_slice(&address.octets());
    icmp[24] = 2; // target link-layer address option
    icmp[25] = 1; // in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac);
    let checksum = icmpv6_checksum(&address.octets(), &ALL_NODES, &frame[54..86]);
    frame[56..58].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The ICMPv6 checksum: the one's complement sum over the IPv6 pseudo-header and the message.
fn icmpv6_checksum(source: &[u8; 16], destination: &[u8; 16], message: &[u8]) -> u16 {
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(source);
    pseudo.extend_from_slice(destination);
    pseudo.extend_from_slice(&length.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(message);
    let mut sum: u32 = pseudo
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A raw sender with its interface's MAC.
pub(crate) type RawSender = ([u8; 6], Box<dyn DataLinkSender>);

/// Raw senders per interface, opened on first use.
#[derive(Default)]
pub(crate) struct RawSenders {
    senders: BTreeMap<String, RawSender>,
}

impl RawSenders {
    /// The sender on `interface`, opened if needed. `Err(None)`: no such interface, or it
    /// has no MAC; `Err(Some(_))`: the socket could not be opened (needs CAP_NET_RAW).
    pub(crate) fn on(&mut self, interface: &str) -> Result<&mut RawSender, Option<std::io::Error>> {
        if !self.senders.contains_key(interface) {
            let link = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == interface)
                .ok_or(None)?;
            let MacAddr(a, b, c, d, e, f) = link.mac.ok_or(None)?;
            let sender = match pnet_datalink::channel(&link, pnet_datalink::Config::default()) {
                Ok(Channel::Ethernet(tx, _)) => tx,
                Ok(_) => return Err(None),
                Err(source) => return Err(Some(source)),
            };
            self.senders
                .insert(interface.to_owned(), ([a, b, c, d, e, f], sender));
        }
        Ok(self.senders.get_mut(interface).expect("inserted above"))
    }

    /// Forgets `interface`'s sender (it may have gone away): reopened next time.
    pub(crate) fn forget(&mut self, interface: &str) {
        self.senders.remove(interface);
    }
}

/// Announces on raw senders per interface, opened on first use.
#[derive(Default)]
pub struct Announcer {
    senders: RawSenders,
}

impl Announcer {
    /// Sends one gratuitous ARP (IPv4) or unsolicited neighbour advertisement (IPv6) for
    /// `address` on `interface` to `audience` (neighbours of the other family are skipped).
    /// Returns how many frames went out.
    pub fn announce(
        &mut self,
        interface: &str,
        address: IpAddr,
        audience: Audience<'_>,
    ) -> Result<usize, AnnounceError> {
        let (mac, sender) = self.senders.on(interface).map_err(|e| match e {
            None => AnnounceError::NoInterface(interface.to_owned()),
            Some(source) => AnnounceError::Send {
                interface: interface.to_owned(),
                source,
            },
        })?;
        let targets: Vec<Option<[u8; 6]>> = match audience {
            Audience::Everyone => vec![None],
            Audience::Neighbours(neighbours) => neighbours
                .iter()
                .filter(|n| n.address.is_ipv4() == address.is_ipv4())
                .map(|n| Some(n.mac))
                .collect(),
        };
        let mut sent = Some(Ok(()));
        for to in &targets {
            sent = match address {
                IpAddr::V4(v4) => sender.send_to(&gratuitous_arp(*mac, v4, *to), None),
                IpAddr::V6(v6) => sender.send_to(&unsolicited_na(*mac, v6, *to), None),
            };
            if !matches!(sent, Some(Ok(()))) {
                break;
            }
        }
        match sent {
            Some(Ok(())) => Ok(targets.len()),
            Some(Err(source)) => {
                // The interface may have gone away: reopen next time. Not for a frame refused
                // for the moment: reopening reads every interface and address (20 ms at 10,240
                // addresses), and a burst of refused frames paid it on every one, stalling
                // dvipd's loop for seconds.
                if !is_queue_full(&source) {
                    self.senders.forget(interface);
                }
                Err(AnnounceError::Send {
                    interface: interface.to_owned(),
                    source,
                })
            }
            None => Err(AnnounceError::Send {
                interface: interface.to_owned(),
                source: std::io::Error::other("the raw socket refused the frame"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender whose first `full` frames the kernel refuses (`ENOBUFS`).
    struct Full {
        full: usize,
        sent: usize,
    }

    impl DataLinkSender for Full {
        fn build_and_send(
            &mut self,
            _: usize,
            _: usize,
            _: &mut dyn FnMut(&mut [u8]),
        ) -> Option<std::io::Result<()>> {
            None
        }

        fn send_to(
            &mut self,
            _: &[u8],
            _: Option<pnet_datalink::NetworkInterface>,
        ) -> Option<std::io::Result<()>> {
            self.sent += 1;
            Some(if self.sent <= self.full {
                Err(std::io::Error::from_raw_os_error(
                    nix::errno::Errno::ENOBUFS as i32,
                ))
            } else {
                Ok(())
            })
        }
    }

    #[test]
    fn a_frame_refused_for_the_moment_keeps_the_sender_and_says_so() {
        let mut announcer = Announcer::default();
        announcer.senders.senders.insert(
            "dvtest0".to_owned(),
            ([2, 0, 0, 0, 0, 7], Box::new(Full { full: 2, sent: 0 })),
        );
        let address: IpAddr = [198, 51, 100, 7].into();
        for _ in 0..2 {
            let e = announcer
                .announce("dvtest0", address, Audience::Everyone)
                .expect_err("refused");
            assert!(e.queue_full(), "{e}");
        }
        // Still the same sender: an interface that does not exist could not be reopened.
        assert_eq!(
            announcer
                .announce("dvtest0", address, Audience::Everyone)
                .expect("let through"),
            1
        );
        let gone = std::io::Error::from_raw_os_error(nix::errno::Errno::ENODEV as i32);
        assert!(!is_queue_full(&gone));
    }

    #[test]
    fn a_unicast_announcement_differs_from_the_broadcast_only_in_its_destination() {
        let neighbour = [2, 0, 0, 0, 0, 9];
        let v4 = Ipv4Addr::new(198, 51, 100, 7);
        let (all, one) = (
            gratuitous_arp([2, 0, 0, 0, 0, 7], v4, None),
            gratuitous_arp([2, 0, 0, 0, 0, 7], v4, Some(neighbour)),
        );
        assert_eq!(&one[0..6], &neighbour);
        assert_eq!(&all[6..], &one[6..]);
        let v6: Ipv6Addr = "2001:db8::7".parse().expect("an address");
        let (all, one) = (
            unsolicited_na([2, 0, 0, 0, 0, 7], v6, None),
            unsolicited_na([2, 0, 0, 0, 0, 7], v6, Some(neighbour)),
        );
        assert_eq!(&one[0..6], &neighbour);
        assert_eq!(&all[6..], &one[6..], "same packet, checksum included");
    }

    #[test]
    fn an_unsolicited_advertisement_checksums_to_zero_with_its_pseudo_header() {
        let address: Ipv6Addr = "2001:db8::7".parse().expect("an address");
        let frame = unsolicited_na([2, 0, 0, 0, 0, 7], address, None);
        assert_eq!(&frame[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all nodes");
        assert_eq!(frame[14 + 7], 255, "hop limit 255, or receivers drop it");
        assert_eq!(frame[54], 136);
        assert_eq!(
            frame[58] & 0xe0,
            0x20,
            "override, not solicited, not a router"
        );
        let all_nodes: [u8; 16] = "ff02::1".parse::<Ipv6Addr>().expect("an address").octets();
        // Summing a message with its checksum in place gives zero (all ones, complemented).
        assert_eq!(
            icmpv6_checksum(&address.octets(), &all_nodes, &frame[54..86]),
            0
        );
    }

    #[test]
    fn a_gratuitous_arp_is_a_broadcast_request_from_the_address_to_itself() {
        let frame = gratuitous_arp([2, 0, 0, 0, 0, 7], Ipv4Addr::new(198, 51, 100, 7), None);
        assert_eq!(&frame[0..6], &[0xff; 6]);
        assert_eq!(&frame[6..12], &[2, 0, 0, 0, 0, 7]);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[20..22], &[0, 1], "an ARP request");
        assert_eq!(&frame[28..32], &[198, 51, 100, 7], "sender: the address");
        assert_eq!(&frame[32..38], &[0; 6]);
        assert_eq!(
            &frame[38..42],
            &[198, 51, 100, 7],
            "target: the same address"
        );
    }
}
