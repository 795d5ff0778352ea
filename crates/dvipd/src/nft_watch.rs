//! Watching nftables for the loss of dvipd's own tables: a firewall that flushes the whole
//! ruleset (`nft flush ruleset`, the first line of Debian's stock `/etc/nftables.conf`)
//! deletes `dvip_lease` and `dvip_silence` with everything else, and with them the kernel's
//! end of a lease and the silence of readied addresses.
//!
//! Owns a thread that reads nftables' change notifications and says when a table of the
//! namespace dvipd runs in was deleted, or when notifications were lost. It must not decide
//! what to do about it (the daemon loads the table again) nor change any table.

use std::thread;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What the thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableNews {
    /// A netdev table of this name was deleted (or replaced: a transaction that deletes and
    /// makes it again reports its deletion too).
    Deleted(String),
    /// The kernel dropped notifications (the socket overran): any table may be gone.
    Lost,
}

/// nftables' multicast group (`NFNLGRP_NFTABLES`).
const NFNLGRP_NFTABLES: u32 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_DELTABLE: u16 = 2;
const NFPROTO_NETDEV: u8 = 5;
const NFTA_TABLE_NAME: u16 = 1;

/// Starts the thread; its reports come on the receiver. `Err` if the socket cannot be opened.
pub fn start() -> std::io::Result<UnboundedReceiver<TableNews>> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)))?;
    let (tx, rx) = unbounded_channel();
    thread::Builder::new()
        .name("nft-watch".into())
        .spawn(move || watch(&socket, &tx))?;
    Ok(rx)
}

fn watch(socket: &Socket, tx: &UnboundedSender<TableNews>) {
    loop {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let news = match socket.recv(&mut buf, 0) {
            Ok(_) => deleted_tables(&buf)
                .into_iter()
                .map(TableNews::Deleted)
                .collect(),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => vec![TableNews::Lost],
            Err(_) => return,
        };
        for n in news {
            if tx.send(n).is_err() {
                return;
            }
        }
    }
}

/// The names of the netdev tables whose deletion `buf` reports.
fn deleted_tables(mut buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while buf.len() >= 20 {
        let length = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if length < 20 || length > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let family = buf[16];
        if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE && family == NFPROTO_NETDEV {
            if let Some(name) = attribute(&buf[20..length], NFTA_TABLE_NAME) {
                names.push(
                    String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or(name))
                        .into_owned(),
                );
            }
        }
        buf = &buf[length.next_multiple_of(4).min(buf.len())..];
    }
    names
}

/// The value of the first attribute of `kind` in `attributes`.
fn attribute(mut attributes: &[u8], kind: u16) -> Option<&[u8]> {
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let this = u16::from_ne_bytes([attributes[2], attributes[3]]) & 0x3fff;
        if length < 4 || length > attributes.len() {
            return None;
        }
        if this == kind {
            return Some(&attributes[4..length]);
        }
        attributes = &attributes[length.next_multiple_of(4).min(attributes.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_netdev_table_is_named_and_other_news_is_not() {
        let message = |kind: u16, family: u8, name: &str| {
            let mut m = Vec::new();
            let mut value = name.as_bytes().to_vec();
            value.push(0);
            let attr_len = 4 + value.len();
            let padded = attr_len.next_multiple_of(4);
            let length = 20 + padded;
            m.extend_from_slice(&(length as u32).to_ne_bytes());
            m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.push(family);
            m.extend_from_slice(&[0; 3]);
            m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
            m.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
            m.extend_from_slice(&value);
            m.resize(length, 0);
            m
        };
        let mut buf = message(NFT_MSG_DELTABLE, NFPROTO_NETDEV, "dvip_silence");
        buf.extend(message(0, NFPROTO_NETDEV, "dvip_lease")); // made, not deleted
        buf.extend(message(NFT_MSG_DELTABLE, 1, "filter")); // another family
        buf.extend(message(NFT_MSG_DELTABLE, NFPROTO_NETDEV, "dvip_lease"));
        assert_eq!(deleted_tables(&buf), ["dvip_silence", "dvip_lease"]);
        assert!(deleted_tables(&buf[..10]).is_empty());
    }
}
