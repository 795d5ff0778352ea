//! Appends and reads of 200-byte records: dvip's journal against jlog's own C writer and
//! reader (the oracle of scripts/jlog-oracle.sh), measured in the same run, at the same
//! durability (jlog's default: nothing synced per record; dvip's `Durability::Process`).
//!
//! `cargo bench -p dvip-journal [-- ROUNDS RECORDS]` prints the median of each row over the
//! rounds and its ratio to jlog's. Each round uses a fresh journal on the same file system.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dvip_journal::{CreateOptions, Durability, Journal, Reader, Timestamp, Writer};

const RECORD_BYTES: usize = 200;
const BATCH: usize = 100;

fn oracle() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/jlog-oracle.sh"))
        .output()
        .expect("build the jlog oracle");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn jlog(oracle: &Path, args: &[&str]) -> Vec<u64> {
    let out = Command::new(oracle)
        .args(args)
        .output()
        .expect("run the oracle");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn fresh(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    let _ = std::fs::remove_dir_all(&path);
    let options = CreateOptions {
        subscribers: vec!["bench".into()],
        ..CreateOptions::default()
    };
    Journal::create(&path, &options).unwrap();
    path
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(7);
    let records = args.get(1).copied().unwrap_or(200_000);
    let oracle = oracle();
    let tmp = tempfile::tempdir().unwrap();
    let record = vec![b'x'; RECORD_BYTES];
    let (mut jlog_write, mut dvip_one, mut dvip_batch, mut jlog_read, mut dvip_read) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let path = fresh(tmp.path(), "jlog");
        let p = path.to_str().unwrap();
        let ns = jlog(
            &oracle,
            &[
                "bench-write",
                p,
                &records.to_string(),
                &RECORD_BYTES.to_string(),
            ],
        )[0];
        jlog_write.push(records as f64 / (ns as f64 / 1e9));
        let read = jlog(&oracle, &["bench-read", p, "bench"]);
        assert_eq!(read[0] as usize, records);
        jlog_read.push(records as f64 / (read[2] as f64 / 1e9));

        let path = fresh(tmp.path(), "one");
        let mut writer = Writer::new(Journal::open(&path).unwrap(), Durability::Process);
        let start = Instant::now();
        for _ in 0..records {
            writer.append(&record).unwrap();
        }
        dvip_one.push(records as f64 / start.elapsed().as_secs_f64());

        let path = fresh(tmp.path(), "batch");
        let mut writer = Writer::new(Journal::open(&path).unwrap(), Durability::Process);
        let start = Instant::now();
        let time = Timestamp::from_system(std::time::SystemTime::now());
        for _ in 0..records / BATCH {
            writer
                .append_batch(time, std::iter::repeat_n(record.as_slice(), BATCH))
                .unwrap();
        }
        dvip_batch.push(records as f64 / start.elapsed().as_secs_f64());

        let mut reader = Reader::open(Journal::open(&path).unwrap(), "bench").unwrap();
        let start = Instant::now();
        let mut seen = 0;
        loop {
            let batch = reader.read(4096).unwrap();
            if batch.records.is_empty() {
                break;
            }
            seen += batch.records.len();
            reader.checkpoint_read().unwrap();
        }
        assert_eq!(seen, records);
        dvip_read.push(records as f64 / start.elapsed().as_secs_f64());
    }
    let mb = |per_sec: f64| per_sec * (RECORD_BYTES + 16) as f64 / 1e6;
    let base_write = median(jlog_write.clone());
    let base_read = median(jlog_read.clone());
    println!(
        "journal bench: {rounds} rounds of {records} records of {RECORD_BYTES} bytes, medians"
    );
    println!("| row | records/s | MB/s on disk | vs jlog |");
    println!("|---|---:|---:|---:|");
    for (name, samples, base) in [
        ("jlog C writer, one record a call", jlog_write, base_write),
        ("dvip writer, one record a call", dvip_one, base_write),
        (
            &format!("dvip writer, batches of {BATCH}") as &str,
            dvip_batch,
            base_write,
        ),
        ("jlog C reader (interval, checkpoint)", jlog_read, base_read),
        (
            "dvip reader (4,096 a read, checkpoint)",
            dvip_read,
            base_read,
        ),
    ] {
        let m = median(samples);
        println!("| {name} | {m:.0} | {:.1} | {:.2}x |", mb(m), m / base);
    }
}
