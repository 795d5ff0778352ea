//! Plumbing many addresses on one interface: dvipd's pipelined netlink requests against
//! `ip -batch` (iproute2 reading one file of `addr add` lines), measured in the same run, in a
//! network namespace of its own with a veth interface. Root only.
//!
//! `cargo bench -p dvipd --bench plumb` prints, per size, the median of a few runs of each and
//! their ratio. Every run starts from an empty interface.

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

fn dvipd(ns: &str, n: usize) -> Duration {
    in_namespace(ns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut plumber = Plumber::connect(Duration::from_secs(60)).expect("netlink");
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
            start.elapsed()
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
    println!("plumbing N /32 addresses on one interface, median of {RUNS} runs");
    println!(
        "{:>7} {:>12} {:>12} {:>8}",
        "N", "ip -batch", "dvipd", "ratio"
    );
    for n in SIZES {
        let mut batch = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..RUNS {
            flush(&ns);
            batch.push(ip_batch(&ns, n, &dir));
            flush(&ns);
            ours.push(dvipd(&ns, n));
        }
        let (b, o) = (median(batch), median(ours));
        println!(
            "{n:>7} {:>9.1} ms {:>9.1} ms {:>7.2}x",
            b.as_secs_f64() * 1e3,
            o.as_secs_f64() * 1e3,
            o.as_secs_f64() / b.as_secs_f64()
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
