//! Announcing: telling the link an address now lives here, with gratuitous ARP.
//!
//! Owns the frames and the raw sockets that send them. It must not decide when to announce
//! (the core says so after every plumb) and sends nothing but ARP announcements for
//! addresses this node holds.
//!
//! An announcement is an ARP request from the address to itself, broadcast: every host on the
//! link that has the address in its ARP cache updates it to this node's MAC, so traffic moves
//! at once instead of after the cache expires. It is sent several times, since one frame can
//! be lost.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use pnet_datalink::{Channel, DataLinkSender, MacAddr};

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

/// The 42-byte broadcast frame announcing `address` at `mac`: Ethernet header, then an ARP
/// request whose sender and target are both the address.
pub fn gratuitous_arp(mac: [u8; 6], address: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]); // to everyone
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

/// Raw senders per interface, opened on first use.
#[derive(Default)]
pub struct Announcer {
    senders: BTreeMap<String, ([u8; 6], Box<dyn DataLinkSender>)>,
}

impl Announcer {
    /// Broadcasts one gratuitous ARP for `address` on `interface`.
    pub fn announce(&mut self, interface: &str, address: Ipv4Addr) -> Result<(), AnnounceError> {
        if !self.senders.contains_key(interface) {
            let link = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == interface)
                .ok_or_else(|| AnnounceError::NoInterface(interface.to_owned()))?;
            let MacAddr(a, b, c, d, e, f) = link
                .mac
                .ok_or_else(|| AnnounceError::NoInterface(interface.to_owned()))?;
            let sender = match pnet_datalink::channel(&link, pnet_datalink::Config::default()) {
                Ok(Channel::Ethernet(tx, _)) => tx,
                Ok(_) => return Err(AnnounceError::NoInterface(interface.to_owned())),
                Err(source) => {
                    return Err(AnnounceError::Send {
                        interface: interface.to_owned(),
                        source,
                    })
                }
            };
            self.senders
                .insert(interface.to_owned(), ([a, b, c, d, e, f], sender));
        }
        let (mac, sender) = self.senders.get_mut(interface).expect("inserted above");
        let frame = gratuitous_arp(*mac, address);
        match sender.send_to(&frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => {
                // The interface may have gone away: reopen next time.
                self.senders.remove(interface);
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

    #[test]
    fn a_gratuitous_arp_is_a_broadcast_request_from_the_address_to_itself() {
        let frame = gratuitous_arp([2, 0, 0, 0, 0, 7], Ipv4Addr::new(198, 51, 100, 7));
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
