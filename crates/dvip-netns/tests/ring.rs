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
