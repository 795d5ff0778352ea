//! The aggregator against dvipd's log service, in one process, inside a network namespace
//! made for the run (root required):
//! - replay: 200,000 lines of 200 bytes already in a node's journal, pulled over mutual TLS
//!   and written with the aggregator's commit (sync, state) per batch; the baseline, in the
//!   same run, reads the same journal locally and writes the lines to a file, synced per
//!   1,024 lines, with no network, TLS or state;
//! - lag: three nodes each writing 10,000 lines a second for 5 s while the aggregator pulls
//!   them; a line's lag is from its append on the node to its line in the aggregated file
//!   (median and p99); the baseline is a local subscriber polling the journal as often as the
//!   service does (every 20 ms), in the same run;
//! - the service's CPU during the lag run, as a share of one core per node.
//!
//! `cargo bench -p dvip-collect --bench collect [-- ROUNDS]` prints medians over the rounds.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dvip_collect::{Board, Collector, Output, Source, Template};
use dvip_journal::{CreateOptions, Durability, Journal, Reader, Timestamp, Writer};
use dvip_tls::TlsDir;
use dvipd::logs::metrics::LogMetrics;

const LINE_BYTES: usize = 200;
const REPLAY_LINES: usize = 200_000;
const RATE: usize = 10_000;
const LAG_SECONDS: u64 = 5;
const NODES: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn now_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

fn journal(path: &Path) -> Writer {
    let _ = std::fs::remove_dir_all(path);
    let options = CreateOptions {
        // `local` is the baselines' subscriber: it holds every segment until they read it.
        subscribers: vec!["master".into(), "local".into()],
        ..CreateOptions::default()
    };
    Writer::new(
        Journal::open_or_create(path, &options).unwrap(),
        Durability::Process,
    )
}

/// A line of exactly `LINE_BYTES`, carrying its node, number and append time.
fn line(node: usize, n: usize, micros: u64) -> Vec<u8> {
    let mut l = format!("node{node} {n} {micros} ").into_bytes();
    l.resize(LINE_BYTES, b'x');
    l
}

/// Starts a node's log service serving `journal` as `maillog`.
fn serve(tls: &TlsDir, node: usize, journal: &Path, port: u16) -> dvipd::logs::service::Service {
    let name = format!("node{node}");
    dvipd::logs::service::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        tls.server_config(&name).unwrap(),
        name,
        Arc::new(Mutex::new(vec![("maillog".into(), journal.to_owned())])),
        LogMetrics::default(),
    )
    .unwrap()
}

fn collector(root: &Path, nodes: &[(usize, u16)]) -> Collector {
    let _ = std::fs::remove_dir_all(root.join("out"));
    let _ = std::fs::remove_dir_all(root.join("state"));
    Collector {
        name: "collector".into(),
        sources: nodes
            .iter()
            .map(|&(node, port)| Source {
                node: format!("node{node}"),
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                subscribers: vec!["master".into()],
            })
            .collect(),
        output: Output {
            template: Template::parse(&format!("{}/out/%{{l}}/%{{n}}", root.display())).unwrap(),
            file_mode: 0o640,
            dir_mode: 0o755,
            files: Arc::new(dvip_collect::OpenFiles::new(None, None)),
        },
        state_dir: root.join("state"),
    }
}

fn written(board: &Board) -> u64 {
    board
        .report("collector")
        .streams
        .iter()
        .map(|s| s.written_lines)
        .sum()
}

