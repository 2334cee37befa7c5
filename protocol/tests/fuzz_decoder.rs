//! Property tests of the service-protocol frame decoder (the seeded short pass of the
//! fuzzing in `fuzz/`, run by every `cargo test`; raise `PROPTEST_CASES` for a longer one).
//!
//! Properties: decoding never panics, whatever the bytes and however they are chunked;
//! chunking never changes the outcome; frames are the input verbatim; valid streams
//! round-trip; and no allocation is sized by an untrusted length prefix (checked with a
//! per-thread "largest allocation" counter behind the global allocator).

use keel_protocol::proto::{self, call_completion_notification_message, output_command_message};
use keel_protocol::{
    CustomMessage, DecodeError, Decoder, Flags, Frame, HEADER_LEN, Message, MessageHeader, MessageType,
    encode_with_flags,
};
use proptest::prelude::*;
use prost::bytes::Bytes;

// ---- allocation tracking -------------------------------------------------------------

#[global_allocator]
static ALLOCATOR: keel_testkit::CountingAlloc = keel_testkit::CountingAlloc;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (out, allocated) = keel_testkit::allocations(f);
    (out, allocated.largest)
}

// ---- decoding helpers ----------------------------------------------------------------

/// What a decoder made of a stream: frames, the error that stopped it, the end verdict.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<DecodeError>,
    end: Result<(), DecodeError>,
    buffered: usize,
}

fn drain(decoder: &mut Decoder, frames: &mut Vec<Frame>) -> Option<DecodeError> {
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// Feeds `stream` in chunks of the given sizes (cycled; zero-length pushes included),
/// draining after each push as the invoker does.
fn decode_chunked(stream: &[u8], chunks: &[usize], max: usize) -> Outcome {
    let mut decoder = Decoder::with_max_message_size(max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        decoder.push(chunk);
        rest = tail;
        if error.is_none() {
            error = drain(&mut decoder, &mut frames);
        }
        if n == 0 && chunks.iter().all(|&c| c == 0) {
            decoder.push(rest);
            rest = &[];
        }
    }
    if error.is_none() {
        error = drain(&mut decoder, &mut frames);
    }
    Outcome { frames, error, end: decoder.finish(), buffered: decoder.buffered() }
}

fn decode_whole(stream: &[u8], max: usize) -> Outcome {
    decode_chunked(stream, &[stream.len().max(1)], max)
}

/// The invariants every outcome must satisfy, whatever the input.
fn check_outcome(stream: &[u8], out: &Outcome, max: usize) -> Result<(), TestCaseError> {
    let mut rebuilt = Vec::new();
    for frame in &out.frames {
        prop_assert_eq!(frame.header.length as usize, frame.payload.len());
        prop_assert!(frame.payload.len() <= max);
        rebuilt.extend_from_slice(&frame.to_bytes());
        let _ = frame.notification_id();
        match frame.decode_message() {
            Ok(message) => {
                prop_assert_eq!(message.code(), frame.header.code);
                let bytes = encode_with_flags(&message, frame.header.flags).expect("fits");
                let again = decode_whole(&bytes, usize::MAX);
                prop_assert_eq!(again.frames.len(), 1);
                prop_assert_eq!(again.frames[0].decode_message().expect("re-encoded decodes"), message);
            }
            Err(DecodeError::UnknownMessageType { code }) => {
                prop_assert_eq!(code, frame.header.code);
                prop_assert!(MessageType::from_code(code).is_none());
            }
            Err(DecodeError::Protobuf { message_type, .. }) => {
                prop_assert_eq!(message_type.code(), frame.header.code);
            }
            Err(e) => prop_assert!(false, "stream-level error from one frame: {e:?}"),
        }
    }
    prop_assert_eq!(&stream[..rebuilt.len()], &rebuilt[..]);
    prop_assert_eq!(rebuilt.len() + out.buffered, stream.len());
    match &out.error {
        None => {}
        Some(DecodeError::MessageTooLarge { length, max: m, .. }) => {
            prop_assert_eq!(*m, max);
            prop_assert!(*length as usize > max);
            prop_assert_eq!(&out.end, &Err(out.error.clone().expect("some")));
        }
        Some(e) => prop_assert!(false, "next_frame returned {e:?}"),
    }
    if out.error.is_none() {
        match &out.end {
            Ok(()) => prop_assert_eq!(out.buffered, 0),
            Err(DecodeError::Truncated { buffered, needed }) => {
                prop_assert_eq!(*buffered, out.buffered);
                prop_assert!(needed > buffered);
            }
            Err(e) => prop_assert!(false, "finish returned {e:?}"),
        }
    }
    Ok(())
}

// ---- strategies ----------------------------------------------------------------------

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Option<proto::Value>> {
    prop::option::of(bytes(40).prop_map(|content| proto::Value { content }))
}

fn failure() -> impl Strategy<Value = proto::Failure> {
    (any::<u32>(), ".{0,20}", prop::collection::vec(("[a-z]{0,5}", ".{0,8}"), 0..3)).prop_map(|(code, message, md)| {
        proto::Failure {
            code,
            message,
            metadata: md.into_iter().map(|(key, value)| proto::FailureMetadata { key, value }).collect(),
        }
    })
}

fn headers() -> impl Strategy<Value = Vec<proto::Header>> {
    prop::collection::vec(("[a-z-]{1,10}", ".{0,10}"), 0..4)
        .prop_map(|hs| hs.into_iter().map(|(key, value)| proto::Header { key, value }).collect())
}

/// Valid messages of assorted types, with arbitrary field values.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (bytes(30), ".{0,10}", any::<u32>(), prop::collection::vec((bytes(8), bytes(16)), 0..4), any::<u64>())
            .prop_map(|(id, debug_id, known_entries, state, random_seed)| {
                proto::StartMessage {
                    id,
                    debug_id,
                    known_entries,
                    state_map: state
                        .into_iter()
                        .map(|(key, value)| proto::start_message::StateEntry { key, value })
                        .collect(),
                    random_seed,
                    ..Default::default()
                }
                .into()
            }),
        (headers(), value(), ".{0,8}").prop_map(|(headers, value, name)| proto::InputCommandMessage {
            headers,
            value,
            name
        }
        .into()),
        (prop_oneof![
            value().prop_map(|v| v.map(output_command_message::Result::Value)),
            failure().prop_map(|f| Some(output_command_message::Result::Failure(f))),
        ])
        .prop_map(|result| proto::OutputCommandMessage { result, name: String::new() }.into()),
        (bytes(10), value())
            .prop_map(|(key, value)| proto::SetStateCommandMessage { key, value, name: "s".into() }.into()),
        (any::<u64>(), any::<u32>()).prop_map(|(wake_up_time, result_completion_id)| {
            proto::SleepCommandMessage { wake_up_time, result_completion_id, name: String::new() }.into()
        }),
        ("[A-Za-z]{1,8}", "[a-z]{1,8}", bytes(20), headers(), prop::option::of(".{0,6}")).prop_map(
            |(service_name, handler_name, parameter, headers, idempotency_key)| {
                proto::CallCommandMessage {
                    service_name,
                    handler_name,
                    parameter,
                    headers,
                    idempotency_key,
                    result_completion_id: 3,
                    ..Default::default()
                }
                .into()
            }
        ),
        (any::<u32>(), ".{0,20}", prop::option::of(any::<u64>())).prop_map(|(code, message, next_retry_delay)| {
            proto::ErrorMessage { code, message, next_retry_delay, ..Default::default() }.into()
        }),
        Just(proto::EndMessage {}.into()),
        (any::<u32>(), failure()).prop_map(|(completion_id, f)| {
            proto::CallCompletionNotificationMessage {
                completion_id,
                result: Some(call_completion_notification_message::Result::Failure(f)),
            }
            .into()
        }),
        (0xFC00u16..=0xFFFF, bytes(30)).prop_map(|(code, payload)| Message::Custom(CustomMessage { code, payload })),
    ]
}

