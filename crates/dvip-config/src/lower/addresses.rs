//! Addresses: from services to the DuraVIP addresses a node manages.
//!
//! Owns the rules that span services: the address is the unit of ownership, a service on an
//! address another service marks DuraVIP is upgraded, follow targets resolve to a binding's
//! address, one preference per address, a topology hint for every address, never the
//! management address, the address limit, and what the wire between nodes can carry (so that
//! no valid configuration makes a State the others refuse). It must not read the syntax
//! tree.

// Hash containers here only answer membership questions; nothing iterates them into a
// decision or an output, so their order cannot show.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use dvip_core::wire::{self, Message, MESSAGE_SIZE_MAX, NAME_LEN_MAX, SERVICES_PER_ADDRESS_MAX};
use dvip_core::{Entity, ManagedAddress, DURAVIP_ADDRESS_COUNT_MAX};

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{follow, DuravipAddress, TopologyHint};
use crate::options::closest;
use crate::source::Span;

use super::services::{Kind, Service};

pub(crate) fn build(
    services: &[Service<'_>],
    topology: &[TopologyHint],
    nodeaddr: Option<IpAddr>,
    diagnostics: &mut Diagnostics,
) -> Vec<DuravipAddress> {
    duplicate_services(services, diagnostics);
    // Group services by address, in address order (the order of the output).
    let mut placed: Vec<(IpAddr, &Service<'_>)> = Vec::with_capacity(services.len());
    for service in services {
        if let Some(address) = service.address {
            placed.push((address, service));
        } else if service.marks_duravip() && !service.is_binding() {
            diagnostics
                .error(
                    Code::NotUnicast,
                    service.at,
                    format!(
                        "{} listens on every address, so DuraVIP cannot move it",
                        service.describe()
                    ),
                )
                .with_hint("give the listener the one address that should move between nodes");
        }
    }
    placed.sort_by_key(|&(address, service)| (address, service.at));
    let mut by_address: Vec<(IpAddr, Vec<&Service<'_>>)> = Vec::new();
    for (address, service) in placed {
        match by_address.last_mut() {
            Some((last, on)) if *last == address => on.push(service),
            _ => by_address.push((address, vec![service])),
        }
    }
    by_address.retain(|(_, on)| on.iter().any(|s| s.marks_duravip()));
    let managed: HashSet<IpAddr> = by_address.iter().map(|&(a, _)| a).collect();

    // Bindings on managed addresses are the DuraVIP bindings a listener may follow.
    let mut bindings = DuravipBindings {
        by_name: HashMap::with_capacity(managed.len()),
        addresses: HashSet::with_capacity(managed.len()),
    };
    for service in services {
        if let (Kind::Binding { name }, Some(a)) = (&service.kind, service.address) {
            if managed.contains(&a) {
                bindings.by_name.insert(name, a);
                bindings.addresses.insert(a);
            }
        }
    }

    let mut addresses = Vec::with_capacity(by_address.len());
    for (address, on) in &by_address {
        let address = *address;
        if let Some(a) = one_address(address, on, &bindings, topology, nodeaddr, diagnostics) {
            addresses.push((first_span(on), a));
        }
    }
    if by_address.len() > DURAVIP_ADDRESS_COUNT_MAX {
        // Point at the first address past the limit in file order, where the operator reads.
        let mut spans: Vec<Span> = by_address.iter().map(|(_, on)| first_span(on)).collect();
        spans.sort();
        diagnostics
            .error(
                Code::TooManyAddresses,
                spans[DURAVIP_ADDRESS_COUNT_MAX],
                format!(
                    "{} DuraVIP addresses; a node manages at most {DURAVIP_ADDRESS_COUNT_MAX}",
                    by_address.len()
                ),
            )
            .with_hint("split the addresses across clusters, or stop managing some with DuraVIP");
    }
    wire_limits(&addresses, diagnostics);
    addresses.into_iter().map(|(_, a)| a).collect()
}

/// What the wire refuses, refused here first at the address that causes it: a node whose
/// State the others cannot read is planned around as silent, serving nothing.
fn wire_limits(addresses: &[(Span, DuravipAddress)], diagnostics: &mut Diagnostics) {
    let hint = "the State a node multicasts must fit what every member reads; split the services over more addresses or shorten the names";
    for (at, a) in addresses {
        let m = &a.managed;
        for (what, count) in [
            ("binding names", m.bindings.len()),
            ("listener ports", m.listener_ports.len()),
        ] {
            if count > SERVICES_PER_ADDRESS_MAX {
                diagnostics
                    .error(
                        Code::WireLimit,
                        *at,
                        format!(
                            "{count} {what} on {}; the cluster's messages carry at most {SERVICES_PER_ADDRESS_MAX}",
                            m.address
                        ),
                    )
                    .with_hint(hint);
            }
        }
        if let Some(long) = m
            .bindings
            .iter()
            .chain(&m.preference)
            .find(|n| n.len() > NAME_LEN_MAX)
        {
            diagnostics
                .error(
                    Code::WireLimit,
                    *at,
                    format!(
                        "a name of {} bytes on {} (`{}...`); the cluster's messages carry names of at most {NAME_LEN_MAX}",
                        long.len(),
                        m.address,
                        long.chars().take(20).collect::<String>()
                    ),
                )
                .with_hint(hint);
        }
    }
    let Some((first, _)) = addresses.iter().min_by_key(|(at, _)| *at) else {
        return;
    };
    // The largest State this node can send: every address, all of them held.
    let state = Message::State(wire::State {
        view_id: u64::MAX,
        round: u32::MAX,
        config_digest: u64::MAX,
        entities: addresses
            .iter()
            .map(|(_, a)| Entity::from(&a.managed))
            .collect(),
        holdings: addresses.iter().map(|(_, a)| a.managed.address).collect(),
        standby: false,
        carried: false,
    });
    let size = wire::encode(&state).len();
    if size > MESSAGE_SIZE_MAX {
        diagnostics
            .error(
                Code::WireLimit,
                *first,
                format!(
                    "this node's State would be {size} bytes; the cluster's messages are at most {MESSAGE_SIZE_MAX}"
                ),
            )
            .with_hint(hint);
    }
}

/// The bindings on DuraVIP addresses: what a listener may follow.
struct DuravipBindings<'s> {
    by_name: HashMap<&'s str, IpAddr>,
    addresses: HashSet<IpAddr>,
}

fn first_span(on: &[&Service<'_>]) -> Span {
    on.iter()
        .map(|s| s.at)
        .min()
        .expect("an address is only grouped with a service on it")
}

fn duplicate_services(services: &[Service<'_>], diagnostics: &mut Diagnostics) {
    let mut seen: HashSet<(Option<IpAddr>, &Kind)> = HashSet::with_capacity(services.len());
    let mut names: HashSet<&str> = HashSet::with_capacity(services.len());
    for service in services {
        if let Kind::Binding { name } = &service.kind {
            if !names.insert(name) {
                diagnostics
                    .error(
                        Code::Duplicate,
                        service.at,
                        format!("a second binding named `{name}`"),
                    )
                    .with_hint(
                        "binding names must be unique: mail is assigned to a binding by its name",
                    );
            }
            continue;
        }
        if !seen.insert((service.address, &service.kind)) {
            diagnostics
                .error(
                    Code::Duplicate,
                    service.at,
                    format!("{} is defined twice", service.describe()),
                )
                .with_hint("remove one of them");
        }
    }
}

fn one_address(
    address: IpAddr,
    on: &[&Service<'_>],
    bindings: &DuravipBindings<'_>,
    topology: &[TopologyHint],
    nodeaddr: Option<IpAddr>,
    diagnostics: &mut Diagnostics,
) -> Option<DuravipAddress> {
    let marker = on
        .iter()
        .find(|s| s.marks_duravip())
        .expect("kept only addresses some service marks");
    let mut ok = true;
    if !is_movable(address) {
        diagnostics
            .error(Code::NotUnicast, marker.at, format!("{address} cannot be a DuraVIP address"))
            .with_hint("DuraVIP moves ordinary unicast addresses; loopback, multicast, link-local and unspecified addresses stay put");
        ok = false;
    }
    if nodeaddr == Some(address) {
        diagnostics
            .error(Code::ManagementAddress, marker.at, format!("{address} is this node's management address (nodeaddr)"))
            .with_hint("DuraVIP would unplumb it and move it away, cutting the node off: manage another address");
        ok = false;
    }
    // A binding on a follower's address is an error (reported with the follow), not an upgrade.
    let follows = on.iter().any(|s| s.follow.is_some());
    for service in on
        .iter()
        .filter(|s| !(s.marks_duravip() || (follows && s.is_binding())))
    {
        diagnostics
            .note(
                Code::Upgraded,
                service.at,
                format!(
                    "{} is DuraVIP because {} marks {address} DuraVIP",
                    service.describe(),
                    marker.describe()
                ),
            )
            .with_hint(
                "DuraVIP manages whole addresses: every service on the address moves with it",
            );
    }
    let upgraded = on.iter().any(|s| !s.marks_duravip());

    let mut preference: Option<&crate::tree::Word> = None;
    for word in on.iter().filter_map(|s| s.preference) {
        match preference {
            Some(first) if first.text != word.text => {
                diagnostics
                    .error(Code::PreferenceConflict, word.span, format!("{address} prefers `{}` here but `{}` elsewhere in this configuration", word.text, first.text))
                    .with_hint("an address has one preferred node: name the same node on every service of the address");
                ok = false;
            }
            Some(_) => {}
            None => preference = Some(word),
        }
    }

    let follow = follow_of(address, on, bindings, diagnostics, &mut ok);
    if let (Some(_), Some(pref)) = (&follow, preference) {
        diagnostics
            .warning(
                Code::PreferenceWithFollow,
                pref.span,
                format!(
                    "{address} follows a binding, so its preference `{}` is not used",
                    pref.text
                ),
            )
            .with_hint("put the preference on the binding it follows");
    }

    let hint = topology
        .iter()
        .filter(|h| h.cidr.contains(&address))
        .max_by_key(|h| h.cidr.prefix_len());
    let Some(hint) = hint else {
        diagnostics
            .error(Code::NoTopology, marker.at, format!("no topology hint covers DuraVIP address {address}"))
            .with_hint(format!(
                "add a hint for its network to the cluster stanza, such as `Topology \"{}\" {{ interface = \"eth0\" }}`",
                example_network(address)
            ));
        return None;
    };
    if !ok {
        return None;
    }

    let mut bindings_here = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for service in on {
        match &service.kind {
            Kind::Binding { name } => {
                bindings_here.insert(name.clone());
            }
            Kind::Listener { port, .. } => {
                ports.insert(*port);
            }
        }
    }
    Some(DuravipAddress {
        managed: ManagedAddress {
            address,
            bindings: bindings_here,
            listener_ports: ports,
            preference: if follow.is_some() {
                None
            } else {
                preference.map(|w| w.text.clone())
            },
            follow,
            plumb: hint.plumb(),
        },
        upgraded,
    })
}

/// Resolves the follow target of an address, checking that the address can follow at all.
fn follow_of(
    address: IpAddr,
    on: &[&Service<'_>],
    bindings: &DuravipBindings<'_>,
    diagnostics: &mut Diagnostics,
    ok: &mut bool,
) -> Option<dvip_core::Follow> {
    let followers: Vec<_> = on.iter().filter(|s| s.follow.is_some()).collect();
    let mut resolved: Option<(IpAddr, &crate::tree::Word)> = None;
    let mut own_address = false;
    for service in &followers {
        let word = service.follow.expect("filtered on follow");
        let leader = match word.text.parse::<IpAddr>() {
            Ok(a) if bindings.addresses.contains(&a) => Some(a),
            Ok(_) => None,
            Err(_) => bindings.by_name.get(word.text.as_str()).copied(),
        };
        let Some(leader) = leader else {
            let mut names: Vec<&str> = bindings.by_name.keys().copied().collect();
            names.sort_unstable();
            let d = diagnostics.error(
                Code::FollowTargetMissing,
                word.span,
                format!(
                    "{} follows `{}`, but no DuraVIP binding has that name or address",
                    service.describe(),
                    word.text
                ),
            );
            match closest(&word.text, &names) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint("name a binding that enables DuraVIP, or its Bind_Address"),
            };
            *ok = false;
            continue;
        };
        if leader == address {
            diagnostics
                .error(Code::FollowOwnAddress, word.span, format!("{} follows `{}`, which is on the same address {address}", service.describe(), word.text))
                .with_hint("services on one address already move together: remove Duravip_Follow, or give the listener another address");
            *ok = false;
            own_address = true;
            continue;
        }
        match resolved {
            Some((a, first)) if a != leader => {
                diagnostics
                    .error(
                        Code::FollowConflict,
                        word.span,
                        format!(
                            "{address} follows `{}` here but `{}` elsewhere",
                            word.text, first.text
                        ),
                    )
                    .with_hint(
                        "an address goes to one place: make its listeners follow the same binding",
                    );
                *ok = false;
            }
            Some(_) => {}
            None => resolved = Some((leader, word)),
        }
    }
    let target = followers.first()?.follow.expect("filtered on follow");
    // Following one's own address was reported above; the binding there is no second mistake.
    for service in on.iter().filter(|s| s.follow.is_none() && !own_address) {
        if service.is_binding() {
            diagnostics
                .error(
                    Code::FollowConflict,
                    service.at,
                    format!(
                        "{} is on {address}, which follows `{}`; a binding cannot follow",
                        service.describe(),
                        target.text
                    ),
                )
                .with_hint(
                    "give the following listener its own address, or remove its Duravip_Follow",
                );
            *ok = false;
        } else if service.enabled {
            diagnostics
                .error(
                    Code::FollowConflict,
                    service.at,
                    format!(
                        "{} enables DuraVIP on {address}, which another listener makes follow `{}`",
                        service.describe(),
                        target.text
                    ),
                )
                .with_hint(
                    "an address moves as one unit: make every listener on it follow, or none",
                );
            *ok = false;
        }
    }
    resolved.map(|(a, w)| follow(&w.text, a))
}

fn is_movable(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

fn example_network(address: IpAddr) -> String {
    match address {
        IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            format!("{x}.{y}.{z}.0/24")
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}
