//! Clustered logging in the lab: every node serves one journal (`maillog`) on its cluster
//! listener over mutual TLS, and `dvip collect` pulls them all into files, from a namespace of
//! its own whose disk is a small tmpfs (so a chaos round can fill it).
//!
//! Owns the lab's certificates, journals, aggregator namespace, disk and process, and what a
//! node's configuration says about logs. It must not decide when anything fails (the nemesis
//! does) nor judge the aggregated files ([`check`] does).

pub(crate) mod check;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::process::Command;

use dvip_netns::{LabError, AGGREGATOR_ADDRESS};

use self::writer::LineWriter;
use crate::state::LabState;
use crate::{err, spawn};

/// The one log every node serves.
pub(crate) const LOG: &str = "maillog";

/// The aggregator's name: its certificate, its Manager stanza and its subscriber.
pub(crate) const AGGREGATOR: &str = "collector";

/// The port of every node's log service (dvipd's default `cluster_listener` port).
const LOG_PORT: u16 = 4802;

/// The aggregator's disk: room for a bench's replays, small enough to fill in a moment.
const DISK: &str = "size=512m,mode=0755";

/// A subscriber of every journal that never reads, in a bench: nothing it holds is cleaned
/// away, so the aggregator can replay it all again and again.
const HOLD: &str = "bench-hold";

/// The key of the aggregator's process in the lab's state.
const PROCESS: &str = "collect";

fn tls_dir(state: &LabState) -> PathBuf {
    state.dir().join("tls")
}

/// Node `i`'s journal.
pub(crate) fn journal(state: &LabState, i: usize) -> PathBuf {
    state.dir().join("journals").join(format!("node{i}"))
}

/// The aggregator's disk (a tmpfs mounted there).
fn disk(state: &LabState) -> PathBuf {
    disk_of(&state.dir())
}

fn disk_of(lab_dir: &Path) -> PathBuf {
    lab_dir.join("aggregator")
}

/// Where the aggregator writes node `node`'s log.
pub(crate) fn aggregated(state: &LabState, node: usize) -> PathBuf {
    disk(state)
        .join("out")
        .join(LOG)
        .join(format!("node{node}"))
}

fn collect_conf(state: &LabState) -> PathBuf {
    state.dir().join("collect.conf")
}

/// Makes what logging needs before the nodes start: a CA with a certificate per node and
/// one for the aggregator, each node's journal with the aggregator as its subscriber from
/// the first line, the aggregator's namespace, its disk and its configuration.
pub(crate) fn prepare(state: &LabState) -> Result<(), LabError> {
    let tls = dvip_tls::TlsDir::new(tls_dir(state));
    let fail = |e: dvip_tls::TlsError| err(format!("lab certificates: {e}"));
    tls.init(&format!("dviplab-{}", state.name), 30, true)
        .map_err(fail)?;
    for i in 1..=state.nodes {
        tls.issue(&format!("node{i}"), &[format!("198.51.100.{i}")], 30)
            .map_err(fail)?;
        let options = dvip_journal::CreateOptions {
            subscribers: vec![AGGREGATOR.to_owned()],
            ..Default::default()
        };
        dvip_journal::Journal::create(journal(state, i), &options)
            .map_err(|e| err(format!("node{i}'s journal: {e}")))?;
    }
    tls.issue(AGGREGATOR, &[AGGREGATOR_ADDRESS.to_owned()], 30)
        .map_err(fail)?;
    state.topology().add_aggregator()?;
    let disk = disk(state);
    std::fs::create_dir_all(&disk).map_err(|e| err(format!("{}: {e}", disk.display())))?;
    let at = disk
        .to_str()
        .ok_or_else(|| err(format!("{}: not UTF-8", disk.display())))?;
    dvip_netns::try_iproute2(
        "mount",
        &["-t", "tmpfs", "-o", DISK, "dvip-lab-aggregator", at],
    )?;
    let nodes: String = (1..=state.nodes)
        .map(|i| format!("    Node \"node{i}\" {{ address = \"198.51.100.{i}:{LOG_PORT}\" }}\n"))
        .collect();
    let conf = format!(
        "# dvip lab `{}`: the aggregator\nLogs {{\n  logfile = \"{}/out/%{{l}}/%{{n}}\"\n  state_dir = \"{}/state\"\n  tls_dir = \"{}\"\n  Manager \"{AGGREGATOR}\" {{\n{nodes}  }}\n}}\n",
        state.name,
        disk.display(),
        disk.display(),
        tls_dir(state).display(),
    );
    std::fs::write(collect_conf(state), conf).map_err(|e| err(format!("collect.conf: {e}")))
}

