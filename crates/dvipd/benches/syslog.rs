//! The syslog path's cost per line: what dvipd's listener adds to a journal append.
//!
//! `cargo bench -p dvipd --bench syslog [-- ROUNDS LINES]` measures, each round on fresh
//! journals, with 200-byte Postfix-like RFC 3164 messages:
//! - the baseline: the same lines appended with `Writer::append_batch`, batches of 512 (what
//!   the listener writes at most per batch), nothing parsed;
//! - reading each line's program, facility and severity and choosing its route, alone;
//! - the listener's work without the socket: classify, route and append, batches of 512;
//! - the whole path: a sender thread writing datagrams to the unix socket of a running
//!   listener (`Inputs::start`), timed until the last line is in the journal.
//!
//! Prints medians over the rounds, and each row's cost per line as a ratio to the baseline's.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use dvip_config::syslog::{Facility, ProgramPattern, RouteMatch, Severity};
use dvip_config::{InputJournal, LogInputs, LogRoute, SyslogListen};
use dvip_journal::{CreateOptions, Durability, Journal, Timestamp, Writer};
use dvipd::logs::metrics::LogMetrics;
use dvipd::logs::syslog::{Router, Sinks};
use dvipd::logs::Inputs;

const LINE_BYTES: usize = 200;
const BATCH: usize = 512;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Postfix-like lines of exactly [`LINE_BYTES`], each different.
fn lines(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut line = format!(
                "<22>Dec  6 02:18:28 mx1 postfix/smtp[{}]: {i:010X}: to=<user{i}@example.net>, relay=mx.example.net[198.51.100.7]:25, status=sent (250 ok ",
                1000 + i % 30000
            )
            .into_bytes();
            line.resize(LINE_BYTES - 1, b'x');
            line.push(b')');
            line
        })
        .collect()
}

/// Three routes, the one taking these lines last: each line is tried against all three.
fn routes(log: &str) -> Vec<LogRoute> {
    let route = |name: &str, program: &str, facility: Facility| LogRoute {
        name: name.into(),
        matches: RouteMatch {
            programs: vec![ProgramPattern::new(program).expect("a pattern")],
            facilities: vec![facility],
            severity: Severity::DEBUG,
        },
        log: log.into(),
    };
    vec![
        route("exim", "exim*", Facility::MAIL),
        route("cron", "cron", Facility::from_name("cron").expect("cron")),
        route("postfix", "postfix/*", Facility::MAIL),
    ]
}

fn journal(root: &Path, name: &str) -> InputJournal {
    let path = root.join(name);
    let _ = std::fs::remove_dir_all(&path);
    InputJournal {
        log: "maillog".into(),
        path,
        subscribers: vec!["bench".into()],
    }
}

fn baseline(root: &Path, lines: &[Vec<u8>]) -> f64 {
    let j = journal(root, "plain");
    let options = CreateOptions {
        subscribers: j.subscribers.clone(),
        ..CreateOptions::default()
    };
    let mut writer = Writer::new(
        Journal::open_or_create(&j.path, &options).expect("journal"),
        Durability::Process,
    );
    let start = Instant::now();
    for chunk in lines.chunks(BATCH) {
        let time = Timestamp::from_system(SystemTime::now());
        writer
            .append_batch(time, chunk.iter().map(Vec::as_slice))
            .expect("append");
    }
    start.elapsed().as_secs_f64()
}

fn classify_only(lines: &[Vec<u8>]) -> f64 {
    let router = Router::new(routes("maillog"));
    let start = Instant::now();
    let mut routed = 0;
    for line in lines {
        routed += usize::from(router.log_for(line, 2026).is_some());
    }
    let took = start.elapsed().as_secs_f64();
    assert_eq!(routed, lines.len());
    took
}

fn listener_work(root: &Path, lines: &[Vec<u8>]) -> f64 {
    let router = Router::new(routes("maillog"));
    let mut sinks = Sinks::new(vec![journal(root, "routed")]);
    let start = Instant::now();
    for chunk in lines.chunks(BATCH) {
        let time = Timestamp::from_system(SystemTime::now());
        let taken: Vec<&[u8]> = chunk
            .iter()
            .map(Vec::as_slice)
            .filter(|l| router.log_for(l, 2026) == Some("maillog"))
            .collect();
        sinks.append("maillog", time, taken).expect("append");
    }
    start.elapsed().as_secs_f64()
}

fn whole_path(root: &Path, lines: &[Vec<u8>]) -> f64 {
    let socket: PathBuf = root.join("syslog.sock");
    let config = LogInputs {
        syslog: vec![SyslogListen::Unix(socket.clone())],
        routes: routes("maillog"),
        follows: Vec::new(),
        journals: vec![journal(root, "socket")],
    };
    let metrics = LogMetrics::default();
    let mut inputs = Inputs::start(&config, &metrics).expect("the listener starts");
    let sender = UnixDatagram::unbound().expect("a sender");
    let start = Instant::now();
    for line in lines {
        // A full socket buffer makes the sender wait, as syslog(3) does.
        sender.send_to(line, &socket).expect("send");
    }
    let label = dvipd::logs::metrics::JournalLabel {
        journal: "maillog".into(),
    };
    let deadline = start + Duration::from_secs(120);
    while metrics.records.get_or_create(&label).get() < lines.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the listener fell behind for good"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed().as_secs_f64();
    inputs.stop();
    took
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(7);
    let count = args.get(1).copied().unwrap_or(200_000);
    let root = std::env::temp_dir().join(format!("dvip-syslog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("a bench directory");
    let lines = lines(count);
    let mut rows: [(&str, Vec<f64>); 4] = [
        (
            "journal append alone, batches of 512 (baseline)",
            Vec::new(),
        ),
        (
            "read program, facility, severity; choose the route",
            Vec::new(),
        ),
        ("classify, route and append, batches of 512", Vec::new()),
        ("unix socket to dvipd's listener to the journal", Vec::new()),
    ];
    for _ in 0..rounds {
        rows[0].1.push(baseline(&root, &lines));
        rows[1].1.push(classify_only(&lines));
        rows[2].1.push(listener_work(&root, &lines));
        rows[3].1.push(whole_path(&root, &lines));
    }
    let _ = std::fs::remove_dir_all(&root);
    let base = median(rows[0].1.clone()) / count as f64;
    println!("syslog bench: {rounds} rounds of {count} lines of {LINE_BYTES} bytes, medians");
    println!("| row | lines/s | ns a line | vs baseline |");
    println!("|---|---:|---:|---:|");
    for (name, samples) in rows {
        let per_line = median(samples) / count as f64;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2}x |",
            1.0 / per_line,
            per_line * 1e9,
            per_line / base
        );
    }
}
