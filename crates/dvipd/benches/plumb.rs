//! Plumbing many addresses on one interface: dvipd's pipelined netlink requests against
//! `ip -batch` (iproute2 reading one file of `addr add` lines), measured in the same run, in a
//! network namespace of its own with a veth interface. Root only.
//!
//! A third column spreads the same addresses over holder interfaces (`dvipd --spread`, one
//! holder per 256 addresses) to show what short lists buy.
//!
//! `cargo bench -p dvipd --bench plumb` prints, per size, the median of a few runs of each and
//! their ratios to `ip -batch`. Every run starts from an empty namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use dvip_netns::{in_namespace, try_ip};
use dvipd::plumb::Plumber;

const SIZES: [usize; 3] = [1_024, 4_096, 10_240];
const RUNS: usize = 5;

fn addresses(n: usize) -> Vec<Ipv4Addr> {
    (0..n)
        .map(|k| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 10)) + k as u32))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn flush(ns: &str) {
    try_ip(&["-n", ns, "addr", "flush", "dev", "bench0"]).expect("flush");
}

fn ip_batch(ns: &str, n: usize, dir: &std::path::Path) -> Duration {
    let file = dir.join(format!("add-{n}.batch"));
    let text: String = addresses(n)
        .iter()
        .map(|a| format!("addr add {a}/32 dev bench0 valid_lft 60 preferred_lft 60\n"))
        .collect();
    std::fs::write(&file, text).expect("batch file");
    let start = Instant::now();
    let ok = Command::new("ip")
        .args(["-n", ns, "-batch"])
        .arg(&file)
        .status()
        .is_ok_and(|s| s.success());
    let took = start.elapsed();
    assert!(ok, "ip -batch failed");
    took
}

/// dvipd plumbing `n` addresses, spread over `holders` holder interfaces (0: all on `bench0`);
/// everything is removed again afterwards, untimed.
fn dvipd(ns: &str, n: usize, holders: u16) -> Duration {
    in_namespace(ns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut plumber = Plumber::connect(Duration::from_secs(60)).expect("netlink");
            plumber.spread_over(holders);
            let items: Vec<(IpAddr, u8, String)> = addresses(n)
                .into_iter()
                .map(|a| (IpAddr::V4(a), 32, "bench0".to_owned()))
                .collect();
            let start = Instant::now();
            for chunk in items.chunks(256) {
                for result in plumber.plumb_many(chunk).await {
                    result.expect("plumbed");
                }
            }
            let took = start.elapsed();
            plumber.remove_all_ours().await.expect("removed");
            took
        })
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to run quickly.
    }
    let ns = format!("dvbench{}", std::process::id());
    try_ip(&["netns", "add", &ns]).expect("a namespace (root needed)");
    let cleanup = scopeguard(ns.clone());
    // A veth pair (the dummy module is not everywhere), both ends up.
    try_ip(&[
        "-n", &ns, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1",
    ])
    .expect("veth");
    try_ip(&["-n", &ns, "link", "set", "bench0", "up"]).expect("up");
    try_ip(&["-n", &ns, "link", "set", "bench1", "up"]).expect("up");
    let dir = std::env::temp_dir().join(&ns);
    std::fs::create_dir_all(&dir).expect("dir");
    println!("plumbing N /32 addresses, median of {RUNS} runs; ratios to ip -batch");
    println!(
        "{:>7} {:>12} {:>12} {:>6} {:>8} {:>14} {:>6}",
        "N", "ip -batch", "dvipd", "ratio", "holders", "dvipd spread", "ratio"
    );
    for n in SIZES {
        let holders = u16::try_from(n.div_ceil(256)).expect("a few holders");
        let mut batch = Vec::new();
        let mut ours = Vec::new();
        let mut spread = Vec::new();
        for _ in 0..RUNS {
            flush(&ns);
            batch.push(ip_batch(&ns, n, &dir));
            flush(&ns);
            ours.push(dvipd(&ns, n, 0));
            spread.push(dvipd(&ns, n, holders));
        }
        let (b, o, s) = (median(batch), median(ours), median(spread));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{n:>7} {:>9.1} ms {:>9.1} ms {:>5.2}x {holders:>8} {:>11.1} ms {:>5.2}x",
            ms(b),
            ms(o),
            ms(o) / ms(b),
            ms(s),
            ms(s) / ms(b)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(cleanup);
}

/// Deletes the namespace when dropped, also when a run panics.
fn scopeguard(ns: String) -> impl Drop {
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = try_ip(&["netns", "del", &self.0]);
        }
    }
    Guard(ns)
}