fn flags() -> impl Strategy<Value = Flags> {
    prop_oneof![Just(Flags::NONE), Just(Flags::REQUESTED_ACK), any::<u16>().prop_map(Flags)]
}

/// A valid stream: messages with their flags, and the encoded bytes.
fn stream() -> impl Strategy<Value = (Vec<(Message, Flags)>, Vec<u8>)> {
    prop::collection::vec((message(), flags()), 0..8).prop_map(|messages| {
        let mut bytes = Vec::new();
        for (m, f) in &messages {
            bytes.extend_from_slice(&encode_with_flags(m, *f).expect("small"));
        }
        (messages, bytes)
    })
}

/// Chunk sizes, zero included, so pushes split headers and payloads anywhere.
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..24, 1..12)
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![Just(Decoder::DEFAULT_MAX_MESSAGE_SIZE), 0usize..64, Just(usize::MAX)]
}

/// A way to damage a valid stream.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Overwrite the length field of the header at byte `at` (clamped to a header start
    /// when the stream has frames).
    Length {
        at: usize,
        length: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (
            any::<usize>(),
            prop_oneof![Just(u32::MAX), Just(0xFFFF_FFF0), Just(0x8000_0000), Just(33 << 20), Just(0), any::<u32>()]
        )
            .prop_map(|(at, length)| Mutation::Length { at, length }),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation, headers: &[usize]) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip { at, mask } => bytes[at % len] ^= mask,
        Mutation::Truncate { at } => bytes.truncate(at % len),
        Mutation::Insert { at, bytes: extra } => {
            let at = at % (len + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Length { at, length } => {
            let start = headers.get(at % headers.len().max(1)).copied().unwrap_or(0);
            if start + HEADER_LEN <= len {
                bytes[start + 4..start + 8].copy_from_slice(&length.to_be_bytes());
            }
        }
    }
    bytes
}

