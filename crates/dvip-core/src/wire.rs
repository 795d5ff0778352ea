//! Wire messages: what nodes multicast to each other on the cluster group.
//!
//! Owns the encoding and its bounds. Every message starts with a four-byte header (`DV` and a
//! little-endian format version) followed by a postcard body, so a node can tell "sent by an
//! incompatible version" from "garbled". Decoding checks the size before anything else and
//! the counts after, and never panics: a message that fails is dropped by the caller with a
//! [`DecodeError`] saying why, and changes nothing.
//!
//! # Versions
//!
//! New kinds of message are new variants of [`Message`] at the end, and the format version
//! stays: a node reads every message of the builds before it, and an older node drops what
//! it cannot understand as malformed. The version changes only when a message it already
//! knows changes shape; then the two versions cannot read each other's States, and each
//! treats the other's nodes as silent (see the node's State deadline) instead of waiting for
//! them. docs/daemon.md says what that means for a rolling upgrade.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, NodeName, DURAVIP_ADDRESS_COUNT_MAX};

/// The format version this build speaks.
pub const WIRE_VERSION: u16 = 1;
const MAGIC: [u8; 2] = *b"DV";
const HEADER_LEN: usize = 4;
/// The largest message accepted: a State for the largest address set fits with room to spare.
pub const MESSAGE_SIZE_MAX: usize = 16 * 1024 * 1024;
/// The most binding names or listener ports one entity may carry.
pub const SERVICES_PER_ADDRESS_MAX: usize = 4096;
/// The most members a message may name (corosync's own limit on a cluster is far lower).
pub const MEMBERS_MAX: usize = 1024;
/// The longest node or binding name accepted.
pub const NAME_LEN_MAX: usize = 255;

/// One multicast message. Every kind carries the view it was sent in: a message from another
/// view is stale and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A member's announcement: its configuration and, on its first State in a view, what it
    /// holds.
    State(State),
    /// The sender has unplumbed these addresses; their new owners may plumb them now.
    Released {
        /// The view it was sent in.
        view_id: u64,
        /// What was let go.
        addresses: Vec<IpAddr>,
    },
    /// The view has stood for `view_mature_time` on the sender's clock: planned moves may go.
    Mature {
        /// The view that matured.
        view_id: u64,
    },
    /// Everyone announces again and the cluster re-plans (`announce view`).
    AnnounceView {
        /// The view it applies to.
        view_id: u64,
    },
    /// An operator moves an address to a node, for the rest of this view. Sent by builds
    /// before standing moves; this build reads it as a standing move and sends [`Message::Moves`].
    Move {
        /// The view it applies to.
        view_id: u64,
        /// The address.
        address: IpAddr,
        /// The node that should own it.
        to: NodeName,
    },
    /// The sender goes on standby (`on`) or comes back online.
    Standby {
        /// The view it was sent in.
        view_id: u64,
        /// Standby or not.
        on: bool,
    },
    /// The view only lost members, and the sender carries the table of the view before it:
    /// its announcement in place of a State, small enough to arrive at once. Sent after a
    /// `Released` of anything it let go in the old view that the old view never delivered.
    Carried {
        /// The view it was sent in.
        view_id: u64,
        /// Whether it is on standby (a change may not have been delivered in the old view).
        standby: bool,
    },
    /// The sender got a `Carried` in a view it did not carry, or a State saying the opposite
    /// of what it did: the members disagree on what the view continues. Everyone forgets what
    /// it carried and announces a full State, as in a view that continues nothing.
    Recount {
        /// The view it applies to.
        view_id: u64,
    },
    /// The sender waited its State deadline for this round and the States of `members` are
    /// not in. At its delivery (the same point for everyone) those members are *silent*:
    /// planned around as holding and offering nothing, until their next State. The list is
    /// the sender's, not each receiver's: a member whose State only some can read must be
    /// silent for all of them, itself included.
    Silent {
        /// The view it applies to.
        view_id: u64,
        /// The announcement round it applies to.
        round: u32,
        /// The members whose State the sender is missing.
        members: Vec<NodeName>,
    },
    /// A message the sender sends to see it come back: the bus still carries its messages
    /// (a stopped corosync does not), and everything delivered before it was sent has been
    /// read. Everyone else ignores it.
    Echo {
        /// The view it was sent in.
        view_id: u64,
        /// Which echo of the sender's.
        nonce: u64,
    },
    /// Standing moves (`dvip move`) and their clearings, to merge: sent by an operator's
    /// command, and by every member before each of its announcements, so a view's first plan
    /// already knows every move its members know.
    Moves {
        /// The view it was sent in.
        view_id: u64,
        /// The moves, at most one per address.
        moves: Vec<StandingMove>,
    },
    /// `about`'s lease in its epoch `epoch` is over: every other member promised never to
    /// renew it (docs/leases.md). The sender has already plumbed `addresses`, each of which
    /// the promises' plan gave it; they are its own from here on. Empty when the sender only
    /// ends the epoch (it heard `about` again after promising). Moves `about`'s epoch.
    Took {
        /// The view it was sent in.
        view_id: u64,
        /// The member whose lease ended.
        about: NodeName,
        /// Its epoch the promises named.
        epoch: u64,
        /// What the sender took.
        addresses: Vec<IpAddr>,
    },
    /// The sender has delivered the move of `about`'s epoch to `epoch`, and every `Took` of
    /// its own before it: once every member says so, nothing taken in the old epoch is still
    /// on its way.
    EpochSeen {
        /// The view it was sent in.
        view_id: u64,
        /// Whose epoch moved.
        about: NodeName,
        /// The epoch it moved to.
        epoch: u64,
    },
    /// The epochs the sender knows, sent before each of its States: a member that restarted,
    /// or came from another side of a partition, may know fewer moves than the others.
    /// Everyone takes the greatest it hears for each member, so by the time every State is in,
    /// the members agree on every epoch.
    Epochs {
        /// The view it was sent in.
        view_id: u64,
        /// Members and their epochs (those above 0).
        epochs: Vec<(NodeName, u64)>,
    },
}

