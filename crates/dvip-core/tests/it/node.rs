//! The node state machine driven by a tiny in-test bus: every multicast is delivered to every
//! member in one agreed order, as corosync would. Scenarios read as the protocol's promises.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use dvip_core::wire::Message;
use dvip_core::{Action, Command, DropReason, Event, ManagedAddress, Node, NodeOptions, PlumbHint};

pub(crate) fn addresses(count: u8, preference: Option<&str>) -> Vec<ManagedAddress> {
    (1..=count)
        .map(|i| ManagedAddress {
            address: format!("198.51.100.{i}").parse().expect("an address"),
            bindings: [format!("b{i}")].into(),
            listener_ports: if i == 1 { [25].into() } else { BTreeSet::new() },
            preference: if i == 1 {
                preference.map(str::to_owned)
            } else {
                None
            },
            follow: None,
            plumb: PlumbHint {
                interface: "eth0".into(),
                cidrmask: 32,
            },
        })
        .collect()
}

/// Nodes, what each has plumbed (as its caller would), and the bus.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) plumbed: Vec<BTreeSet<IpAddr>>,
    pub(crate) queue: VecDeque<(usize, Vec<u8>)>,
    view_id: u64,
    now: Duration,
    /// Every Plumb and Unplumb, in the order carried out: (node, address, plumbed?).
    log: Vec<(usize, IpAddr, bool)>,
    /// Every Announce: (node, address).
    announced: Vec<(usize, IpAddr)>,
    /// While the cluster is split, both sides may hold an address.
    pub(crate) split: bool,
    /// A node whose multicasts nobody else can read (a build of another wire version).
    garbled: Option<usize>,
    /// A node whose plumbs fail (its interface is missing), and how many it tried.
    cannot_plumb: Option<usize>,
    failed_plumbs: usize,
}

impl Cluster {
    pub(crate) fn new(configs: &[Vec<ManagedAddress>]) -> Self {
        let nodes: Vec<Node> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| Node::new(format!("n{}", i + 1), NodeOptions::default(), c))
            .collect();
        let n = nodes.len();
        let mut cluster = Self {
            nodes,
            plumbed: vec![BTreeSet::new(); n],
            queue: VecDeque::new(),
            view_id: 0,
            now: Duration::ZERO,
            log: Vec::new(),
            announced: Vec::new(),
            split: false,
            garbled: None,
            cannot_plumb: None,
            failed_plumbs: 0,
        };
        for i in 0..n {
            cluster.drain(i);
        }
        cluster
    }

    pub(crate) fn drain(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].poll_action() {
            match action {
                Action::Send(bytes) => self.queue.push_back((i, bytes)),
                Action::Plumb { address, .. } if self.cannot_plumb == Some(i) => {
                    self.failed_plumbs += 1;
                    self.nodes[i].handle_plumb_failed(address);
                }
                Action::Plumb { address, .. } => {
                    self.nodes[i].handle_plumb_done(address);
                    // Release-then-acquire: nobody else may have it when a node plumbs it.
                    for (j, other) in self.plumbed.iter().enumerate() {
                        assert!(
                            self.split || j == i || !other.contains(&address),
                            "n{} plumbed {address} while n{} had it",
                            i + 1,
                            j + 1
                        );
                    }
                    self.plumbed[i].insert(address);
                    self.log.push((i, address, true));
                }
                Action::Unplumb { address, .. } => {
                    self.plumbed[i].remove(&address);
                    self.log.push((i, address, false));
                }
                Action::Announce { address } => self.announced.push((i, address)),
                _ => {}
            }
        }
    }

    pub(crate) fn view(&mut self, members: &[usize]) {
        self.view_id += 1;
        let names: BTreeSet<String> = members
            .iter()
            .map(|&i| self.nodes[i].name().to_owned())
            .collect();
        // Messages of the old view reach the old members first; this bus simply delivers all.
        self.settle(members);
        for &i in members {
            self.nodes[i].handle_view(self.view_id, &names);
            self.drain(i);
        }
        self.settle(members);
    }

    /// Delivers everything queued to `members`, in order.
    pub(crate) fn settle(&mut self, members: &[usize]) {
        while let Some((from, bytes)) = self.queue.pop_front() {
            let name = self.nodes[from].name().to_owned();
            let mut garbled = bytes.clone();
            garbled[2] = garbled[2].wrapping_add(1);
            for &i in members {
                let unreadable = self.garbled == Some(from) && i != from;
                self.nodes[i].handle_message(&name, if unreadable { &garbled } else { &bytes });
                self.drain(i);
            }
        }
    }

    pub(crate) fn advance(&mut self, by: Duration, members: &[usize]) {
        self.now += by;
        for &i in members {
            self.nodes[i].handle_timeout(self.now);
            self.drain(i);
        }
        self.settle(members);
    }

    /// The addresses node `i` unplumbed after the first `since` plumbs and unplumbs.
    pub(crate) fn unplumbed_since(&self, since: usize, i: usize) -> Vec<IpAddr> {
        self.log[since..]
            .iter()
            .filter(|(n, _, plumbed)| *n == i && !plumbed)
            .map(|(_, a, _)| *a)
            .collect()
    }

    /// How many plumbs and unplumbs were carried out so far.
    pub(crate) fn changes(&self) -> usize {
        self.log.len()
    }

    pub(crate) fn owners(&self, address: &str) -> Vec<usize> {
        let address: IpAddr = address.parse().expect("an address");
        (0..self.nodes.len())
            .filter(|&i| self.plumbed[i].contains(&address))
            .collect()
    }
}

