//! Marks: how the members' descriptions of an address disagree.
//!
//! Owns the three marks an operator sees: BROKEN (a binding name sits on different addresses
//! on different members, or members name different bindings on one address: mail could
//! leave from the wrong address, so nobody manages them),
//! CONFLICT (members name different preferred nodes: the preference is ignored) and UNSAFE
//! (members put different services on the address, or make it follow different bindings: it
//! is still elected). It must not pick owners.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::Slot;

/// What is wrong with how the members describe one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// A binding name on it is on another address on some member, or members name different
    /// bindings on it: nobody manages it.
    pub broken: bool,
    /// Members name different preferred nodes: the preference is ignored.
    pub conflict: bool,
    /// Members put different services on it.
    pub unsafe_services: bool,
    /// Members make it follow different bindings (or some follow and some don't): it is
    /// elected on its own.
    pub unsafe_follow: bool,
}

impl Marks {
    /// UNSAFE as the operator sees it: either kind of disagreement.
    pub fn is_unsafe(&self) -> bool {
        self.unsafe_services || self.unsafe_follow
    }

    /// The marks as the words an operator reads, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.broken {
            names.push("BROKEN");
        }
        if self.conflict {
            names.push("CONFLICT");
        }
        if self.is_unsafe() {
            names.push("UNSAFE");
        }
        names
    }
}

impl Serialize for Marks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names = self.names();
        let mut seq = s.serialize_seq(Some(names.len()))?;
        for name in names {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

/// Addresses that carry a binding name some member puts on another address.
pub(super) fn broken_addresses(slots: &[Slot<'_>]) -> BTreeSet<IpAddr> {
    // Sorting (name, address) pairs finds names on several addresses without building a map
    // per name: this runs on every plan, over every binding.
    let mut pairs: Vec<(&str, IpAddr)> = Vec::with_capacity(slots.len());
    for slot in slots {
        let mut seen: Option<&Arc<_>> = None;
        for (_, entity) in &slot.ads {
            // Members almost always agree (and then share one description): take each
            // distinct set of names once.
            if seen.is_some_and(|s| Arc::ptr_eq(s, entity) || s.bindings == entity.bindings) {
                continue;
            }
            seen = Some(entity);
            pairs.extend(
                entity
                    .bindings
                    .iter()
                    .map(|name| (name.as_str(), slot.address)),
            );
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut broken = BTreeSet::new();
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        if group.len() > 1 {
            broken.extend(group.iter().map(|(_, address)| *address));
        }
    }
    broken
}

pub(super) fn marks_of(slot: &Slot<'_>, broken: &BTreeSet<IpAddr>) -> Marks {
    let mut marks = Marks {
        broken: broken.contains(&slot.address),
        ..Marks::default()
    };
    let Some((_, first)) = slot.ads.first() else {
        return marks;
    };
    let mut preference = first.preference.as_deref();
    // A member with no binding on the address sends nothing from it; two that name different
    // ones would send one client's mail from another's address.
    let mut names = Some(&first.bindings).filter(|b| !b.is_empty());
    for (_, entity) in &slot.ads[1..] {
        if Arc::ptr_eq(entity, first) {
            continue;
        }
        if !entity.bindings.is_empty() {
            match names {
                Some(n) if *n != entity.bindings => marks.broken = true,
                None => names = Some(&entity.bindings),
                Some(_) => {}
            }
        }
        marks.unsafe_services |= !entity.same_services(first);
        marks.unsafe_follow |= entity.follow != first.follow;
        match (preference, entity.preference.as_deref()) {
            (Some(a), Some(b)) if a != b => marks.conflict = true,
            (None, Some(b)) => preference = Some(b),
            _ => {}
        }
    }
    marks
}
