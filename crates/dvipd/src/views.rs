//! Views of a CPG group, numbered so that no two views ever share an id.
//!
//! Owns the rule that turns corosync's two membership streams (the group's process
//! membership, CPG's confchg; and the totem ring, its totem confchg) into one sequence of
//! views with ids every member computes alike. It must not talk to corosync: the bus feeds it.
//!
//! Why the ring is in the id: the members alone repeat. A node whose corosync was stopped sees
//! no change of the group's processes when it comes back (nobody it knew left), while the others
//! saw it leave and return; digesting members only, both sides then agree on the *old* view's
//! id, and a message composed before the stop is read as current. With the ring (its
//! representative and sequence number, which only grow), a view on a new ring has a new id.
//!
//! Corosync's order, which the rules below follow: while a ring forms, CPG reports processes
//! lost with the nodes (`NodeDown`) and found with them (`NodeUp`) first, and the new ring last.
//! Processes that join or leave within a ring (`Join`, `Leave`, `ProcDown`) come alone, in
//! agreed order, on the ring every member already knows.

use crate::corosync::Member;

/// A totem ring: its representative node and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    /// The ring's representative.
    pub nodeid: u32,
    /// Its sequence number, larger on every new ring.
    pub seq: u64,
}

/// A view: the group's members within one ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The same on every member, and different from every earlier view.
    pub id: u64,
    /// The members, sorted.
    pub members: Vec<Member>,
    /// The ring it is on, as this process knows it: with the members, what the id digests.
    pub ring: Ring,
}

/// The views of one connection to the group.
#[derive(Debug, Default)]
pub struct Views {
    ring: Option<Ring>,
    /// The last membership CPG reported; `None` until this process's own join.
    members: Option<Vec<Member>>,
}

impl Views {
    /// Views starting on `ring`, the one corosync is on when the connection is made (before
    /// the join, so that every later ring is reported to it).
    pub fn new(ring: Option<Ring>) -> Self {
        Self {
            ring,
            members: None,
        }
    }

    /// CPG's process membership changed. `with_a_ring` when the change came with nodes
    /// (`NodeDown`, `NodeUp`): the view waits for the new ring. A view is returned at once
    /// for changes within the ring.
    pub fn members_changed(&mut self, mut members: Vec<Member>, with_a_ring: bool) -> Option<View> {
        members.sort();
        self.members = Some(members);
        if with_a_ring {
            return None;
        }
        self.view()
    }

    /// A new ring: always a new view, even when the group's processes did not change, since
    /// the others may have seen this node leave and return.
    pub fn ring_changed(&mut self, ring: Ring) -> Option<View> {
        self.ring = Some(ring);
        self.view()
    }

    fn view(&self) -> Option<View> {
        let ring = self.ring?;
        let members = self.members.clone()?;
        Some(View {
            id: view_id(ring, &members),
            members,
            ring,
        })
    }
}

/// The ring and the members (node id and process id) digested (FNV-1a).
fn view_id(ring: Ring, members: &[Member]) -> u64 {
    let ring_bytes = ring
        .nodeid
        .to_le_bytes()
        .into_iter()
        .chain(ring.seq.to_le_bytes());
    let member_bytes = members.iter().flat_map(|m| {
        m.nodeid
            .to_le_bytes()
            .into_iter()
            .chain(m.pid.to_le_bytes())
    });
    ring_bytes
        .chain(member_bytes)
        .fold(0xcbf2_9ce4_8422_2325, |hash: u64, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(nodeid: u32) -> Member {
        Member {
            nodeid,
            pid: 100 + nodeid,
        }
    }

    fn ring(seq: u64) -> Ring {
        Ring { nodeid: 1, seq }
    }

    #[test]
    fn a_node_that_was_stopped_and_the_others_agree_on_a_new_view_when_it_returns() {
        let all = vec![m(1), m(2), m(3), m(4)];
        let mut stopped = Views::new(Some(ring(8)));
        let mut other = Views::new(Some(ring(8)));
        let before = stopped.members_changed(all.clone(), false).unwrap();
        assert_eq!(other.members_changed(all.clone(), false).unwrap(), before);

        // The others see node 4 go with its ring, then come back with the next.
        assert_eq!(other.members_changed(all[..3].to_vec(), true), None);
        let without = other.ring_changed(ring(12)).unwrap();
        assert_eq!(without.members, all[..3].to_vec());
        assert_eq!(other.members_changed(all, true), None);
        let after = other.ring_changed(ring(16)).unwrap();

        // Node 4 hears of no process coming or going: only of the new ring.
        let back = stopped.ring_changed(ring(16)).unwrap();
        assert_eq!(back, after);
        assert_eq!(back.members, before.members);
        assert_ne!(
            back.id, before.id,
            "the view after the stop must not pass for the one before"
        );
    }

    #[test]
    fn joins_and_leaves_within_a_ring_are_views_at_once_and_a_ring_change_waits_for_its_ring() {
        let mut views = Views::new(Some(ring(4)));
        let one = views.members_changed(vec![m(1)], false).unwrap();
        let two = views.members_changed(vec![m(2), m(1)], false).unwrap();
        assert_eq!(two.members, vec![m(1), m(2)], "sorted");
        assert_ne!(one.id, two.id);
        assert_eq!(views.members_changed(vec![m(1)], true), None);
        let alone = views.ring_changed(ring(8)).unwrap();
        assert_eq!(alone.members, one.members);
        assert_ne!(alone.id, one.id);
    }

    #[test]
    fn nothing_is_a_view_before_this_process_joined_or_while_the_ring_is_unknown() {
        let mut views = Views::new(None);
        assert_eq!(views.ring_changed(ring(4)), None, "not joined yet");
        let mut unknown = Views::new(None);
        assert_eq!(unknown.members_changed(vec![m(1)], false), None);
        assert!(unknown.ring_changed(ring(4)).is_some());
    }
}
