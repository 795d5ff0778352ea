//! The commit of a batch, crashed at each step: whatever was written past the last commit is
//! cut off at the next start, and records at or before the committed id are known written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use dvip_collect::Stream;
use dvip_journal::RecordId;

fn id(position: u32) -> RecordId {
    RecordId {
        segment: 0,
        position,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_crash_between_the_append_and_the_commit_cuts_the_batch_off_and_keeps_the_last_commit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out: PathBuf = tmp.path().join("out");
    let state = tmp.path().join("state");
    let mut stream = Stream::open(&state, "node1", "maillog").expect("a new stream");
    assert!(!stream.written(id(1)));

    // Batch 1, committed.
    stream
        .intend(&BTreeMap::from([(out.clone(), 0)]))
        .expect("intent");
    append(&out, "one\ntwo\n");
    stream
        .commit(id(2), BTreeMap::from([(out.clone(), len(&out))]))
        .expect("commit");

    // Batch 2: the intent and the append, then the process dies before the commit.
    let other = tmp.path().join("out-next-day");
    stream
        .intend(&BTreeMap::from([
            (out.clone(), len(&out)),
            (other.clone(), 0),
        ]))
        .expect("intent");
    append(&out, "three\n");
    append(&other, "four\n");
    drop(stream);

    let stream = Stream::open(&state, "node1", "maillog").expect("reopened");
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "one\ntwo\n");
    assert_eq!(len(&other), 0, "a file the batch began is cut back too");
    assert!(stream.written(id(2)));
    assert!(!stream.written(id(3)), "the lost batch comes again");
}

#[test]
fn a_crash_after_the_commit_keeps_everything_and_skips_what_comes_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let state = tmp.path().join("state");
    let mut stream = Stream::open(&state, "node1", "maillog").expect("a new stream");
    stream
        .intend(&BTreeMap::from([(out.clone(), 0)]))
        .expect("intent");
    append(&out, "one\n");
    stream
        .commit(id(1), BTreeMap::from([(out.clone(), len(&out))]))
        .expect("commit");
    drop(stream);
    let stream = Stream::open(&state, "node1", "maillog").expect("reopened");
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "one\n");
    assert!(
        stream.written(id(1)),
        "not written twice when the node sends it again"
    );
}

#[test]
fn a_state_file_that_does_not_parse_is_named_with_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("node1");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("maillog.json"), "{ torn").expect("write");
    let err = Stream::open(tmp.path(), "node1", "maillog").expect_err("refused");
    let said = err.to_string();
    assert!(
        said.contains("maillog.json") && said.contains("move it away"),
        "{said}"
    );
}

#[test]
fn a_commit_that_cannot_be_recorded_cuts_its_batch_off_so_it_lands_once_when_it_comes_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let state = tmp.path().join("state");
    let mut stream = Stream::open(&state, "node1", "maillog").expect("a new stream");
    let write = |stream: &mut Stream, text: &str| {
        stream
            .intend(&BTreeMap::from([(out.clone(), len(&out))]))
            .expect("intent");
        append(&out, text);
    };
    let commit = |stream: &mut Stream, last: u32| {
        stream.commit(id(last), BTreeMap::from([(out.clone(), len(&out))]))
    };
    write(&mut stream, "one\n");
    commit(&mut stream, 1).expect("commit");

    // The state's staging file cannot be made between the append and the commit, as when the
    // disk fills up in that moment.
    write(&mut stream, "two\n");
    let staging = state.join("node1").join("maillog.json.new");
    std::fs::create_dir(&staging).expect("block the staging file");
    commit(&mut stream, 2).expect_err("the commit fails");
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "one\n");
    assert!(stream.written(id(1)));
    assert!(!stream.written(id(2)), "the batch is to come again");

    std::fs::remove_dir(&staging).expect("room again");
    write(&mut stream, "two\n");
    commit(&mut stream, 2).expect("commit");
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "one\ntwo\n");
}
