//! `dvip show`, `membership`, `info`, `arp show`, `cidr show`, `events`, `broadcast`,
//! `announce-view`, `standby`, `online`, `move`, `reload`: talking to the local dvipd.
//!
//! Owns how replies are shown, as text or JSON. The requests, replies and the socket are
//! `dvip_console`'s.

use std::io::Write as _;
use std::path::Path;

use dvip_console::{
    Answer, Arp, ArpMode, BusStatus, Client, ConsoleError, EventLine, Info, Request, Status,
};
use serde::Serialize;

use crate::replication;
use crate::Outcome;

/// Prints a reply or report as indented JSON.
pub(crate) fn print_json(reply: &impl Serialize) {
    say!(
        "{}",
        serde_json::to_string_pretty(reply).expect("reports hold only plain data")
    );
}

/// Says what went wrong: on stderr, or with `--json` as a JSON object on stdout so scripts
/// read one shape.
pub(crate) fn fail(e: &ConsoleError, json: bool) -> Outcome {
    if json {
        print_json(&e.to_json());
    } else {
        eprintln!("dvip: {e}");
    }
    Outcome::Failed
}

/// Asks the daemon; shows the answer as JSON when `json`, else hands it to `text`.
pub(crate) fn report(
    socket: &Path,
    request: &Request,
    json: bool,
    text: impl FnOnce(&Answer),
) -> Outcome {
    match Client::new(socket).call_blocking(request) {
        Ok(answer) if json => {
            print_json(&answer.to_json());
            Outcome::Ok
        }
        Ok(answer) => {
            text(&answer);
            Outcome::Ok
        }
        Err(e) => fail(&e, json),
    }
}

/// `12.3 s`, `4 min 05 s`, `2 h 07 min`: how long something has stood.
pub(crate) fn age(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".to_owned();
    };
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

pub(crate) fn show(socket: &Path, json: bool) -> Outcome {
    report(socket, &Request::Show, json, |a| {
        if let Answer::Status(s) = a {
            show_text(s);
        }
    })
}

fn show_text(status: &Status) {
    membership_text(status);
    crate::say_text(&status.table);
    if let Some(moves) = standing(&status.moves) {
        say!("standing moves (until `dvip move clear ADDRESS`): {moves}");
    }
    let list = |items: Vec<String>| items.join(", ");
    if !status.not_plumbed.is_empty() {
        say!(
            "held here but NOT PLUMBED (being retried; dark until then): {}",
            list(status.not_plumbed.iter().map(ToString::to_string).collect())
        );
    }
    if !status.given_up_interfaces.is_empty() {
        say!(
            "interfaces given up (plumbing failed; their addresses are offered again when the \
             interface comes up, or on reload): {}",
            list(status.given_up_interfaces.iter().cloned().collect())
        );
    }
}

pub(crate) fn membership(socket: &Path, json: bool) -> Outcome {
    // The view is part of `show`; this report keeps only it.
    report(socket, &Request::Show, json, |a| {
        if let Answer::Status(s) = a {
            membership_text(s);
        }
    })
}

fn membership_text(status: &Status) {
    if status.waiting_for_corosync {
        say!("waiting for corosync: this node is in no view and holds nothing");
    }
    let view = &status.view;
    let state = match (view.ready, view.mature) {
        (false, _) => "waiting for every member's state",
        (true, false) => "settling (planned moves wait until the view matures)",
        (true, true) => "settled",
    };
    say!(
        "node {}{}, view {} of {} ({}): {state}",
        status.node,
        if status.standby { " (standby)" } else { "" },
        view.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
        view.members.len(),
        view.members.join(", "),
    );
    if let Some(lease) = &status.lease {
        say!("lease (epoch {}): {}", lease.epoch, lease.state.describe());
        let acks: Vec<String> = lease
            .acknowledged_by
            .iter()
            .map(|a| format!("{} ({} ms ago)", a.member, a.age_ms))
            .collect();
        say!(
            "  acknowledged by: {}",
            if acks.is_empty() {
                "nobody".to_owned()
            } else {
                acks.join(", ")
            }
        );
        for w in &lease.withholding {
            let whose = if w.promised_here {
                "its own"
            } else {
                "adopted"
            };
            let table = if w.table_epoch == w.epoch {
                String::new()
            } else {
                format!("; the table has it at epoch {}", w.table_epoch)
            };
            say!(
                "  not acknowledging {}: promised ({whose}) in its epoch {}{table}",
                w.member,
                w.epoch
            );
        }
    }
    if !view.silent.is_empty() {
        let silent: Vec<&str> = view.silent.iter().map(String::as_str).collect();
        say!(
            "silent (no State in time; planned around as holding nothing): {}",
            silent.join(", ")
        );
    }
    say!(
        "view stable for {}, configuration ({} addresses) stable for {}",
        age(view.stable_ms),
        status.config.addresses,
        age(Some(status.config.stable_ms)),
    );
}

