//! Properties of the election over random clusters: one owner per address, owners are
//! candidates, loads within one, the plan is stable once carried out, and it does not
//! depend on anything but its inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use dvip_core::{elect, Entity, Member, Plan};
use proptest::prelude::*;

use crate::Members;

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, i as u8 + 1))
}

/// Per address: which nodes configure it, its preference, whether it follows address 0's
/// neighbour, and per node whether it holds it; plus standby flags.
#[derive(Debug, Clone)]
struct Cluster {
    nodes: usize,
    configured: Vec<Vec<bool>>,
    preference: Vec<Option<usize>>,
    /// A second, disagreeing preference on the last configuring node.
    conflicting: Vec<bool>,
    follows: Vec<Option<usize>>,
    held: Vec<Vec<bool>>,
    standby: Vec<bool>,
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (1usize..6, 1usize..16).prop_flat_map(|(nodes, addresses)| {
        (
            prop::collection::vec(
                prop::collection::vec(prop::bool::weighted(0.8), nodes),
                addresses,
            ),
            prop::collection::vec(prop::option::weighted(0.3, 0..nodes + 1), addresses),
            prop::collection::vec(prop::bool::weighted(0.1), addresses),
            prop::collection::vec(prop::option::weighted(0.3, 0..addresses), addresses),
            prop::collection::vec(
                prop::collection::vec(prop::bool::weighted(0.3), nodes),
                addresses,
            ),
            prop::collection::vec(prop::bool::weighted(0.15), nodes),
        )
            .prop_map(
                move |(configured, preference, conflicting, follows, held, standby)| Cluster {
                    nodes,
                    configured,
                    preference,
                    conflicting,
                    follows,
                    held,
                    standby,
                },
            )
    })
}

fn name(i: usize) -> String {
    format!("n{i}")
}

fn members(c: &Cluster) -> Members {
    let mut members: Members = (0..c.nodes)
        .map(|n| {
            (
                name(n),
                Member {
                    standby: c.standby[n],
                    ..Member::default()
                },
            )
        })
        .collect();
    for (a, on) in c.configured.iter().enumerate() {
        let last = on.iter().rposition(|&x| x);
        for (n, &configured) in on.iter().enumerate() {
            if !configured {
                continue;
            }
            let mut preference = c.preference[a].map(name);
            if c.conflicting[a] && Some(n) == last {
                preference = Some("elsewhere".to_owned());
            }
            // Followers follow a lower address, so there are no cycles; a follower carries
            // no binding (bindings never follow).
            let follows = c.follows[a].filter(|&l| l < a).map(address);
            let entity = Entity {
                address: address(a),
                bindings: if follows.is_some() {
                    BTreeSet::new()
                } else {
                    [format!("b{a}")].into()
                },
                listener_ports: [25].into(),
                preference,
                follow: follows,
            };
            let member = members.get_mut(&name(n)).expect("made above");
            std::sync::Arc::make_mut(&mut member.entities)
                .insert(address(a), std::sync::Arc::new(entity));
        }
        for (n, &held) in c.held[a].iter().enumerate() {
            if held {
                members
                    .get_mut(&name(n))
                    .expect("made above")
                    .holdings
                    .insert(address(a));
            }
        }
    }
    members
}

fn check_balance(plan: &Plan) -> Result<(), String> {
    dvip_core::election::check::balance_violation(plan).map_or(Ok(()), Err)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_healthy_address_with_a_candidate_has_one_owner_among_its_candidates(c in cluster(), mature in any::<bool>()) {
        let plan = elect(&members(&c), mature, &BTreeMap::new());
        for (address, d) in &plan.addresses {
            match &d.owner {
                Some(owner) => {
                    prop_assert!(!d.marks.broken, "{address} is BROKEN but owned");
                    prop_assert!(d.candidates.contains(owner), "{address}: owner {owner} not a candidate");
                }
                None => prop_assert!(d.marks.broken || d.candidates.is_empty(), "{address} has candidates but no owner: {d:?}"),
            }
            if let Some(leader) = d.follows {
                prop_assert_eq!(plan.owner(&leader), d.owner.as_deref(), "{} does not sit with {}", address, leader);
            }
        }
    }

    #[test]
    fn a_matured_plan_leaves_loads_within_one(c in cluster()) {
        let plan = elect(&members(&c), true, &BTreeMap::new());
        prop_assert_eq!(check_balance(&plan), Ok(()));
    }

    #[test]
    fn a_carried_out_plan_is_stable(c in cluster(), mature in any::<bool>()) {
        let mut members = members(&c);
        let plan = elect(&members, mature, &BTreeMap::new());
        for (name, member) in members.iter_mut() {
            member.holdings = plan.owned_by(name).collect();
        }
        let again = elect(&members, mature, &BTreeMap::new());
        for (address, d) in &plan.addresses {
            // An address nobody configures drops out of the plan once nobody holds it.
            let owner = again.addresses.get(address).and_then(|a| a.owner.as_ref());
            prop_assert_eq!(owner, d.owner.as_ref(), "{} moved with no new input", address);
        }
    }

    #[test]
    fn an_uncontested_preferred_node_owns_its_address_in_a_matured_view(c in cluster()) {
        let members = members(&c);
        let plan = elect(&members, true, &BTreeMap::new());
        for (address, d) in &plan.addresses {
            let a = usize::from(match address { IpAddr::V4(v4) => v4.octets()[3], IpAddr::V6(_) => unreachable!() }) - 1;
            let Some(p) = c.preference[a].map(name) else { continue };
            if d.marks.broken || d.marks.conflict || d.follows.is_some() || !d.is_candidate(&p) {
                continue;
            }
            prop_assert_eq!(d.owner.as_deref(), Some(p.as_str()), "{} not with its preferred node", address);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Members that share one configuration map are merged once; the plan must not change.
    #[test]
    fn sharing_equal_configurations_changes_nothing(c in cluster(), mature in any::<bool>(), uniform in any::<bool>()) {
        let mut c = c;
        if uniform {
            // Everyone configures everything the same way: one shared map.
            c.configured.iter_mut().for_each(|row| row.iter_mut().for_each(|x| *x = true));
            c.conflicting.iter_mut().for_each(|x| *x = false);
        }
        let separate = members(&c);
        let mut shared = separate.clone();
        dvip_core::share_equal_configurations(&mut shared);
        if uniform && c.nodes > 1 {
            let mut maps = shared.values().map(|m| &m.entities);
            let first = maps.next().expect("a member");
            prop_assert!(maps.all(|m| std::sync::Arc::ptr_eq(m, first)), "equal configurations were not shared");
        }
        prop_assert_eq!(elect(&separate, mature, &BTreeMap::new()), elect(&shared, mature, &BTreeMap::new()));
    }
}

#[test]
fn the_balance_check_catches_an_unbalanced_plan() {
    // Check the checker: three units held by one node while another candidate has none.
    let c = Cluster {
        nodes: 2,
        configured: vec![vec![true, true]; 3],
        preference: vec![None; 3],
        conflicting: vec![false; 3],
        follows: vec![None; 3],
        held: vec![vec![true, false]; 3],
        standby: vec![false; 2],
    };
    let immature = elect(&members(&c), false, &BTreeMap::new());
    assert!(
        check_balance(&immature).is_err(),
        "an immature view keeps holders, so it is unbalanced"
    );
    assert_eq!(
        check_balance(&elect(&members(&c), true, &BTreeMap::new())),
        Ok(())
    );
}
