//! Takeovers on leases, through the node's inputs: the detector's verdicts are handed in as
//! dvipd's heartbeat thread would, and the table learns of the takeover from `Took`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use dvip_core::{Action, Command, TakeoverRefused};

use crate::node::{addresses, Cluster};

/// A matured three-node cluster with nine addresses, and the node holding the most.
fn cluster() -> (Cluster, usize) {
    let mut c = Cluster::new(&vec![addresses(9, Some("n2")); 3]);
    c.view(&[0, 1, 2]);
    c.advance(Duration::from_secs(2), &[0, 1, 2]);
    let busiest = (0..3)
        .max_by_key(|&i| c.plumbed[i].len())
        .expect("three nodes");
    (c, busiest)
}

fn name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// Every survivor promises about `subject` on the plan it holds, as its detector would.
fn promise(c: &mut Cluster, subject: usize, survivors: &[usize]) -> u64 {
    let plans: BTreeSet<u64> = survivors.iter().map(|&i| c.nodes[i].lease_plan()).collect();
    assert_eq!(plans.len(), 1, "one table, one plan: {plans:?}");
    let plan = *plans.iter().next().expect("one");
    for &i in survivors {
        c.nodes[i].handle_promised(&name(subject), 0, plan);
    }
    plan
}

/// Every survivor promises about a subject that is alive and takes its share on the lease's
/// end; each `Took` waits on the bus. The subject's kernel stopped answering when its lease ran
/// out: what it still has is a stale copy the test bus must not count against the takers.
fn take_over_a_live_subject(c: &mut Cluster, subject: usize, survivors: &[usize]) {
    let plan = promise(c, subject, survivors);
    let stale = std::mem::take(&mut c.plumbed[subject]);
    for &i in survivors {
        c.nodes[i]
            .handle_takeover(&name(subject), 0, plan)
            .expect("taken");
        c.drain(i);
    }
    c.plumbed[subject] = stale;
}

#[test]
fn a_takeover_plumbs_each_successors_share_at_once_and_the_table_follows() {
    let (mut c, dead) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let held = c.plumbed[dead].clone();
    assert!(!held.is_empty());
    let successors = c.nodes[survivors[0]].successors(&name(dead));
    // The host is gone: its addresses went with it.
    c.plumbed[dead].clear();
    let plan = promise(&mut c, dead, &survivors);
    for &i in &survivors {
        let taken = c.nodes[i].handle_takeover(&name(dead), 0, plan);
        // The `Took` goes out before the first plumb: plumbing thousands takes long enough for
        // a view to overtake a `Took` sent after it.
        if taken.is_ok_and(|n| n > 0) {
            let first = c.nodes[i].poll_action();
            assert!(
                matches!(first, Some(Action::Send(_))),
                "{}: {first:?}",
                name(i)
            );
            if let Some(Action::Send(bytes)) = first {
                c.queue.push_back((i, bytes));
            }
        }
        c.drain(i);
        let mine = successors
            .values()
            .filter(|s| s.as_deref() == Some(name(i).as_str()))
            .count();
        assert_eq!(taken, Ok(mine), "{}", name(i));
    }
    // Before any message is delivered, every address the dead node held is answered for, by
    // the successor every survivor named.
    for (address, successor) in &successors {
        let owners: Vec<String> = c
            .owners(&address.to_string())
            .into_iter()
            .map(name)
            .collect();
        assert_eq!(
            owners,
            successor.iter().cloned().collect::<Vec<_>>(),
            "{address}"
        );
    }
    // The dead node's daemon hears nothing more. The survivors' table learns the takeover,
    // the epoch moves and settles, and the dead node is planned around.
    c.settle(&survivors);
    for &i in &survivors {
        assert_eq!(c.nodes[i].epoch_of(&name(dead)), 1);
        assert!(c.nodes[i].silent().contains(&name(dead)));
        let held_here = &c.nodes[i].holdings()[&name(i)];
        assert!(c.plumbed[i].iter().all(|a| held_here.contains(a)));
    }
    // The bus's view, when it comes, moves nothing more.
    let before: Vec<BTreeSet<IpAddr>> = c.plumbed.clone();
    c.view(&survivors);
    assert_eq!(c.plumbed, before);
}

