//! Two replicas of one view for the unit tests: what every test of a rule between nodes
//! starts from.

use std::collections::BTreeSet;

use crate::{Action, Replica, ReplicaOptions};

/// Replicas `a` and `b` in view 1, each with the other's snapshot.
pub(crate) fn pair() -> (Replica, Replica) {
    let members: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    let (mut a, mut b) = (
        Replica::new("a", ReplicaOptions::default()),
        Replica::new("b", ReplicaOptions::default()),
    );
    a.handle_view(1, &members);
    b.handle_view(1, &members);
    exchange(&mut a, &mut b);
    (a, b)
}

/// Delivers what each of `a` and `b` has to send to itself and to the other.
pub(crate) fn exchange(a: &mut Replica, b: &mut Replica) {
    deliver(a, &mut [b]);
    deliver(b, &mut [a]);
}

/// Delivers every action of `from` to each of `to` (and back to `from`).
pub(crate) fn deliver(from: &mut Replica, to: &mut [&mut Replica]) {
    let name = from.name().to_owned();
    for Action::Send(bytes) in from.take_actions() {
        from.handle_message(&name, &bytes).expect("own message");
        for r in to.iter_mut() {
            r.handle_message(&name, &bytes).expect("decodes");
        }
    }
}
