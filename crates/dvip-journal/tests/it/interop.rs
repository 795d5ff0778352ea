//! dvip and jlog's own library on the same journals: each reads what the other writes, each
//! honours the other's checkpoints, and both work on one journal at the same time.

use std::io::{BufRead, BufReader};

use dvip_journal::{Durability, Journal, Reader, Timestamp, Writer};

use crate::oracle::{parse_line, run, spawn};
use crate::{fresh, payloads, read_all};

fn s(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn jlog_reads_every_record_dvip_writes_in_order_with_its_time() {
    let (_tmp, path, journal) = fresh(1024, &["master"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for i in 0..300u32 {
        let time = Timestamp {
            seconds: 1_700_000_000 + i,
            micros: i * 3,
        };
        writer
            .append_batch(time, [format!("dvip-{i}").as_bytes()])
            .unwrap();
    }
    let lines = run(&["read", s(&path), "master", "checkpoint"]);
    let records: Vec<_> = lines.lines().map(parse_line).collect();
    assert_eq!(records.len(), 300, "jlog read every record");
    for (i, (id, time, payload)) in records.iter().enumerate() {
        assert_eq!(payload, &format!("dvip-{i}"));
        assert_eq!(time, &format!("{}.{:06}", 1_700_000_000 + i, i * 3));
        assert!(id.parse::<dvip_journal::RecordId>().is_ok());
    }
    assert!(records.last().unwrap().0 > records[0].0);
}

#[test]
fn dvip_reads_every_record_jlog_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j");
    run(&["init", s(&path), "master"]);
    run(&["write", s(&path), "5000", "jlog", "1700000000"]);
    let records = read_all(&path, "master", true);
    assert_eq!(
        payloads(&records),
        (0..5000).map(|i| format!("jlog-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        records[7].time,
        Timestamp {
            seconds: 1_700_000_000,
            micros: 7
        }
    );
}

#[test]
fn each_side_keeps_segments_the_others_subscriber_has_not_read_and_removes_them_after() {
    let (_tmp, path, journal) = fresh(512, &["dvip", "jlog"]);
    let mut writer = Writer::new(Journal::open(&path).unwrap(), Durability::Process);
    for i in 0..200 {
        writer.append(format!("r-{i}").as_bytes()).unwrap();
    }
    let all = journal.segments().unwrap();
    // jlog's subscriber reads and checkpoints everything: dvip's still holds every segment.
    assert_eq!(
        run(&["read", s(&path), "jlog", "checkpoint"])
            .lines()
            .count(),
        200
    );
    assert_eq!(journal.segments().unwrap(), all);
    // dvip's subscriber catches up: now both are past the old segments, which go.
    read_all(&path, "dvip", true);
    let left = journal.segments().unwrap();
    assert!(
        left.len() < all.len() && left[0] > all[0],
        "read segments removed: {left:?}"
    );
    // And the other way: dvip ahead, jlog behind; jlog's checkpoint removes them.
    for i in 200..400 {
        writer.append(format!("r-{i}").as_bytes()).unwrap();
    }
    read_all(&path, "dvip", true);
    let held = journal.segments().unwrap();
    assert_eq!(
        held[0], left[0],
        "jlog's subscriber still holds its segments"
    );
    assert_eq!(
        run(&["read", s(&path), "jlog", "checkpoint"])
            .lines()
            .count(),
        200
    );
    assert!(journal.segments().unwrap()[0] > held[0]);
}

#[test]
fn a_dvip_reader_follows_a_jlog_writer_while_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j");
    run(&["init", s(&path), "master"]);
    let mut jlog = spawn(&["write", s(&path), "40000", "live"]);
    let mut reader = Reader::open(Journal::open(&path).unwrap(), "master").unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < 40000 {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of 40000 in a minute",
            seen.len()
        );
        let batch = reader.read(5000).unwrap();
        assert!(batch.damage.is_empty() && batch.blocked_at.is_none());
        if batch.records.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        seen.extend(batch.records.into_iter().map(|r| r.payload));
        reader.checkpoint_read().unwrap();
    }
    assert!(jlog.wait().unwrap().success());
    let expected: Vec<Vec<u8>> = (0..40000)
        .map(|i| format!("live-{i}").into_bytes())
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_jlog_reader_follows_a_dvip_writer_while_it_writes() {
    let (_tmp, path, journal) = fresh(64 * 1024, &["master"]);
    let mut jlog = spawn(&["follow", s(&path), "master", "40000"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for chunk in 0..400 {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("live-{}", chunk * 100 + i))
            .collect();
        writer
            .append_batch(
                Timestamp {
                    seconds: 1,
                    micros: 0,
                },
                lines.iter().map(String::as_bytes),
            )
            .unwrap();
    }
    let out = BufReader::new(jlog.stdout.take().unwrap());
    let got: Vec<String> = out.lines().map(|l| parse_line(&l.unwrap()).2).collect();
    assert!(jlog.wait().unwrap().success());
    assert_eq!(
        got,
        (0..40000).map(|i| format!("live-{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn a_jlog_writer_and_a_dvip_writer_share_one_journal() {
    let (_tmp, path, journal) = fresh(32 * 1024, &["dvip", "jlog"]);
    let mut jlog = spawn(&["write", s(&path), "20000", "c"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for i in 0..20000 {
        writer.append(format!("rust-{i}").as_bytes()).unwrap();
    }
    assert!(jlog.wait().unwrap().success());
    let mine = payloads(&read_all(&path, "dvip", true));
    let theirs: Vec<String> = run(&["read", s(&path), "jlog", "checkpoint"])
        .lines()
        .map(|l| parse_line(l).2)
        .collect();
    assert_eq!(mine, theirs, "both readers see one order");
    for prefix in ["c-", "rust-"] {
        let own: Vec<&String> = mine.iter().filter(|p| p.starts_with(prefix)).collect();
        let expected: Vec<String> = (0..20000).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(own.len(), 20000, "every {prefix} record once");
        assert!(
            own.iter().zip(&expected).all(|(a, b)| *a == b),
            "{prefix} records in their order"
        );
    }
}
