//! A set of members of one election, by index, as a bitset.
//!
//! Owns nothing but bits: the election numbers its members in name order and asks set
//! questions (is this node a candidate, which candidates do two addresses share) thousands of
//! times per run, where a bitset is far cheaper than a sorted list of names.

/// Members of one election, by their index in name order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct NodeSet {
    words: Vec<u64>,
}

impl NodeSet {
    pub(crate) fn with_capacity(members: usize) -> Self {
        Self {
            words: vec![0; members.div_ceil(64)],
        }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub(crate) fn union_with(&mut self, other: &Self) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    pub(crate) fn is_subset(&self, other: &Self) -> bool {
        self.words
            .iter()
            .zip(&other.words)
            .all(|(a, b)| a & !b == 0)
    }

    /// Members in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
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
    fn sets_hold_members_past_the_first_word() {
        let mut a = NodeSet::with_capacity(130);
        for i in [0, 63, 64, 129] {
            a.insert(i);
        }
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 63, 64, 129]);
        let mut b = NodeSet::with_capacity(130);
        b.insert(64);
        b.insert(5);
        assert!(!a.contains(5) && b.contains(5));
        assert!(!b.is_subset(&a));
        b.words[0] = 0;
        assert!(b.is_subset(&a));
        assert!(NodeSet::with_capacity(3).is_empty());
    }
}