#[test]
fn a_new_node_first_unplumbs_every_configured_address() {
    let mut node = Node::new("n1", NodeOptions::default(), &addresses(3, None));
    let unplumbed: Vec<IpAddr> = std::iter::from_fn(|| node.poll_action())
        .filter_map(|a| match a {
            Action::Unplumb { address, .. } => Some(address),
            _ => None,
        })
        .collect();
    assert_eq!(
        unplumbed.len(),
        3,
        "a crashed predecessor's addresses must not keep answering"
    );
}

#[test]
fn three_nodes_share_the_addresses_and_a_dead_nodes_addresses_move_at_once() {
    let mut c = Cluster::new(&vec![addresses(6, None); 3]);
    c.view(&[0, 1, 2]);
    for a in 1..=6 {
        assert_eq!(
            c.owners(&format!("198.51.100.{a}")).len(),
            1,
            "one owner each"
        );
    }
    assert!(
        c.plumbed.iter().all(|p| p.len() == 2),
        "balanced: {:?}",
        c.plumbed
    );
    let lost = c.plumbed[2].clone();
    let kept = [c.plumbed[0].clone(), c.plumbed[1].clone()];
    c.plumbed[2].clear(); // host death: its addresses vanish with it
    let since = c.log.len();
    c.view(&[0, 1]);
    for address in &lost {
        assert_eq!(
            c.owners(&address.to_string()).len(),
            1,
            "{address} taken over in the new view"
        );
    }
    // Survivors kept their own addresses: a departure moves only the departed node's.
    assert!(
        c.log[since..].iter().all(|(_, _, plumbed)| *plumbed),
        "a survivor unplumbed: {:?}",
        &c.log[since..]
    );
    assert!(kept[0].is_subset(&c.plumbed[0]) && kept[1].is_subset(&c.plumbed[1]));
}

#[test]
fn a_returning_preferred_node_gets_its_address_only_after_the_view_matures() {
    let mut c = Cluster::new(&vec![addresses(2, Some("n2")); 2]);
    c.view(&[0]);
    assert_eq!(
        c.owners("198.51.100.1"),
        [0],
        "n2 absent: n1 holds everything"
    );
    c.view(&[0, 1]);
    assert_eq!(
        c.owners("198.51.100.1"),
        [0],
        "n2 just returned: nothing moves yet"
    );
    c.advance(Duration::from_millis(1100), &[0, 1]);
    assert_eq!(
        c.owners("198.51.100.1"),
        [1],
        "matured: the preferred node has it"
    );
    // The move released before it acquired (the harness asserts that on every plumb).
    let moves: Vec<&(usize, IpAddr, bool)> = c
        .log
        .iter()
        .filter(|(_, a, _)| a.to_string() == "198.51.100.1")
        .collect();
    assert_eq!(moves.last().map(|m| (m.0, m.2)), Some((1, true)));
}

#[test]
fn every_member_records_who_took_a_dead_nodes_addresses_and_why() {
    let mut c = Cluster::new(&vec![addresses(6, None); 3]);
    c.view(&[0, 1, 2]);
    assert_eq!(
        c.nodes[0].changes().count(),
        0,
        "a first plan moves nothing from anyone"
    );
    let lost = c.plumbed[2].clone();
    c.plumbed[2].clear();
    c.view(&[0, 1]);
    for survivor in [0, 1] {
        let changes: Vec<_> = c.nodes[survivor].changes().collect();
        let moved: BTreeSet<IpAddr> = changes.iter().map(|ch| ch.address).collect();
        assert_eq!(moved, lost, "node {survivor}: {changes:?}");
        for ch in &changes {
            assert_eq!(ch.from.as_deref(), Some("n3"));
            assert!(matches!(ch.to.as_deref(), Some("n1" | "n2")), "{ch:?}");
            assert_eq!(ch.reason, dvip_core::Reason::Assigned, "{ch:?}");
            assert_eq!(Some(ch.view_id), c.nodes[survivor].view_id());
        }
    }
    let a: Vec<_> = c.nodes[0].changes().collect();
    let b: Vec<_> = c.nodes[1].changes().collect();
    let same = |x: &[&dvip_core::OwnerChange], y: &[&dvip_core::OwnerChange]| {
        x.iter()
            .zip(y)
            .all(|(p, q)| (p.address, &p.to) == (q.address, &q.to))
    };
    assert!(same(&a, &b), "members agree on what moved: {a:?} / {b:?}");
}

#[test]
fn standby_drains_a_node_and_online_brings_it_back() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.view(&[0, 1]);
    c.advance(Duration::from_millis(1100), &[0, 1]);
    c.nodes[1]
        .handle_command(Command::Standby)
        .expect("in a view");
    c.drain(1);
    c.settle(&[0, 1]);
    assert!(
        c.plumbed[1].is_empty() && c.plumbed[0].len() == 4,
        "{:?}",
        c.plumbed
    );
    c.nodes[1]
        .handle_command(Command::Online)
        .expect("in a view");
    c.drain(1);
    c.settle(&[0, 1]);
    assert_eq!((c.plumbed[0].len(), c.plumbed[1].len()), (2, 2));
}