/// Seconds to pull `REPLAY_LINES` already in a journal.
fn replay(root: &Path, tls: &TlsDir, port: u16) -> f64 {
    let path = root.join("replay.cluster");
    let mut writer = journal(&path);
    let lines: Vec<Vec<u8>> = (0..REPLAY_LINES).map(|n| line(1, n, 0)).collect();
    for chunk in lines.chunks(1024) {
        writer
            .append_batch(
                Timestamp::from_system(SystemTime::now()),
                chunk.iter().map(Vec::as_slice),
            )
            .unwrap();
    }
    let _service = serve(tls, 1, &path, port);
    let collector = collector(root, &[(1, port)]);
    let board = Board::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = tls.client_config("collector").unwrap();
    let start = Instant::now();
    let runner = {
        let (board, stop) = (board.clone(), Arc::clone(&stop));
        std::thread::spawn(move || dvip_collect::run(collector, client, &board, &stop))
    };
    while written(&board) < REPLAY_LINES as u64 {
        assert!(start.elapsed() < Duration::from_secs(300), "replay stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    took
}

/// Seconds to read the same journal locally and write its lines to a file, synced per 1,024.
fn local_copy(root: &Path) -> f64 {
    let path = root.join("replay.cluster");
    let mut reader = Reader::open(Journal::open(&path).unwrap(), "local").unwrap();
    let out = root.join("local-copy");
    let _ = std::fs::remove_file(&out);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .unwrap();
    let start = Instant::now();
    let mut copied = 0;
    loop {
        let batch = reader.read(1024).unwrap();
        if batch.records.is_empty() {
            break;
        }
        let mut bytes = Vec::new();
        for r in &batch.records {
            bytes.extend_from_slice(&r.payload);
            bytes.push(b'\n');
        }
        file.write_all(&bytes).unwrap();
        file.sync_data().unwrap();
        copied += batch.records.len();
    }
    assert_eq!(copied, REPLAY_LINES);
    start.elapsed().as_secs_f64()
}

/// Appends `RATE` lines a second to each journal for `LAG_SECONDS`; the append time of each.
fn write_at_rate(writers: Vec<Writer>, done: &AtomicBool) -> Vec<std::thread::JoinHandle<()>> {
    let _ = done;
    writers
        .into_iter()
        .enumerate()
        .map(|(i, mut writer)| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let per_tick = RATE / 100;
                let mut n = 0;
                for tick in 0..(LAG_SECONDS * 100) {
                    let due = start + Duration::from_millis(tick * 10);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let micros = now_micros();
                    let lines: Vec<Vec<u8>> =
                        (n..n + per_tick).map(|k| line(i + 1, k, micros)).collect();
                    n += per_tick;
                    writer
                        .append_batch(
                            Timestamp::from_system(SystemTime::now()),
                            lines.iter().map(Vec::as_slice),
                        )
                        .unwrap();
                }
            })
        })
        .collect()
}

/// Follows `files`, noting each new line's lag (now minus the append time it carries), until
/// `expected` lines have come.
fn watch(files: &[PathBuf], expected: usize) -> Vec<f64> {
    let mut offsets: HashMap<PathBuf, usize> = HashMap::new();
    let mut lags = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(120);
    while lags.len() < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} lines",
            lags.len()
        );
        for f in files {
            let Ok(bytes) = std::fs::read(f) else {
                continue;
            };
            let at = offsets.entry(f.clone()).or_insert(0);
            let now = now_micros();
            let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            for l in bytes[*at..=end]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let text = String::from_utf8_lossy(l);
                let micros: u64 = text.split(' ').nth(2).unwrap().parse().unwrap();
                lags.push(now.saturating_sub(micros) as f64 / 1000.0);
            }
            *at = end + 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    lags
}

