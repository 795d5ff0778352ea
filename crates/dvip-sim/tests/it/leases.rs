//! Leases in the simulator: the cluster keeps every invariant with dvip's own heartbeats
//! taking addresses before the bus's view, a dead host's addresses are answered for well
//! before that view, and the checker catches each planted flaw of the lease rules.

use std::time::Duration;

use dvip_core::node::PlantedBugs;
use dvip_lease::Flaw;
use dvip_sim::{epoch_across_a_lost_bus, host_death, run, Outcome, RunOptions};

use crate::failures;

fn leased() -> RunOptions {
    RunOptions {
        leases: true,
        ..RunOptions::default()
    }
}

/// Seeds 0..200 by default; `DVIP_SIM_LEASE_SEEDS=N` runs more.
#[test]
fn with_leases_every_seed_keeps_every_invariant() {
    let count: u64 = std::env::var("DVIP_SIM_LEASE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let options = leased();
    let outcomes: Vec<Outcome> = (0..count).map(|seed| run(seed, &options)).collect();
    let failed = failures(&outcomes);
    assert!(
        failed.is_empty(),
        "{} of {count} seeds failed with leases:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // A cluster that never takes over passes every safety check: the faults must have made
    // takeovers happen, and leases run out.
    let takeovers: u64 = outcomes.iter().map(|o| o.stats.takeovers).sum();
    let taken: u64 = outcomes.iter().map(|o| o.stats.taken).sum();
    let lapses: u64 = outcomes.iter().map(|o| o.stats.lapses).sum();
    assert!(
        takeovers >= count && taken >= takeovers && lapses >= count,
        "{takeovers} takeovers of {taken} addresses and {lapses} lapses in {count} seeds"
    );
    // Host deaths break corosync's ring before the takeover: its `Took` must be told again.
    let told_again: u64 = outcomes.iter().map(|o| o.stats.told_again).sum();
    assert!(
        told_again >= count / 4,
        "{told_again} takeovers told again in {count} seeds"
    );
}

#[test]
fn a_dead_hosts_addresses_are_answered_for_long_before_the_bus_sees_it_go() {
    let mut answered = 0;
    for seed in 0..40 {
        let death = host_death(seed, &leased());
        assert!(
            death.violations.is_empty(),
            "seed {seed}: {:?}",
            death.violations
        );
        for after in &death.answered_after {
            // The promise comes `suspect_after` (40 ms) after the last beat heard, and the
            // takeover at the next beat: well before the bus's 250 ms.
            assert!(
                *after < Duration::from_millis(60) && *after < death.view_after,
                "seed {seed}: an address was answered for {after:?} after the death, the \
                 view came after {:?}",
                death.view_after
            );
        }
        answered += death.answered_after.len();
        // Without leases the same death waits for the view: what the test tells apart.
        let without = host_death(seed, &RunOptions::default());
        assert!(
            without.violations.is_empty(),
            "seed {seed}: {:?}",
            without.violations
        );
        assert_eq!(
            without.answered_after.len(),
            death.answered_after.len(),
            "seed {seed}"
        );
        assert!(
            without
                .answered_after
                .iter()
                .all(|a| *a >= without.view_after),
            "seed {seed}: without leases, an address was answered for before the view"
        );
    }
    assert!(
        answered >= 40,
        "only {answered} addresses moved in 40 deaths"
    );
}

fn caught(options: &RunOptions, seeds: u64) -> Option<(u64, String)> {
    (0..seeds).find_map(|seed| {
        let outcome = run(seed, options);
        outcome.violations.first().map(|v| (seed, v.what.clone()))
    })
}

#[test]
fn the_checker_catches_a_promise_made_too_early() {
    let options = RunOptions {
        lease_flaw: Some(Flaw::PromiseEarly),
        ..leased()
    };
    let (seed, what) = caught(&options, 200).expect("no seed caught promises at T / 2");
    assert!(
        what.contains("still had it"),
        "seed {seed} failed otherwise: {what}"
    );
}

#[test]
fn the_checker_catches_a_lease_the_kernel_does_not_end() {
    let options = RunOptions {
        lease_in_daemon_only: true,
        ..leased()
    };
    let (seed, what) =
        caught(&options, 200).expect("no seed caught a paused daemon's host answering");
    assert!(
        what.contains("still had it"),
        "seed {seed} failed otherwise: {what}"
    );
}

#[test]
fn the_checker_catches_an_owner_answering_before_its_epoch_settled() {
    // On a bus that still orders what is sent after a fault, a `Took` reaches subjects that
    // corosync's broken ring would have kept it from: the hold-back is tested hardest there.
    let mut options = RunOptions {
        rings_break: false,
        ..leased()
    };
    options.node.planted = PlantedBugs {
        answer_while_held_back: true,
        ..PlantedBugs::default()
    };
    let (seed, what) =
        caught(&options, 300).expect("no seed caught an owner answering while held back");
    assert!(
        what.contains("answers again") || what.contains("still had it"),
        "seed {seed} failed otherwise: {what}"
    );
}

#[test]
fn the_checker_catches_a_promiser_plumbing_what_it_deferred() {
    let mut options = leased();
    options.node.planted = PlantedBugs {
        take_deferred: true,
        ..PlantedBugs::default()
    };
    let (seed, what) = caught(&options, 300).expect("no seed caught a deferred address plumbed");
    assert!(
        what.contains("still had it"),
        "seed {seed} failed otherwise: {what}"
    );
}

/// dvipd's heartbeat thread forgot every epoch when its daemon lost corosync, while the core
/// kept them: on the next silence of that member, the detector promised in the old epoch,
/// the takeover was refused, and its acknowledgements never came back (the lab's chaos seed
/// 47 left a node's addresses dark for good that way).
#[test]
fn an_epoch_kept_across_a_lost_bus_still_lets_the_member_be_taken_over_and_come_back() {
    for seed in 0..6 {
        let run = epoch_across_a_lost_bus(seed, &leased());
        assert!(
            run.violations.is_empty(),
            "seed {seed}: {:?}",
            run.violations
        );
        assert!(
            run.epochs_before.iter().all(|e| *e >= 1),
            "seed {seed}: the first pause moved no epoch: {:?}",
            run.epochs_before
        );
        assert!(
            run.second_takeovers >= 1,
            "seed {seed}: the second pause was not taken over"
        );
        assert!(
            run.epochs_after
                .iter()
                .zip(&run.epochs_before)
                .all(|(after, before)| after > before),
            "seed {seed}: epochs {:?} then {:?}",
            run.epochs_before,
            run.epochs_after
        );
    }
}

/// A host cut off just as the others take it over on its lease keeps its addresses on its
/// own side; back with them, it holds back until the merged view settles, and must neither
/// answer next to a taker nor stay held back.
#[test]
fn a_host_cut_off_as_it_is_taken_over_does_not_answer_next_to_its_taker_when_it_returns() {
    let options = RunOptions {
        leases: true,
        ..RunOptions::default()
    };
    let mut taken = 0;
    for seed in 0..20 {
        for apart_ms in [400, 1500, 3000] {
            let apart = Duration::from_millis(apart_ms);
            let run = dvip_sim::cut_off_while_taken_over(seed, apart, &options);
            assert!(
                run.violations.is_empty(),
                "seed {seed}, apart {apart_ms} ms: {:?}",
                run.violations
            );
            taken += run.takeovers;
        }
    }
    assert!(taken > 0, "no takeover on a lease happened");
}
