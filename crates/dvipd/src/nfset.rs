//! Adding and deleting the elements of an nftables set of IPv4 addresses over netlink, in one
//! transaction, without running `nft`: a takeover lets its readied addresses answer with one
//! such change, and starting a process for it cost 20-40 ms on a loaded lab.
//!
//! Owns the nfnetlink batch's bytes and reading the kernel's acknowledgements. It must not
//! decide what goes in which set, nor make tables, chains or sets (`nft` loads those).

use std::net::Ipv4Addr;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// A change the kernel refused or that could not be sent; the set is as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NfSetError {
    #[error("cannot talk to nftables over netlink: {0}")]
    Socket(#[source] std::io::Error),
    #[error("nftables refused the change of set {set}: {source}")]
    Refused {
        set: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables answered the change of set {set} with a message dvipd cannot read")]
    Garbled { set: String },
}

// From linux/netlink.h, linux/netfilter/nfnetlink.h and nf_tables.h.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_NETDEV: u8 = 5;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;

/// Elements per message: a message's length is 32 bits, but the kernel's socket buffer bounds
/// a batch, so thousands go in several messages of one batch.
const PER_MESSAGE: usize = 1024;

/// One step of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Add,
    Delete,
}

/// Applies `steps` in order to set `set` of netdev table `table`, in one transaction: all of
/// them or none.
pub fn change(table: &str, set: &str, steps: &[(Step, &[Ipv4Addr])]) -> Result<(), NfSetError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(NfSetError::Socket)?;
    socket.bind_auto().map_err(NfSetError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(NfSetError::Socket)?;
    // The kernel answers at once; a silence means something is wrong, not slow.
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(1, 0),
    )
    .map_err(|e| NfSetError::Socket(e.into()))?;
    let (batch, acked) = batch(table, set, steps, 1);
    socket.send(&batch, 0).map_err(NfSetError::Socket)?;
    let mut waiting: std::collections::BTreeSet<u32> = acked.into_iter().collect();
    let garbled = || NfSetError::Garbled {
        set: set.to_owned(),
    };
    while !waiting.is_empty() {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        socket.recv(&mut buf, 0).map_err(NfSetError::Socket)?;
        for (seq, error) in acknowledgements(&buf).ok_or_else(garbled)? {
            if error != 0 {
                return Err(NfSetError::Refused {
                    set: set.to_owned(),
                    source: std::io::Error::from_raw_os_error(-error),
                });
            }
            waiting.remove(&seq);
        }
    }
    Ok(())
}

/// The batch's bytes, and the sequence numbers the kernel acknowledges (one per change
/// message; a refused batch answers its first failing message and ends).
fn batch(
    table: &str,
    set: &str,
    steps: &[(Step, &[Ipv4Addr])],
    first_seq: u32,
) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut acked = Vec::new();
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    for (step, addresses) in steps {
        for chunk in addresses.chunks(PER_MESSAGE) {
            seq += 1;
            acked.push(seq);
            let (kind, flags) = match step {
                Step::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
                Step::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
            };
            let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
            message(&mut out, kind, flags, seq, NFPROTO_NETDEV, 0, |body| {
                attribute(body, NFTA_SET_ELEM_LIST_TABLE, &c_string(table));
                attribute(body, NFTA_SET_ELEM_LIST_SET, &c_string(set));
                nested(body, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
                    for address in chunk {
                        nested(list, NFTA_LIST_ELEM, |element| {
                            nested(element, NFTA_SET_ELEM_KEY, |key| {
                                attribute(key, NFTA_DATA_VALUE, &address.octets());
                            });
                        });
                    }
                });
            });
        }
    }
    seq += 1;
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    (out, acked)
}

/// A netlink message with nfnetlink's header (`family`, version 0, `res_id`), its body written
/// by `body`.
fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // length, below
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // the kernel fills in the port
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    body(out);
    let length = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&length.to_ne_bytes());
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    pad(out);
}

fn nested(out: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    inner(out);
    let length = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[start..start + 2].copy_from_slice(&length.to_ne_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn c_string(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// The (sequence, error) of every acknowledgement in `buf` (error 0: done, else a negative
/// errno); `None` if `buf` is not a run of whole netlink messages.
fn acknowledgements(mut buf: &[u8]) -> Option<Vec<(u32, i32)>> {
    let mut acks = Vec::new();
    while !buf.is_empty() {
        let length = usize::try_from(u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?)).ok()?;
        if length < 16 || length > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
        if kind == NLMSG_ERROR {
            let error = i32::from_ne_bytes(buf.get(16..20)?.try_into().ok()?);
            // The header of the message answered follows: its sequence number.
            let seq = u32::from_ne_bytes(buf.get(28..32)?.try_into().ok()?);
            acks.push((seq, error));
        }
        buf = &buf[length.next_multiple_of(4).min(buf.len())..];
    }
    Some(acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_wraps_each_step_and_asks_an_acknowledgement_of_each() {
        let addresses = [Ipv4Addr::new(198, 51, 100, 10)];
        let (bytes, acked) = batch(
            "t",
            "s",
            &[(Step::Add, &addresses), (Step::Delete, &addresses)],
            7,
        );
        assert_eq!(acked, [8, 9]);
        // Begin (20 bytes), two changes, end (20 bytes).
        assert_eq!(
            u16::from_ne_bytes([bytes[4], bytes[5]]),
            NFNL_MSG_BATCH_BEGIN
        );
        let first = u32::from_ne_bytes(bytes[20..24].try_into().expect("4 bytes")) as usize;
        assert_eq!(
            u16::from_ne_bytes([bytes[24], bytes[25]]),
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM
        );
        // The address, in network order, closes the first change.
        assert_eq!(&bytes[20 + first - 4..20 + first], &[198, 51, 100, 10]);
        let end = &bytes[bytes.len() - 20..];
        assert_eq!(u16::from_ne_bytes([end[4], end[5]]), NFNL_MSG_BATCH_END);
    }

    #[test]
    fn acknowledgements_are_read_with_the_sequence_they_answer() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&(-2i32).to_ne_bytes());
        ack.extend_from_slice(&[0; 8]);
        ack.extend_from_slice(&9u32.to_ne_bytes());
        ack.extend_from_slice(&[0; 4]);
        assert_eq!(acknowledgements(&ack), Some(vec![(9, -2)]));
        assert_eq!(acknowledgements(&ack[..20]), None);
    }
}
