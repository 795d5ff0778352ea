//! Arbitrary bytes where a journal's files should be: reading never panics, never returns a
//! record that is not whole, and repair leaves segments that parse.

use std::fs;

use dvip_journal::{damaged_ranges, walk, Header, Journal, Reader, Timestamp, HEADER_MAGIC};
use proptest::prelude::*;

use crate::fresh;

fn record(payload: &[u8]) -> Vec<u8> {
    let header = Header {
        magic: HEADER_MAGIC,
        time: Timestamp {
            seconds: 7,
            micros: 1,
        },
        len: payload.len() as u32,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Whole records with damage spliced in: the kind of bytes a crash or a bad disk leaves.
fn damaged_segment() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|p| record(&p)),
        prop::collection::vec(any::<u8>(), 0..24),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn cutting_the_damaged_ranges_leaves_only_whole_records(bytes in damaged_segment()) {
        let damaged = damaged_ranges(&bytes, HEADER_MAGIC);
        let mut kept = Vec::new();
        let mut at = 0;
        for range in &damaged {
            prop_assert!(range.start >= at && range.start < range.end && range.end <= bytes.len() as u64);
            kept.extend_from_slice(&bytes[at as usize..range.start as usize]);
            at = range.end;
        }
        kept.extend_from_slice(&bytes[at as usize..]);
        let walked = walk(&kept, 0, HEADER_MAGIC);
        prop_assert_eq!(walked.stop, None);
    }

    #[test]
    fn reading_arbitrary_files_never_panics_and_returns_only_whole_records(
        closed in damaged_segment(),
        open in damaged_segment(),
        index in prop::collection::vec(any::<u8>(), 0..64),
        checkpoint in prop::collection::vec(any::<u8>(), 0..10),
    ) {
        let (_tmp, path, journal) = fresh(1 << 20, &["master"]);
        // Segment 0 is closed (the writer is on 1); both hold what the strategy made.
        let mut meta = fs::read(path.join("metastore")).unwrap();
        meta[0..4].copy_from_slice(&1u32.to_ne_bytes());
        fs::write(path.join("metastore"), &meta).unwrap();
        fs::write(path.join("00000000"), &closed).unwrap();
        fs::write(path.join("00000000.idx"), &index).unwrap();
        fs::write(path.join("00000001"), &open).unwrap();
        fs::write(path.join("cp.6d6173746572"), &checkpoint).unwrap();
        drop(journal);
        let Ok(journal) = Journal::open(&path) else { return Ok(()) };
        let Ok(mut reader) = Reader::open(journal, "master") else { return Ok(()) };
        let mut last = None;
        for _ in 0..50 {
            let Ok(batch) = reader.read(7) else { break };
            if batch.records.is_empty() {
                break;
            }
            for record in batch.records {
                prop_assert!(last < Some(record.id), "ids increase");
                last = Some(record.id);
            }
        }
    }
}
