//! `dvip status`: the whole cluster on one screen, as the local dvipd sees it.
//!
//! Owns gathering (the local `status`, then every node's `info` over the control group for
//! what only each node knows: its addresses not yet plumbed) and showing it. The reports are
//! `dvip_console`'s.

use std::path::Path;

use dvip_console::{Answer, Client, ClusterStatus, ConsoleError, Description, Request};

use crate::console::{age, clock, fail, print_json};
use crate::Outcome;

pub(crate) fn run(socket: &Path, json: bool) -> Outcome {
    let client = Client::new(socket);
    let mut status = match client.call_blocking(&Request::Status) {
        Ok(Answer::Cluster(status)) => *status,
        Ok(other) => return fail(&unexpected(&other), json),
        Err(e) => return fail(&e, json),
    };
    let unasked = gather_not_plumbed(&client, &mut status);
    if json {
        print_json(&Answer::Cluster(Box::new(status)).to_json());
    } else {
        print!("{}", render(&status));
    }
    if let Some(why) = unasked {
        eprintln!("dvip: the other nodes' unplumbed addresses are not shown: {why}");
    }
    Outcome::Ok
}

fn unexpected(answer: &Answer) -> ConsoleError {
    ConsoleError::new(
        dvip_console::ErrorKind::BadReply,
        format!("`status` answered with {answer:?}"),
    )
}

/// Asks every node for what only it knows; says why when some could not be asked.
fn gather_not_plumbed(client: &Client, status: &mut ClusterStatus) -> Option<String> {
    if status.view.members.len() < 2 {
        return None;
    }
    let request = Request::broadcast(Request::Info).expect("info may be broadcast");
    let gathered = match client.call_blocking(&request) {
        Ok(Answer::Gathered(g)) => g,
        Ok(other) => return Some(unexpected(&other).message),
        Err(e) => return Some(e.message),
    };
    let mut problems: Vec<String> = gathered
        .missing
        .iter()
        .map(|n| format!("{n} did not answer"))
        .collect();
    for (node, answer) in gathered.answers(&Request::Info) {
        match answer {
            Ok(Answer::Info(info)) if !info.not_plumbed.is_empty() => {
                status.not_plumbed.insert(node, info.not_plumbed);
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{node}: {e}")),
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let view = &s.view;
    if s.waiting_for_corosync {
        let _ = writeln!(
            out,
            "{} waits for corosync: it is in no view and holds nothing",
            s.node
        );
    }
    let state = match (view.ready, view.mature) {
        (false, _) => "waiting for every member's state",
        (true, false) => "settling",
        (true, true) => "settled",
    };
    let _ = writeln!(
        out,
        "cluster as {} sees it: view {} of {} members, {state}, stable for {}",
        s.node,
        view.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
        view.members.len(),
        age(view.stable_ms)
    );
    let _ = writeln!(
        out,
        "{} addresses; {} configures {}, stable for {}",
        s.addresses,
        s.node,
        s.config.addresses,
        age(Some(s.config.stable_ms))
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<8} {:>5} {:>5}",
        "NODE", "STATE", "OWNS", "HELD"
    );
    for n in &s.nodes {
        let offline = n.state == dvip_console::NodeState::Offline;
        let count = |c: usize| {
            if offline {
                "-".to_owned()
            } else {
                c.to_string()
            }
        };
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:>5} {:>5}",
            n.name,
            n.state.as_str(),
            count(n.owns),
            count(n.held.len())
        );
    }
    if let Some(moves) = crate::console::standing(&s.moves) {
        let _ = writeln!(
            out,
            "standing moves (until `dvip move clear ADDRESS`): {moves}"
        );
    }
    for t in &s.in_transit {
        let held = if t.held_by.is_empty() {
            "nobody".to_owned()
        } else {
            t.held_by.join(", ")
        };
        let _ = writeln!(
            out,
            "in transit: {} goes to {}, held by {held}",
            t.address, t.owner
        );
    }
    for (node, addresses) in &s.not_plumbed {
        let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "NOT PLUMBED on {node} (held, retried, dark until then): {}",
            list.join(", ")
        );
    }
    if s.configurations.len() > 1 {
        let groups: Vec<String> = s.configurations.iter().map(|g| g.join(", ")).collect();
        let _ = writeln!(
            out,
            "configurations DIFFER between members: {}",
            groups.join(" | ")
        );
    }
    if !s.marked.is_empty() {
        let _ = writeln!(out, "\nmarked addresses, and what each member says:");
    }
    for m in &s.marked {
        let marks: Vec<&str> = m.marks.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(
            out,
            "  {} {} (owner {})",
            m.address,
            marks.join(" "),
            m.owner.as_deref().unwrap_or("none")
        );
        for (node, said) in &m.said {
            let _ = writeln!(out, "    {node}: {}", describe(said.as_ref()));
        }
    }
    if !s.changes.is_empty() {
        let _ = writeln!(out, "\nlast ownership changes (UTC, oldest first):");
    }
    for c in &s.changes {
        let _ = writeln!(
            out,
            "  {}  view {:<6} {:<24} {} -> {}  ({})",
            clock(c.at_ms),
            c.view_id,
            c.address.to_string(),
            c.from.as_deref().unwrap_or("nobody"),
            c.to.as_deref().unwrap_or("nobody"),
            c.reason.as_str()
        );
    }
    out
}

/// What one member says about an address, in a line.
pub(crate) fn describe(said: Option<&Description>) -> String {
    let Some(d) = said else {
        return "does not configure it".to_owned();
    };
    let join = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut text = format!(
        "bindings {}; ports {}",
        join(d.bindings.iter().cloned().collect()),
        join(d.listener_ports.iter().map(ToString::to_string).collect())
    );
    if let Some(p) = &d.preference {
        text.push_str(&format!("; prefers {p}"));
    }
    if let Some(f) = d.follows {
        text.push_str(&format!("; follows {f}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_s_description_reads_as_one_line() {
        let d = Description {
            bindings: ["a".to_owned()].into(),
            listener_ports: [25, 587].into(),
            preference: Some("node2".into()),
            follows: None,
        };
        assert_eq!(
            describe(Some(&d)),
            "bindings a; ports 25, 587; prefers node2"
        );
        assert_eq!(describe(None), "does not configure it");
    }
}