/// An operator's move of an address, standing until cleared, or its clearing (`to` is
/// `None`). Of two for one address, the one with the greater stamp (`counter`, then
/// `origin`) wins wherever they meet, so every member ends with the same moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingMove {
    /// The address.
    pub address: IpAddr,
    /// The node it goes to whenever that node is a candidate; `None`: cleared.
    pub to: Option<NodeName>,
    /// One more than the greatest counter its origin had seen.
    pub counter: u64,
    /// The node the operator asked.
    pub origin: NodeName,
}

impl StandingMove {
    /// Whether this one wins over `other` for the same address.
    pub fn supersedes(&self, other: &Self) -> bool {
        (self.counter, &self.origin) > (other.counter, &other.origin)
    }
}

impl Message {
    /// The view the message belongs to.
    pub fn view_id(&self) -> u64 {
        match self {
            Self::State(s) => s.view_id,
            Self::Released { view_id, .. }
            | Self::Mature { view_id }
            | Self::AnnounceView { view_id }
            | Self::Move { view_id, .. }
            | Self::Standby { view_id, .. }
            | Self::Carried { view_id, .. }
            | Self::Recount { view_id }
            | Self::Silent { view_id, .. }
            | Self::Echo { view_id, .. }
            | Self::Moves { view_id, .. }
            | Self::Took { view_id, .. }
            | Self::EpochSeen { view_id, .. }
            | Self::Epochs { view_id, .. } => *view_id,
        }
    }
}

/// A member's announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The view it was sent in.
    pub view_id: u64,
    /// Which announcement round of the view (`announce view` starts a new one).
    pub round: u32,
    /// A digest of the entities, to show operators whether configurations match.
    pub config_digest: u64,
    /// The member's DuraVIP addresses as its configuration describes them.
    pub entities: Vec<Entity>,
    /// What it holds; read only from its first State in a view.
    pub holdings: Vec<IpAddr>,
    /// Whether it is on standby.
    pub standby: bool,
    /// Sent in a view its sender carried from the one before: every member must agree on
    /// that, or the view is recounted.
    pub carried: bool,
}

