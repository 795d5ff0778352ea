//! Decoding what the bus delivers, whatever it is: arbitrary bytes, valid messages with bytes
//! flipped, cut or appended. Decoding never panics, and what it accepts is within the wire's
//! bounds and encodes back to the bytes it came from. A node fed any of it through
//! `handle_message` drops what it cannot read and keeps going.
//!
//! CI runs these with proptest's case counts below; `PROPTEST_CASES=1000000 cargo test -p
//! dvip-core wire_fuzz` runs them longer.

use std::collections::BTreeSet;

use dvip_core::wire::{self, Message, State, MESSAGE_SIZE_MAX};
use dvip_core::{Entity, Node, NodeOptions};
use proptest::prelude::*;

fn state(entities: usize) -> Message {
    Message::State(State {
        view_id: 3,
        round: 0,
        config_digest: 1,
        entities: (0..entities)
            .map(|i| Entity {
                address: format!("198.18.0.{}", i + 1).parse().expect("an address"),
                bindings: [format!("b{i}")].into(),
                listener_ports: [25].into(),
                preference: Some("n1".to_owned()),
                follow: None,
            })
            .collect(),
        holdings: vec!["198.18.0.1".parse().expect("an address")],
        standby: false,
        carried: false,
    })
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        wire::encode(&state(3)),
        wire::encode(&Message::Mature { view_id: 9 }),
        wire::encode(&Message::Released {
            view_id: 9,
            addresses: vec!["2001:db8::1".parse().expect("an address")],
        }),
    ]
}

/// Valid messages, damaged: a byte changed, the end cut off, or bytes appended.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (0..3usize, any::<usize>(), any::<u8>(), 0..3u8).prop_map(|(which, at, byte, how)| {
        let mut bytes = samples().swap_remove(which);
        let at = at % bytes.len();
        match how {
            0 => bytes[at] = byte,
            1 => bytes.truncate(at),
            _ => bytes.extend(std::iter::repeat_n(byte, at)),
        }
        bytes
    })
}

fn accepted_is_sound(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = wire::decode(bytes) {
        prop_assert!(bytes.len() <= MESSAGE_SIZE_MAX);
        prop_assert_eq!(
            wire::encode(&message),
            bytes,
            "accepted bytes re-encode the same"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn arbitrary_bytes_decode_or_are_refused(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        with_header in any::<bool>(),
    ) {
        let mut bytes = if with_header { b"DV\x01\x00".to_vec() } else { Vec::new() };
        bytes.extend(body);
        accepted_is_sound(&bytes)?;
    }

    #[test]
    fn damaged_messages_decode_or_are_refused(bytes in damaged()) {
        accepted_is_sound(&bytes)?;
    }

    /// A node that is delivered garbage from another member between valid messages still
    /// plans once every State is in.
    #[test]
    fn a_node_fed_garbage_keeps_going(
        garbage in proptest::collection::vec(
            prop_oneof![damaged(), proptest::collection::vec(any::<u8>(), 0..64)],
            0..16,
        ),
    ) {
        let mut node = Node::new("n1", NodeOptions::default(), &[]);
        node.handle_view(3, &BTreeSet::from(["n1".to_owned(), "n2".to_owned()]));
        let own: Vec<Vec<u8>> = std::iter::from_fn(|| node.poll_action())
            .filter_map(|a| match a {
                dvip_core::Action::Send(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        for bytes in &garbage {
            node.handle_message("n2", bytes);
        }
        for bytes in &own {
            node.handle_message("n1", bytes);
        }
        node.handle_message("n2", &wire::encode(&state(2)));
        prop_assert!(node.is_ready(), "both States count after the garbage");
    }
}
