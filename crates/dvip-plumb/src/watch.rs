//! Kernel events: interfaces going down and up, addresses disappearing.
//!
//! Owns a netlink socket subscribed to link and address notifications, and the translation of
//! what arrives into [`KernelEvent`]s, so the daemon learns of a change when it happens instead
//! of re-reading the kernel's lists. It must not act on an event; the daemon decides what a
//! change means for the addresses it holds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

/// A change the daemon may have to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// An interface's state changed (or was reported again).
    Link {
        /// Its name.
        name: String,
        /// Up with a carrier: addresses on it can be reached.
        usable: bool,
    },
    /// An interface is gone.
    LinkRemoved {
        /// Its name.
        name: String,
    },
    /// An address left an interface.
    AddressRemoved {
        /// The address.
        address: IpAddr,
    },
    /// The kernel dropped notifications because the socket's buffer was full (ENOBUFS): any
    /// change may have been missed, so the daemon reads links and addresses again.
    Overrun,
}

/// Whether a link can carry traffic: administratively up, and a carrier (a cable, or a veth
/// whose peer is up).
fn usable(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up) && link.header.flags.contains(LinkFlags::LowerUp)
}

fn name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// Every interface and whether it is usable now.
pub async fn links() -> std::io::Result<BTreeMap<String, bool>> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    let mut dump = handle.link().get().execute();
    let mut out = BTreeMap::new();
    while let Some(link) = dump
        .try_next()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
    {
        if let Some(name) = name(&link) {
            out.insert(name, usable(&link));
        }
    }
    task.abort();
    Ok(out)
}

/// Subscribes to link and address notifications; events arrive on the returned channel until
/// the runtime stops.
pub fn watch() -> std::io::Result<mpsc::UnboundedReceiver<KernelEvent>> {
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    tokio::spawn(connection);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let inner = match message.payload {
                NetlinkPayload::InnerMessage(inner) => inner,
                NetlinkPayload::Overrun(_) => {
                    if tx.send(KernelEvent::Overrun).is_err() {
                        return;
                    }
                    continue;
                }
                _ => continue,
            };
            let event = match inner {
                RouteNetlinkMessage::NewLink(link) => name(&link).map(|name| KernelEvent::Link {
                    usable: usable(&link),
                    name,
                }),
                RouteNetlinkMessage::DelLink(link) => {
                    name(&link).map(|name| KernelEvent::LinkRemoved { name })
                }
                RouteNetlinkMessage::DelAddress(address) => {
                    address
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            // For IPv4, IFA_LOCAL is the address itself (IFA_ADDRESS may be a peer).
                            AddressAttribute::Local(ip) => Some(*ip),
                            _ => None,
                        })
                        .or_else(|| {
                            address.attributes.iter().find_map(|a| match a {
                                AddressAttribute::Address(ip) => Some(*ip),
                                _ => None,
                            })
                        })
                        .map(|address| KernelEvent::AddressRemoved { address })
                }
                _ => None,
            };
            if let Some(event) = event {
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}
