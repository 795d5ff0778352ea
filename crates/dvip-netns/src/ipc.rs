//! corosync's IPC leftovers: libqb keeps each client connection's rings as files in
//! `/dev/shm` (`qb-PID-PID-…`, a few megabytes each) and removes them when the connection
//! closes cleanly. A corosync or dvipd killed with -9 leaves them behind (and every corosync
//! its 8 MB flight recorder, which the lab's configuration now turns off), and a bench or
//! chaos run kills thousands: left alone they once filled this machine's memory.
//!
//! Owns finding and removing those files; it touches only files whose two processes are both
//! gone, so a corosync running outside the lab (or another lab's) keeps its own.

/// Removes the IPC files of connections whose two ends are gone; returns how many.
pub fn reap_stale() -> usize {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    // A zombie (killed, not yet reaped by its parent) holds nothing open any more.
    let alive = |pid: u32| {
        crate::stat_fields(pid).is_some_and(|fields| fields.first().is_none_or(|s| s != "Z"))
    };
    entries
        .flatten()
        .filter(|entry| stale(&entry.file_name().to_string_lossy(), alive))
        .filter(|entry| {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.is_ok()
        })
        .count()
}

/// Whether `name` is a libqb IPC file of two processes that `alive` says are both gone, or
/// the flight recorder (`qb-corosync-PID-blackbox-…`, 8 MB) of a corosync that is gone.
fn stale(name: &str, alive: impl Fn(u32) -> bool) -> bool {
    let Some(rest) = name.strip_prefix("qb-") else {
        return false;
    };
    if let Some(recorder) = rest.strip_prefix("corosync-") {
        let pid = recorder.split('-').next().map(str::parse::<u32>);
        return matches!(pid, Some(Ok(pid)) if !alive(pid)) && recorder.contains("-blackbox-");
    }
    let mut pids = rest.split('-').map(str::parse::<u32>);
    match (pids.next(), pids.next()) {
        (Some(Ok(one)), Some(Ok(other))) => !alive(one) && !alive(other),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::stale;

    #[test]
    fn only_files_of_two_gone_processes_are_stale() {
        let only_7_runs = |pid: u32| pid == 7;
        assert!(stale("qb-12511-12910-29-JIjzP7", only_7_runs));
        assert!(!stale("qb-7-12910-29-JIjzP7", only_7_runs), "one end runs");
        assert!(!stale("qb-12510-7-30-x", only_7_runs), "the other end runs");
        assert!(stale("qb-corosync-19199-blackbox-data", only_7_runs));
        assert!(
            !stale("qb-corosync-7-blackbox-header", only_7_runs),
            "its corosync runs"
        );
        assert!(!stale("qb-corosync-blackbox", |_| false), "no pid");
        assert!(!stale("sem.something", |_| false));
    }
}
