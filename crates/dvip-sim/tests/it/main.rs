//! The simulator's own tests: seeds pass, seeds replay, and the checker catches planted bugs.

use dvip_core::node::PlantedBugs;
use dvip_sim::{run, Outcome, RunOptions};

mod leases;

pub(crate) fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| !o.violations.is_empty())
        .map(|o| {
            format!(
                "seed {} ({} hosts): {} at {:?}\n  replay: cargo run --release -p dvip-sim -- --seed {} --verbose",
                o.seed, o.hosts, o.violations[0].what, o.violations[0].at, o.seed
            )
        })
        .collect()
}

/// Seeds 0..500 by default; `DVIP_SIM_SEEDS=N` runs more.
#[test]
fn every_seed_keeps_every_invariant() {
    let count: u64 = std::env::var("DVIP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let options = RunOptions::default();
    let outcomes: Vec<Outcome> = (0..count).map(|seed| run(seed, &options)).collect();
    let failed = failures(&outcomes);
    assert!(
        failed.is_empty(),
        "{} of {count} seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let faults: u64 = outcomes.iter().map(|o| o.stats.faults).sum();
    let settles: u64 = outcomes.iter().map(|o| o.stats.settles).sum();
    assert!(
        faults >= count * 20,
        "the safety phases injected only {faults} faults"
    );
    assert!(
        settles >= count * 50,
        "only {settles} settled states were checked"
    );
}

/// Seeds that once failed, kept so CI replays them forever.
#[test]
fn every_regression_seed_passes() {
    let list = include_str!("../../regressions.txt");
    let seeds: Vec<u64> = list
        .lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(!seeds.is_empty(), "regressions.txt lists no seed");
    let options = RunOptions::default();
    let outcomes: Vec<Outcome> = seeds.iter().map(|&seed| run(seed, &options)).collect();
    let failed = failures(&outcomes);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_seed_replays_exactly() {
    let options = RunOptions::default();
    for seed in [3, 26, 203] {
        let (a, b) = (run(seed, &options), run(seed, &options));
        assert_eq!(a.trace, b.trace, "seed {seed} ran differently twice");
        assert_eq!(a.stats, b.stats);
    }
    assert_ne!(
        run(1, &options).trace,
        run(2, &options).trace,
        "two seeds, one trace: the hash sees nothing"
    );
}

fn caught(planted: PlantedBugs, seeds: u64) -> Option<(u64, String)> {
    caught_with(planted, seeds, RunOptions::default())
}

fn caught_with(planted: PlantedBugs, seeds: u64, mut options: RunOptions) -> Option<(u64, String)> {
    options.node.planted = planted;
    (0..seeds).find_map(|seed| {
        let outcome = run(seed, &options);
        outcome.violations.first().map(|v| (seed, v.what.clone()))
    })
}

#[test]
fn the_checker_catches_an_acquire_before_release() {
    let found = caught(
        PlantedBugs {
            acquire_before_release: true,
            ..PlantedBugs::default()
        },
        50,
    );
    let (seed, what) =
        found.expect("no seed caught a node taking an address its old owner still held");
    assert!(
        what.contains("plumbed") && what.contains("still had it"),
        "seed {seed}: {what}"
    );
}

#[test]
fn the_checker_catches_a_forgotten_follow_group() {
    let found = caught(
        PlantedBugs {
            forget_follow: true,
            ..PlantedBugs::default()
        },
        200,
    );
    let (seed, what) = found.expect("no seed caught followers elected apart from their binding");
    assert!(what.contains("follower"), "seed {seed}: {what}");
}

/// The first seed whose violations show `symptom`: a planted bug may first show in other ways
/// (planning on a stale table also gets marks wrong), and the test wants the dangerous one.
fn caught_showing(
    planted: PlantedBugs,
    seeds: u64,
    symptom: impl Fn(&str) -> bool,
) -> Option<(u64, String)> {
    let options = RunOptions {
        node: dvip_core::NodeOptions {
            planted,
            ..dvip_core::NodeOptions::default()
        },
        ..RunOptions::default()
    };
    (0..seeds).find_map(|seed| {
        let outcome = run(seed, &options);
        outcome
            .violations
            .iter()
            .find(|v| symptom(&v.what))
            .map(|v| (seed, v.what.clone()))
    })
}

#[test]
fn the_checker_catches_a_carried_view_planned_before_its_announcements() {
    let found = caught_showing(
        PlantedBugs {
            plan_carried_at_once: true,
            ..PlantedBugs::default()
        },
        300,
        |what| what.contains("plumbed") && what.contains("still had it"),
    );
    let (seed, what) = found
        .expect("no seed caught a node planning alone in the view CPG shows it before a merge");
    assert!(
        what.contains("plumbed") && what.contains("still had it"),
        "seed {seed}: {what}"
    );
}

/// CPG shows members that came from one view a view of their own before a merge; dvip must not
/// depend on it for safety. On a bus that skips those views, members can disagree on whether a
/// view continues the last, and the recount must bring them together without a double.
#[test]
fn a_bus_without_transitional_views_still_keeps_every_invariant() {
    let options = RunOptions {
        transitional_views: false,
        ..RunOptions::default()
    };
    let outcomes: Vec<Outcome> = (0..300).map(|seed| run(seed, &options)).collect();
    let failed = failures(&outcomes);
    assert!(
        failed.is_empty(),
        "{} of 300 seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn the_checker_catches_a_carried_view_trusted_against_another_members_word() {
    let found = caught_with(
        PlantedBugs {
            ignore_disagreement: true,
            ..PlantedBugs::default()
        },
        300,
        RunOptions {
            transitional_views: false,
            ..RunOptions::default()
        },
    );
    let (seed, what) = found.expect("no seed caught members planning on different histories");
    assert!(what.contains("plumbed"), "seed {seed}: {what}");
}

/// A cluster that waits forever for a State that never comes plans nothing: every safety check
/// passes, and only the liveness check at the end of the run sees addresses nobody serves.
#[test]
fn the_liveness_checker_catches_a_cluster_waiting_forever_for_a_state() {
    let found = caught(
        PlantedBugs {
            wait_forever: true,
            ..PlantedBugs::default()
        },
        100,
    );
    let (seed, what) =
        found.expect("no seed caught a cluster frozen by a member that never announces");
    assert!(what.starts_with("liveness:"), "seed {seed}: {what}");
}

#[test]
fn the_checker_catches_replicas_that_disagree_after_lost_snapshots() {
    let options = RunOptions {
        lose_replica_snapshots: true,
        ..RunOptions::default()
    };
    let found = (0..50).find_map(|seed| {
        let outcome = run(seed, &options);
        outcome.violations.first().map(|v| (seed, v.what.clone()))
    });
    let (seed, what) = found.expect("no seed caught replicas that missed every snapshot");
    assert!(
        what.contains("counts open connections"),
        "seed {seed}: {what}"
    );
}

#[test]
fn replication_is_exercised_through_the_faults() {
    let outcome = run(7, &RunOptions::default());
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.stats.replica_ops > 10, "{:?}", outcome.stats);
    assert!(outcome.stats.replica_deliveries > 10, "{:?}", outcome.stats);
}

/// A restarted daemon whose corosync names every view unlike the others (chaos seed 47, round
/// 146): it stands down, holding nothing, while the others serve every address; once its
/// corosync's names are mended, the cluster ends on one view.
#[test]
fn a_daemon_naming_its_view_unlike_the_others_stands_down_and_the_cluster_agrees_again() {
    for seed in 0..20 {
        let run = dvip_sim::misnamed_view(seed, &RunOptions::default());
        assert!(
            run.violations.is_empty(),
            "seed {seed}: {:?}",
            run.violations
        );
        assert!(run.stood_down >= 1, "seed {seed}: nobody stood down");
        assert_eq!(
            run.held_while_split, 0,
            "seed {seed}: the odd one held addresses"
        );
        assert_eq!(
            run.served_while_split, run.addresses,
            "seed {seed}: the others did not serve everything"
        );
        let ids: std::collections::BTreeSet<_> = run.view_ids.iter().collect();
        assert_eq!(ids.len(), 1, "seed {seed}: views {:?}", run.view_ids);
        assert!(run.view_ids[0].is_some(), "seed {seed}: no view");
    }
}

/// Without standing down, the split stands: the odd one keeps (and takes) addresses while the
/// others, planning around it as silent, serve every address too.
#[test]
fn without_standing_down_a_view_split_leaves_addresses_with_two_owners() {
    let mut options = RunOptions::default();
    options.node.planted = PlantedBugs {
        ignore_split: true,
        ..PlantedBugs::default()
    };
    let doubled = (0..20).find(|&seed| {
        let run = dvip_sim::misnamed_view(seed, &options);
        run.held_while_split > 0 && run.served_while_split == run.addresses
    });
    assert!(
        doubled.is_some(),
        "no seed left an address with the odd one and the others at once"
    );
}