pub(crate) fn info(socket: &Path, json: bool) -> Outcome {
    report(socket, &Request::Info, json, |a| {
        if let Answer::Info(i) = a {
            info_text(i);
        }
    })
}

fn info_text(r: &Info) {
    say!(
        "dvipd {} on node {} (pid {}), up {}",
        r.version,
        r.node,
        r.pid,
        age(Some(r.uptime_ms))
    );
    say!(
        "configuration {} ({} addresses), stable for {}",
        r.config_file.display(),
        r.config.addresses,
        age(Some(r.config.stable_ms))
    );
    match &r.bus {
        BusStatus::Corosync { group, joined } => say!(
            "bus: corosync, group {group}, {}",
            if *joined {
                "joined"
            } else {
                "NOT JOINED (corosync is away: every address released)"
            }
        ),
        BusStatus::Standalone => say!("bus: standalone (a cluster of one)"),
    }
    say!(
        "holding {} addresses, lifetime {} s, announcing to {}",
        r.held,
        r.address_lifetime_s,
        if r.arp_all_hosts {
            "the whole link"
        } else {
            "known neighbours only"
        }
    );
    if r.holders > 0 {
        say!(
            "{} of them on {} holder interfaces (dvip-hold0 and up), IPv4 only",
            r.held_on_holders,
            r.holders
        );
    }
    if let Some(hook) = &r.hook {
        say!("hook: {hook}");
    }
    for forward in &r.forwarding {
        say!("forwarding {forward}");
    }
}

pub(crate) fn arp_show(socket: &Path, json: bool) -> Outcome {
    report(socket, &Request::ArpShow, json, |a| {
        if let Answer::Arp(arp) = a {
            arp_text(arp);
        }
    })
}

fn arp_text(r: &Arp) {
    say!(
        "node {}: announcing to {}",
        r.node,
        match r.mode {
            ArpMode::AllHosts => "the whole link",
            ArpMode::Neighbours => "known neighbours only",
        }
    );
    say!(
        "{:<40} {:<12} {:>13} {:>6}",
        "ADDRESS",
        "INTERFACE",
        "ANNOUNCEMENTS",
        "FRAMES"
    );
    for a in &r.addresses {
        say!(
            "{:<40} {:<12} {:>13} {:>6}",
            a.address.to_string(),
            a.interface,
            a.announcements,
            a.frames_last,
        );
    }
}

/// The standing moves in a line, `None` when there are none.
pub(crate) fn standing(moves: &[dvip_console::StandingMove]) -> Option<String> {
    let list: Vec<String> = moves
        .iter()
        .map(|m| format!("{} -> {}", m.address, m.to))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// Shows one node's answer to a report as text.
fn answer_text(answer: &Answer, view_only: bool) {
    match answer {
        Answer::Status(s) if view_only => membership_text(s),
        Answer::Status(s) => show_text(s),
        Answer::Cluster(_) => say!("ok"),
        Answer::Info(i) => info_text(i),
        Answer::Arp(a) => arp_text(a),
        Answer::Cidr(c) => replication::cidr_text(c),
        Answer::Domains(d) => replication::domains_text(d),
        Answer::Throttles(t) => replication::throttles_text(t),
        Answer::Caches(c) => replication::caches_text(c),
        Answer::CacheValue(v) => {
            replication::value_text(v);
        }
        Answer::Done | Answer::Reloaded { .. } | Answer::Gathered(_) | Answer::Following => {
            say!("ok");
        }
    }
}

/// The request a broadcast's words name, and whether only the view is shown.
fn broadcast_request(words: &[String]) -> Option<(Request, bool)> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["show"] | ["cluster", "duravip", "show"] => (Request::Show, false),
        ["membership"] => (Request::Show, true),
        ["info"] => (Request::Info, false),
        ["arp", "show"] => (Request::ArpShow, false),
        ["announce-view"] | ["announce", "view"] | ["cluster", "duravip", "announce", "view"] => {
            (Request::AnnounceView, false)
        }
        _ => return None,
    })
}

