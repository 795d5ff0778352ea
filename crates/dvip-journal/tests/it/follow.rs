//! Following a log file through rotation and restarts: every line in the journal once, in order.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use dvip_journal::{Durability, Follower, Journal};

use crate::{fresh, payloads, read_all};

fn append(file: &Path, from: usize, to: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    for i in from..to {
        writeln!(f, "mainlog line {i}").unwrap();
    }
}

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("mainlog line {i}")).collect()
}

fn follower(file: &Path, journal: &Path) -> Follower {
    Follower::open(file, Journal::open(journal).unwrap(), Durability::Process).unwrap()
}

#[test]
fn lines_are_taken_once_across_restarts_and_an_unfinished_line_waits() {
    let (tmp, path, _journal) = fresh(1 << 20, &["master"]);
    let file = tmp.path().join("mainlog");
    append(&file, 0, 100);
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"half a li")
        .unwrap();
    assert_eq!(follower(&file, &path).poll().unwrap().lines, 100);
    // A restart: the new follower takes only what came after.
    let mut again = follower(&file, &path);
    assert_eq!(again.poll().unwrap().lines, 0, "the unfinished line waits");
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"ne\n")
        .unwrap();
    append(&file, 100, 150);
    assert_eq!(again.poll().unwrap().lines, 51);
    let mut expected = lines(0..100);
    expected.push("half a line".into());
    expected.extend(lines(100..150));
    assert_eq!(payloads(&read_all(&path, "master", false)), expected);
}

#[test]
fn a_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let (tmp, path, _journal) = fresh(4096, &["master"]);
    let file = tmp.path().join("mainlog");
    append(&file, 0, 50);
    let mut f = follower(&file, &path);
    f.poll().unwrap();
    // logrotate renames; the MTA writes a little more to the old file before reopening.
    fs::rename(&file, tmp.path().join("mainlog.1")).unwrap();
    append(&tmp.path().join("mainlog.1"), 50, 60);
    append(&file, 60, 100);
    let progress = f.poll().unwrap();
    assert!(progress.rotated);
    assert_eq!(progress.lines, 50);
    assert_eq!(payloads(&read_all(&path, "master", false)), lines(0..100));
}

#[test]
fn a_copytruncate_rotation_starts_the_file_again() {
    let (tmp, path, _journal) = fresh(4096, &["master"]);
    let file = tmp.path().join("mainlog");
    append(&file, 0, 30);
    let mut f = follower(&file, &path);
    f.poll().unwrap();
    fs::copy(&file, tmp.path().join("mainlog.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&file, 30, 35);
    let progress = f.poll().unwrap();
    assert!(progress.truncated && !progress.rotated);
    assert_eq!(payloads(&read_all(&path, "master", false)), lines(0..35));
}

#[test]
fn a_rotation_while_no_follower_runs_finishes_the_old_file_found_by_its_inode() {
    let (tmp, path, _journal) = fresh(4096, &["master"]);
    let file = tmp.path().join("mainlog");
    append(&file, 0, 20);
    follower(&file, &path).poll().unwrap();
    append(&file, 20, 25);
    fs::rename(&file, tmp.path().join("mainlog-20261205")).unwrap();
    append(&file, 25, 40);
    let mut f = follower(&file, &path);
    assert_eq!(f.poll().unwrap().lines, 20);
    assert_eq!(payloads(&read_all(&path, "master", false)), lines(0..40));
}

#[test]
fn a_crash_between_the_append_and_the_saved_position_repeats_nothing() {
    let (tmp, path, journal) = fresh(512, &["master"]);
    let file = tmp.path().join("mainlog");
    append(&file, 0, 10);
    follower(&file, &path).poll().unwrap();
    let position = fs::read_dir(journal.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("follow.")
        })
        .expect("a saved position");
    let before = fs::read(&position).unwrap();
    append(&file, 10, 60);
    follower(&file, &path).poll().unwrap();
    // The crash: the journal has lines 10..60, the position still says 10.
    fs::write(&position, &before).unwrap();
    append(&file, 60, 70);
    let mut f = follower(&file, &path);
    assert_eq!(
        f.recovered(),
        50,
        "the lines already in the journal are found there"
    );
    assert_eq!(f.poll().unwrap().lines, 10);
    assert_eq!(payloads(&read_all(&path, "master", false)), lines(0..70));
}

#[test]
fn a_line_longer_than_a_read_goes_in_as_pieces_and_following_goes_on() {
    let (tmp, path, _journal) = fresh(1 << 20, &["master"]);
    let file = tmp.path().join("mainlog");
    let long = "x".repeat(3 << 19);
    fs::write(&file, format!("{long}\nafter\n")).unwrap();
    let mut follower = follower(&file, &path);
    let mut taken = 0;
    // Each poll makes progress; a bounded number of them takes everything.
    for _ in 0..4 {
        taken += follower.poll().unwrap().lines;
    }
    let got = payloads(&read_all(&path, "master", false));
    assert_eq!(
        got.concat(),
        format!("{long}after"),
        "no byte lost or repeated"
    );
    assert_eq!(got.last().map(String::as_str), Some("after"));
    assert!(
        got.len() >= 3,
        "the long line was cut into pieces: {}",
        got.len()
    );
    assert_eq!(taken, got.len() as u64);
}
