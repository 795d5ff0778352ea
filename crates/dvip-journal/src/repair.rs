//! Repairing a closed segment that does not parse: the bytes that are not part of a chain of
//! whole records are cut out, the records around them kept, and the index rebuilt. This is
//! jlog's repair; it only ever runs on a segment no writer will append to again.

use std::ops::Range;
use std::os::unix::fs::FileExt;

use crate::error::{IoContext, Result};
use crate::format::{damaged_ranges, Meta};
use crate::index::{open_data, open_index};
use crate::journal::{read_full_at, Journal};
use crate::lock::lock;

/// Cuts the damaged ranges out of `segment` and clears its index; returns the ranges cut, as
/// byte offsets of the segment before the repair.
pub(crate) fn repair_segment(
    journal: &Journal,
    segment: u32,
    meta: &Meta,
) -> Result<Vec<Range<u64>>> {
    let Some(data) = open_data(journal, segment)? else {
        return Ok(Vec::new());
    };
    let path = journal.segment_path(segment);
    let index = open_index(journal, segment)?;
    let index_path = journal.index_path(segment);
    let _index_held = lock(&index).at(&index_path, "lock the index")?;
    let _data_held = lock(&data).at(&path, "lock the segment")?;
    let len = data.metadata().at(&path, "stat the segment")?.len();
    let mut bytes = vec![0; len as usize];
    let got = read_full_at(&data, &mut bytes, 0).at(&path, "read the segment")?;
    bytes.truncate(got);
    let damaged = damaged_ranges(&bytes, meta.header_magic);
    if !damaged.is_empty() {
        let mut kept = Vec::with_capacity(bytes.len());
        let mut at = 0u64;
        for range in &damaged {
            kept.extend_from_slice(&bytes[at as usize..range.start as usize]);
            at = range.end;
        }
        kept.extend_from_slice(&bytes[at as usize..]);
        data.write_all_at(&kept, 0)
            .at(&path, "write the repaired segment")?;
        data.set_len(kept.len() as u64)
            .at(&path, "cut the repaired segment")?;
        data.sync_data().at(&path, "sync the repaired segment")?;
    }
    index
        .set_len(0)
        .at(&index_path, "clear the index of a repaired segment")?;
    Ok(damaged)
}