/// What node `i`'s `cluster` stanza says about logs (nothing when the lab collects none).
pub(crate) fn node_conf(state: &LabState, i: usize) -> String {
    if !state.logs {
        return String::new();
    }
    format!(
        "  cluster_listener = \"198.51.100.{i}:{LOG_PORT}\"  logs = [ {LOG} = \"{}\" ]\n",
        journal(state, i).display()
    )
}

/// dvipd's arguments for logging.
pub(crate) fn dvipd_args(state: &LabState) -> Vec<std::ffi::OsString> {
    if !state.logs {
        return Vec::new();
    }
    vec!["--tls-dir".into(), tls_dir(state).into()]
}

/// Starts `dvip collect` in the aggregator's namespace.
pub(crate) fn start_aggregator(state: &mut LabState) -> Result<(), LabError> {
    let dvip = std::env::current_exe().map_err(|e| err(format!("this dvip: {e}")))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &state.topology().aggregator()])
        .arg(dvip)
        .arg("collect")
        .arg("--config")
        .arg(collect_conf(state))
        .args(["--name", AGGREGATOR]);
    spawn(state, format!("{PROCESS}-0"), command)
}

/// The aggregator's pid, while it runs.
pub(crate) fn aggregator_pid(state: &LabState) -> Option<u32> {
    state
        .process(PROCESS, 0)
        .filter(|p| p.alive())
        .map(|p| p.pid)
}

pub(crate) fn aggregator_alive(state: &LabState) -> bool {
    state.alive(PROCESS, 0)
}

/// kill -9 of the aggregator.
pub(crate) fn kill_aggregator(state: &LabState) {
    if let Some(p) = state.process(PROCESS, 0) {
        p.kill();
    }
}

/// Fills the aggregator's disk to the last byte.
pub(crate) fn fill_disk(state: &LabState) -> Result<(), LabError> {
    use std::io::Write;
    let path = disk(state).join("filler");
    let mut file = std::fs::File::create(&path).map_err(|e| err(format!("filler: {e}")))?;
    let block = vec![0u8; 1 << 16];
    loop {
        match file.write(&block) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(err(format!("filler: {e}"))),
        }
    }
    // What is left is less than a block: fill it byte by byte to the end.
    while file.write(&[0]).is_ok_and(|n| n == 1) {}
    Ok(())
}

/// Gives the aggregator's disk its space back.
pub(crate) fn free_disk(state: &LabState) {
    let _ = std::fs::remove_file(disk(state).join("filler"));
}