fn header_offsets(messages: &[(Message, Flags)]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    for (m, f) in messages {
        offsets.push(at);
        at += encode_with_flags(m, *f).expect("small").len();
    }
    offsets
}

/// Allocation budget of a decode of `input_len` bytes: proportional to the input, never
/// to a length field. Generous (buffer doubling, prost's own structures), but far below
/// what any hostile length prefix (up to 4 GiB) would cause.
fn budget(input_len: usize) -> usize {
    64 * 1024 + 4 * input_len
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes: no panic, the invariants hold, chunking changes nothing.
    #[test]
    fn random_bytes(stream in prop::collection::vec(any::<u8>(), 0..512), chunks in chunks(), max in limit()) {
        let (whole, largest) = largest_allocation(|| decode_whole(&stream, max));
        prop_assert!(largest <= budget(stream.len()), "allocated {largest} bytes for {} input bytes", stream.len());
        check_outcome(&stream, &whole, max)?;
        prop_assert_eq!(decode_chunked(&stream, &chunks, max), whole);
    }

    /// Random bytes behind a valid-looking header, so the payload decoders see garbage.
    #[test]
    fn garbage_payloads(code in prop::sample::select(MessageType::ALL.iter().map(|t| t.code()).collect::<Vec<_>>()),
                        payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut stream = MessageHeader::new(code, payload.len() as u32).encode().to_vec();
        stream.extend_from_slice(&payload);
        let out = decode_whole(&stream, Decoder::DEFAULT_MAX_MESSAGE_SIZE);
        prop_assert_eq!(out.frames.len(), 1);
        check_outcome(&stream, &out, Decoder::DEFAULT_MAX_MESSAGE_SIZE)?;
    }

    /// Valid streams decode to the messages and flags they were encoded from, however chunked.
    #[test]
    fn valid_streams_round_trip((messages, bytes) in stream(), chunks in chunks()) {
        let out = decode_chunked(&bytes, &chunks, Decoder::DEFAULT_MAX_MESSAGE_SIZE);
        prop_assert_eq!(&out.error, &None);
        prop_assert_eq!(&out.end, &Ok(()));
        let decoded: Vec<(Message, Flags)> = out
            .frames
            .iter()
            .map(|f| (f.decode_message().expect("valid"), f.header.flags))
            .collect();
        prop_assert_eq!(decoded, messages);
        check_outcome(&bytes, &out, Decoder::DEFAULT_MAX_MESSAGE_SIZE)?;
    }

    /// Valid streams, then damaged: flipped bytes, truncation, insertions, hostile length
    /// prefixes. No panic, invariants hold, chunking changes nothing, and memory stays
    /// proportional to the input even when a header announces gigabytes.
    #[test]
    fn mutated_streams((messages, bytes) in stream(), mutations in prop::collection::vec(mutation(), 1..4),
                       chunks in chunks(), max in limit()) {
        let offsets = header_offsets(&messages);
        let stream = mutations.iter().fold(bytes, |b, m| apply(b, m, &offsets));
        let (whole, largest) = largest_allocation(|| decode_whole(&stream, max));
        prop_assert!(largest <= budget(stream.len()), "allocated {largest} bytes for {} input bytes", stream.len());
        check_outcome(&stream, &whole, max)?;
        prop_assert_eq!(decode_chunked(&stream, &chunks, max), whole);
    }
}

/// The headline case of "never allocate from an untrusted length": a header announcing
/// 4 GiB (or just under the limit) must leave the decoder waiting or failed, with nothing
/// reserved for the announced payload.
#[test]
fn huge_length_prefixes_allocate_nothing() {
    for (length, max) in [
        (u32::MAX, Decoder::DEFAULT_MAX_MESSAGE_SIZE),
        (u32::MAX, usize::MAX),
        (Decoder::DEFAULT_MAX_MESSAGE_SIZE as u32, Decoder::DEFAULT_MAX_MESSAGE_SIZE),
        (0x8000_0000, usize::MAX),
    ] {
        let mut stream = MessageHeader::new(MessageType::InputCommand.code(), length).encode().to_vec();
        stream.extend_from_slice(&[0x0A; 100]);
        let (out, largest) = largest_allocation(|| decode_chunked(&stream, &[3, 1, 8], max));
        assert!(largest <= budget(stream.len()), "length {length:#x}: allocated {largest} bytes");
        assert!(out.frames.is_empty());
        if length as usize > max {
            assert!(matches!(out.error, Some(DecodeError::MessageTooLarge { .. })), "{out:?}");
        } else {
            assert_eq!(out.error, None);
            assert_eq!(out.end, Err(DecodeError::Truncated { buffered: 108, needed: HEADER_LEN + length as usize }));
        }
    }
}

/// The budget checks above mean something only if the tracker sees allocations.
#[test]
fn the_allocation_tracker_sees_large_allocations() {
    let (buffer, largest) = largest_allocation(|| Vec::<u8>::with_capacity(1 << 20));
    assert!(largest >= 1 << 20, "tracked {largest}");
    drop(buffer);
}
