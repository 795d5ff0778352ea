//! The ARP prober against a real kernel (root): every address is asked once per interval, even
//! when a round holds a thousand addresses and most of them never answer, and waiting between
//! rounds costs no CPU (the lab has two cores, and the failover needs them).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dvip_netns::{Answer, Netns, Prober};

/// One probe at a time: the CPU check reads the whole process's time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Probes `count` addresses from 198.18.0.1, of which the first ten answer, every `interval`
/// for 600 ms. Returns the answers, how long it ran and the CPU seconds the process used.
fn probe(count: u32, interval: Duration) -> (Vec<Answer>, Duration, f64) {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = Netns::with_client("probe-t");
    // The node's own address: the kernel answers only requests from a source it can route to.
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    // Ten answer; the rest are asked and stay silent, as moved addresses do until a survivor
    // plumbs them.
    for k in 1..=10 {
        ns.ip(&["addr", "add", &format!("198.18.0.{k}/32"), "dev", "dv0"]);
    }
    let targets: Vec<Ipv4Addr> = (0..count)
        .map(|k| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + k))
        .collect();
    let prober = Prober::start(
        ns.client().expect("a client namespace"),
        "dv1",
        "198.51.100.200".parse().expect("v4"),
        targets,
        interval,
    )
    .expect("the prober starts");
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    std::thread::sleep(Duration::from_millis(600));
    let cpu = cpu_seconds() - cpu_before;
    let answers = prober.stop().expect("the prober ran");
    (answers, started.elapsed(), cpu)
}

/// How many rounds 198.18.0.1 answered in, against how many the interval allows; checks that
/// the ten local addresses answered and that 198.18.0.1 did in most rounds (slack for a busy
/// machine; a prober whose rounds stretch, waiting on reads between slices, answers in a
/// fraction of them).
fn answered_in_most_rounds(
    answers: &[Answer],
    elapsed: Duration,
    interval: Duration,
) -> (usize, f64) {
    let answered: BTreeSet<Ipv4Addr> = answers.iter().map(|a| a.address).collect();
    assert_eq!(
        answered.len(),
        10,
        "the ten local addresses answer: {answered:?}"
    );
    let rounds: BTreeSet<u64> = answers
        .iter()
        .filter(|a| a.address == Ipv4Addr::new(198, 18, 0, 1))
        .map(|a| a.round)
        .collect();
    let (rounds, expected) = (rounds.len(), elapsed.as_secs_f64() / interval.as_secs_f64());
    assert!(
        rounds as f64 > expected * 0.6,
        "198.18.0.1 answered in {rounds} rounds of about {expected:.0} in {elapsed:?}"
    );
    (rounds, expected)
}

#[test]
fn a_round_of_a_thousand_addresses_lasts_the_interval() {
    let interval = Duration::from_millis(5);
    let (answers, elapsed, _) = probe(1_000, interval);
    let (rounds, expected) = answered_in_most_rounds(&answers, elapsed, interval);
    assert!(
        rounds as f64 <= expected * 1.1 + 1.0,
        "no more rounds than the interval allows: {rounds} in {elapsed:?}"
    );
}

#[test]
fn probing_a_few_addresses_leaves_the_cpu_idle_between_rounds() {
    let interval = Duration::from_millis(2);
    let (answers, elapsed, cpu) = probe(10, interval);
    answered_in_most_rounds(&answers, elapsed, interval);
    // Ten requests every 2 ms cost little; a prober that spins between rounds uses a core.
    assert!(
        cpu < 0.25,
        "{cpu:.2} CPU seconds in {elapsed:?} probing ten addresses"
    );
}

/// CPU time this process used so far (user and system), from /proc, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("a name in parentheses") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // The kernel reports clock ticks; USER_HZ is 100 on Linux.
    ticks / 100.0
}

#[test]
fn the_clients_own_replies_are_not_answers() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = Netns::with_client("probe-own");
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    ns.ip(&["addr", "add", "198.18.0.1/32", "dev", "dv0"]);
    let client: Ipv4Addr = "198.51.100.200".parse().expect("v4");
    let prober = Prober::start(
        ns.client().expect("a client namespace"),
        "dv1",
        client,
        vec![Ipv4Addr::new(198, 18, 0, 1)],
        Duration::from_millis(5),
    )
    .expect("the prober starts");
    // The node asks for the client's address (as a node does before answering a client's TCP
    // connection once its neighbour entry went stale), and the client's kernel replies: a
    // reply the prober's socket sees going out, about the client, from the client's MAC. Each
    // connection forgets the neighbour first, so every one makes the node ask.
    let nothing_listens: std::net::SocketAddr = "198.51.100.200:9".parse().expect("address");
    for _ in 0..5 {
        ns.ip(&["neigh", "flush", "dev", "dv0"]);
        let refused = ns.run(|| {
            std::net::TcpStream::connect_timeout(&nothing_listens, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| e.kind())
        });
        assert_eq!(
            refused,
            Err(std::io::ErrorKind::ConnectionRefused),
            "the node reaches the client"
        );
    }
    let answers = prober.stop().expect("the prober ran");
    let about: BTreeSet<Ipv4Addr> = answers.iter().map(|a| a.address).collect();
    assert_eq!(
        about,
        BTreeSet::from([Ipv4Addr::new(198, 18, 0, 1)]),
        "only the address asked for"
    );
}
