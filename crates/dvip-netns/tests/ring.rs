//! The lab's corosync ring is keyed, as production's must be (docs/security.md): a corosync
//! that does not sign with the lab's key never becomes a member, and the same node with the
//! key joins again. Needs root and corosync.

use std::time::{Duration, Instant};

use dvip_netns::Lab;

/// Waits until `what` holds, for at most `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_corosync_without_the_key_stays_out_of_the_ring() {
    let mut lab = Lab::new("ring-t", 3);
    let conf = lab.dir().join("corosync-3.conf");
    let keyed = std::fs::read_to_string(&conf).expect("node3's corosync.conf");
    assert!(keyed.contains("crypto_cipher: aes256"), "{keyed}");

    std::fs::write(&conf, lab.topology().corosync_conf(None)).expect("unkeyed conf");
    lab.start_corosync_again(3);
    wait_for(
        Duration::from_secs(10),
        "node3 runs a ring of its own",
        || lab.topology().ring_size(3) == 1,
    );
    wait_for(Duration::from_secs(10), "node1 sees node3 gone", || {
        lab.topology().ring_size(1) == 2
    });
    // Far longer than a membership change takes here (about 250 ms): node3 would have
    // merged by now if its packets were read.
    let watched = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watched {
        assert_eq!(lab.topology().ring_size(1), 2, "node1's ring took node3 in");
        assert_eq!(
            lab.topology().ring_size(3),
            1,
            "node3 joined without the key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(&conf, keyed).expect("keyed conf");
    lab.start_corosync_again(3);
    wait_for(Duration::from_secs(15), "node3 with the key joins", || {
        (1..=3).all(|i| lab.topology().ring_size(i) == 3)
    });
}

/// How many memberships node `i`'s corosync has formed so far, from its log.
fn memberships(lab: &Lab, i: usize) -> usize {
    std::fs::read_to_string(lab.dir().join(format!("corosync-{i}.log")))
        .unwrap_or_default()
        .matches("A new membership")
        .count()
}

/// A node whose corosync has just started loses its interface for 1.6 s (deleted and created
/// again, as a bond being rebuilt does). With knet's path-MTU discovery on, its links came
/// back at knet's smallest MTU and were probed again one peer per 30 s round: the ring took it
/// in only after the last, a minute later, and at chaos timing (token 40 ms) formed about 13
/// memberships a second meanwhile (lab chaos seed 47, round 733). The lab's corosync runs
/// with its LAN's MTU instead.
#[test]
fn a_corosync_that_lost_its_interface_just_after_starting_joins_at_once_without_flapping() {
    let mut lab = Lab::new("ring-m", 4);
    lab.start_corosync_again(3);
    wait_for(Duration::from_secs(10), "node3's corosync joins", || {
        lab.topology().ring_size(3) == 4
    });
    lab.topology().delete_link(3).expect("node3's eth0 deleted");
    std::thread::sleep(Duration::from_millis(1600));
    lab.topology()
        .create_link_again(3)
        .expect("node3's eth0 back");
    let back = Instant::now();
    wait_for(Duration::from_secs(60), "node3 joins again", || {
        (1..=4).all(|i| lab.topology().ring_size(i) == 4)
    });
    let joined = back.elapsed();
    assert!(
        joined < Duration::from_secs(10),
        "node3 took {joined:?} to join again"
    );
    // Joined is not settled: a storm passes through rings of all four too.
    let before = memberships(&lab, 1);
    let watched = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watched {
        std::thread::sleep(Duration::from_millis(100));
    }
    let formed = memberships(&lab, 1) - before;
    assert!(
        formed <= 2,
        "node1's corosync formed {formed} memberships in 5 s after node3 joined"
    );
}
