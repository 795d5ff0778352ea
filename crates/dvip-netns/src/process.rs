//! What `/proc` says about a process, for the lab's process bookkeeping and its cleanup.
//!
//! Owns reading `/proc/PID/stat`; it must not signal or judge processes.

/// The fields of `/proc/PID/stat` after the parenthesised command name (which may hold
/// spaces): the state is `[0]`, field N of proc(5) is `[N - 3]`. `None` once the process is
/// gone.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}
