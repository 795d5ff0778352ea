//! The framing and encoding: every message comes back as sent however the bytes are cut, and
//! arbitrary bytes give an error or nothing, never a panic or an unbounded allocation.

use dvip_journal::{RecordId, Timestamp};
use dvip_logwire::{
    encode, Decoder, ErrorKind, LogInfo, Reply, Request, WireError, WireRecord, FRAME_MAX,
    PROTOCOL_VERSION,
};
use proptest::prelude::*;

fn record_id() -> impl Strategy<Value = RecordId> {
    (any::<u32>(), any::<u32>()).prop_map(|(segment, position)| RecordId { segment, position })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), ".{0,20}").prop_map(|(version, client)| Request::Hello { version, client }),
        Just(Request::List),
        (".{0,20}", ".{0,20}", any::<u32>()).prop_map(|(log, subscriber, credit)| Request::Open {
            log,
            subscriber,
            credit
        }),
        any::<u32>().prop_map(|records| Request::More { records }),
        record_id().prop_map(|through| Request::Ack { through }),
        Just(Request::Backlog),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let record = (
        record_id(),
        any::<u32>(),
        0u32..1_000_000,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(id, seconds, micros, payload)| WireRecord {
            id,
            time: Timestamp { seconds, micros },
            payload,
        });
    prop_oneof![
        (any::<u16>(), ".{0,20}").prop_map(|(version, node)| Reply::Welcome { version, node }),
        proptest::collection::vec(
            (".{0,10}", proptest::collection::vec(".{0,10}", 0..3))
                .prop_map(|(name, subscribers)| LogInfo { name, subscribers }),
            0..4
        )
        .prop_map(|logs| Reply::Logs { logs }),
        (".{0,20}", record_id()).prop_map(|(log, checkpoint)| Reply::Opened { log, checkpoint }),
        proptest::collection::vec(record, 0..20).prop_map(|records| Reply::Records { records }),
        record_id().prop_map(|through| Reply::Acked { through }),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of((any::<u32>(), 0u32..1_000_000))
        )
            .prop_map(|(records, bytes, oldest)| Reply::Backlog {
                records,
                bytes,
                oldest: oldest.map(|(seconds, micros)| Timestamp { seconds, micros }),
            }),
        (
            prop_oneof![
                Just(ErrorKind::Version),
                Just(ErrorKind::UnknownLog),
                Just(ErrorKind::BadAck),
                Just(ErrorKind::Journal)
            ],
            ".{0,40}"
        )
            .prop_map(|(kind, message)| Reply::Error { kind, message }),
    ]
}

proptest! {
    #[test]
    fn requests_cut_anywhere_come_back_in_order(
        messages in proptest::collection::vec(request(), 1..10),
        cuts in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let bytes: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + cut).min(bytes.len());
            decoder.push(&bytes[at..end]);
            at = end;
            while let Some(m) = decoder.message::<Request>().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn replies_come_back_as_sent(messages in proptest::collection::vec(reply(), 1..6)) {
        let mut decoder = Decoder::default();
        for m in &messages {
            decoder.push(&encode(m).unwrap());
        }
        for m in &messages {
            let got = decoder.message::<Reply>().unwrap();
            prop_assert_eq!(got.as_ref(), Some(m));
        }
        prop_assert!(decoder.message::<Reply>().unwrap().is_none());
    }

    #[test]
    fn arbitrary_bytes_give_an_error_or_wait_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut decoder = Decoder::default();
        decoder.push(&bytes);
        for _ in 0..bytes.len() + 1 {
            match decoder.message::<Request>() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn a_length_over_the_limit_is_refused_before_anything_is_read_into_memory() {
    let mut decoder = Decoder::default();
    decoder.push(&(FRAME_MAX + 1).to_be_bytes());
    assert!(matches!(
        decoder.message::<Request>(),
        Err(WireError::TooLarge { len }) if len == FRAME_MAX + 1
    ));
}

#[test]
fn the_hello_of_version_1_is_pinned_byte_for_byte() {
    // Other implementations follow docs/log-service.md; this is its example.
    let frame = encode(&Request::Hello {
        version: PROTOCOL_VERSION,
        client: "collector".into(),
    })
    .unwrap();
    assert_eq!(
        frame,
        [
            0, 0, 0, 12, // length
            0,  // Hello
            1,  // version 1 (varint)
            9, b'c', b'o', b'l', b'l', b'e', b'c', b't', b'o', b'r'
        ]
    );
}
