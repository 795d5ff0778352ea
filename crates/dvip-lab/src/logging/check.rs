//! The judge of the aggregated files: every line a node's journal accepted must be in that
//! node's file exactly once, in order, and nothing else.
//!
//! Owns those rules and their words. It is pure (bytes in, findings out), so it is tested on
//! made-up files; it must not touch the lab.

use super::writer::line;

/// What one node's aggregated file holds, judged against the lines its journal accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    /// Whole lines that are the node's first ones, in order.
    pub(crate) lines: u64,
    /// The first line that is not the one expected, in words.
    pub(crate) wrong: Option<String>,
}

/// Judges node `node`'s aggregated `file` against `written` lines accepted by its journal.
/// A last line without its newline is one being written: not counted, not wrong.
pub(crate) fn judge(node: usize, file: &[u8], written: u64) -> Judged {
    let Some(end) = file.iter().rposition(|&b| b == b'\n') else {
        return Judged {
            lines: 0,
            wrong: None,
        };
    };
    let mut lines = 0u64;
    for got in file[..end].split(|&b| b == b'\n') {
        let expected = line(node, lines + 1);
        let text = || String::from_utf8_lossy(got);
        let why = if lines >= written {
            format!(
                "line {} is `{}`, past the {written} lines written",
                lines + 1,
                text()
            )
        } else if got != expected.as_bytes() {
            format!("line {} is `{}`, not `{expected}`", lines + 1, text())
        } else {
            lines += 1;
            continue;
        };
        return Judged {
            lines,
            wrong: Some(format!("node{node}'s aggregated file: {why}")),
        };
    }
    Judged { lines, wrong: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(node: usize, ks: &[u64]) -> Vec<u8> {
        ks.iter()
            .flat_map(|&k| format!("{}\n", line(node, k)).into_bytes())
            .collect()
    }

    #[test]
    fn every_line_once_in_order_is_right_and_counted() {
        let judged = judge(2, &file(2, &[1, 2, 3]), 5);
        assert_eq!(
            judged,
            Judged {
                lines: 3,
                wrong: None
            }
        );
    }

    #[test]
    fn a_line_being_written_is_not_counted() {
        let mut bytes = file(1, &[1, 2]);
        bytes.extend_from_slice(b"node1 line 0000");
        assert_eq!(judge(1, &bytes, 3).lines, 2);
        assert_eq!(judge(1, &bytes, 3).wrong, None);
    }

    #[test]
    fn a_repeat_a_gap_a_swap_or_a_stranger_is_wrong() {
        for (ks, at) in [(vec![1, 2, 2, 3], 3), (vec![1, 3], 2), (vec![2, 1], 1)] {
            let judged = judge(1, &file(1, &ks), 10);
            assert_eq!(judged.lines, at - 1, "{ks:?}");
            let wrong = judged.wrong.expect("wrong");
            assert!(wrong.contains(&format!("line {at} is")), "{wrong}");
        }
        let stranger = judge(1, &file(2, &[1]), 10);
        assert!(stranger.wrong.is_some_and(|w| w.contains("node2 line")));
    }

    #[test]
    fn a_line_past_those_written_is_wrong() {
        let judged = judge(1, &file(1, &[1, 2, 3]), 2);
        assert_eq!(judged.lines, 2);
        assert!(judged
            .wrong
            .is_some_and(|w| w.contains("past the 2 lines written")));
    }
}
