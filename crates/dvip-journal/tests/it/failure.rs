//! Faults injected into journals: a writer killed mid-record, damage in a closed segment, a
//! checkpoint past the end, and a full disk.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::Command;

use dvip_journal::{
    repair, Durability, Error, Header, Journal, Reader, RecordId, TailRepair, Timestamp, Writer,
    HEADER_MAGIC,
};

use crate::oracle::run;
use crate::{fresh, payloads, read_all};

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// Appends what a writer killed between its header and the rest of its payload leaves.
fn half_written_record(segment: &std::path::Path) {
    let header = Header {
        magic: HEADER_MAGIC,
        time: Timestamp {
            seconds: 1,
            micros: 0,
        },
        len: 100,
    };
    let mut file = OpenOptions::new().append(true).open(segment).unwrap();
    file.write_all(&header.encode()).unwrap();
    file.write_all(b"only part of the payload").unwrap();
}

#[test]
fn a_record_a_crashed_writer_left_half_written_is_never_read_and_is_cut_by_the_next_writer() {
    let (_tmp, path, journal) = fresh(1 << 20, &["master"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for i in 0..5 {
        writer.append(format!("a-{i}").as_bytes()).unwrap();
    }
    drop(writer);
    half_written_record(&path.join("00000000"));
    assert_eq!(
        payloads(&read_all(&path, "master", false)),
        numbered("a", 0..5),
        "readers see whole records only"
    );
    let mut writer = Writer::new(Journal::open(&path).unwrap(), Durability::Process);
    writer.append(b"a-5").unwrap();
    assert!(matches!(
        writer.take_repairs().as_slice(),
        [TailRepair::CutShort {
            segment: 0,
            bytes: 40,
            ..
        }]
    ));
    assert_eq!(
        payloads(&read_all(&path, "master", false)),
        numbered("a", 0..6)
    );
    let jlog: Vec<String> = run(&["read", path.to_str().unwrap(), "master"])
        .lines()
        .map(|l| l.splitn(3, ' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(jlog, numbered("a", 0..6), "jlog agrees");
}

#[test]
fn damage_in_a_closed_segment_is_repaired_and_reported_with_the_bytes_it_lost() {
    let (_tmp, path, journal) = fresh(200, &["master"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for i in 0..40 {
        writer.append(format!("d-{i:02}").as_bytes()).unwrap();
    }
    // Scribble over the header of segment 0's third record (each record is 16 + 4 bytes).
    let segment = path.join("00000000");
    let mut bytes = fs::read(&segment).unwrap();
    bytes[40..48].copy_from_slice(&[0xde; 8]);
    fs::write(&segment, &bytes).unwrap();
    let mut reader = Reader::open(Journal::open(&path).unwrap(), "master").unwrap();
    let batch = reader.read(1000).unwrap();
    assert_eq!(batch.damage.len(), 1);
    assert_eq!(batch.damage[0].segment, 0);
    assert_eq!(
        batch.damage[0].lost,
        vec![40..60],
        "exactly the damaged record"
    );
    let got = payloads(&batch.records);
    let expected: Vec<String> = numbered("d", 0..40)
        .into_iter()
        .map(|s| format!("d-{:02}", &s[2..].parse::<u32>().unwrap()))
        .filter(|s| s != "d-02")
        .collect();
    assert_eq!(got, expected, "everything but the damaged record, in order");
    let jlog = run(&["read", path.to_str().unwrap(), "master", "checkpoint"]);
    assert_eq!(jlog.lines().count(), 39, "jlog reads the repaired journal");
}

#[test]
fn repair_cuts_a_half_written_record_and_fixes_closed_segments() {
    let (_tmp, path, journal) = fresh(200, &["master"]);
    let mut writer = Writer::new(journal, Durability::Process);
    for i in 0..30 {
        writer.append(format!("r-{i:02}").as_bytes()).unwrap();
    }
    let segment = path.join("00000001");
    let mut bytes = fs::read(&segment).unwrap();
    bytes[0..4].copy_from_slice(&[0; 4]);
    fs::write(&segment, &bytes).unwrap();
    let open = dvip_journal::segment_name(writer.journal().meta().unwrap().storage_log);
    half_written_record(&path.join(open));
    let report = repair(&Journal::open(&path).unwrap()).unwrap();
    assert_eq!(report.segments.len(), 1);
    assert_eq!(report.segments[0].lost, vec![0..20]);
    assert!(matches!(
        report.tail.as_slice(),
        [TailRepair::CutShort { bytes: 40, .. }]
    ));
    assert_eq!(read_all(&path, "master", false).len(), 29);
    assert!(
        repair(&Journal::open(&path).unwrap()).unwrap() == Default::default(),
        "a second repair finds nothing"
    );
}

#[test]
fn a_checkpoint_past_the_end_is_brought_back_to_the_end() {
    let (_tmp, path, journal) = fresh(1 << 20, &["master"]);
    let mut writer = Writer::new(journal, Durability::Process);
    writer.append(b"one").unwrap();
    writer
        .journal()
        .set_checkpoint(
            "master",
            RecordId {
                segment: 0,
                position: 9,
            },
        )
        .unwrap();
    let mut reader = Reader::open(Journal::open(&path).unwrap(), "master").unwrap();
    assert!(reader.read(10).unwrap().records.is_empty());
    assert_eq!(
        reader.cursor(),
        RecordId {
            segment: 0,
            position: 1
        },
        "back at the last record"
    );
    writer.append(b"two").unwrap();
    assert_eq!(payloads(&reader.read(10).unwrap().records), ["two"]);
}

/// A tmpfs of `bytes`, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes}"),
                "dvip-journal-test",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount (the journal tests run as root, as ./test.sh does)");
        assert!(
            status.success(),
            "mounting a small tmpfs needs root: run the tests as ./test.sh does"
        );
        Self { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_keeps_no_part_of_it_and_writing_resumes_when_space_returns() {
    let disk = SmallDisk::new(256 * 1024);
    let path = disk.dir.path().join("j");
    let options = dvip_journal::CreateOptions {
        subscribers: vec!["master".into()],
        ..Default::default()
    };
    let journal = Journal::create(&path, &options).unwrap();
    // Fill the disk with something that can be removed later.
    let filler = disk.dir.path().join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    while file.write_all(&[7; 4096]).is_ok() {}
    drop(file);
    let mut writer = Writer::new(journal, Durability::Process);
    let line = vec![b'x'; 700];
    let mut kept = 0;
    let error = loop {
        match writer.append_batch(
            Timestamp {
                seconds: 1,
                micros: 0,
            },
            [line.as_slice(), line.as_slice()],
        ) {
            Ok(()) => kept += 2,
            Err(e) => break e,
        }
        assert!(kept < 10_000, "the disk never filled");
    };
    assert!(
        matches!(error, Error::DiskFull { .. }),
        "a full disk says so: {error}"
    );
    assert!(error.to_string().contains("disk is full"));
    let records = read_all(&path, "master", false);
    assert_eq!(
        records.len(),
        kept,
        "no part of the failed batch is visible"
    );
    assert!(writer.append(&line).is_err(), "still full");
    fs::remove_file(&filler).unwrap();
    writer.append(b"after").unwrap();
    let records = read_all(&path, "master", false);
    assert_eq!(records.len(), kept + 1);
    assert_eq!(records.last().unwrap().payload, b"after");
    let jlog = run(&["read", path.to_str().unwrap(), "master"]);
    assert_eq!(jlog.lines().count(), kept + 1, "jlog sees the same records");
}
