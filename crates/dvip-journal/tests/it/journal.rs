//! A journal on its own: order, segments, subscribers, checkpoints and retention.

use dvip_journal::{
    CreateOptions, Durability, Journal, Reader, RecordId, Start, Timestamp, Writer,
};

use crate::{fresh, payloads, read_all};

fn write_numbered(journal: &Journal, from: usize, count: usize) {
    let mut writer = Writer::new(Journal::open(journal.path()).unwrap(), Durability::Process);
    for i in from..from + count {
        writer.append(format!("line-{i}").as_bytes()).unwrap();
    }
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line-{i}")).collect()
}

#[test]
fn records_come_back_in_order_across_segments() {
    let (_tmp, path, journal) = fresh(256, &["master"]);
    write_numbered(&journal, 0, 100);
    assert!(
        journal.segments().unwrap().len() > 5,
        "a 256-byte unit makes many segments"
    );
    let records = read_all(&path, "master", false);
    assert_eq!(payloads(&records), numbered(0..100));
    assert!(
        records.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase"
    );
}

#[test]
fn a_batch_keeps_its_time_and_splits_at_the_unit_size() {
    let (_tmp, path, journal) = fresh(300, &["master"]);
    let mut writer = Writer::new(journal, Durability::Disk);
    let time = Timestamp {
        seconds: 1_700_000_000,
        micros: 42,
    };
    let lines: Vec<String> = numbered(0..50);
    writer
        .append_batch(time, lines.iter().map(String::as_bytes))
        .unwrap();
    let records = read_all(&path, "master", false);
    assert_eq!(payloads(&records), lines);
    assert!(records.iter().all(|r| r.time == time));
    let segments = writer.journal().status().unwrap().segments;
    assert!(segments.len() > 3);
    let last = segments.last().unwrap().id;
    assert!(segments
        .iter()
        .filter(|s| s.id != last)
        .all(|s| s.bytes >= 300 && s.bytes < 300 + 40));
}

#[test]
fn a_segment_goes_only_once_every_subscriber_has_read_past_it() {
    let (_tmp, path, journal) = fresh(256, &["fast", "slow"]);
    write_numbered(&journal, 0, 60);
    let before = journal.segments().unwrap();
    read_all(&path, "fast", true);
    assert_eq!(
        journal.segments().unwrap(),
        before,
        "slow still needs every segment"
    );
    let mut slow = Reader::open(Journal::open(&path).unwrap(), "slow").unwrap();
    let batch = slow.read(30).unwrap();
    slow.checkpoint_read().unwrap();
    let kept = journal.segments().unwrap();
    assert!(
        kept.len() < before.len(),
        "segments both have read are gone"
    );
    assert_eq!(
        kept.first().copied(),
        Some(batch.records.last().unwrap().id.segment)
    );
    assert_eq!(payloads(&read_all(&path, "slow", true)), numbered(30..60));
}

#[test]
fn records_read_but_not_checkpointed_come_again_after_a_rewind_or_reopen() {
    let (_tmp, path, journal) = fresh(4096, &["master"]);
    write_numbered(&journal, 0, 10);
    let mut reader = Reader::open(Journal::open(&path).unwrap(), "master").unwrap();
    let first = reader.read(4).unwrap().records;
    reader.checkpoint(first[1].id).unwrap();
    assert_eq!(
        payloads(&reader.read(100).unwrap().records),
        numbered(4..10)
    );
    reader.rewind().unwrap();
    assert_eq!(
        payloads(&reader.read(100).unwrap().records),
        numbered(2..10)
    );
    assert_eq!(payloads(&read_all(&path, "master", false)), numbered(2..10));
}

#[test]
fn a_subscriber_added_at_the_end_sees_only_what_comes_after() {
    let (_tmp, path, journal) = fresh(256, &["master"]);
    write_numbered(&journal, 0, 30);
    journal.add_subscriber("late", Start::End).unwrap();
    journal.add_subscriber("early", Start::Begin).unwrap();
    assert!(matches!(
        journal.add_subscriber("late", Start::End),
        Err(dvip_journal::Error::SubscriberExists { .. })
    ));
    write_numbered(&journal, 30, 5);
    assert_eq!(payloads(&read_all(&path, "late", true)), numbered(30..35));
    assert_eq!(payloads(&read_all(&path, "early", true)), numbered(0..35));
    assert!(journal.remove_subscriber("late").unwrap());
    assert!(!journal.remove_subscriber("late").unwrap());
    assert!(matches!(
        Reader::open(Journal::open(&path).unwrap(), "late"),
        Err(dvip_journal::Error::UnknownSubscriber { .. })
    ));
}

