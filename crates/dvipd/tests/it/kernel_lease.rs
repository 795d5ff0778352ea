//! The kernel's end of a lease (docs/leases.md): once the table is loaded, an address
//! answers ARP only while renewals come, and stops within the timeout of the last one with
//! nothing running.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dvip_netns::{Netns, Prober};
use dvipd::kernel_lease::{KernelLease, Renewer};

/// How long a renewal holds in these tests: dvipd's own timeout.
const TIMEOUT: Duration = Duration::from_millis(12);

/// A namespace `name` with a client, its `dv0` on 198.51.100.1/24 carrying `held` too.
fn netns_holding(name: &str, held: &[Ipv4Addr]) -> Netns {
    let netns = Netns::with_client(name);
    netns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    for a in held {
        netns.ip(&["addr", "add", &format!("{a}/32"), "dev", "dv0"]);
    }
    netns
}

/// The lease table guarding `addresses` on `dv0`.
fn guarding(addresses: Vec<Ipv4Addr>) -> KernelLease {
    KernelLease {
        interfaces: vec!["dv0".into()],
        addresses,
        addresses6: Vec::new(),
        timeout: TIMEOUT,
    }
}

#[test]
fn a_held_address_answers_only_while_its_lease_is_renewed() {
    let held: Ipv4Addr = [198, 51, 100, 10].into();
    let netns = netns_holding("dvkl", &[held]);
    let timeout = TIMEOUT;
    let lease = guarding(vec![held]);
    netns
        .run(|| lease.install())
        .expect("nft loads the lease table");
    let prober = Prober::start(
        netns.client().expect("a client"),
        "dv1",
        [198, 51, 100, 200].into(),
        vec![held],
        Duration::from_millis(2),
    )
    .expect("the prober starts");

    // Never renewed: never answered.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(prober.answers().len(), 0, "answered without a lease");

    let last_renewal = netns.run(|| {
        let mut renewer = Renewer::default();
        let until = Instant::now() + Duration::from_millis(400);
        let mut last = Instant::now();
        while Instant::now() < until {
            renewer
                .renew(&["dv0".to_owned()])
                .expect("a renewal goes out");
            last = Instant::now();
            std::thread::sleep(Duration::from_millis(5));
        }
        last
    });
    // Long enough after the last renewal that answers would have gone on without the lease.
    std::thread::sleep(Duration::from_millis(300));
    let answers = prober.stop().expect("the prober ran");
    netns.run(dvipd::kernel_lease::remove);

    let during = answers.iter().filter(|a| a.at <= last_renewal).count();
    assert!(during > 20, "renewed for 400 ms, answered {during} times");
    let late: Vec<Duration> = answers
        .iter()
        .filter_map(|a| a.at.checked_duration_since(last_renewal))
        .collect();
    // The kernel's tick (up to 4 ms at 250 Hz) and a reply on its way are the slack.
    let bound = timeout + Duration::from_millis(30);
    assert!(
        late.iter().all(|&d| d <= bound),
        "answers after the lease ran out: {late:?}"
    );
}

