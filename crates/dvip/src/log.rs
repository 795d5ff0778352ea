//! `dvip log`: the journal tools on one node (what `jlogctl` does, in dvip's words).
//!
//! Owns turning the journal crate's typed results into text or JSON and exit codes. It must
//! not know the journal's file format: everything on disk goes through `dvip_journal`.

use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dvip_journal::{
    CreateOptions, Durability, FollowProgress, Follower, Journal, JournalStatus, JournalUri,
    Reader, Record, Start, Timestamp, Writer,
};
use serde::Serialize;

use crate::cli::{DurabilityArg, LogCommand, StartArg, SubscriberCommand};
use crate::Outcome;

/// Records per write when lines arrive faster than they are written.
const LINES_PER_WRITE_MAX: usize = 1024;
/// Records per read; also how many a `read` holds before printing.
const RECORDS_PER_READ: usize = 1024;
/// How often `read --follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub(crate) fn run(command: LogCommand) -> Outcome {
    let result = match command {
        LogCommand::Write {
            uri,
            durability,
            json,
        } => write(&uri, durability, json),
        LogCommand::Follow {
            file,
            uri,
            once,
            durability,
            json,
        } => follow(&file, &uri, durability, once, json),
        LogCommand::Show {
            paths,
            config,
            json,
        } => show(paths, &config, json),
        LogCommand::Read {
            path,
            subscriber,
            follow,
            checkpoint,
            max,
            json,
        } => read(
            &path,
            &subscriber,
            &ReadOptions {
                follow,
                checkpoint,
                max,
                json,
            },
        ),
        LogCommand::Subscriber { command } => subscriber(command),
        LogCommand::Repair { path, json } => repair(&path, json),
        LogCommand::Clean { path, json } => clean(&path, json),
    };
    match result {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("dvip log: {error}");
            Outcome::Failed
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn durability(arg: DurabilityArg) -> Durability {
    match arg {
        DurabilityArg::Process => Durability::Process,
        DurabilityArg::Disk => Durability::Disk,
    }
}

/// A URI, or a plain directory (a journal with no subscribers named).
fn target(text: &str) -> Result<(PathBuf, Vec<String>)> {
    if dvip_journal::Scheme::of(text).is_none() {
        return Ok((PathBuf::from(text), Vec::new()));
    }
    match text.parse::<JournalUri>() {
        Ok(uri) => Ok((uri.path, uri.subscribers)),
        Err(e) => Err(format!("{e}; {}", e.hint()).into()),
    }
}

/// The journal a URI names, made with the URI's subscribers if missing.
fn open_target(uri: &str, durability: Durability) -> Result<(PathBuf, Journal)> {
    let (path, subscribers) = target(uri)?;
    let options = CreateOptions {
        durability,
        subscribers,
        ..CreateOptions::default()
    };
    let journal = Journal::open_or_create(&path, &options)?;
    Ok((path, journal))
}

#[derive(Serialize)]
struct WriteReport {
    journal: PathBuf,
    records: u64,
    bytes: u64,
}

fn write(uri: &str, arg: DurabilityArg, json: bool) -> Result<Outcome> {
    let durability = durability(arg);
    let (path, journal) = open_target(uri, durability)?;
    let mut writer = Writer::new(journal, durability);
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut report = WriteReport {
        journal: path,
        records: 0,
        bytes: 0,
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    loop {
        lines.clear();
        // Block for one line, then take the lines already buffered behind it.
        loop {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            lines.push(line);
            if lines.len() >= LINES_PER_WRITE_MAX || !input.buffer().contains(&b'\n') {
                break;
            }
        }
        if lines.is_empty() {
            break;
        }
        writer.append_batch(
            Timestamp::from_system(std::time::SystemTime::now()),
            lines.iter().map(Vec::as_slice),
        )?;
        for repair in writer.take_repairs() {
            eprintln!("dvip log write: {repair}");
        }
        report.records += lines.len() as u64;
        report.bytes += lines.iter().map(|l| l.len() as u64).sum::<u64>();
    }
    if json {
        say!("{}", serde_json::to_string(&report)?);
    }
    Ok(Outcome::Ok)
}

/// What `dvip log follow` reports: on exit with --once, or at each change while following.
#[derive(Serialize)]
struct FollowReport<'p> {
    file: &'p Path,
    journal: &'p Path,
    /// Lines found already in the journal at start (a crash's repair), counted as taken.
    recovered: u64,
    #[serde(flatten)]
    progress: FollowProgress,
}

fn follow(file: &Path, uri: &str, arg: DurabilityArg, once: bool, json: bool) -> Result<Outcome> {
    let durability = durability(arg);
    let (path, journal) = open_target(uri, durability)?;
    let mut follower = Follower::open(file, journal, durability)?;
    let report = |progress: FollowProgress, recovered: u64| -> Result<()> {
        let report = FollowReport {
            file,
            journal: &path,
            recovered,
            progress,
        };
        if json {
            say!("{}", serde_json::to_string(&report)?);
        } else {
            say!(
                "{}: {} lines into {}{}{}{}",
                file.display(),
                report.progress.lines,
                path.display(),
                if recovered > 0 {
                    format!(" ({recovered} found already written after a crash)")
                } else {
                    String::new()
                },
                if report.progress.rotated {
                    "; rotated"
                } else {
                    ""
                },
                if report.progress.truncated {
                    "; truncated, read again from its start"
                } else {
                    ""
                },
            );
        }
        Ok(())
    };
    if once {
        let mut total = FollowProgress::default();
        loop {
            let progress = follower.poll()?;
            let quiet = progress == FollowProgress::default();
            total.lines += progress.lines;
            total.rotated |= progress.rotated;
            total.truncated |= progress.truncated;
            if quiet {
                break;
            }
        }
        report(total, follower.recovered())?;
        return Ok(Outcome::Ok);
    }
    let mut recovered = follower.recovered();
    loop {
        let progress = follower.poll()?;
        let quiet = progress == FollowProgress::default();
        // Lines alone are routine; a rotation, a truncation or a crash's repair is news.
        if progress.rotated || progress.truncated || recovered > 0 {
            report(progress, recovered)?;
            recovered = 0;
        }
        if quiet {
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// The journals a configuration names: the cluster's `logs` and every journal destination.
fn configured(config: &Path) -> Result<Vec<PathBuf>> {
    let options = dvip_config::LoadOptions::new(gethostname::gethostname().to_string_lossy());
    let checked = dvip_config::load(config, &options, &dvip_config::DiskFiles);
    if !checked.is_valid() {
        return Err(format!(
            "{}: the configuration has errors; `dvip config check {0}` shows them",
            config.display()
        )
        .into());
    }
    let mut paths: Vec<PathBuf> = checked
        .config
        .logs
        .iter()
        .map(|l| PathBuf::from(&l.path))
        .collect();
    paths.extend(
        checked
            .config
            .log_destinations
            .iter()
            .map(|d| PathBuf::from(&d.path)),
    );
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn show(paths: Vec<PathBuf>, config: &Path, json: bool) -> Result<Outcome> {
    let paths = if paths.is_empty() {
        configured(config)?
    } else {
        paths
    };
    let mut statuses = Vec::new();
    let mut outcome = Outcome::Ok;
    for path in &paths {
        match Journal::open(path).and_then(|j| j.status()) {
            Ok(status) => statuses.push(status),
            Err(e) => {
                eprintln!("dvip log show: {e}");
                outcome = Outcome::Failed;
            }
        }
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        let now = std::time::SystemTime::now();
        for status in &statuses {
            crate::say_text(&render_status(status, now));
        }
        if paths.is_empty() {
            say!("no journals: the configuration names none");
        }
    }
    Ok(outcome)
}

fn render_status(status: &JournalStatus, now: std::time::SystemTime) -> String {
    let mut out = format!(
        "{}\n  {} segments, {} bytes; writing segment {:08x}; segment size {} bytes; safety {}\n",
        status.path,
        status.segments.len(),
        status.bytes,
        status.writing,
        status.unit_limit,
        status.safety
    );
    if status.subscribers.is_empty() {
        out.push_str("  no subscribers: nothing will ever be removed, and nobody reads\n");
        return out;
    }
    out.push_str(&format!(
        "  {:<16} {:<18} {:>10} {:>12}  {}\n",
        "SUBSCRIBER", "CHECKPOINT", "RECORDS", "BYTES", "OLDEST UNREAD"
    ));
    for sub in &status.subscribers {
        let age = sub.backlog.oldest.map_or_else(
            || "-".to_owned(),
            |t| {
                let age = now.duration_since(t.to_system()).unwrap_or_default();
                format!(
                    "{} ago",
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                )
            },
        );
        out.push_str(&format!(
            "  {:<16} {:<18} {:>10} {:>12}  {}\n",
            sub.name,
            sub.checkpoint.to_string(),
            sub.backlog.records,
            sub.backlog.bytes,
            age
        ));
    }
    out
}

struct ReadOptions {
    follow: bool,
    checkpoint: bool,
    max: Option<usize>,
    json: bool,
}

/// A record as `dvip log read --json` prints it.
#[derive(Serialize)]
struct RecordLine<'r> {
    id: String,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'r str>,
    /// The payload's bytes when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<&'r [u8]>,
}

fn print_record(out: &mut impl std::io::Write, record: &Record, json: bool) -> std::io::Result<()> {
    let time = humantime::format_rfc3339_micros(record.time.to_system()).to_string();
    if json {
        let text = std::str::from_utf8(&record.payload).ok();
        let line = RecordLine {
            id: record.id.to_string(),
            time,
            payload: text,
            payload_bytes: text.is_none().then_some(record.payload.as_slice()),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&line).map_err(std::io::Error::other)?
        )
    } else {
        write!(out, "{} {time} ", record.id)?;
        out.write_all(&record.payload)?;
        writeln!(out)
    }
}

fn read(path: &Path, subscriber: &str, options: &ReadOptions) -> Result<Outcome> {
    let mut reader = Reader::open(Journal::open(path)?, subscriber)?;
    let mut printed = 0usize;
    let mut blocked_said = false;
    let stdout = std::io::stdout();
    loop {
        let want = options
            .max
            .map_or(RECORDS_PER_READ, |m| (m - printed).min(RECORDS_PER_READ));
        if want == 0 {
            break;
        }
        let batch = reader.read(want)?;
        for damage in &batch.damage {
            eprintln!("dvip log read: {damage}");
        }
        if let (Some((segment, at)), false) = (batch.blocked_at, blocked_said) {
            eprintln!(
                "dvip log read: segment {segment:08x} is damaged at byte {at} while still written; reading waits until a writer moves on (`dvip log repair` moves it)"
            );
            blocked_said = true;
        }
        {
            let mut out = stdout.lock();
            for record in &batch.records {
                print_record(&mut out, record, options.json)?;
            }
            out.flush()?;
        }
        printed += batch.records.len();
        if options.checkpoint && !batch.records.is_empty() {
            reader.checkpoint_read()?;
        }
        if batch.records.is_empty() {
            if !options.follow {
                break;
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
    Ok(Outcome::Ok)
}

fn subscriber(command: SubscriberCommand) -> Result<Outcome> {
    match command {
        SubscriberCommand::Add { path, name, from } => {
            let start = match from {
                StartArg::Begin => Start::Begin,
                StartArg::End => Start::End,
            };
            Journal::open(&path)?.add_subscriber(&name, start)?;
            Ok(Outcome::Ok)
        }
        SubscriberCommand::Remove { path, name } => {
            if Journal::open(&path)?.remove_subscriber(&name)? {
                Ok(Outcome::Ok)
            } else {
                eprintln!(
                    "dvip log subscriber remove: {}: no subscriber `{name}`",
                    path.display()
                );
                Ok(Outcome::Failed)
            }
        }
    }
}

fn repair(path: &Path, json: bool) -> Result<Outcome> {
    let report = dvip_journal::repair(&Journal::open(path)?)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else if report == dvip_journal::RepairReport::default() {
        say!("{}: nothing to repair", path.display());
    } else {
        for repair in &report.tail {
            say!("{repair}");
        }
        for damage in &report.segments {
            say!("{damage}");
        }
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct CleanReport {
    removed_segments: usize,
}

fn clean(path: &Path, json: bool) -> Result<Outcome> {
    let removed_segments = Journal::open(path)?.clean()?;
    if json {
        say!(
            "{}",
            serde_json::to_string(&CleanReport { removed_segments })?
        );
    } else {
        say!(
            "{}: removed {removed_segments} segments every subscriber has read",
            path.display()
        );
    }
    Ok(Outcome::Ok)
}
