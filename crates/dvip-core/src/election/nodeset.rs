//! A set of members of one election, by index, as a bitset.
//!
//! Owns nothing but bits: the election numbers its members in name order and asks set
//! questions (is this node a candidate, can this follower go wherever its binding can)
//! thousands of times per run, where a bitset is far cheaper than a sorted list of names.
//! Up to 128 members the bits live inline, so the election allocates nothing per address
//! for them.

const INLINE_WORDS: usize = 2;

/// Members of one election, by their index in name order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct NodeSet {
    inline: [u64; INLINE_WORDS],
    /// Used instead of `inline` when there are more than 128 members.
    spilled: Vec<u64>,
}

impl NodeSet {
    pub(crate) fn with_capacity(members: usize) -> Self {
        let words = members.div_ceil(64);
        if words <= INLINE_WORDS {
            Self::default()
        } else {
            Self {
                inline: [0; INLINE_WORDS],
                spilled: vec![0; words],
            }
        }
    }

    fn words(&self) -> &[u64] {
        if self.spilled.is_empty() {
            &self.inline
        } else {
            &self.spilled
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        if self.spilled.is_empty() {
            &mut self.inline
        } else {
            &mut self.spilled
        }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        self.words_mut()[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words()
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.words().iter().all(|&w| w == 0)
    }

    pub(crate) fn union_with(&mut self, other: &Self) {
        for (a, b) in self.words_mut().iter_mut().zip(other.words()) {
            *a |= b;
        }
    }

    pub(crate) fn is_subset(&self, other: &Self) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .all(|(a, b)| a & !b == 0)
    }

    /// Members in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_members_inline_and_spilled() {
        for members in [3, 130, 300] {
            let mut a = NodeSet::with_capacity(members);
            let picks: Vec<usize> = [0, 63, 64, members - 1]
                .into_iter()
                .filter(|&i| i < members)
                .collect();
            for &i in &picks {
                a.insert(i);
            }
            let mut sorted = picks.clone();
            sorted.dedup();
            assert_eq!(a.iter().collect::<Vec<_>>(), sorted, "{members} members");
            let mut b = NodeSet::with_capacity(members);
            b.insert(1);
            assert!(!a.contains(1) && b.contains(1));
            assert!(!b.is_subset(&a));
            b.union_with(&a);
            assert!(a.is_subset(&b) && !b.is_empty());
            assert!(NodeSet::with_capacity(members).is_empty());
        }
    }
}
