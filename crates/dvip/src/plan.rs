//! `dvip plan`: the cluster's settled ownership for a set of node configurations, offline.
//!
//! Owns resolving the arguments against the files and printing the plan. The election itself
//! is the core's, the same code the daemons run.

use std::collections::BTreeMap;
use std::io::Write as _;

use dvip_config::{load, DiskFiles, LoadOptions, Severity};
use dvip_console::MarkedAddress;
use dvip_core::{settle, share_equal_configurations, Entity, Member, NodeName};
use serde_json::json;

use crate::cli::PlanArgs;
use crate::Outcome;

pub(crate) fn run(args: &PlanArgs) -> Outcome {
    let mut members: BTreeMap<NodeName, Member> = BTreeMap::new();
    let mut valid = true;
    for (name, file) in &args.nodes {
        if members.contains_key(name) {
            eprintln!("dvip plan: node `{name}` is given twice");
            return Outcome::Usage;
        }
        let mut options = LoadOptions::new(name.clone());
        options.nodename = Some(name.clone());
        let checked = load(file, &options, &DiskFiles);
        for d in checked
            .diagnostics
            .iter()
            .filter(|d| d.severity != Severity::Note)
        {
            eprintln!("{}", d.render(&checked.sources));
        }
        valid &= checked.is_valid();
        let entities = checked.config.managed_addresses().map(Entity::from);
        members.insert(name.clone(), Member::new(entities));
    }
    if !valid {
        eprintln!("dvip plan: a configuration is invalid; fix it first (see above)");
        return Outcome::Failed;
    }
    for (name, addresses) in &args.holds {
        let Some(member) = members.get_mut(name) else {
            eprintln!("dvip plan: --holds names `{name}`, which no --node gives");
            return Outcome::Usage;
        };
        for address in addresses {
            if !member.entities.contains_key(address) {
                eprintln!("dvip plan: note: {name} holds {address}, which its configuration does not manage; it will let it go");
            }
            member.holdings.insert(*address);
        }
    }
    for name in args.fail.iter().chain(&args.standby) {
        if !members.contains_key(name) {
            eprintln!("dvip plan: `{name}` is no --node");
            return Outcome::Usage;
        }
    }
    warn_unknown_preferences(&members);
    share_equal_configurations(&mut members);
    let (mut plan, mut moves) = settle(&members);
    if !args.fail.is_empty() || !args.standby.is_empty() {
        // The cluster as it settled, then the change: the moves shown are the change's.
        for (name, member) in &mut members {
            member.holdings = plan.owned_by(name).collect();
            member.standby |= args.standby.contains(name);
        }
        members.retain(|name, _| !args.fail.contains(name));
        (plan, moves) = settle(&members);
    }
    let marked = MarkedAddress::all_in(&plan, &members);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let addresses: Vec<_> = plan
            .addresses
            .iter()
            .map(|(address, d)| dvip_console::AddressPlan::new(*address, d))
            .collect();
        let loads: BTreeMap<&str, usize> = members
            .keys()
            .map(|n| (n.as_str(), plan.owned_by(n).count()))
            .collect();
        let report = json!({
            "addresses": addresses,
            "loads": loads,
            "moves": moves,
            "marked": marked,
            "failed": args.fail,
            "standby": args.standby,
        });
        let _ = serde_json::to_writer_pretty(&mut stdout, &report);
        let _ = writeln!(stdout);
    } else {
        if !args.fail.is_empty() || !args.standby.is_empty() {
            let mut what = Vec::new();
            if !args.fail.is_empty() {
                what.push(format!("{} failed", args.fail.join(", ")));
            }
            if !args.standby.is_empty() {
                what.push(format!("{} on standby", args.standby.join(", ")));
            }
            let _ = writeln!(stdout, "after {}:\n", what.join(" and "));
        }
        let _ = write!(stdout, "{}", plan.table());
        let loads: Vec<String> = members
            .keys()
            .map(|n| format!("{n} {}", plan.owned_by(n).count()))
            .collect();
        let _ = writeln!(stdout, "\naddresses per node: {}", loads.join(", "));
        for m in &marked {
            let marks: Vec<&str> = m.marks.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(
                stdout,
                "\n{} is {}: what each node says",
                m.address,
                marks.join(" ")
            );
            for (node, said) in &m.said {
                let _ = writeln!(
                    stdout,
                    "  {node}: {}",
                    crate::status::describe(said.as_ref())
                );
            }
        }
        if !moves.is_empty() {
            let _ = writeln!(stdout, "\nmoves on the way there:");
        }
        for m in &moves {
            let from = if m.from.is_empty() {
                "-".to_owned()
            } else {
                m.from.join("+")
            };
            let to = m.to.as_deref().unwrap_or("-");
            let when = if m.after_maturity {
                "once the view matures"
            } else {
                "at once"
            };
            let _ = writeln!(
                stdout,
                "  {:<15} {from} -> {to}  ({}, {when})",
                m.address,
                m.reason.as_str()
            );
        }
    }
    if args.strict && !marked.is_empty() {
        eprintln!("dvip plan: {} marked addresses (--strict)", marked.len());
        return Outcome::Failed;
    }
    Outcome::Ok
}

/// Warns about a preference for a node no `--node` gives: that address never goes where the
/// configuration says it should.
fn warn_unknown_preferences(members: &BTreeMap<NodeName, Member>) {
    for (name, member) in members {
        for entity in member.entities.values() {
            if let Some(preferred) = &entity.preference {
                if !members.contains_key(preferred) {
                    eprintln!(
                        "dvip plan: warning: {name} prefers `{preferred}` for {}, which no --node gives: \
                         the preference can never hold (a typo, or a node left out?)",
                        entity.address
                    );
                }
            }
        }
    }
}
