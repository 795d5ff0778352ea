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

/// How long to wait before subscribing again after the kernel's notifications stopped.
const RESUBSCRIBE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// One subscription's notifications.
type Notifications = futures_util::stream::BoxStream<
    'static,
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
>;

/// A new subscription to link and address notifications, its connection running.
fn subscribe() -> std::io::Result<Notifications> {
    let (connection, _handle, messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    tokio::spawn(connection);
    Ok(messages.map(|(message, _)| message).boxed())
}

/// Subscribes to link and address notifications; events arrive on the returned channel until
/// the runtime stops.
pub fn watch() -> std::io::Result<mpsc::UnboundedReceiver<KernelEvent>> {
    let first = subscribe()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(follow(first, subscribe, tx));
    Ok(rx)
}

/// Forwards `messages` as events; when they stop (the connection failed: an error other than
/// an overrun ends netlink's stream), subscribes again and says `Overrun`, since anything may
/// have changed meanwhile, so the daemon reads links and addresses again. Ends when nobody
/// listens any more.
async fn follow(
    mut messages: Notifications,
    mut subscribe: impl FnMut() -> std::io::Result<Notifications>,
    tx: mpsc::UnboundedSender<KernelEvent>,
) {
    loop {
        while let Some(message) = messages.next().await {
            let event = match message.payload {
                NetlinkPayload::InnerMessage(inner) => translate(inner),
                NetlinkPayload::Overrun(_) => Some(KernelEvent::Overrun),
                _ => None,
            };
            if let Some(event) = event {
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tracing::warn!(
            "the kernel's link and address notifications stopped: subscribing again, then reading every link and address again"
        );
        messages = loop {
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            match subscribe() {
                Ok(fresh) => break fresh,
                Err(e) => tracing::warn!("cannot subscribe to the kernel's notifications: {e}"),
            }
            if tx.is_closed() {
                return;
            }
        };
        if tx.send(KernelEvent::Overrun).is_err() {
            return;
        }
    }
}

/// The event a notification means, if any.
fn translate(message: RouteNetlinkMessage) -> Option<KernelEvent> {
    match message {
        RouteNetlinkMessage::NewLink(link) => name(&link).map(|name| KernelEvent::Link {
            usable: usable(&link),
            name,
        }),
        RouteNetlinkMessage::DelLink(link) => {
            name(&link).map(|name| KernelEvent::LinkRemoved { name })
        }
        RouteNetlinkMessage::DelAddress(address) => address
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
            .map(|address| KernelEvent::AddressRemoved { address }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::NetlinkMessage;

    use super::*;

    fn link(name: &str) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(link))
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_notifications_stop_it_subscribes_again_and_asks_for_a_resync() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let first = futures_util::stream::iter(vec![link("eth0")]).boxed();
        let mut attempts = 0;
        // The first attempt to subscribe again fails; the second gives notifications that
        // never end.
        let subscribe = move || {
            attempts += 1;
            if attempts == 1 {
                Err(std::io::Error::other("no netlink for now"))
            } else {
                Ok(futures_util::stream::iter(vec![link("eth1")])
                    .chain(futures_util::stream::pending())
                    .boxed())
            }
        };
        let task = tokio::spawn(follow(first, subscribe, tx));
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(rx.recv().await.expect("events"));
        }
        let down = |name: &str| KernelEvent::Link {
            name: name.to_owned(),
            usable: false,
        };
        assert_eq!(got, [down("eth0"), KernelEvent::Overrun, down("eth1")]);
        drop(rx);
        task.abort();
    }
}