#[test]
fn a_takeover_is_refused_on_another_plan_another_epoch_or_without_a_promise() {
    let (mut c, subject) = cluster();
    let taker = (subject + 1) % 3;
    let other = (subject + 2) % 3;
    let plan = c.nodes[taker].lease_plan();
    assert_eq!(
        c.nodes[taker].handle_takeover(&name(subject), 0, plan),
        Err(TakeoverRefused::NoPromise)
    );
    assert_eq!(
        c.nodes[taker].handle_takeover(&name(taker), 0, 0),
        Err(TakeoverRefused::NotInView)
    );
    let plan = promise(&mut c, subject, &[taker, other]);
    // A message that can change the table moves the plan the promises named.
    c.nodes[other]
        .handle_command(Command::AnnounceView)
        .expect("in a view");
    c.drain(other);
    c.settle(&[0, 1, 2]);
    assert_eq!(
        c.nodes[taker].handle_takeover(&name(subject), 0, plan),
        Err(TakeoverRefused::PlanMoved)
    );
    // A promiser that hears the subject again ends its epoch; a takeover in it is stale.
    let plan = promise(&mut c, subject, &[taker, other]);
    c.nodes[other].handle_end_epoch(&name(subject), 0);
    c.drain(other);
    c.settle(&[0, 1, 2]);
    assert_eq!(c.nodes[taker].epoch_of(&name(subject)), 1);
    assert_eq!(
        c.nodes[taker].handle_takeover(&name(subject), 0, plan),
        Err(TakeoverRefused::EpochMoved)
    );
    // Nothing moved: an ended epoch is not a takeover.
    assert!(c.nodes.iter().all(|n| n.silent().is_empty()));
}

#[test]
fn a_live_subject_lets_go_of_what_was_taken_and_answers_again_once_its_epoch_settled() {
    // Its beats were lost while the bus carried on: it is alive, and hears every message.
    let (mut c, subject) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != subject).collect();
    take_over_a_live_subject(&mut c, subject, &survivors);
    // The first Took reaches everyone: the subject lets go and holds back.
    let first = c.queue.pop_front().expect("a Took");
    let from = c.nodes[first.0].name().to_owned();
    c.nodes[subject].handle_message(&from, &first.1);
    c.drain(subject);
    assert!(
        !c.nodes[subject].may_answer(),
        "held back until the move settles"
    );
    assert!(
        c.plumbed[subject].is_empty(),
        "it let go of everything: {:?}",
        c.plumbed[subject]
    );
    for &i in &survivors {
        c.nodes[i].handle_message(&from, &first.1);
        c.drain(i);
    }
    c.settle(&[0, 1, 2]);
    assert!(
        c.nodes[subject].may_answer(),
        "every member saw the new epoch"
    );
    assert!(
        c.nodes.iter().all(|n| n.silent().is_empty()),
        "its State made it an ordinary member again"
    );
    // Matured again, the preferred node takes its address back, release before acquire.
    c.advance(Duration::from_secs(2), &[0, 1, 2]);
    assert_eq!(c.owners("198.51.100.1"), vec![1]);
}

#[test]
fn a_lapsed_lease_holds_the_node_back_until_its_echo_returns() {
    let (mut c, node) = cluster();
    c.nodes[node].handle_lease_lapsed();
    c.drain(node);
    assert!(!c.nodes[node].may_answer());
    c.settle(&[0, 1, 2]);
    assert!(
        c.nodes[node].may_answer(),
        "everything before its echo was read, and nothing it has is held elsewhere"
    );
}

/// After a host death corosync orders nothing until its new ring: the `Took`s sent on the
/// lease are delivered only in the new view, where they are stale. The takers tell them again
/// in that view and keep answering: nothing is unplumbed, and the table names them.
#[test]
fn a_takeover_after_a_host_death_is_told_again_in_the_new_view_and_kept() {
    let (mut c, dead) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let held = c.plumbed[dead].clone();
    c.plumbed[dead].clear();
    let plan = promise(&mut c, dead, &survivors);
    for &i in &survivors {
        c.nodes[i]
            .handle_takeover(&name(dead), 0, plan)
            .expect("taken");
        c.drain(i);
    }
    let taken: Vec<BTreeSet<IpAddr>> = c.plumbed.clone();
    assert!(
        held.iter()
            .all(|a| survivors.iter().any(|&i| taken[i].contains(a))),
        "every address of the dead host is taken at once"
    );
    let stale: Vec<(usize, Vec<u8>)> = c.queue.drain(..).collect();
    let since = c.changes();
    c.view(&survivors);
    for (from, bytes) in stale {
        let sender = name(from);
        for &i in &survivors {
            c.nodes[i].handle_message(&sender, &bytes);
            c.drain(i);
        }
    }
    c.advance(Duration::from_secs(2), &survivors);
    for &i in &survivors {
        assert_eq!(
            c.unplumbed_since(since, i),
            Vec::<IpAddr>::new(),
            "{} let go of what it took",
            name(i)
        );
        let table = c.nodes[i].holdings();
        for &j in &survivors {
            let named = table.get(&name(j)).cloned().unwrap_or_default();
            assert!(
                taken[j].iter().all(|a| named.contains(a)),
                "{}'s table does not name what {} took: {named:?}",
                name(i),
                name(j)
            );
        }
    }
    for i in 1..=9 {
        let address = format!("198.51.100.{i}");
        assert_eq!(c.owners(&address).len(), 1, "{address}");
    }
}

