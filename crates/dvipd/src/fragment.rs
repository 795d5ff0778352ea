//! Fragments: messages larger than the group bus takes comfortably, split on the way out and
//! put back together on the way in.
//!
//! Owns the fragment format and reassembly. corosync delivers one sender's messages in the
//! order sent, so a sender's fragments arrive in order, possibly interleaved with other
//! senders' messages; a sender that leaves the group mid-message leaves an incomplete one that
//! is dropped. It must not look inside a message: the core's wire format starts with `DV`, a
//! fragment with `DF`, and anything else passes through untouched.

use std::collections::BTreeMap;

/// The largest piece sent in one multicast. corosync takes messages of about a megabyte
/// through its IPC; staying well below keeps every multicast cheap to retransmit.
pub const FRAGMENT_MAX: usize = 128 * 1024;

/// `DF`, message number (u32), index (u16), count (u16), all big-endian.
const MAGIC: &[u8; 2] = b"DF";
const HEADER: usize = 2 + 4 + 2 + 2;

/// Splits `bytes` into the pieces to multicast, numbered `id`: itself alone when small enough.
pub fn split(id: u32, bytes: &[u8], max: usize) -> Vec<Vec<u8>> {
    if bytes.len() <= max {
        return vec![bytes.to_vec()];
    }
    let chunk = max - HEADER;
    let count = bytes.len().div_ceil(chunk);
    let count16 = u16::try_from(count).unwrap_or(u16::MAX);
    bytes
        .chunks(chunk)
        .enumerate()
        .map(|(index, piece)| {
            let mut out = Vec::with_capacity(HEADER + piece.len());
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(&count16.to_be_bytes());
            out.extend_from_slice(piece);
            out
        })
        .collect()
}

struct Partial {
    id: u32,
    count: u16,
    next: u16,
    bytes: Vec<u8>,
}

/// Reassembles fragments per sender.
pub struct Reassembler<S: Ord> {
    partial: BTreeMap<S, Partial>,
}

impl<S: Ord> Default for Reassembler<S> {
    fn default() -> Self {
        Self {
            partial: BTreeMap::new(),
        }
    }
}

impl<S: Ord + Clone> Reassembler<S> {
    /// Takes one delivered message from `sender`; returns a whole message when one is complete
    /// (a message that was never split comes back at once). A fragment out of sequence drops
    /// the sender's message in progress: it cannot be completed.
    pub fn push(&mut self, sender: &S, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if bytes.len() < HEADER || &bytes[..2] != MAGIC {
            return Some(bytes);
        }
        let id = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let index = u16::from_be_bytes([bytes[6], bytes[7]]);
        let count = u16::from_be_bytes([bytes[8], bytes[9]]);
        let piece = &bytes[HEADER..];
        if index == 0 {
            self.partial.insert(
                sender.clone(),
                Partial {
                    id,
                    count,
                    next: 0,
                    bytes: Vec::with_capacity(piece.len() * usize::from(count)),
                },
            );
        }
        let partial = self.partial.get_mut(sender)?;
        if partial.id != id || partial.next != index || partial.count != count {
            self.partial.remove(sender);
            return None;
        }
        partial.bytes.extend_from_slice(piece);
        partial.next += 1;
        if partial.next < partial.count {
            return None;
        }
        self.partial.remove(sender).map(|p| p.bytes)
    }

    /// Forgets the messages in progress of senders no longer in the group.
    pub fn keep_only(&mut self, members: impl Fn(&S) -> bool) {
        self.partial.retain(|sender, _| members(sender));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_message_comes_back_whole_and_a_small_one_untouched() {
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let pieces = split(7, &big, 1_000);
        assert!(pieces.len() > 10 && pieces.iter().all(|p| p.len() <= 1_000));
        let mut r = Reassembler::default();
        let mut out = None;
        for (k, p) in pieces.into_iter().enumerate() {
            // Another sender's whole message in between changes nothing.
            assert_eq!(
                r.push(&2u32, b"DV\x00\x01x".to_vec()),
                Some(b"DV\x00\x01x".to_vec())
            );
            out = r.push(&1u32, p);
            assert_eq!(out.is_some(), k == 10_000usize.div_ceil(1_000 - HEADER) - 1);
        }
        assert_eq!(out, Some(big));
        assert_eq!(split(8, b"DV small", 1_000), vec![b"DV small".to_vec()]);
    }

    #[test]
    fn a_lost_fragment_or_a_departed_sender_drops_the_message_in_progress() {
        let big = vec![1u8; 5_000];
        let pieces = split(1, &big, 1_000);
        let mut r = Reassembler::default();
        assert_eq!(r.push(&1u32, pieces[0].clone()), None);
        assert_eq!(r.push(&1u32, pieces[2].clone()), None, "a gap");
        for p in &pieces[3..] {
            assert_eq!(
                r.push(&1u32, p.clone()),
                None,
                "nothing to complete any more"
            );
        }
        // A new message from the start completes.
        let mut out = None;
        for p in split(2, &big, 1_000) {
            out = r.push(&1u32, p);
        }
        assert_eq!(out, Some(big));
        assert_eq!(r.push(&3u32, pieces[0].clone()), None);
        r.keep_only(|s| *s != 3);
        for p in &pieces[1..] {
            assert_eq!(r.push(&3u32, p.clone()), None, "its sender left");
        }
    }
}
