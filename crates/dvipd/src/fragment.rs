//! Fragments: messages larger than the group bus takes comfortably, split on the way out and
//! put back together on the way in.
//!
//! Owns the fragment format and reassembly. corosync delivers one sender's messages in the
//! order sent, so a sender's fragments arrive in order, possibly interleaved with other
//! senders' messages; a sender that leaves the group mid-message leaves an incomplete one that
//! is dropped. It must not look inside a message: the core's wire format starts with `DV`, a
//! fragment with `DF`, and anything else passes through untouched.
//!
//! Every bus member is trusted only as far as corosync authenticates it, and a fragment's
//! header is the sender's word: nothing is reserved from it before it is checked against the
//! largest message a node accepts. A sender has at most one message in progress, so what
//! reassembly holds is bounded by the members times that size.

use std::collections::BTreeMap;

/// The largest piece sent in one multicast. corosync takes messages of about a megabyte
/// through its IPC; staying well below keeps every multicast cheap to retransmit.
pub const FRAGMENT_MAX: usize = 128 * 1024;

/// `DF`, message number (u32), index (u16), count (u16), all big-endian.
const MAGIC: &[u8; 2] = b"DF";
const HEADER: usize = 2 + 4 + 2 + 2;

/// Why a fragment was dropped. The sender's message in progress, if any, is dropped with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The header announces no pieces, or an index past the count.
    #[error("fragment {index} of {count} is not a valid piece")]
    BadHeader {
        /// The piece's index.
        index: u16,
        /// The count the header gives.
        count: u16,
    },
    /// The whole message would be larger than any a node accepts.
    #[error("a message of at least {at_least} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Its smallest possible size, from the pieces so far and the count.
        at_least: usize,
        /// The limit.
        limit: usize,
    },
    /// A piece that does not continue the sender's message in progress (a lost piece, or
    /// pieces of two messages mixed).
    #[error("fragment {index} of message {id} does not continue the message in progress")]
    OutOfSequence {
        /// The message number.
        id: u32,
        /// The piece's index.
        index: u16,
    },
}

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
    /// The largest whole message accepted.
    limit: usize,
}