#[test]
fn a_takeover_whose_took_the_view_never_delivered_is_let_go_before_the_next_plan() {
    let (mut c, dead) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    c.plumbed[dead].clear();
    let plan = promise(&mut c, dead, &survivors);
    let taker = survivors[0];
    let taken = c.nodes[taker]
        .handle_takeover(&name(dead), 0, plan)
        .expect("taken");
    c.drain(taker);
    assert!(taken > 0, "the taker is some address's successor");
    // Its interface goes down at once (it offers nothing any more), and the view changes
    // before the Took is delivered: the survivors' next view never hears of it, and plans
    // the taken addresses for the other survivor.
    c.nodes[taker].handle_config(&[]);
    c.drain(taker);
    c.queue.clear();
    c.view(&survivors);
    c.advance(Duration::from_secs(2), &survivors);
    for &i in &survivors {
        let table = c.nodes[i].holdings();
        let held = table.get(&name(i)).cloned().unwrap_or_default();
        assert!(
            c.plumbed[i].iter().all(|a| held.contains(a)),
            "{} has {:?} plumbed, its table says {:?}",
            name(i),
            c.plumbed[i],
            held
        );
    }
    // And every address is served again, once.
    for i in 1..=9 {
        let address = format!("198.51.100.{i}");
        assert_eq!(c.owners(&address).len(), 1, "{address}");
    }
}

/// A detector may say a promise is due in an epoch the table has just left (the move was on
/// its way to it): the promise names no epoch a takeover can use, and must defer nothing, or
/// the subject's addresses stay dark here until the view changes.
#[test]
fn a_promise_in_an_epoch_the_table_has_left_defers_nothing() {
    let (mut c, subject) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != subject).collect();
    promise(&mut c, subject, &survivors);
    // Its beats came back: the promise is ended, and the move settles everywhere.
    c.nodes[survivors[0]].handle_end_epoch(&name(subject), 0);
    c.drain(survivors[0]);
    c.settle(&[0, 1, 2]);
    let held = c.nodes[subject].holdings()[&name(subject)].clone();
    assert!(!held.is_empty());
    for &i in &survivors {
        assert_eq!(c.nodes[i].epoch_of(&name(subject)), 1);
        assert!(held.iter().all(|a| !c.nodes[i].defers(a)));
        let plan = c.nodes[i].lease_plan();
        c.nodes[i].handle_promised(&name(subject), 0, plan);
        let deferred: Vec<&IpAddr> = held.iter().filter(|a| c.nodes[i].defers(a)).collect();
        assert!(deferred.is_empty(), "{} defers {deferred:?}", name(i));
    }
    // In the table's epoch, the same promise defers what another member would take.
    let plan = c.nodes[survivors[0]].lease_plan();
    c.nodes[survivors[0]].handle_promised(&name(subject), 1, plan);
    assert!(held.iter().any(|a| c.nodes[survivors[0]].defers(a)));
}

/// The subject is cut off just as the others take it over on its lease: it never hears the
/// `Took`, and alone in its own view it keeps everything and answers again. Back with them,
/// it must not answer until the merged view has settled: only the takers' `Epochs`, a few
/// messages into that view, tell it that its epoch moved (simulator seed 67 with leases).
#[test]
fn a_subject_cut_off_as_it_was_taken_over_answers_nothing_back_with_its_takers_until_settled() {
    let (mut c, subject) = cluster();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != subject).collect();
    c.nodes[subject].handle_lease_lapsed();
    c.drain(subject);
    take_over_a_live_subject(&mut c, subject, &survivors);
    // The partition: each side gets a view of its own; the subject hears none of the Tooks.
    c.split = true;
    c.view(&survivors);
    c.view(&[subject]);
    c.advance(Duration::from_secs(2), &[subject]);
    assert!(c.nodes[subject].may_answer(), "alone, it answers again");
    assert_eq!(c.plumbed[subject].len(), 9, "alone, it holds everything");

    // The heal: everyone is shown the merged view; nothing of it is delivered yet.
    let names: BTreeSet<String> = (0..3).map(name).collect();
    for i in 0..3 {
        c.nodes[i].handle_view(1000, &names);
        c.drain(i);
    }
    assert!(
        !c.nodes[subject].may_answer(),
        "back with its takers, it answers for nothing before the view has settled"
    );
    c.split = false;
    c.settle(&[0, 1, 2]);
    c.advance(Duration::from_secs(3), &[0, 1, 2]);
    assert!(c.nodes[subject].may_answer(), "settled, it answers again");
    for i in 1..=9 {
        let owners = c.owners(&format!("198.51.100.{i}"));
        assert_eq!(owners.len(), 1, "198.51.100.{i}: {owners:?}");
    }
}
