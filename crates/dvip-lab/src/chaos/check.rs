//! The chaos run's checker: judges one look at the lab (every node's `show`, the addresses in
//! its kernel, the client's ARP answers) against what the nemesis made of the lab.
//!
//! Owns the rules a settled cluster must obey and the words of every violation. It is pure:
//! it must not touch the lab, so it is tested on made-up looks.

use std::collections::{BTreeMap, BTreeSet};

use dvip_console::Status;
use dvip_core::Reason;
use serde_json::Value;

/// One node as the checker saw it.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeSeen {
    /// `node1`...
    pub(super) name: String,
    pub(super) mac: String,
    /// Its dvipd and corosync run and its link is up: it belongs in the view of its side.
    pub(super) member: bool,
    /// Which side of a partition its switch port is on (0: the client's).
    pub(super) side: u8,
    /// The addresses its configuration file manages.
    pub(super) configured: BTreeSet<String>,
    /// The addresses on its interface.
    pub(super) held: BTreeSet<String>,
    /// Its reply to `show`, if its dvipd answered.
    pub(super) show: Option<Status>,
}

/// One look at the whole lab.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    pub(super) nodes: Vec<NodeSeen>,
    /// Every address of the lab.
    pub(super) addresses: Vec<String>,
    /// Per address, the MACs that answered the client's ARP requests (None: not probed).
    pub(super) arp: Option<BTreeMap<String, BTreeSet<String>>>,
}

/// Who owns what, per address (`None`: nobody), in one member's plan.
type Owners = BTreeMap<String, Option<String>>;

/// What each member saw at the last check: its view and its plan's owners.
pub(super) type Record = BTreeMap<String, (u64, Owners)>;

/// What the nemesis did since the last check that may move addresses.
#[derive(Debug, Clone, Default)]
pub(super) struct Causes {
    /// A node died, stopped, started, lost or got back its link, or the LAN was cut or
    /// healed or degraded: views may change.
    pub(super) membership: bool,
    /// Nodes whose configuration, standby state or pins changed: their side may re-plan.
    pub(super) changed: BTreeSet<String>,
}

fn owners(show: &Status) -> Owners {
    show.addresses
        .iter()
        .map(|a| (a.plan.address.to_string(), a.plan.owner.clone()))
        .collect()
}

fn view_id(show: &Status) -> Option<u64> {
    show.view.id
}

fn view_members(show: &Status) -> Vec<String> {
    let mut members = show.view.members.clone();
    members.sort();
    members
}

/// The members, by side.
fn sides(seen: &Seen) -> BTreeMap<u8, Vec<&NodeSeen>> {
    let mut sides: BTreeMap<u8, Vec<&NodeSeen>> = BTreeMap::new();
    for node in seen.nodes.iter().filter(|n| n.member) {
        sides.entry(node.side).or_default().push(node);
    }
    sides
}

fn list(set: &BTreeSet<String>) -> String {
    let v: Vec<&str> = set.iter().map(String::as_str).collect();
    format!("[{}]", v.join(", "))
}