#[test]
fn a_node_started_on_standby_takes_nothing_until_it_is_put_online() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.nodes[1].start_on_standby();
    c.view(&[0, 1]);
    c.advance(Duration::from_millis(1100), &[0, 1]);
    assert!(c.nodes[1].is_standby());
    assert_eq!(
        (c.plumbed[0].len(), c.plumbed[1].len()),
        (4, 0),
        "never took anything"
    );
    assert!(
        !c.log
            .iter()
            .any(|(node, _, plumbed)| *node == 1 && *plumbed),
        "{:?}",
        c.log
    );
    c.nodes[1]
        .handle_command(Command::Online)
        .expect("in a view");
    c.drain(1);
    c.settle(&[0, 1]);
    assert_eq!((c.plumbed[0].len(), c.plumbed[1].len()), (2, 2));
}

#[test]
fn a_move_command_moves_one_address_and_refuses_a_non_candidate() {
    let mut c = Cluster::new(&[addresses(2, None), addresses(2, None), addresses(1, None)]);
    c.view(&[0, 1, 2]);
    let address: IpAddr = "198.51.100.2".parse().expect("an address");
    let err = c.nodes[0].handle_command(Command::Move {
        address,
        to: "n3".into(),
    });
    assert!(err.is_err(), "n3 does not configure 198.51.100.2");
    let to = if c.owners("198.51.100.2") == [0] {
        1
    } else {
        0
    };
    c.nodes[0]
        .handle_command(Command::Move {
            address,
            to: format!("n{}", to + 1),
        })
        .expect("a candidate");
    c.drain(0);
    c.settle(&[0, 1, 2]);
    assert_eq!(c.owners("198.51.100.2"), [to]);
}

#[test]
fn a_move_stands_across_views_even_for_a_node_that_joins_later_until_it_is_cleared() {
    let mut c = Cluster::new(&vec![addresses(4, None); 3]);
    c.view(&[0, 1]);
    c.advance(Duration::from_millis(1100), &[0, 1]);
    let address: IpAddr = "198.51.100.1".parse().expect("an address");
    c.nodes[0]
        .handle_command(Command::Move {
            address,
            to: "n2".into(),
        })
        .expect("n2 is a candidate");
    c.drain(0);
    c.settle(&[0, 1]);
    assert_eq!(c.owners("198.51.100.1"), [1]);
    // n3 joins, knowing nothing of the move: it learns it before the view plans.
    c.view(&[0, 1, 2]);
    c.advance(Duration::from_millis(1100), &[0, 1, 2]);
    assert_eq!(
        c.owners("198.51.100.1"),
        [1],
        "the move stands in a new view"
    );
    let known: Vec<(IpAddr, String)> = c.nodes[2]
        .standing_moves()
        .map(|(a, to)| (a, to.clone()))
        .collect();
    assert_eq!(known, [(address, "n2".to_owned())]);
    // The node that was asked dies: the others still know the move.
    c.plumbed[0].clear();
    c.view(&[1, 2]);
    c.advance(Duration::from_millis(1100), &[1, 2]);
    assert_eq!(c.owners("198.51.100.1"), [1]);
    // n2 dies: the move cannot hold, and nothing is dark.
    c.plumbed[1].clear();
    c.view(&[2]);
    assert_eq!(c.owners("198.51.100.1"), [2]);
    // n2 comes back, remembering nothing: the address goes to it once the view matures.
    c.nodes[1] = Node::new("n2", NodeOptions::default(), &addresses(4, None));
    c.drain(1);
    c.view(&[1, 2]);
    c.advance(Duration::from_millis(1100), &[1, 2]);
    assert_eq!(c.owners("198.51.100.1"), [1], "back where it was moved");
    assert_eq!(
        c.nodes[2].handle_command(Command::ClearMove {
            address: "198.51.100.2".parse().expect("an address")
        }),
        Err(dvip_core::CommandError::NotMoved(
            "198.51.100.2".parse().expect("an address")
        ))
    );
    c.nodes[2]
        .handle_command(Command::ClearMove { address })
        .expect("a standing move");
    c.drain(2);
    c.settle(&[1, 2]);
    assert_eq!(c.nodes[1].standing_moves().count(), 0, "cleared everywhere");
    assert_eq!(c.nodes[2].standing_moves().count(), 0);
}

#[test]
fn a_clearing_wins_over_the_move_a_restarted_node_kept() {
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    let address: IpAddr = "198.51.100.2".parse().expect("an address");
    c.nodes[0]
        .handle_command(Command::Move {
            address,
            to: "n1".into(),
        })
        .expect("a candidate");
    c.drain(0);
    c.settle(&[0, 1]);
    let kept: Vec<_> = c.nodes[1].kept_moves().cloned().collect();
    assert_eq!(kept.len(), 1);
    c.nodes[0]
        .handle_command(Command::ClearMove { address })
        .expect("moved");
    c.drain(0);
    c.settle(&[0, 1]);
    // n2 restarts with what it kept before the clearing.
    let mut again = Node::new("n2", NodeOptions::default(), &addresses(2, None));
    again.restore_moves(kept);
    assert_eq!(again.standing_moves().count(), 1);
    c.nodes[1] = again;
    c.plumbed[1].clear();
    c.drain(1);
    c.view(&[0, 1]);
    assert_eq!(
        c.nodes[1].standing_moves().count(),
        0,
        "n1's clearing has the later stamp"
    );
    assert_eq!(c.nodes[0].standing_moves().count(), 0);
}