#[test]
fn opening_by_uri_creates_the_journal_with_its_subscribers_and_adds_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("logs/mainlog.cluster");
    let options = CreateOptions {
        subscribers: vec!["master".into()],
        ..CreateOptions::default()
    };
    let journal = Journal::open_or_create(&path, &options).unwrap();
    assert_eq!(journal.subscribers().unwrap(), ["master"]);
    write_numbered(&journal, 0, 3);
    let more = CreateOptions {
        subscribers: vec!["master".into(), "backup".into()],
        ..CreateOptions::default()
    };
    let journal = Journal::open_or_create(&path, &more).unwrap();
    assert_eq!(journal.subscribers().unwrap(), ["backup", "master"]);
    assert_eq!(payloads(&read_all(&path, "backup", false)), numbered(0..3));
    assert!(matches!(
        Journal::open(tmp.path().join("nothing")),
        Err(dvip_journal::Error::NotFound { .. })
    ));
    assert!(matches!(
        Journal::open(tmp.path().join("logs")),
        Err(dvip_journal::Error::NotAJournal { .. })
    ));
}

#[test]
fn status_shows_each_subscribers_backlog_and_clean_removes_what_all_have_read() {
    let (_tmp, path, journal) = fresh(256, &["a", "b"]);
    write_numbered(&journal, 0, 40);
    read_all(&path, "a", true);
    let status = journal.status().unwrap();
    let backlog = |name: &str| {
        status
            .subscribers
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .backlog
            .clone()
    };
    assert_eq!(backlog("a").records, 0);
    assert_eq!(backlog("b").records, 40);
    assert_eq!(backlog("b").bytes, status.bytes);
    assert!(backlog("b").oldest.is_some());
    assert_eq!(
        status
            .segments
            .iter()
            .map(|s| u64::from(s.records))
            .sum::<u64>(),
        40
    );
    assert_eq!(journal.clean().unwrap(), 0, "b holds every segment");
    journal.remove_subscriber("b").unwrap();
    assert!(journal.clean().unwrap() > 0);
    assert_eq!(
        journal.checkpoint("a").unwrap().segment,
        journal.segments().unwrap()[0]
    );
    assert_eq!(RecordId::START.to_string(), "00000000:00000000");
}

#[test]
fn two_writers_in_one_process_interleave_without_losing_a_record() {
    let (_dir, path, journal) = fresh(4096, &["r"]);
    let mut first = Writer::new(journal, Durability::Process);
    let mut second = Writer::new(Journal::open(&path).expect("opens"), Durability::Process);
    let mut want = Vec::new();
    for i in 0..200 {
        let (writer, name) = if i % 3 == 0 {
            (&mut second, "second")
        } else {
            (&mut first, "first")
        };
        let line = format!("{name} {i:03} {}", "x".repeat(40));
        writer.append(line.as_bytes()).expect("append");
        want.push(line);
    }
    assert_eq!(payloads(&read_all(&path, "r", false)), want);
}

#[test]
fn writers_on_threads_that_open_or_create_one_journal_at_once_keep_every_record() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("j");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let options = CreateOptions {
                    subscribers: vec!["r".into()],
                    ..CreateOptions::default()
                };
                let journal = Journal::open_or_create(&path, &options).expect("opens");
                let mut writer = Writer::new(journal, Durability::Process);
                for i in 0..100 {
                    writer
                        .append(format!("{t} {i}").as_bytes())
                        .expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer thread");
    }
    let got = payloads(&read_all(&path, "r", false));
    assert_eq!(got.len(), 400, "{got:?}");
    for t in 0..4 {
        let mine: Vec<_> = got
            .iter()
            .filter(|l| l.starts_with(&format!("{t} ")))
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("{t} {i}")).collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "thread {t}'s records in order"
        );
    }
}

#[test]
fn a_segment_the_writer_moves_past_has_its_index_closed_with_every_record() {
    // A jlog reader that sized the segment before its last records landed would otherwise
    // close the index without them when it sees the metastore move on.
    let (_dir, path, journal) = fresh(4096, &["r"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for batch in 0..30 {
        let lines: Vec<String> = (0..37).map(|i| format!("batch {batch} line {i}")).collect();
        writer
            .append_batch(
                Timestamp::from_system(std::time::SystemTime::now()),
                lines.iter().map(String::as_bytes),
            )
            .expect("append");
    }
    // From the metastore's bytes: anything that reads the journal would index it itself.
    let metastore = std::fs::read(path.join("metastore")).expect("metastore");
    let writing = u32::from_le_bytes(metastore[..4].try_into().expect("4 bytes"));
    assert!(writing >= 3, "the test crosses segments: {writing}");
    for segment in 0..writing {
        let data = std::fs::read(path.join(format!("{segment:08x}"))).expect("segment");
        let mut offsets = Vec::new();
        let mut at = 0;
        while at + 16 <= data.len() {
            offsets.push(at as u64);
            let len = u32::from_le_bytes(data[at + 12..at + 16].try_into().expect("4 bytes"));
            at += 16 + len as usize;
        }
        assert_eq!(at, data.len(), "segment {segment} holds whole records");
        let index = std::fs::read(path.join(format!("{segment:08x}.idx")))
            .unwrap_or_else(|e| panic!("segment {segment} has no index: {e}"));
        let entries: Vec<u64> = index
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let mut want = offsets.clone();
        want.push(0);
        assert_eq!(
            entries, want,
            "segment {segment}: every record, then the closing 0"
        );
    }
}