impl<S: Ord + Clone> Reassembler<S> {
    /// A reassembler that refuses any message larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            partial: BTreeMap::new(),
            limit,
        }
    }

    /// Takes one delivered message from `sender`: `Ok(Some(whole))` when a message is
    /// complete (a message that was never split comes back at once), `Ok(None)` while one is
    /// in progress. A piece that cannot be part of a valid message is refused, and drops the
    /// sender's message in progress: it cannot be completed.
    pub fn push(&mut self, sender: &S, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, FragmentError> {
        if bytes.len() < HEADER || &bytes[..2] != MAGIC {
            return Ok(Some(bytes));
        }
        let id = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let index = u16::from_be_bytes([bytes[6], bytes[7]]);
        let count = u16::from_be_bytes([bytes[8], bytes[9]]);
        let piece = &bytes[HEADER..];
        let refused = self.check(sender, id, index, count, piece.len());
        if let Err(e) = refused {
            self.partial.remove(sender);
            return Err(e);
        }
        if index == 0 {
            // Every piece but the last is as long as the first: the whole is at most this.
            let whole = piece
                .len()
                .saturating_mul(usize::from(count))
                .min(self.limit);
            self.partial.insert(
                sender.clone(),
                Partial {
                    id,
                    count,
                    next: 0,
                    bytes: Vec::with_capacity(whole),
                },
            );
        }
        let Some(partial) = self.partial.get_mut(sender) else {
            return Err(FragmentError::OutOfSequence { id, index });
        };
        // Exactly what this piece needs: a piece longer than the first would otherwise let
        // the buffer's growth (doubling) hold up to twice the limit.
        partial.bytes.reserve_exact(piece.len());
        partial.bytes.extend_from_slice(piece);
        partial.next += 1;
        if partial.next < partial.count {
            return Ok(None);
        }
        Ok(self.partial.remove(sender).map(|p| p.bytes))
    }

    /// Whether a piece can continue (or start) `sender`'s message within the limit.
    fn check(
        &self,
        sender: &S,
        id: u32,
        index: u16,
        count: u16,
        piece: usize,
    ) -> Result<(), FragmentError> {
        if count == 0 || index >= count {
            return Err(FragmentError::BadHeader { index, count });
        }
        let so_far = if index == 0 {
            0
        } else {
            match self.partial.get(sender) {
                Some(p) if p.id == id && p.next == index && p.count == count => p.bytes.len(),
                _ => return Err(FragmentError::OutOfSequence { id, index }),
            }
        };
        // The pieces still to come after this one carry at least a byte each.
        let at_least = so_far
            .saturating_add(piece)
            .saturating_add(usize::from(count - index - 1));
        if at_least > self.limit {
            return Err(FragmentError::TooLarge {
                at_least,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Forgets the messages in progress of senders no longer in the group.
    pub fn keep_only(&mut self, members: impl Fn(&S) -> bool) {
        self.partial.retain(|sender, _| members(sender));
    }

    /// How many bytes the messages in progress hold.
    pub fn held_bytes(&self) -> usize {
        self.partial.values().map(|p| p.bytes.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMIT: usize = 1 << 20;

    fn fragment(id: u32, index: u16, count: u16, piece: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(piece);
        out
    }

    #[test]
    fn a_large_message_comes_back_whole_and_a_small_one_untouched() {
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let pieces = split(7, &big, 1_000);
        assert!(pieces.len() > 10 && pieces.iter().all(|p| p.len() <= 1_000));
        let mut r = Reassembler::new(LIMIT);
        let mut out = None;
        for (k, p) in pieces.into_iter().enumerate() {
            // Another sender's whole message in between changes nothing.
            assert_eq!(
                r.push(&2u32, b"DV\x00\x01x".to_vec()),
                Ok(Some(b"DV\x00\x01x".to_vec()))
            );
            out = r.push(&1u32, p).expect("a valid piece");
            assert_eq!(out.is_some(), k == 10_000usize.div_ceil(1_000 - HEADER) - 1);
        }
        assert_eq!(out, Some(big));
        assert_eq!(r.held_bytes(), 0, "nothing kept after the whole came back");
        assert_eq!(split(8, b"DV small", 1_000), vec![b"DV small".to_vec()]);
    }

    #[test]
    fn a_lost_fragment_or_a_departed_sender_drops_the_message_in_progress() {
        let big = vec![1u8; 5_000];
        let pieces = split(1, &big, 1_000);
        let mut r = Reassembler::new(LIMIT);
        assert_eq!(r.push(&1u32, pieces[0].clone()), Ok(None));
        assert_eq!(
            r.push(&1u32, pieces[2].clone()),
            Err(FragmentError::OutOfSequence { id: 1, index: 2 }),
            "a gap"
        );
        for p in &pieces[3..] {
            assert!(
                r.push(&1u32, p.clone()).is_err(),
                "nothing to complete any more"
            );
        }
        // A new message from the start completes.
        let mut out = None;
        for p in split(2, &big, 1_000) {
            out = r.push(&1u32, p).expect("a valid piece");
        }
        assert_eq!(out, Some(big));
        assert_eq!(r.push(&3u32, pieces[0].clone()), Ok(None));
        r.keep_only(|s| *s != 3);
        for p in &pieces[1..] {
            assert!(r.push(&3u32, p.clone()).is_err(), "its sender left");
        }
    }

    #[test]
    fn a_header_announcing_more_than_the_limit_reserves_nothing() {
        // 65,535 pieces of 1 MB each: 64 GB if the header were believed.
        let mut r = Reassembler::new(LIMIT);
        let crafted = fragment(9, 0, u16::MAX, &vec![0u8; LIMIT]);
        assert!(matches!(
            r.push(&1u32, crafted),
            Err(FragmentError::TooLarge { .. })
        ));
        assert_eq!(r.held_bytes(), 0);
        // Small pieces that add up past the limit are refused at the piece that crosses it.
        let mut r = Reassembler::new(1_000);
        assert_eq!(r.push(&1u32, fragment(4, 0, 3, &[0; 400])), Ok(None));
        assert_eq!(r.push(&1u32, fragment(4, 1, 3, &[0; 400])), Ok(None));
        assert!(matches!(
            r.push(&1u32, fragment(4, 2, 3, &[0; 400])),
            Err(FragmentError::TooLarge { .. })
        ));
        assert_eq!(r.held_bytes(), 0, "the message in progress went with it");
    }

    #[test]
    fn pieces_longer_than_the_first_never_make_the_buffer_outgrow_the_limit() {
        // Found by the property below: a short first piece reserves little, and growing by
        // doubling for the longer ones after it held up to twice the limit.
        let mut r = Reassembler::new(1_000);
        for (index, len) in [10, 400, 400, 180].into_iter().enumerate() {
            let index = u16::try_from(index).expect("small");
            assert_eq!(
                r.push(&1u32, fragment(0, index, 5, &vec![7; len])),
                Ok(None)
            );
            assert!(r.held_bytes() <= 1_000, "piece {index}: {}", r.held_bytes());
        }
        let whole = r
            .push(&1u32, fragment(0, 4, 5, &[7; 9]))
            .expect("within the limit");
        assert_eq!(whole.map(|w| w.len()), Some(999));
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn headers_that_name_no_valid_piece_are_refused() {
        let mut r = Reassembler::new(LIMIT);
        assert_eq!(
            r.push(&1u32, fragment(1, 0, 0, b"x")),
            Err(FragmentError::BadHeader { index: 0, count: 0 })
        );
        assert_eq!(
            r.push(&1u32, fragment(1, 5, 3, b"x")),
            Err(FragmentError::BadHeader { index: 5, count: 3 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever a sender multicasts, reassembly never panics, never holds more than the
        /// limit per sender, and never returns a message over the limit.
        #[test]
        fn arbitrary_deliveries_stay_within_the_limit(
            deliveries in proptest::collection::vec(
                (0u8..3, prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    (any::<u32>(), any::<u16>(), any::<u16>(), 0usize..600)
                        .prop_map(|(id, index, count, len)| fragment(id % 2, index % 4, count % 5, &vec![7; len])),
                ]),
                0..64,
            )
        ) {
            let mut r = Reassembler::new(1_000);
            for (sender, bytes) in deliveries {
                let piece = bytes.len() >= HEADER && &bytes[..2] == MAGIC;
                if let (Ok(Some(whole)), true) = (r.push(&sender, bytes), piece) {
                    prop_assert!(whole.len() <= 1_000);
                }
                prop_assert!(r.held_bytes() <= 3 * 1_000);
            }
        }
    }
}