/// Lags (ms) through the aggregator, lags of a local subscriber polling every 20 ms, and the
/// service's CPU per node (share of one core).
fn lag(root: &Path, tls: &TlsDir, base_port: u16) -> (Vec<f64>, Vec<f64>, f64) {
    let mut writers = Vec::new();
    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let path = root.join(format!("lag{i}.cluster"));
        writers.push(journal(&path));
        let port = base_port + i as u16;
        services.push(serve(tls, i, &path, port));
        nodes.push((i, port));
    }
    let collector = collector(root, &nodes);
    let board = Board::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = tls.client_config("collector").unwrap();
    let runner = {
        let (board, stop) = (board.clone(), Arc::clone(&stop));
        std::thread::spawn(move || dvip_collect::run(collector, client, &board, &stop))
    };
    // The baseline: a local subscriber of node 1's journal, polling as the service does.
    let local_lags = {
        let path = root.join("lag1.cluster");
        std::thread::spawn(move || {
            let mut reader = Reader::open(Journal::open(&path).unwrap(), "local").unwrap();
            let mut lags = Vec::new();
            let expected = RATE * LAG_SECONDS as usize;
            let deadline = Instant::now() + Duration::from_secs(120);
            while lags.len() < expected && Instant::now() < deadline {
                let batch = reader.read(4096).unwrap();
                let now = now_micros();
                for r in &batch.records {
                    let text = String::from_utf8_lossy(&r.payload);
                    let micros: u64 = text.split(' ').nth(2).unwrap().parse().unwrap();
                    lags.push(now.saturating_sub(micros) as f64 / 1000.0);
                }
                reader.checkpoint_read().unwrap();
                if batch.records.is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            lags
        })
    };
    // Wait until the aggregator is connected to every node before writing.
    let ready = Instant::now();
    while board
        .report("collector")
        .streams
        .iter()
        .filter(|s| s.connected)
        .count()
        < NODES
    {
        assert!(ready.elapsed() < Duration::from_secs(30), "not connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu_before = service_cpu();
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let writing = write_at_rate(writers, &done);
    let files: Vec<PathBuf> = (1..=NODES)
        .map(|i| root.join("out").join("maillog").join(format!("node{i}")))
        .collect();
    let lags = watch(&files, RATE * LAG_SECONDS as usize * NODES);
    let wall = started.elapsed().as_secs_f64();
    let cpu = (service_cpu() - cpu_before) / wall / NODES as f64;
    for w in writing {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    drop(services);
    (lags, local_lags.join().unwrap(), cpu)
}

/// CPU seconds the log service's connection threads have used, from /proc.
fn service_cpu() -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "dvip-logconn" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
        let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks;
    }
    total
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let ns = dvip_netns::Netns::new("dvip-bc");
    ns.loopback_up();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let tls = TlsDir::new(root.join("tls"));
    tls.init("bench", 1, false).unwrap();
    for name in ["node1", "node2", "node3", "collector"] {
        tls.issue(name, &[], 1).unwrap();
    }
    let (mut pulled, mut copied, mut lag50, mut lag99, mut local50, mut local99, mut cpus) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let port = 15000 + (round as u16) * 10;
        let (p, c, (lags, local, cpu)) = ns.run(|| {
            let p = replay(&root, &tls, port);
            let c = local_copy(&root);
            (p, c, lag(&root, &tls, port + 1))
        });
        pulled.push(REPLAY_LINES as f64 / p);
        copied.push(REPLAY_LINES as f64 / c);
        lag50.push(median(lags.clone()));
        lag99.push(p99(lags));
        local50.push(median(local.clone()));
        local99.push(p99(local));
        cpus.push(cpu * 100.0);
    }
    let mb = |lines: f64| lines * (LINE_BYTES + 1) as f64 / 1e6;
    println!("collect bench: {rounds} rounds, medians");
    println!("| row | value | baseline, same run | ratio |");
    println!("|---|---:|---:|---:|");
    let (p, c) = (median(pulled), median(copied));
    println!(
        "| replay of {REPLAY_LINES} lines of {LINE_BYTES} bytes, lines/s (MB/s) | {p:.0} ({:.1}) | local read and synced copy: {c:.0} ({:.1}) | {:.2}x |",
        mb(p),
        mb(c),
        p / c
    );
    let (l50, b50) = (median(lag50), median(local50));
    let (l99, b99) = (median(lag99), median(local99));
    println!(
        "| lag, {NODES} nodes at {RATE} lines/s each, median ms | {l50:.1} | local subscriber polling every 20 ms: {b50:.1} | {:.2}x |",
        l50 / b50
    );
    println!("| lag, p99 ms | {l99:.1} | {b99:.1} | {:.2}x |", l99 / b99);
    println!(
        "| log service CPU per node during the lag run, % of a core | {:.1} | | |",
        median(cpus)
    );
}