/// Unmounts the aggregator's disk of the lab in `lab_dir`, if it is mounted (also after a
/// crash, before the lab's directory is removed).
pub(crate) fn unmount(lab_dir: &Path) {
    let disk = disk_of(lab_dir);
    if disk.exists() {
        let _ = Command::new("umount")
            .arg(&disk)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Keeps every line of every journal from here on, for replays.
pub(crate) fn hold_journals(state: &LabState) -> Result<(), LabError> {
    for i in 1..=state.nodes {
        let fail = |e: dvip_journal::Error| err(format!("node{i}'s journal: {e}"));
        dvip_journal::Journal::open(journal(state, i))
            .and_then(|j| j.add_subscriber(HOLD, dvip_journal::Start::Begin))
            .map_err(fail)?;
    }
    Ok(())
}

/// Appends `lines` numbered lines to every node's journal, held for replays.
pub(crate) fn fill_journals(state: &mut LabState, lines: u64) -> Result<(), LabError> {
    kill_aggregator(state);
    hold_journals(state)?;
    for i in 1..=state.nodes {
        writer::Numbered::open(state, i)?.append(lines)?;
    }
    Ok(())
}

/// Starts the aggregator afresh on every journal from its first line (its files, its state
/// and its checkpoints forgotten): a replay at full speed. Returns once lines arrive, with
/// when the aggregator was started.
pub(crate) fn replay_from_start(state: &mut LabState) -> Result<std::time::Instant, LabError> {
    kill_aggregator(state);
    forget_collected(state)?;
    for i in 1..=state.nodes {
        let fail = |e: dvip_journal::Error| err(format!("node{i}'s journal: {e}"));
        let journal = dvip_journal::Journal::open(journal(state, i)).map_err(fail)?;
        journal.remove_subscriber(AGGREGATOR).map_err(fail)?;
        journal
            .add_subscriber(AGGREGATOR, dvip_journal::Start::Begin)
            .map_err(fail)?;
    }
    let started = std::time::Instant::now();
    start_aggregator(state)?;
    let deadline = started + std::time::Duration::from_secs(20);
    while (1..=state.nodes).all(|i| collected(state, i) == 0) {
        if std::time::Instant::now() > deadline {
            return Err(err("the aggregator's replay brought nothing within 20 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(started)
}

/// Copies every journal's lines into files on the aggregator's disk, read here without the
/// network, TLS or bookkeeping: what a replay would cost at best. How many lines.
pub(crate) fn local_copy(state: &LabState) -> Result<u64, LabError> {
    use std::io::Write;
    let dir = disk(state).join("copy");
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let mut lines = 0;
    for i in 1..=state.nodes {
        let fail = |e: dvip_journal::Error| err(format!("node{i}'s journal: {e}"));
        let journal = dvip_journal::Journal::open(journal(state, i)).map_err(fail)?;
        let mut reader = dvip_journal::Reader::open(journal, HOLD).map_err(fail)?;
        let path = dir.join(format!("node{i}"));
        let file =
            std::fs::File::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        loop {
            let batch = reader.read(4096).map_err(fail)?;
            if batch.records.is_empty() {
                break;
            }
            for record in &batch.records {
                out.write_all(&record.payload)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| err(format!("{}: {e}", path.display())))?;
            }
            lines += batch.records.len() as u64;
        }
        out.into_inner()
            .map_err(|e| err(format!("{}: {e}", path.display())))?
            .sync_all()
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
}

/// Ends a replay: the aggregator killed and what it wrote removed. How many lines it had
/// written.
pub(crate) fn stop_replay(state: &LabState) -> u64 {
    kill_aggregator(state);
    let lines = (1..=state.nodes)
        .map(|i| collected(state, i) / writer::width(i))
        .sum();
    let _ = forget_collected(state);
    lines
}

/// Removes the aggregator's files and state.
fn forget_collected(state: &LabState) -> Result<(), LabError> {
    for dir in ["out", "state"] {
        let path = disk(state).join(dir);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(err(format!("{}: {e}", path.display())));
            }
            _ => {}
        }
    }
    Ok(())
}

/// How many bytes of node `node`'s log the aggregator has written (0 before the first).
pub(crate) fn collected(state: &LabState, node: usize) -> u64 {
    std::fs::metadata(aggregated(state, node)).map_or(0, |m| m.len())
}

/// Every node's aggregated file judged against what its journal accepted: the lines in
/// order so far per node (index 0 is node1), and what is wrong. `written` is read after the
/// files, so a file never rightly holds more than it says.
pub(crate) fn judge_all(state: &LabState, lines: &LineWriter) -> (Vec<u64>, Vec<String>) {
    let files: Vec<Vec<u8>> = (1..=state.nodes)
        .map(|i| std::fs::read(aggregated(state, i)).unwrap_or_default())
        .collect();
    let written = lines.written();
    let mut counts = Vec::new();
    let mut wrong = Vec::new();
    for (k, file) in files.iter().enumerate() {
        let judged = check::judge(k + 1, file, written[k]);
        counts.push(judged.lines);
        wrong.extend(judged.wrong);
    }
    (counts, wrong)
}

/// Once the lines have stopped: waits (up to `within`) until every node's aggregated file
/// holds every line its journal accepted. The lines in order per node, and what is wrong or
/// missing at the end.
pub(crate) fn judge_complete(
    state: &LabState,
    lines: &LineWriter,
    within: std::time::Duration,
) -> (Vec<u64>, Vec<String>) {
    let deadline = std::time::Instant::now() + within;
    let written = lines.written();
    loop {
        let (counts, wrong) = judge_all(state, lines);
        if !wrong.is_empty() || counts == written {
            return (counts, wrong);
        }
        if std::time::Instant::now() >= deadline {
            let missing = counts
                .iter()
                .zip(&written)
                .enumerate()
                .filter(|(_, (c, w))| c != w)
                .map(|(k, (c, w))| {
                    format!(
                        "node{}'s aggregated file has {c} of the {w} lines its journal took, {} s after the last",
                        k + 1,
                        within.as_secs()
                    )
                })
                .collect();
            return (counts, missing);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