/// Why a message was not accepted. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Bigger than [`MESSAGE_SIZE_MAX`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// Does not start with dvip's header: not a dvip message.
    NotDvip,
    /// Sent by a build speaking another format version.
    Version {
        /// The sender's version.
        theirs: u16,
    },
    /// The body does not decode.
    Malformed(String),
    /// A list longer than any valid message has.
    TooMany {
        /// What the list is.
        what: &'static str,
        /// How long it was.
        count: usize,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { len } => {
                write!(f, "message of {len} bytes exceeds {MESSAGE_SIZE_MAX}")
            }
            Self::NotDvip => f.write_str("not a dvip message"),
            Self::Version { theirs } => write!(
                f,
                "format version {theirs}, this node speaks {WIRE_VERSION}"
            ),
            Self::Malformed(why) => write!(f, "malformed: {why}"),
            Self::TooMany { what, count } => {
                write!(f, "{count} {what} is more than any valid message has")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a message with its header.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    // Serializing into a Vec cannot fail: every type here has a postcard form.
    postcard::to_io(message, &mut out).expect("postcard encodes every message into a Vec");
    out
}

/// Decodes and bounds-checks a message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MESSAGE_SIZE_MAX {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(DecodeError::NotDvip);
    }
    let version = u16::from_le_bytes([bytes[2], bytes[3]]);
    if version != WIRE_VERSION {
        return Err(DecodeError::Version { theirs: version });
    }
    let (message, rest) = postcard::take_from_bytes::<Message>(&bytes[HEADER_LEN..])
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    check_bounds(&message)?;
    Ok(message)
}

fn check_bounds(message: &Message) -> Result<(), DecodeError> {
    let at_most = |what, count: usize, max: usize| {
        if count > max {
            Err(DecodeError::TooMany { what, count })
        } else {
            Ok(())
        }
    };
    match message {
        Message::State(s) => {
            at_most("entities", s.entities.len(), DURAVIP_ADDRESS_COUNT_MAX)?;
            at_most(
                "held addresses",
                s.holdings.len(),
                DURAVIP_ADDRESS_COUNT_MAX,
            )?;
            for e in &s.entities {
                at_most(
                    "binding names on one address",
                    e.bindings.len(),
                    SERVICES_PER_ADDRESS_MAX,
                )?;
                at_most(
                    "listener ports on one address",
                    e.listener_ports.len(),
                    SERVICES_PER_ADDRESS_MAX,
                )?;
                let longest = e
                    .bindings
                    .iter()
                    .chain(&e.preference)
                    .map(String::len)
                    .max()
                    .unwrap_or(0);
                at_most("bytes in a name", longest, NAME_LEN_MAX)?;
            }
        }
        Message::Released { addresses, .. } => at_most(
            "released addresses",
            addresses.len(),
            DURAVIP_ADDRESS_COUNT_MAX,
        )?,
        Message::Move { to, .. } => at_most("bytes in a name", to.len(), NAME_LEN_MAX)?,
        Message::Silent { members, .. } => {
            at_most("silent members", members.len(), MEMBERS_MAX)?;
            let longest = members.iter().map(String::len).max().unwrap_or(0);
            at_most("bytes in a name", longest, NAME_LEN_MAX)?;
        }
        Message::Moves { moves, .. } => {
            at_most("standing moves", moves.len(), DURAVIP_ADDRESS_COUNT_MAX)?;
            let longest = moves
                .iter()
                .flat_map(|m| m.to.iter().chain([&m.origin]))
                .map(String::len)
                .max()
                .unwrap_or(0);
            at_most("bytes in a name", longest, NAME_LEN_MAX)?;
        }
        Message::Took {
            about, addresses, ..
        } => {
            at_most(
                "taken addresses",
                addresses.len(),
                DURAVIP_ADDRESS_COUNT_MAX,
            )?;
            at_most("bytes in a name", about.len(), NAME_LEN_MAX)?;
        }
        Message::EpochSeen { about, .. } => {
            at_most("bytes in a name", about.len(), NAME_LEN_MAX)?;
        }
        Message::Epochs { epochs, .. } => {
            at_most("epochs", epochs.len(), MEMBERS_MAX)?;
            let longest = epochs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            at_most("bytes in a name", longest, NAME_LEN_MAX)?;
        }
        Message::Mature { .. }
        | Message::AnnounceView { .. }
        | Message::Standby { .. }
        | Message::Carried { .. }
        | Message::Recount { .. }
        | Message::Echo { .. } => {}
    }
    Ok(())
}