#[test]
fn shutdown_hands_every_address_over() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.view(&[0, 1]);
    c.nodes[0].handle_shutdown();
    c.drain(0);
    c.settle(&[0, 1]);
    assert!(c.plumbed[0].is_empty());
    assert_eq!(
        c.plumbed[1].len(),
        4,
        "the survivor took everything before n1 left the group"
    );
}

#[test]
fn losing_the_bus_lets_every_address_go_at_once() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.view(&[0, 1]);
    assert!(!c.plumbed[0].is_empty());
    c.nodes[0].handle_bus_lost();
    c.drain(0);
    assert!(
        c.plumbed[0].is_empty(),
        "a node that cannot know the view holds nothing"
    );
    assert_eq!(c.nodes[0].view_id(), None);
}

#[test]
fn garbage_and_stale_messages_change_nothing_and_say_why() {
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    let before = (c.nodes[0].plan().clone(), c.plumbed.clone());
    while c.nodes[0].poll_event().is_some() {}
    c.nodes[0].handle_message("n2", b"DV\x01\x00garbage");
    c.nodes[0].handle_message("n2", b"not even dvip");
    c.nodes[0].handle_message("stranger", &[]);
    c.drain(0);
    let events: Vec<Event> = std::iter::from_fn(|| c.nodes[0].poll_event()).collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().all(|e| matches!(
            e,
            Event::Dropped {
                why: DropReason::Decode(_),
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!((c.nodes[0].plan().clone(), c.plumbed.clone()), before);
}

#[test]
fn a_long_pause_drops_addresses_before_anything_else() {
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    c.advance(Duration::from_millis(100), &[0, 1]);
    let held = c.plumbed[0].len();
    assert!(held > 0);
    // n1 was frozen for 5 s: the others may have taken its addresses meanwhile.
    c.now += Duration::from_secs(5);
    c.nodes[0].handle_timeout(c.now);
    c.drain(0);
    assert!(
        c.plumbed[0].is_empty(),
        "a zombie lets go before it announces anything"
    );
    assert!(
        std::iter::from_fn(|| c.nodes[0].poll_event()).any(|e| matches!(e, Event::Paused { .. }))
    );
}

#[test]
fn a_reload_that_drops_an_address_releases_it() {
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    let holder = c.owners("198.51.100.2")[0];
    c.nodes[holder].handle_config(&addresses(1, None));
    c.drain(holder);
    c.settle(&[0, 1]);
    assert_eq!(
        c.owners("198.51.100.2"),
        [1 - holder],
        "the other node, which still manages it, took it"
    );
}

#[test]
fn after_a_partition_heals_the_keeper_announces_each_address_the_other_side_let_go() {
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    c.split = true;
    c.view(&[0]);
    c.view(&[1]);
    assert_eq!(c.plumbed[0], c.plumbed[1], "each side holds everything");
    assert_eq!(c.plumbed[0].len(), 2);
    let since = c.announced.len();
    c.view(&[0, 1]);
    for a in ["198.51.100.1", "198.51.100.2"] {
        let owners = c.owners(a);
        assert_eq!(owners.len(), 1, "{a}: one owner after the heal");
        let address: IpAddr = a.parse().expect("an address");
        assert!(
            c.announced[since..].contains(&(owners[0], address)),
            "{a} kept by n{} but not announced again: {:?}",
            owners[0] + 1,
            &c.announced[since..]
        );
    }
}

/// Installs a view on `members` without delivering anything: what each survivor does the
/// moment the bus reports the view, before any State of it arrives.
fn install_only(c: &mut Cluster, members: &[usize]) {
    c.view_id += 1;
    let names: BTreeSet<String> = members
        .iter()
        .map(|&i| c.nodes[i].name().to_owned())
        .collect();
    for &i in members {
        c.nodes[i].handle_view(c.view_id, &names);
        c.drain(i);
    }
}

#[test]
fn a_release_in_flight_when_a_node_departs_is_dark_only_until_the_survivors_announce() {
    let mut c = Cluster::new(&vec![addresses(6, None); 3]);
    c.view(&[0, 1, 2]);
    let n1_had = c.plumbed[0].clone();
    c.nodes[0]
        .handle_command(Command::Standby)
        .expect("n1 is in a view");
    c.drain(0);
    // The Standby message reaches everyone; n1 unplumbs and multicasts Released, which the
    // old view never delivers: n3 dies first.
    let (from, bytes) = c.queue.pop_front().expect("the Standby message");
    let name = c.nodes[from].name().to_owned();
    for i in 0..3 {
        c.nodes[i].handle_message(&name, &bytes);
        c.drain(i);
    }
    assert!(c.plumbed[0].is_empty(), "n1 let its addresses go");
    c.plumbed[2].clear();
    install_only(&mut c, &[0, 1]);
    for address in &n1_had {
        assert!(
            c.owners(&address.to_string()).is_empty(),
            "{address}: the old table still says n1 holds it, so nobody may take it yet"
        );
    }
    c.settle(&[0, 1]);
    for a in 1..=6 {
        assert_eq!(
            c.owners(&format!("198.51.100.{a}")),
            [1],
            "n2, the only candidate left, holds everything once n1 has said again what it let go"
        );
    }
}

/// The kinds of the messages queued on the bus, in order.
fn queued_kinds(c: &Cluster) -> Vec<&'static str> {
    c.queue
        .iter()
        .map(|(_, bytes)| match dvip_core::wire::decode(bytes) {
            Ok(Message::State(_)) => "State",
            Ok(Message::Carried { .. }) => "Carried",
            Ok(Message::Released { .. }) => "Released",
            Ok(_) => "other",
            Err(_) => "garbage",
        })
        .collect()
}

#[test]
fn a_view_that_only_lost_members_plans_on_small_announcements_from_the_old_table() {
    let mut c = Cluster::new(&vec![addresses(6, None); 3]);
    c.view(&[0, 1, 2]);
    let lost = c.plumbed[2].clone();
    c.plumbed[2].clear();
    install_only(&mut c, &[0, 1]);
    assert_eq!(
        queued_kinds(&c),
        ["Carried", "Carried"],
        "no State: the survivors carry the old view's table"
    );
    let (first, bytes) = c.queue.pop_front().expect("n1's Carried");
    let name = c.nodes[first].name().to_owned();
    for i in [0, 1] {
        c.nodes[i].handle_message(&name, &bytes);
        c.drain(i);
    }
    assert!(
        lost.iter().all(|a| c.owners(&a.to_string()).is_empty()),
        "nobody plans before every survivor has announced"
    );
    c.settle(&[0, 1]);
    for address in &lost {
        assert_eq!(c.owners(&address.to_string()).len(), 1, "{address}");
    }
    let planned = (0..2).all(|i| {
        std::iter::from_fn(|| c.nodes[i].poll_event()).any(|e| matches!(e, Event::Planned { .. }))
    });
    assert!(
        planned,
        "each survivor reports the plan of the carried view"
    );
}

#[test]
fn a_member_shown_alone_before_a_merge_does_not_plan_alone() {
    let mut c = Cluster::new(&vec![addresses(6, None); 3]);
    c.view(&[0, 1, 2]);
    let n1_had = c.plumbed[0].clone();
    // n1 freezes; the others go on without it and take its addresses, which its kernel still
    // has while it is frozen.
    c.split = true;
    c.view(&[1, 2]);
    assert!(n1_had.iter().all(|a| c.owners(&a.to_string()).len() == 2));
    // n1 wakes. CPG shows it first the view of those that came with it from its old view
    // (itself), then the merge; what it sends in between is delivered in the merge.
    c.view_id += 1;
    let alone = BTreeSet::from(["n1".to_owned()]);
    let since = c.log.len();
    c.nodes[0].handle_view(c.view_id, &alone);
    c.drain(0);
    assert_eq!(
        queued_kinds(&c),
        ["Carried"],
        "a view of one that only lost members"
    );
    c.view_id += 1;
    let all: BTreeSet<String> = ["n1", "n2", "n3"].map(str::to_owned).into();
    for i in 0..3 {
        c.nodes[i].handle_view(c.view_id, &all);
        c.drain(i);
    }
    c.settle(&[0, 1, 2]);
    let grabbed: Vec<_> = c.log[since..]
        .iter()
        .filter(|(node, address, plumbed)| *node == 0 && *plumbed && !n1_had.contains(address))
        .collect();
    assert!(grabbed.is_empty(), "n1 planned alone: {grabbed:?}");
    c.split = false;
    for a in 1..=6 {
        assert_eq!(
            c.owners(&format!("198.51.100.{a}")).len(),
            1,
            "one owner once merged"
        );
    }
}

#[test]
fn members_that_disagree_on_whether_a_view_was_carried_recount_it() {
    // A first view, settled; then a Carried from n2 reaches n1 in it, as if the bus had shown
    // n2 a history n1 never saw.
    let mut c = Cluster::new(&vec![addresses(2, None); 2]);
    c.view(&[0, 1]);
    let held = c.plumbed.clone();
    while c.nodes[0].poll_event().is_some() {}
    c.nodes[0].handle_message(
        "n2",
        &dvip_core::wire::encode(&Message::Carried {
            view_id: c.view_id,
            standby: false,
        }),
    );
    let dropped = std::iter::from_fn(|| c.nodes[0].poll_event()).any(|e| {
        matches!(
            e,
            Event::Dropped {
                why: DropReason::NotCarried,
                ..
            }
        )
    });
    assert!(
        dropped,
        "a view n1 did not carry: n2 cannot plan on a table n1 never shared"
    );
    c.drain(0);
    let asked: Vec<Message> = c
        .queue
        .iter()
        .map(|(_, b)| dvip_core::wire::decode(b).expect("a message"))
        .collect();
    assert_eq!(asked, [Message::Recount { view_id: c.view_id }]);
    // The recount: both announce full States again and plan once both are in; nothing moved.
    c.settle(&[0, 1]);
    let planned =
        std::iter::from_fn(|| c.nodes[0].poll_event()).any(|e| matches!(e, Event::Planned { .. }));
    assert!(planned, "n1 planned again on the recounted States");
    assert_eq!(c.plumbed, held);
}

#[test]
fn a_member_nobody_can_read_is_planned_around_after_the_state_deadline_then_rejoins() {
    let mut c = Cluster::new(&[addresses(4, None), addresses(4, None)]);
    c.garbled = Some(1);
    c.view(&[0, 1]);
    assert!(!c.nodes[0].is_ready(), "n2's State cannot be read");
    assert!(c.owners("198.51.100.1").is_empty(), "nothing planned yet");
    c.advance(Duration::from_millis(500), &[0, 1]);
    assert!(!c.nodes[0].is_ready(), "still within the deadline");
    // n2 reads everyone and planned with itself; at the Silent both change sides at the same
    // point of the order, with no release in between: the one place two nodes may briefly
    // hold an address in one view, which the address lifetime and the announcements cover.
    c.split = true;
    c.advance(NodeOptions::default().state_deadline, &[0, 1]);
    c.split = false;
    assert!(c.nodes[0].is_ready());
    assert!(c.plumbed[1].is_empty(), "n2 let go of what it took");
    assert_eq!(c.nodes[0].silent(), BTreeSet::from(["n2".to_owned()]));
    for i in 1..=4 {
        assert_eq!(
            c.owners(&format!("198.51.100.{i}")),
            vec![0],
            "n1 serves everything"
        );
    }
    // Fixed: n2 announces again and becomes an ordinary member, and takes its share once the
    // view has matured.
    c.garbled = None;
    c.nodes[1]
        .handle_command(Command::AnnounceView)
        .expect("in a view");
    c.drain(1);
    c.settle(&[0, 1]);
    assert!(c.nodes[0].silent().is_empty(), "n2 spoke again");
    c.advance(Duration::from_secs(1), &[0, 1]);
    let mine = (1..=4)
        .filter(|i| c.owners(&format!("198.51.100.{i}")) == vec![1])
        .count();
    assert_eq!(mine, 2, "n2 took its share back");
}

#[test]
fn a_member_whose_state_arrives_just_before_it_is_found_silent_is_heard_again() {
    // n3's daemon was stopped when the view came; it wakes just as the others give up on
    // it, and its State is ordered before their Silent. Everyone marks it silent at the
    // same point anyway; it must not stay so for the rest of the view.
    let mut c = Cluster::new(&[addresses(6, None), addresses(6, None), addresses(6, None)]);
    c.view(&[0, 1, 2]);
    c.advance(Duration::from_secs(1), &[0, 1, 2]);
    assert_eq!(
        c.owners("198.51.100.1").len(),
        1,
        "planned before the pause"
    );
    c.view_id += 1;
    let names: BTreeSet<String> = ["n1", "n2", "n3"].map(String::from).into();
    for i in [0, 1] {
        c.nodes[i].handle_view(c.view_id, &names);
        c.drain(i);
    }
    c.settle(&[0, 1]);
    c.now += NodeOptions::default().state_deadline;
    for i in [0, 1] {
        c.nodes[i].handle_timeout(c.now);
        c.drain(i);
    }
    let silents = c.queue.len();
    assert!(silents > 0, "the others gave up on n3");
    c.nodes[2].handle_timeout(c.now);
    c.nodes[2].handle_view(c.view_id, &names);
    c.drain(2);
    // n3's State overtakes the Silents. At a Silent, n3 lets go at the point the others
    // take over (see the test above).
    c.queue.rotate_left(silents);
    c.split = true;
    c.settle(&[0, 1, 2]);
    c.split = false;
    for _ in 0..20 {
        c.advance(Duration::from_millis(500), &[0, 1, 2]);
    }
    for i in 0..3 {
        assert!(
            c.nodes[i].silent().is_empty(),
            "n{} still counts n3 as silent",
            i + 1
        );
    }
    let mine = (1..=6)
        .filter(|i| c.owners(&format!("198.51.100.{i}")) == vec![2])
        .count();
    assert_eq!(mine, 2, "n3 took its share back");
}

#[test]
fn a_node_whose_echo_does_not_come_back_lets_everything_go() {
    let mut c = Cluster::new(&[addresses(2, None)]);
    c.view(&[0]);
    c.advance(Duration::from_secs(2), &[0]);
    assert_eq!(c.plumbed[0].len(), 2);
    while c.nodes[0].poll_event().is_some() {}
    // corosync stops: nothing this node sends comes back.
    let mut stalled = false;
    // What the stopped corosync keeps, undelivered, in its queue.
    let mut backlog = Vec::new();
    for _ in 0..8 {
        c.now += Duration::from_millis(500);
        c.nodes[0].handle_timeout(c.now);
        c.drain(0);
        backlog.extend(c.queue.drain(..));
        stalled |= std::iter::from_fn(|| c.nodes[0].poll_event())
            .any(|e| matches!(e, Event::BusStalled { .. }));
    }
    assert!(stalled);
    assert!(
        c.plumbed[0].is_empty(),
        "nothing may answer here once the others take over"
    );
    // corosync continues without having excluded it: no view change will come. What it
    // multicast meanwhile (its release, an echo) is delivered, and it takes its addresses
    // back instead of waiting forever.
    c.queue.extend(backlog);
    c.advance(Duration::from_millis(500), &[0]);
    c.advance(Duration::from_millis(500), &[0]);
    assert_eq!(c.nodes[0].view_id(), Some(1), "still in its view");
    assert_eq!(c.plumbed[0].len(), 2, "it serves again: {:?}", c.plumbed[0]);
}

#[test]
fn a_node_that_cannot_plumb_tries_again_then_hands_its_addresses_on_until_its_interface_is_back() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.cannot_plumb = Some(1);
    c.view(&[0, 1]);
    let owed = c.nodes[1].unplumbed();
    assert_eq!(
        owed.len(),
        2,
        "n2 holds its share but could plumb none of it"
    );
    assert_eq!(
        c.nodes[0].holdings()["n2"],
        owed,
        "everyone counts them as n2's"
    );
    let first = c.failed_plumbs;
    c.advance(Duration::from_millis(500), &[0, 1]);
    assert!(c.failed_plumbs > first, "tried again within the backoff");
    assert!(
        c.nodes[0].poll_timeout().is_some()
            && c.nodes[1].poll_timeout() <= Some(c.now + Duration::from_secs(1)),
        "a retry is armed"
    );
    let mut gave_up = Vec::new();
    for _ in 0..14 {
        c.advance(Duration::from_millis(250), &[0, 1]);
        gave_up.extend(
            std::iter::from_fn(|| c.nodes[1].poll_event()).filter_map(|e| match e {
                Event::GaveUp { address, interface } => Some((address, interface)),
                _ => None,
            }),
        );
    }
    assert_eq!(gave_up.len(), 2, "{gave_up:?}");
    assert!(gave_up.iter().all(|(_, i)| i == "eth0"));
    assert!(c.nodes[1].unplumbed().is_empty());
    assert_eq!(c.nodes[1].given_up(), &BTreeSet::from(["eth0".to_owned()]));
    for i in 1..=4 {
        assert_eq!(
            c.owners(&format!("198.51.100.{i}")),
            vec![0],
            "n1 serves everything"
        );
    }
    // A quiet while later nothing flaps back to n2.
    let plumbs = c.failed_plumbs;
    c.advance(Duration::from_secs(5), &[0, 1]);
    assert_eq!(
        c.failed_plumbs, plumbs,
        "n2 no longer tries what it gave up"
    );
    // The interface appears: n2 offers its addresses again and takes its share back.
    c.cannot_plumb = None;
    c.nodes[1].handle_interface_ready("eth0");
    c.drain(1);
    c.settle(&[0, 1]);
    c.advance(Duration::from_secs(1), &[0, 1]);
    let mine = (1..=4)
        .filter(|i| c.owners(&format!("198.51.100.{i}")) == vec![1])
        .count();
    assert_eq!(mine, 2, "n2 took its share back");
    assert!(c.nodes[1].given_up().is_empty());
}

#[test]
fn a_plumb_that_works_on_a_retry_keeps_the_address_where_it_is() {
    let mut c = Cluster::new(&vec![addresses(4, None); 2]);
    c.cannot_plumb = Some(1);
    c.view(&[0, 1]);
    let owed = c.nodes[1].unplumbed();
    c.cannot_plumb = None;
    c.advance(Duration::from_millis(200), &[0, 1]);
    assert!(c.nodes[1].unplumbed().is_empty());
    assert_eq!(c.plumbed[1], owed, "plumbed on the retry");
    c.advance(Duration::from_secs(5), &[0, 1]);
    assert_eq!(c.plumbed[1], owed, "and kept: nothing was given up");
    assert!(c.nodes[1].given_up().is_empty());
}

#[test]
fn every_survivor_knows_beforehand_who_takes_each_address_of_a_node_that_dies() {
    // Preferences and a standing move make the successors differ from a plain least-loaded
    // choice; the dead node holds the preferred address.
    let mut c = Cluster::new(&vec![addresses(9, Some("n3")); 4]);
    c.view(&[0, 1, 2, 3]);
    c.advance(Duration::from_secs(2), &[0, 1, 2, 3]);
    c.nodes[0]
        .handle_command(Command::Move {
            address: "198.51.100.9".parse().expect("an address"),
            to: "n3".into(),
        })
        .expect("a candidate");
    c.drain(0);
    c.settle(&[0, 1, 2, 3]);
    c.advance(Duration::from_secs(2), &[0, 1, 2, 3]);
    let dying = 2;
    let held = c.plumbed[dying].clone();
    assert!(
        held.len() >= 2,
        "n3 holds its preferred and moved addresses: {held:?}"
    );
    let maps: Vec<_> = [0, 1, 3]
        .iter()
        .map(|&i| c.nodes[i].successors("n3"))
        .collect();
    assert!(maps.windows(2).all(|w| w[0] == w[1]), "{maps:?}");
    let successors = &maps[0];
    assert_eq!(successors.keys().copied().collect::<BTreeSet<_>>(), held);
    assert!(c.nodes[0].successors("nobody").is_empty());

    c.plumbed[dying].clear();
    c.view(&[0, 1, 3]);
    for (address, successor) in successors {
        let owners: Vec<String> = c
            .owners(&address.to_string())
            .into_iter()
            .map(|i| format!("n{}", i + 1))
            .collect();
        assert_eq!(
            owners,
            successor.iter().cloned().collect::<Vec<_>>(),
            "{address}"
        );
    }
}

/// corosync put four members in one ring, but n1's process list there is unlike the others',
/// so n1 names the view differently (chaos seed 47, round 146). Each side drops the other's
/// messages as stale. n1, which finds every other member elsewhere, stands down before the
/// others' State deadline plans around it, so nobody plumbs an address n1 still has; the
/// others go on, naming n1.
#[test]
fn a_member_naming_the_view_unlike_the_rest_stands_down_before_they_plan_around_it() {
    let config = addresses(8, None);
    let mut c = Cluster::new(&[config.clone(), config.clone(), config.clone(), config]);
    let all = [0, 1, 2, 3];
    c.view(&all);
    c.advance(Duration::from_secs(3), &all);
    assert!(!c.plumbed[0].is_empty(), "n1 holds its share before");
    for node in &mut c.nodes {
        while node.poll_event().is_some() {}
    }

    let names: BTreeSet<String> = (1..=4).map(|i| format!("n{i}")).collect();
    c.nodes[0].handle_view(1000, &names);
    c.drain(0);
    for i in 1..4 {
        c.nodes[i].handle_view(2, &names);
        c.drain(i);
    }
    c.settle(&all);
    let mut split = [None; 4];
    for _ in 0..12 {
        c.now += Duration::from_millis(250);
        for i in all {
            c.nodes[i].handle_timeout(c.now);
            while let Some(action) = c.nodes[i].poll_action() {
                if let Action::Unplumb { address, .. } = action {
                    c.plumbed[i].remove(&address);
                } else if let Action::Plumb { address, .. } = action {
                    c.nodes[i].handle_plumb_done(address);
                    assert!(
                        (0..4).all(|j| j == i || !c.plumbed[j].contains(&address)),
                        "n{} plumbed {address} while another member had it",
                        i + 1
                    );
                    c.plumbed[i].insert(address);
                } else if let Action::Send(bytes) = action {
                    c.queue.push_back((i, bytes));
                }
            }
            while let Some(event) = c.nodes[i].poll_event() {
                if let Event::ViewSplit {
                    stood_down, named, ..
                } = event
                {
                    split[i] = Some((stood_down, named.len()));
                }
            }
        }
        c.settle(&all);
    }
    assert_eq!(
        split[0],
        Some((true, 3)),
        "n1 stood down from the other three"
    );
    for (i, seen) in split.iter().enumerate().skip(1) {
        assert_eq!(*seen, Some((false, 1)), "n{} went on, naming n1", i + 1);
    }
    assert!(c.plumbed[0].is_empty(), "n1 holds nothing");
    assert_eq!(c.nodes[0].view_id(), None, "n1 is out of the view");
    let served: BTreeSet<IpAddr> = c.plumbed[1..].iter().flatten().copied().collect();
    assert_eq!(served.len(), 8, "the other three serve every address");
}

/// A member busy for seconds (planning 10,240 addresses) sends nothing meanwhile; what it
/// sent in its view before reaches the others in one backlog, named for a view they never
/// had. That spans no time, so nobody stands down: the member is only late (CI, cluster_large).
#[test]
fn a_backlog_named_for_another_view_read_at_once_is_no_split() {
    let config = addresses(4, None);
    let mut c = Cluster::new(&[config.clone(), config]);
    // n2 alone first: a view n1 never has. What n2 says in it waits on the bus.
    let alone: BTreeSet<String> = ["n2".to_owned()].into();
    c.nodes[1].handle_view(50, &alone);
    c.drain(1);
    for _ in 0..4 {
        c.now += Duration::from_millis(500);
        c.nodes[1].handle_timeout(c.now);
        c.drain(1);
    }
    let mut backlog: Option<Vec<(usize, Vec<u8>)>> = Some(c.queue.drain(..).collect());
    assert!(
        backlog.as_ref().is_some_and(|b| !b.is_empty()),
        "n2 said something in its own view"
    );
    // Both are shown the shared view; n1 runs on while n2 is busy and reads nothing.
    let both: BTreeSet<String> = ["n1".to_owned(), "n2".to_owned()].into();
    c.nodes[0].handle_view(2, &both);
    c.drain(0);
    let mut stood_down = false;
    for _ in 0..12 {
        c.now += Duration::from_millis(250);
        c.nodes[0].handle_timeout(c.now);
        c.drain(0);
        c.settle(&[0]);
        // n2's backlog arrives in one piece, well after the view began.
        if c.now >= Duration::from_millis(3_500) {
            if let Some(backlog) = backlog.take() {
                c.queue.extend(backlog);
                c.settle(&[0]);
            }
        }
        stood_down |= std::iter::from_fn(|| c.nodes[0].poll_event()).any(|e| {
            matches!(
                e,
                Event::ViewSplit {
                    stood_down: true,
                    ..
                }
            )
        });
    }
    assert!(!stood_down, "a backlog read at once is no split");
    assert_eq!(c.nodes[0].view_id(), Some(2), "n1 is still in the view");
}

#[test]
fn each_node_readies_exactly_what_it_would_take_were_any_other_to_die() {
    let mut c = Cluster::new(&vec![addresses(12, None); 4]);
    assert_eq!(
        c.nodes[0].next_here(),
        None,
        "no view, no plan to ready from"
    );
    c.view(&[0, 1, 2, 3]);
    c.advance(Duration::from_secs(2), &[0, 1, 2, 3]);
    let ready: Vec<BTreeSet<IpAddr>> = (0..4)
        .map(|i| c.nodes[i].next_here().expect("a planned view"))
        .collect();
    for (i, set) in ready.iter().enumerate() {
        assert!(
            set.is_disjoint(&c.plumbed[i]),
            "n{} readies what it holds",
            i + 1
        );
        for (j, other) in ready.iter().enumerate().skip(i + 1) {
            assert!(
                set.is_disjoint(other),
                "n{} and n{} ready one address",
                i + 1,
                j + 1
            );
        }
    }
    let all: BTreeSet<_> = ready.iter().flatten().copied().collect();
    let held: BTreeSet<_> = c.plumbed.iter().flatten().copied().collect();
    assert_eq!(all, held, "every held address is readied somewhere");

    let dying = 1;
    let lost = std::mem::take(&mut c.plumbed[dying]);
    let before: Vec<BTreeSet<_>> = c.plumbed.clone();
    c.view(&[0, 2, 3]);
    for i in [0, 2, 3] {
        let gained: BTreeSet<_> = c.plumbed[i].difference(&before[i]).copied().collect();
        let readied: BTreeSet<_> = ready[i].intersection(&lost).copied().collect();
        assert_eq!(gained, readied, "n{} took what it readied", i + 1);
    }
}
