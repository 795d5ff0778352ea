//! The kernel's end of a lease (docs/leases.md): once the table is loaded, an address
//! answers ARP only while renewals come, and stops within the timeout of the last one with
//! nothing running.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dvip_netns::{Netns, Prober};
use dvipd::kernel_lease::{KernelLease, Renewer};

#[test]
fn a_held_address_answers_only_while_its_lease_is_renewed() {
    let netns = Netns::with_client("dvkl");
    netns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    netns.ip(&["addr", "add", "198.51.100.10/32", "dev", "dv0"]);
    let held: Ipv4Addr = [198, 51, 100, 10].into();
    let timeout = Duration::from_millis(12);
    let lease = KernelLease {
        interfaces: vec!["dv0".into()],
        addresses: vec![held],
        addresses6: Vec::new(),
        timeout,
    };
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