/// A stable digest of a set of entities (FNV-1a over their encoding), so operators can see at
/// a glance whether two nodes run the same DuraVIP configuration.
pub fn config_digest<'e>(entities: impl IntoIterator<Item = &'e Entity>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for entity in entities {
        let bytes = postcard::to_stdvec(entity).expect("postcard encodes every entity");
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Message {
        Message::State(State {
            view_id: 7,
            round: 1,
            config_digest: 9,
            entities: vec![Entity {
                address: "198.51.100.1".parse().expect("an address"),
                bindings: ["a".to_owned()].into(),
                listener_ports: [25].into(),
                preference: Some("n2".to_owned()),
                follow: None,
            }],
            holdings: vec!["198.51.100.1".parse().expect("an address")],
            standby: false,
            carried: false,
        })
    }

    #[test]
    fn messages_round_trip() {
        for m in [
            state(),
            Message::Released {
                view_id: 3,
                addresses: vec!["2001:db8::1".parse().expect("an address")],
            },
            Message::Mature { view_id: 4 },
            Message::Took {
                view_id: 5,
                about: "n2".to_owned(),
                epoch: 2,
                addresses: vec!["198.51.100.9".parse().expect("an address")],
            },
            Message::EpochSeen {
                view_id: 5,
                about: "n2".to_owned(),
                epoch: 3,
            },
            Message::Epochs {
                view_id: 5,
                epochs: vec![("n2".to_owned(), 3)],
            },
            Message::Carried {
                view_id: 6,
                standby: true,
            },
            Message::Recount { view_id: 8 },
            Message::Silent {
                view_id: 8,
                round: 2,
                members: vec!["n3".into()],
            },
            Message::Echo {
                view_id: 8,
                nonce: 5,
            },
            Message::Move {
                view_id: 5,
                address: "198.51.100.9".parse().expect("an address"),
                to: "n1".into(),
            },
        ] {
            assert_eq!(decode(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn another_version_is_named_not_misread() {
        let mut bytes = encode(&state());
        bytes[2] = 9;
        assert_eq!(decode(&bytes), Err(DecodeError::Version { theirs: 9 }));
        assert_eq!(decode(b"HTTP/1.1"), Err(DecodeError::NotDvip));
        assert!(matches!(decode(&bytes[..3]), Err(DecodeError::NotDvip)));
    }

    #[test]
    fn truncated_or_padded_bodies_are_malformed() {
        let bytes = encode(&state());
        for cut in HEADER_LEN..bytes.len() {
            assert!(
                matches!(decode(&bytes[..cut]), Err(DecodeError::Malformed(_))),
                "cut at {cut}"
            );
        }
        let mut padded = bytes;
        padded.push(0);
        assert!(matches!(decode(&padded), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn the_digest_changes_with_the_configuration() {
        let Message::State(s) = state() else {
            unreachable!()
        };
        let mut other = s.entities.clone();
        other[0].listener_ports.insert(587);
        assert_ne!(config_digest(&s.entities), config_digest(&other));
        let Message::State(again) = state() else {
            unreachable!()
        };
        assert_eq!(
            config_digest(&s.entities),
            config_digest(&again.entities),
            "built twice, same digest"
        );
    }
}