/// Why the lab has not settled yet, or `None` when it has: every member sees exactly the
/// members of its side in a mature view whose States are all in, all of a side agree on the
/// view and the plan, every member holds what the plan gives it, and nodes outside any view
/// hold nothing.
pub(super) fn unsettled(seen: &Seen) -> Option<String> {
    if let Some(node) = seen.nodes.iter().find(|n| !n.member && !n.held.is_empty()) {
        return Some(format!(
            "{} is in no view but holds {}",
            node.name,
            list(&node.held)
        ));
    }
    for members in sides(seen).values() {
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        let mut first: Option<(&str, u64, Owners)> = None;
        for m in members {
            let Some(show) = &m.show else {
                return Some(format!("{} does not answer `show`", m.name));
            };
            let view = view_members(show);
            if view != names {
                return Some(format!(
                    "{} sees the view [{}], its side is [{}]",
                    m.name,
                    view.join(", "),
                    names.join(", ")
                ));
            }
            if !show.view.mature {
                return Some(format!("{}'s view is not mature", m.name));
            }
            // Until every State is in, the plan shown is the one before: a member waiting for
            // a slow one (up to the State deadline) has not planned this view yet.
            if !show.view.ready {
                return Some(format!("{} waits for States in its view", m.name));
            }
            let (id, plan) = (view_id(show).unwrap_or(0), owners(show));
            let mine: BTreeSet<String> = plan
                .iter()
                .filter(|(_, o)| o.as_deref() == Some(m.name.as_str()))
                .map(|(a, _)| a.clone())
                .collect();
            if mine != m.held {
                return Some(format!(
                    "{} holds {} but its plan gives it {}",
                    m.name,
                    list(&m.held),
                    list(&mine)
                ));
            }
            match &first {
                None => first = Some((&m.name, id, plan)),
                Some((other, other_id, _)) if *other_id != id => {
                    return Some(format!(
                        "{} is in view {id}, {other} in view {other_id}",
                        m.name
                    ));
                }
                Some((other, _, other_plan)) if *other_plan != plan => {
                    return Some(format!("{} and {other} plan different owners", m.name));
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// What must not change while the lab is settled: views, plans and holdings.
pub(super) fn fingerprint(seen: &Seen) -> String {
    let per: Vec<Value> = seen
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!([
                n.name,
                n.member,
                n.show.as_ref().and_then(view_id),
                n.show.as_ref().map(owners),
                n.held
            ])
        })
        .collect();
    Value::Array(per).to_string()
}

/// Each member's view and owners, to compare with at the next check.
pub(super) fn record(seen: &Seen) -> Record {
    seen.nodes
        .iter()
        .filter(|n| n.member)
        .filter_map(|n| {
            let show = n.show.as_ref()?;
            Some((n.name.clone(), (view_id(show)?, owners(show))))
        })
        .collect()
}

/// Every rule a settled lab breaks, in words. `previous` is the record of the last check,
/// `events` each node's event lines since then (nodes whose events are not known are left
/// out, and so are the rules about causes for them).
pub(super) fn check(
    seen: &Seen,
    previous: Option<&Record>,
    causes: &Causes,
    events: &BTreeMap<String, Vec<Value>>,
) -> Vec<String> {
    let mut bad = Vec::new();
    let sides = sides(seen);
    for members in sides.values() {
        let Some(show) = members.first().and_then(|m| m.show.as_ref()) else {
            continue;
        };
        let plan = owners(show);
        let reasons: BTreeMap<String, Reason> = show
            .addresses
            .iter()
            .map(|a| (a.plan.address.to_string(), a.plan.reason))
            .collect();
        let standby = |m: &NodeSeen| m.show.as_ref().is_some_and(|s| s.standby);
        let candidates = |address: &str| -> BTreeSet<&str> {
            members
                .iter()
                .filter(|m| m.configured.contains(address) && !standby(m))
                .map(|m| m.name.as_str())
                .collect()
        };
        // Every member here runs and speaks the same build: one counted silent serves
        // nothing for as long as the view lasts.
        for m in members
            .iter()
            .filter(|m| show.view.silent.contains(&m.name))
        {
            bad.push(format!(
                "{} counts {} silent though it runs and speaks",
                members[0].name, m.name
            ));
        }
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for owner in plan.values().flatten() {
            *load.entry(owner.as_str()).or_default() += 1;
        }
        for address in &seen.addresses {
            let can = candidates(address);
            let owner = plan.get(address).cloned().flatten();
            let holders: BTreeSet<String> = members
                .iter()
                .filter(|m| m.held.contains(address))
                .map(|m| m.name.clone())
                .collect();
            match &owner {
                None if !can.is_empty() => bad.push(format!(
                    "{address} is dark: nobody owns it though {} could",
                    can.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                Some(o) if !can.contains(o.as_str()) => bad.push(format!(
                    "{address} is owned by {o}, which is not a candidate (candidates: [{}])",
                    can.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                _ => {}
            }
            let expected: BTreeSet<String> = owner.iter().cloned().collect();
            if holders != expected {
                bad.push(format!(
                    "{address} is held by {} on one side, its owner is {}",
                    list(&holders),
                    owner.as_deref().unwrap_or("nobody")
                ));
            }
            let movable = matches!(
                reasons.get(address.as_str()),
                Some(Reason::Held | Reason::Assigned | Reason::Balanced)
            );
            if let (Some(o), true) = (&owner, movable) {
                let mine = load.get(o.as_str()).copied().unwrap_or(0);
                for c in &can {
                    let theirs = load.get(c).copied().unwrap_or(0);
                    if mine > theirs + 1 {
                        bad.push(format!(
                            "{address} stays on {o} (load {mine}) though {c} could hold it (load {theirs})"
                        ));
                    }
                }
            }
        }
        let changed = members.iter().any(|m| causes.changed.contains(&m.name));
        for m in members {
            let (Some(show), Some((was_view, was_owners))) =
                (m.show.as_ref(), previous.and_then(|p| p.get(&m.name)))
            else {
                continue;
            };
            // A view's id is a digest of its members, so a node that left and came back in
            // the round shows the same id: its `view` events tell.
            let Some(round) = events.get(&m.name) else {
                continue;
            };
            let now_view = view_id(show).unwrap_or(0);
            if now_view != *was_view || round.iter().any(|e| e["event"] == "view") {
                if !causes.membership {
                    bad.push(format!(
                        "{}'s view changed ({was_view} to {now_view}) though no node or link failed",
                        m.name
                    ));
                }
                continue;
            }
            if changed {
                continue;
            }
            for (address, owner) in &plan {
                let was = was_owners.get(address).cloned().flatten();
                if was != *owner {
                    bad.push(format!(
                        "{address} moved from {} to {} in view {now_view} with no cause",
                        was.as_deref().unwrap_or("nobody"),
                        owner.as_deref().unwrap_or("nobody")
                    ));
                }
            }
            for e in round {
                if e["event"] == "acquire" || e["event"] == "release" {
                    bad.push(format!(
                        "{} did `{}` {} in view {now_view} with no cause",
                        m.name,
                        e["event"].as_str().unwrap_or("?"),
                        e["address"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    if let Some(arp) = &seen.arp {
        let client_side = sides.get(&0);
        let plan = client_side
            .and_then(|m| m.first())
            .and_then(|m| m.show.as_ref())
            .map(owners)
            .unwrap_or_default();
        let mac_of: BTreeMap<&str, &str> = seen
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.mac.as_str()))
            .collect();
        let name_of: BTreeMap<&str, &str> = seen
            .nodes
            .iter()
            .map(|n| (n.mac.as_str(), n.name.as_str()))
            .collect();
        for address in &seen.addresses {
            let expected: BTreeSet<String> = plan
                .get(address)
                .cloned()
                .flatten()
                .and_then(|o| mac_of.get(o.as_str()).map(|m| (*m).to_owned()))
                .into_iter()
                .collect();
            let answered = arp.get(address).cloned().unwrap_or_default();
            if answered != expected {
                let named = |macs: &BTreeSet<String>| -> BTreeSet<String> {
                    macs.iter()
                        .map(|m| {
                            name_of
                                .get(m.as_str())
                                .map_or(m.clone(), |n| (*n).to_owned())
                        })
                        .collect()
                };
                bad.push(format!(
                    "the client got ARP answers for {address} from {}, expected {}",
                    list(&named(&answered)),
                    list(&named(&expected))
                ));
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use dvip_console::{AddressPlan, AddressStatus, ConfigStatus, ViewStatus};
    use serde_json::json;

    use super::*;

    const ADDRESSES: [&str; 4] = ["198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13"];

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn show(view: u64, members: &[&str], owners: &[(&str, Option<&str>, &str)]) -> Status {
        let address = |(a, o, r): &(&str, Option<&str>, &str)| AddressStatus {
            plan: AddressPlan {
                address: a.parse().expect("an address"),
                owner: o.map(str::to_owned),
                reason: serde_json::from_value(json!(r)).expect("a reason"),
                marks: Vec::new(),
                candidates: Vec::new(),
                bindings: BTreeSet::new(),
                listener_ports: BTreeSet::new(),
                follows: None,
            },
            held_here: false,
            plumbed_here: false,
            readied_here: false,
            next_owner: None,
        };
        Status {
            node: members
                .first()
                .map_or_else(String::new, |m| (*m).to_owned()),
            standby: false,
            view: ViewStatus {
                id: Some(view),
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                silent: BTreeSet::new(),
                ready: true,
                mature: true,
                stable_ms: None,
            },
            addresses: owners.iter().map(address).collect(),
            not_plumbed: BTreeSet::new(),
            given_up_interfaces: BTreeSet::new(),
            table: String::new(),
            moves: Vec::new(),
            config: ConfigStatus {
                addresses: owners.len(),
                stable_ms: 0,
            },
            waiting_for_corosync: false,
            lease: None,
        }
    }

    fn node(name: &str, held: &[&str], show: Option<Status>) -> NodeSeen {
        NodeSeen {
            name: name.to_owned(),
            mac: format!("mac-{name}"),
            member: show.is_some(),
            side: 0,
            configured: set(&ADDRESSES),
            held: set(held),
            show,
        }
    }

    /// Two members sharing four addresses two and two, as a settled lab looks.
    fn healthy() -> Seen {
        let plan = [
            ("198.18.0.10", Some("node1"), "assigned"),
            ("198.18.0.11", Some("node1"), "held"),
            ("198.18.0.12", Some("node2"), "assigned"),
            ("198.18.0.13", Some("node2"), "balanced"),
        ];
        let members = ["node1", "node2"];
        Seen {
            nodes: vec![
                node("node1", &ADDRESSES[..2], Some(show(7, &members, &plan))),
                node("node2", &ADDRESSES[2..], Some(show(7, &members, &plan))),
                node("node3", &[], None),
            ],
            addresses: ADDRESSES.iter().map(|s| (*s).to_owned()).collect(),
            arp: Some(
                ADDRESSES
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        let owner = if k < 2 { "mac-node1" } else { "mac-node2" };
                        ((*a).to_owned(), set(&[owner]))
                    })
                    .collect(),
            ),
        }
    }

    /// Both members followed, and quiet.
    fn no_events() -> BTreeMap<String, Vec<Value>> {
        BTreeMap::from([("node1".to_owned(), vec![]), ("node2".to_owned(), vec![])])
    }

    #[test]
    fn a_healthy_lab_is_settled_and_breaks_nothing() {
        let seen = healthy();
        assert_eq!(unsettled(&seen), None);
        let record = record(&seen);
        let bad = check(&seen, Some(&record), &Causes::default(), &no_events());
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn a_dead_node_still_holding_an_address_is_not_settled() {
        let mut seen = healthy();
        seen.nodes[2].held = set(&["198.18.0.10"]);
        let why = unsettled(&seen).expect("not settled");
        assert!(why.contains("node3 is in no view"), "{why}");
    }

    #[test]
    fn a_member_missing_from_a_view_or_behind_on_its_plan_is_not_settled() {
        let mut seen = healthy();
        seen.nodes[1].held = set(&["198.18.0.12"]);
        assert!(unsettled(&seen).is_some_and(|w| w.contains("its plan gives it")));
        let mut seen = healthy();
        if let Some(s) = seen.nodes[0].show.as_mut() {
            s.view.members = vec!["node1".to_owned()];
        }
        assert!(unsettled(&seen).is_some_and(|w| w.contains("sees the view [node1]")));
        let mut seen = healthy();
        if let Some(s) = seen.nodes[1].show.as_mut() {
            s.view.id = Some(8);
        }
        assert!(unsettled(&seen).is_some_and(|w| w.contains("view 8")));
    }

    #[test]
    fn a_view_waiting_for_states_is_not_settled_and_a_silent_runner_is_a_violation() {
        // A view can mature before its States are all in (a slow member, up to the State
        // deadline); until then it shows the plan before, and the balance rule judging that
        // finds a false imbalance.
        let mut seen = healthy();
        if let Some(s) = seen.nodes[0].show.as_mut() {
            s.view.ready = false;
        }
        assert!(unsettled(&seen).is_some_and(|w| w.contains("waits for States")));
        let mut seen = healthy();
        for n in &mut seen.nodes {
            if let Some(s) = n.show.as_mut() {
                s.view.silent = set(&["node2"]);
            }
        }
        let bad = check(&seen, None, &Causes::default(), &BTreeMap::new());
        assert!(
            bad.iter()
                .any(|b| b.contains("counts node2 silent though it runs")),
            "{bad:?}"
        );
    }

    #[test]
    fn a_second_arp_answer_or_a_dark_address_is_a_violation() {
        let mut seen = healthy();
        if let Some(arp) = seen.arp.as_mut() {
            arp.insert("198.18.0.10".into(), set(&["mac-node1", "mac-node3"]));
            arp.insert("198.18.0.13".into(), BTreeSet::new());
        }
        let bad = check(&seen, None, &Causes::default(), &no_events());
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].contains("198.18.0.10 from [node1, node3]"),
            "{}",
            bad[0]
        );
        assert!(
            bad[1].contains("198.18.0.13 from [], expected [node2]"),
            "{}",
            bad[1]
        );
    }

    #[test]
    fn an_owner_outside_the_candidates_or_nobody_owning_is_a_violation() {
        let mut seen = healthy();
        seen.nodes[1].configured.remove("198.18.0.12");
        let bad = check(&seen, None, &Causes::default(), &no_events());
        assert!(bad.iter().any(|b| b.contains("not a candidate")), "{bad:?}");

        let mut seen = healthy();
        for n in &mut seen.nodes[..2] {
            if let Some(s) = n.show.as_mut() {
                s.addresses[0].plan.owner = None;
            }
        }
        seen.nodes[0].held.remove("198.18.0.10");
        let bad = check(&seen, None, &Causes::default(), &no_events());
        assert!(
            bad.iter().any(|b| b.contains("198.18.0.10 is dark")),
            "{bad:?}"
        );
    }

    #[test]
    fn unbalanced_movable_addresses_are_a_violation_and_pinned_ones_are_not() {
        let members = ["node1", "node2"];
        let lopsided = |reason: &str| {
            let plan = [
                ("198.18.0.10", Some("node1"), "held"),
                ("198.18.0.11", Some("node1"), "held"),
                ("198.18.0.12", Some("node1"), reason),
                ("198.18.0.13", Some("node2"), "held"),
            ];
            let mut seen = healthy();
            seen.nodes[0] = node("node1", &ADDRESSES[..3], Some(show(7, &members, &plan)));
            seen.nodes[1] = node("node2", &ADDRESSES[3..], Some(show(7, &members, &plan)));
            seen.arp = None;
            seen
        };
        let bad = check(&lopsided("held"), None, &Causes::default(), &no_events());
        assert!(
            bad.iter().any(|b| b.contains("stays on node1 (load 3)")),
            "{bad:?}"
        );
        // 3 against 1 is still a difference of two for the held ones: only pinned and
        // preferred addresses are exempt themselves.
        let bad = check(&lopsided("pinned"), None, &Causes::default(), &no_events());
        assert!(bad.iter().all(|b| !b.contains("198.18.0.12")), "{bad:?}");
    }

    #[test]
    fn an_owner_change_needs_a_cause() {
        let seen = healthy();
        let mut before = record(&seen);
        for (_, owners) in before.values_mut() {
            owners.insert("198.18.0.13".into(), Some("node1".into()));
        }
        let bad = check(&seen, Some(&before), &Causes::default(), &no_events());
        assert!(
            bad.iter().any(
                |b| b.contains("198.18.0.13 moved from node1 to node2 in view 7 with no cause")
            ),
            "{bad:?}"
        );
        let reloaded = Causes {
            changed: set(&["node2"]),
            ..Causes::default()
        };
        assert!(check(&seen, Some(&before), &reloaded, &no_events()).is_empty());

        let mut events = no_events();
        events.insert(
            "node2".to_owned(),
            vec![json!({"event": "acquire", "address": "198.18.0.13"})],
        );
        let bad = check(&seen, Some(&record(&seen)), &Causes::default(), &events);
        assert!(
            bad.iter()
                .any(|b| b.contains("node2 did `acquire` 198.18.0.13")),
            "{bad:?}"
        );
    }

    #[test]
    fn a_view_change_needs_a_membership_fault() {
        let seen = healthy();
        let mut before = record(&seen);
        for (view, _) in before.values_mut() {
            *view = 6;
        }
        let bad = check(&seen, Some(&before), &Causes::default(), &no_events());
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].contains("view changed (6 to 7)"));
        let failed = Causes {
            membership: true,
            ..Causes::default()
        };
        assert!(check(&seen, Some(&before), &failed, &no_events()).is_empty());
    }

    #[test]
    fn a_view_that_came_back_with_the_same_id_is_known_by_its_events() {
        let seen = healthy();
        let mut before = record(&seen);
        for (_, owners) in before.values_mut() {
            owners.insert("198.18.0.13".into(), Some("node1".into()));
        }
        let mut events = no_events();
        events.insert("node1".into(), vec![json!({"event": "view", "view_id": 7})]);
        let bad = check(&seen, Some(&before), &Causes::default(), &events);
        assert!(
            bad.iter().any(|b| b.contains("node1's view changed")),
            "{bad:?}"
        );
        let failed = Causes {
            membership: true,
            ..Causes::default()
        };
        let bad = check(&seen, Some(&before), &failed, &events);
        // node1 saw the view change; node2 did not, so its plan's move has no cause.
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("198.18.0.13 moved"), "{bad:?}");
        // With node2's events unknown, only node1's quiet plan is held to account.
        let unknown = BTreeMap::from([("node1".to_owned(), vec![])]);
        assert_eq!(check(&seen, Some(&before), &failed, &unknown).len(), 1);
        assert_eq!(check(&seen, Some(&before), &failed, &no_events()).len(), 2);
    }
}
