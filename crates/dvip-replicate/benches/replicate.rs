//! The replication core's costs: connection events a second through a replica (each counted,
//! batched and encoded for the bus, and applied by a second replica as another node would),
//! bytes on the bus per event, and memory per million tracked client addresses.
//!
//! `cargo bench -p dvip-replicate [-- ROUNDS EVENTS]` prints medians over the rounds, with the
//! baseline measured in the same round: the same events counted in a plain map, with no
//! batches, no encoding and no second node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dvip_replicate::{Action, Key, Replica, ReplicaOptions};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// The `k`th client address: spread over 198.18.0.0/15 and then beyond, as clients are.
fn client(k: u64) -> IpAddr {
    let k = u32::try_from(k % (1 << 24)).unwrap_or(0);
    IpAddr::V4((0xC612_0000u32.wrapping_add(k)).into())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One round: `events` connections (open, then close) from `events / 4` clients through a
/// replica, every batch delivered to a second one. Events a second and bus bytes per event.
fn replicated(events: u64) -> (f64, f64) {
    let names: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    let (mut a, mut b) = (
        Replica::new("a", ReplicaOptions::default()),
        Replica::new("b", ReplicaOptions::default()),
    );
    a.handle_view(1, &names);
    b.handle_view(1, &names);
    let _ = (a.take_actions(), b.take_actions());
    let mut bytes = 0usize;
    let mut now = Duration::from_secs(1_000_000);
    let started = Instant::now();
    for k in 0..events / 2 {
        let key = Key::Inbound(client(k % (events / 4).max(1)));
        a.open(&key, now);
        a.close(&key, now);
        if k % 1000 == 0 {
            now += Duration::from_millis(10);
            a.tick(now);
        }
        for Action::Send(message) in a.take_actions() {
            bytes += message.len();
            b.handle_message("a", &message).expect("decodes");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    (events as f64 / seconds, bytes as f64 / events as f64)
}

/// The baseline: the same events in a plain map.
fn plain(events: u64) -> f64 {
    let mut counts: BTreeMap<IpAddr, (u32, u32)> = BTreeMap::new();
    let started = Instant::now();
    for k in 0..events / 2 {
        let slot = counts.entry(client(k % (events / 4).max(1))).or_default();
        slot.0 += 1;
        slot.1 += 1;
        slot.0 -= 1;
    }
    std::hint::black_box(&counts);
    events as f64 / started.elapsed().as_secs_f64()
}

/// Bytes held by a replica tracking `addresses` clients, one connection made each.
fn memory(addresses: u64) -> usize {
    let before = live_bytes();
    let mut r = Replica::new("a", ReplicaOptions::default());
    r.handle_view(1, &["a".to_owned()].into());
    let now = Duration::from_secs(1_000_000);
    for k in 0..addresses {
        r.count(&Key::Inbound(client(k)), now);
        if k % 100 == 0 {
            let _ = r.take_actions();
        }
    }
    r.tick(now + Duration::from_secs(2));
    let _ = r.take_actions();
    let held = live_bytes().saturating_sub(before);
    drop(r);
    held
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(5).max(1);
    let events = args.get(1).copied().unwrap_or(1_000_000).max(8);
    let mut rates = Vec::new();
    let mut per_event = Vec::new();
    let mut baselines = Vec::new();
    for _ in 0..rounds {
        let (rate, bytes) = replicated(events);
        rates.push(rate);
        per_event.push(bytes);
        baselines.push(plain(events));
    }
    let (rate, baseline) = (median(rates), median(baselines));
    println!("replication core, {rounds} rounds of {events} connection events (medians):");
    println!(
        "  counted, batched, encoded, applied at a second replica: {:.0} events/s",
        rate
    );
    println!(
        "  baseline, a plain map of counts: {:.0} events/s (ratio {:.3})",
        baseline,
        rate / baseline
    );
    println!("  bytes on the bus per event: {:.1}", median(per_event));
    // dhat slows every allocation: the memory is measured apart, after the timings.
    let _profiler = dhat::Profiler::builder().testing().build();
    let million = memory(1_000_000);
    println!(
        "  memory for 1,000,000 tracked client addresses: {:.0} MiB ({} bytes each)",
        million as f64 / (1 << 20) as f64,
        million / 1_000_000
    );
}