pub(crate) fn broadcast(socket: &Path, words: &[String], json: bool) -> Outcome {
    let Some((inner, view_only)) = broadcast_request(words) else {
        eprintln!(
            "dvip: `{}` cannot be broadcast; try `show`, `membership`, `info`, `arp show` or \
             `cluster duravip announce view`",
            words.join(" ")
        );
        return Outcome::Usage;
    };
    let request = match Request::broadcast(inner.clone()) {
        Ok(request) => request,
        Err(e) => return fail(&e, json),
    };
    let gathered = match Client::new(socket).call_blocking(&request) {
        Ok(Answer::Gathered(g)) => g,
        Ok(other) => {
            return fail(
                &ConsoleError::new(
                    dvip_console::ErrorKind::BadReply,
                    format!("a broadcast answered with {other:?}"),
                ),
                json,
            )
        }
        Err(e) => return fail(&e, json),
    };
    // Each node's reply is shown even when some failed or stayed silent.
    let answers = gathered.answers(&inner);
    if json {
        print_json(&Answer::Gathered(gathered.clone()).to_json());
    } else {
        for (node, answer) in &answers {
            say!("== {node}");
            match answer {
                Ok(answer) => answer_text(answer, view_only),
                Err(e) => say!("error: {e}"),
            }
        }
        if !gathered.missing.is_empty() {
            eprintln!(
                "dvip: no reply in time from {}",
                gathered.missing.join(", ")
            );
        }
    }
    if gathered.missing.is_empty() && answers.values().all(Result::is_ok) {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

/// Runs a command that changes something; says `ok` (or, with `--json`, prints the reply).
pub(crate) fn command(socket: &Path, request: &Request, json: bool) -> Outcome {
    report(socket, request, json, |answer| match answer {
        Answer::Reloaded { addresses } => say!("ok: {addresses} DuraVIP addresses"),
        _ => say!("ok"),
    })
}

/// Follows the event stream: readable lines by default, the events' JSON with `json`.
pub(crate) fn events(socket: &Path, json: bool) -> Outcome {
    let mut stdout = std::io::stdout().lock();
    let followed = Client::new(socket).follow_blocking(|line: EventLine| {
        let written = if json {
            serde_json::to_writer(&mut stdout, &line)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(stdout))
        } else {
            writeln!(
                stdout,
                "{} {:<12} {}",
                clock(line.at_ms),
                line.event.name(),
                line.event.describe()
            )
        };
        // A closed pipe (`dvip events | head`) ends the stream like dvipd going away would.
        if written.and_then(|()| stdout.flush()).is_err() {
            std::process::exit(0);
        }
    });
    match followed {
        Ok(()) => Outcome::Ok,
        Err(e) => fail(&e, json),
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the epoch.
pub(crate) fn clock(at_ms: u64) -> String {
    let day_ms = at_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        (day_ms / 60_000) % 60,
        (day_ms / 1000) % 60,
        day_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_a_clock_and_ages_as_durations() {
        assert_eq!(clock(3_723_004), "01:02:03.004");
        assert_eq!(clock(86_400_000 + 1), "00:00:00.001");
        assert_eq!(age(Some(12_300)), "12.3 s");
        assert_eq!(age(Some(245_000)), "4 min 05 s");
        assert_eq!(age(None), "-");
    }
}