/// A reload replaces the table (dvipd does it when the addresses change): the replacement is
/// one nftables transaction, so an address whose lease ran out is never answered while the
/// table is swapped, and an address the reload adds is guarded from then on.
#[test]
fn a_reload_never_lets_an_unleased_address_answer_and_guards_what_it_adds() {
    let (kept, added): (Ipv4Addr, Ipv4Addr) =
        ([198, 51, 100, 10].into(), [198, 51, 100, 11].into());
    let netns = netns_holding("dvkr", &[kept, added]);
    netns
        .run(|| guarding(vec![kept]).install())
        .expect("nft loads the lease table");
    let prober = Prober::start(
        netns.client().expect("a client"),
        "dv1",
        [198, 51, 100, 200].into(),
        vec![kept, added],
        Duration::from_millis(1),
    )
    .expect("the prober starts");
    let answered = |address: Ipv4Addr, after: Instant| {
        prober
            .answers()
            .iter()
            .filter(|a| a.address == address && a.at >= after)
            .count()
    };

    // Not yet in the table, the added address answers as the kernel would.
    let start = Instant::now();
    while answered(added, start) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the unguarded address never answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Reloads back and forth, no renewal at any time.
    for i in 0..40 {
        let addresses = if i % 2 == 0 {
            vec![kept, added]
        } else {
            vec![kept]
        };
        netns
            .run(|| guarding(addresses).install())
            .expect("nft replaces the table");
    }
    netns
        .run(|| guarding(vec![kept, added]).install())
        .expect("nft replaces the table");
    let guarded = Instant::now();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        answered(kept, start),
        0,
        "the kept address answered while the table was replaced"
    );
    // A reply already on its way when the table took it in is the slack.
    let since = guarded + Duration::from_millis(10);
    assert_eq!(
        answered(added, since),
        0,
        "the added address is not guarded"
    );

    // Renewed, both answer: the guard lets leased addresses through.
    let renewed = Instant::now();
    netns.run(|| {
        let mut renewer = Renewer::default();
        while renewed.elapsed() < Duration::from_millis(300) {
            renewer
                .renew(&["dv0".to_owned()])
                .expect("a renewal goes out");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let answers = prober.stop().expect("the prober ran");
    netns.run(dvipd::kernel_lease::remove);
    for address in [kept, added] {
        let n = answers
            .iter()
            .filter(|a| a.address == address && a.at >= renewed)
            .count();
        assert!(n > 20, "{address}: renewed for 300 ms, answered {n} times");
    }
}

/// What the lease table drops on its way out, the kernel refuses with `ENOBUFS`: dvipd must
/// read it as "not now" (the interface is there), not as an interface gone, or it reopens its
/// raw socket for every one of thousands of refused announcements.
#[test]
fn an_announcement_the_lease_table_drops_is_refused_for_the_moment() {
    use dvipd::announce::{Announcer, Audience};
    let held: Ipv4Addr = [198, 51, 100, 10].into();
    let netns = netns_holding("dvka", &[held]);
    let lease = guarding(vec![held]);
    let (before, refused, after) = netns.run(|| {
        let mut announcer = Announcer::default();
        let before = announcer.announce("dv0", held.into(), Audience::Everyone);
        lease.install().expect("nft loads the lease table");
        let refused = announcer.announce("dv0", held.into(), Audience::Everyone);
        let mut renewer = Renewer::default();
        renewer
            .renew(&["dv0".to_owned()])
            .expect("a renewal goes out");
        let after = announcer.announce("dv0", held.into(), Audience::Everyone);
        dvipd::kernel_lease::remove();
        (before, refused, after)
    });
    assert_eq!(before.expect("no table: it goes out"), 1);
    let e = refused.expect_err("the table drops it");
    assert!(e.queue_full(), "read as a lost interface: {e}");
    assert_eq!(after.expect("renewed: it goes out"), 1);
}

/// The elements of `dvip_silence`'s set in the current namespace, sorted.
fn silent_listed() -> Vec<Ipv4Addr> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "set", "netdev", "dvip_silence", "silent"])
        .output()
        .expect("nft runs");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft -j");
    let mut elements: Vec<Ipv4Addr> = listed["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["set"]["elem"].as_array())
        .flatten()
        .filter_map(|e| e.as_str()?.parse().ok())
        .collect();
    elements.sort();
    elements
}

/// Pre-plumbing's table (`dvipd --pre-plumb`): its set, changed over netlink, holds what the
/// changes say, all of a change or none of it, thousands at once; and an address in it does
/// not answer ARP while one out of it does.
#[test]
fn the_silent_set_changes_over_netlink_and_keeps_its_addresses_from_answering() {
    use dvipd::nfset::{NfSetError, Step};
    let (a, b, c): (Ipv4Addr, Ipv4Addr, Ipv4Addr) = (
        [198, 51, 100, 10].into(),
        [198, 51, 100, 11].into(),
        [198, 51, 100, 12].into(),
    );
    let netns = netns_holding("dvsl", &[a, b]);
    netns
        .run(|| dvipd::silence::install(&["dv0".into()], &[a].into()))
        .expect("nft loads the silence table");
    assert_eq!(netns.run(silent_listed), [a]);
    netns
        .run(|| dvipd::silence::change(&[b, c], &[a]))
        .expect("changed");
    assert_eq!(netns.run(silent_listed), [b, c]);
    let refused = netns.run(|| {
        dvipd::nfset::change(
            "dvip_silence",
            "silent",
            &[
                (Step::Add, &[a]),
                (Step::Delete, &[a, [198, 51, 100, 99].into()]),
            ],
        )
    });
    assert!(
        matches!(refused, Err(NfSetError::Refused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        netns.run(silent_listed),
        [b, c],
        "a refused change changes nothing"
    );
    let many: Vec<Ipv4Addr> = (0..3_000u32)
        .map(|k| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + k))
        .collect();
    netns
        .run(|| dvipd::silence::change(&many, &[]))
        .expect("3,000 at once");
    assert_eq!(netns.run(silent_listed).len(), 3_002);
    netns
        .run(|| dvipd::silence::change(&[], &many))
        .expect("and back");
    assert_eq!(netns.run(silent_listed), [b, c]);

    let prober = Prober::start(
        netns.client().expect("a client"),
        "dv1",
        [198, 51, 100, 200].into(),
        vec![a, b],
        Duration::from_millis(2),
    )
    .expect("the prober starts");
    let start = Instant::now();
    while prober.answers().iter().filter(|x| x.address == a).count() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{a} never answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let answers = prober.stop().expect("the prober ran");
    assert!(
        answers.iter().all(|x| x.address != b),
        "silent {b} answered"
    );
}
