use prost::bytes::Bytes;

use super::test_samples::{all_samples, sample, value};
use super::*;
use crate::proto::*;

fn stream(messages: &[Message]) -> Vec<u8> {
    messages.iter().flat_map(|m| encode(m).unwrap().to_vec()).collect()
}

fn drain(decoder: &mut Decoder, out: &mut Vec<Message>) {
    while let Some((_, m)) = decoder.next_message().unwrap() {
        out.push(m);
    }
}

/// Tiny deterministic PRNG so tests need no extra dependency.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn type_table_is_consistent() {
    let mut last = None;
    for &t in MessageType::ALL {
        assert_eq!(MessageType::from_code(t.code()), Some(t));
        assert!(last < Some(t.code()), "ALL sorted and unique");
        last = Some(t.code());
        assert_eq!(sample(t).code(), t.code());
        assert_eq!(sample(t).message_type(), Some(t));
        assert!(t.name().ends_with("Message"), "{}", t.name());
        let expected = if t.name().contains("Notification") {
            MessageKind::Notification
        } else if t.name().contains("Command") && t != MessageType::CommandAck {
            MessageKind::Command
        } else {
            MessageKind::Control
        };
        assert_eq!(t.kind(), expected, "{t}");
    }
    assert_eq!(MessageType::ALL.len(), 40); // 8 control, 20 commands, 12 notifications
    assert_eq!(MessageType::CommandAck.code(), 0x0004);
    assert_eq!(MessageType::SignalNotification.to_string(), "SignalNotificationMessage (0xFBFF)");
    for unknown in [0x0008, 0x0200, 0x0300, 0x040F, 0x8000, 0x8010, 0xFBFE] {
        assert_eq!(MessageType::from_code(unknown), None);
    }
    assert_eq!(MessageKind::of_code(0xFC00), MessageKind::Command);
    assert_eq!(MessageKind::of_code(0x0200), MessageKind::Other);
}

#[test]
fn every_message_round_trips() {
    for msg in all_samples() {
        let bytes = encode(&msg).unwrap();
        let h = MessageHeader::peek(&bytes).unwrap();
        assert_eq!(h.code, msg.code());
        assert_eq!(h.flags, Flags::NONE);
        assert_eq!(h.length as usize, bytes.len() - HEADER_LEN);
        let mut d = Decoder::new();
        d.push(&bytes);
        let frame = d.next_frame().unwrap().unwrap();
        assert_eq!(frame.to_bytes(), bytes);
        assert_eq!(frame.payload, msg.encode_payload());
        assert_eq!(frame.decode_message().unwrap(), msg);
        assert_eq!(msg.to_frame(Flags::NONE).unwrap(), frame);
        assert_eq!(d.next_frame().unwrap(), None);
        d.finish().unwrap();
    }
}

#[test]
fn requested_ack_flag_survives() {
    let msg = sample(MessageType::ProposeRunCompletion);
    let bytes = encode_with_flags(&msg, Flags::REQUESTED_ACK).unwrap();
    assert_eq!(bytes[2], 0x80);
    let mut d = Decoder::new();
    d.push(&bytes);
    let (h, m) = d.next_message().unwrap().unwrap();
    assert!(h.flags.requested_ack());
    assert_eq!(m, msg);
}

#[test]
fn decoder_byte_by_byte() {
    let msgs = all_samples();
    let bytes = stream(&msgs);
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for b in &bytes {
        d.push(std::slice::from_ref(b));
        drain(&mut d, &mut out);
    }
    assert_eq!(out, msgs);
    d.finish().unwrap();
}

#[test]
fn decoder_random_chunks() {
    let msgs = all_samples();
    let bytes = stream(&msgs);
    for seed in 1..=200u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (rng.next() % 64) as usize + usize::from(rng.next().is_multiple_of(8)) * 200;
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            d.push(chunk);
            drain(&mut d, &mut out);
            rest = tail;
        }
        assert_eq!(out, msgs, "seed {seed}");
        d.finish().unwrap();
    }
}

#[test]
fn empty_payload_is_a_complete_message() {
    let mut d = Decoder::new();
    d.push(&[0, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(d.next_message().unwrap().unwrap().1, Message::End(EndMessage {}));
}

#[test]
fn truncated_streams_are_reported() {
    let bytes = stream(&all_samples()[..4]);
    let boundaries: Vec<usize> = {
        let mut acc = 0;
        let mut v = vec![0];
        for m in &all_samples()[..4] {
            acc += encode(m).unwrap().len();
            v.push(acc);
        }
        v
    };
    for cut in 0..bytes.len() {
        let mut d = Decoder::new();
        d.push(&bytes[..cut]);
        while d.next_frame().unwrap().is_some() {}
        let res = d.finish();
        if boundaries.contains(&cut) {
            assert_eq!(res, Ok(()), "cut {cut}");
        } else {
            assert!(matches!(res, Err(DecodeError::Truncated { .. })), "cut {cut}: {res:?}");
        }
    }
}

#[test]
fn oversized_frame_poisons_the_decoder() {
    let mut d = Decoder::with_max_message_size(16);
    // Exactly at the limit is fine.
    d.push(&MessageHeader::new(0x0400, 16).encode());
    d.push(&[0u8; 16]);
    assert!(d.next_frame().unwrap().is_some());
    // Above it fails as soon as the header is complete, before the body arrives.
    d.push(&MessageHeader::new(0x0400, 17).encode());
    let err = d.next_frame().unwrap_err();
    assert_eq!(err, DecodeError::MessageTooLarge { code: 0x0400, length: 17, max: 16 });
    assert!(err.to_string().contains("above the limit"));
    d.push(&stream(&[sample(MessageType::End)]));
    assert_eq!(d.next_frame().unwrap_err(), err);
    assert_eq!(d.finish().unwrap_err(), err);
    // u32::MAX length with the default limit.
    let mut d = Decoder::new();
    d.push(&MessageHeader::new(0, u32::MAX).encode());
    assert!(matches!(d.next_frame(), Err(DecodeError::MessageTooLarge { .. })));
}

#[test]
fn unknown_type_and_bad_protobuf_keep_the_stream_aligned() {
    let mut d = Decoder::new();
    d.push(&MessageHeader::new(0x0200, 2).encode()); // V8 ephemeral: not negotiated.
    d.push(&[0x08, 0x01]);
    d.push(&MessageHeader::new(0x0000, 2).encode()); // Start with a truncated varint.
    d.push(&[0x18, 0xFF]);
    d.push(&stream(&[sample(MessageType::End)]));
    assert_eq!(d.next_message().unwrap_err(), DecodeError::UnknownMessageType { code: 0x0200 });
    let err = d.next_message().unwrap_err();
    assert!(matches!(err, DecodeError::Protobuf { message_type: MessageType::Start, .. }), "{err:?}");
    assert!(err.to_string().contains("StartMessage"), "{err}");
    assert_eq!(d.next_message().unwrap().unwrap().1, sample(MessageType::End));
}

#[test]
fn garbage_never_panics() {
    for seed in 1..=300u64 {
        let mut rng = XorShift(seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 1);
        let len = (rng.next() % 512) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Bias some headers toward known codes and small lengths to reach prost.
        if len >= 8 && seed % 2 == 0 {
            let t = MessageType::ALL[(rng.next() as usize) % MessageType::ALL.len()];
            let l = (rng.next() % (len as u64 - 7)) as u32;
            bytes[..8].copy_from_slice(&MessageHeader::new(t.code(), l).encode());
        }
        let mut d = Decoder::with_max_message_size(1024);
        d.push(&bytes);
        loop {
            match d.next_frame() {
                Ok(Some(frame)) => {
                    let _ = frame.decode_message();
                    let _ = frame.notification_id();
                }
                Ok(None) | Err(DecodeError::MessageTooLarge { .. }) => break,
                Err(e) => panic!("next_frame only fails on size: {e}"),
            }
        }
        let _ = d.finish();
    }
}

#[test]
fn custom_commands_are_opaque() {
    let mut d = Decoder::new();
    d.push(&MessageHeader::new(0xFFFF, 3).encode());
    d.push(b"\xff\xfe\xfd");
    let (_, m) = d.next_message().unwrap().unwrap();
    assert_eq!(m, Message::Custom(CustomMessage { code: 0xFFFF, payload: Bytes::from_static(b"\xff\xfe\xfd") }));
    assert_eq!(m.message_type(), None);
    assert_eq!(m.kind(), MessageKind::Command);
}

#[test]
fn notification_ids() {
    let id = |m: &Message| m.to_frame(Flags::NONE).unwrap().notification_id().unwrap();
    assert_eq!(id(&sample(MessageType::SleepCompletionNotification)), Some(NotificationId::Completion(8)));
    assert_eq!(id(&sample(MessageType::SignalNotification)), Some(NotificationId::SignalName("approved".into())));
    let cancel = SignalNotificationMessage {
        signal_id: Some(signal_notification_message::SignalId::Idx(1)),
        result: Some(signal_notification_message::Result::Void(Void {})),
    };
    assert_eq!(id(&cancel.into()), Some(NotificationId::Signal(1)));
    assert_eq!(id(&sample(MessageType::SleepCommand)), None);
    assert_eq!(id(&sample(MessageType::Start)), None);
    for &t in MessageType::ALL.iter().filter(|t| t.kind() == MessageKind::Notification) {
        assert!(id(&sample(t)).is_some(), "{t}");
    }
    // Unknown notification codes still yield their id.
    let f = Frame::new(0x8100, Flags::NONE, Bytes::from_static(&[0x08, 0x05])).unwrap();
    assert_eq!(f.notification_id().unwrap(), Some(NotificationId::Completion(5)));
}

/// Checks field numbers against the spec tables with hand-computed protobuf bytes, so a
/// typo in the .proto cannot hide behind a symmetric encode/decode.
#[test]
fn wire_bytes_match_documented_field_numbers() {
    let p = |m: Message| m.encode_payload().to_vec();
    // Start: 3 known_entries, 5 partial_state, 9 random_seed.
    let start = StartMessage { known_entries: 1, partial_state: true, random_seed: 2, ..Default::default() };
    assert_eq!(p(start.into()), [0x18, 1, 0x28, 1, 0x48, 2]);
    // V7 suspension: field 4 Future{1: [2], 2: [1], 5: FIRST_COMPLETED}.
    let s = SuspensionMessage {
        awaiting_on: Some(Future {
            waiting_completions: vec![2],
            waiting_signals: vec![1],
            combinator_type: CombinatorType::FirstCompleted as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(p(s.into()), [0x22, 8, 0x0A, 1, 2, 0x12, 1, 1, 0x28, 1]);
    // Error: 8 next_retry_delay, 9 behavior FAIL.
    let e = ErrorMessage { next_retry_delay: Some(3), behavior: ErrorBehavior::Fail as i32, ..Default::default() };
    assert_eq!(p(e.into()), [0x40, 3, 0x48, 2]);
    // ProposeRunCompletion: 1 id, 14 value bytes.
    let prop = ProposeRunCompletionMessage {
        result_completion_id: 1,
        result: Some(propose_run_completion_message::Result::Value(Bytes::from_static(b"x"))),
    };
    assert_eq!(p(prop.into()), [0x08, 1, 0x72, 1, b'x']);
    // Call: 10, 11, 12.
    let call = CallCommandMessage {
        invocation_id_notification_idx: 1,
        result_completion_id: 2,
        name: "n".into(),
        ..Default::default()
    };
    assert_eq!(p(call.into()), [0x50, 1, 0x58, 2, 0x62, 1, b'n']);
    // SendSignal: 2 idx, 4 void, 12 entry_name.
    let sig = SendSignalCommandMessage {
        signal_id: Some(send_signal_command_message::SignalId::Idx(1)),
        result: Some(send_signal_command_message::Result::Void(Void {})),
        entry_name: "n".into(),
        ..Default::default()
    };
    assert_eq!(p(sig.into()), [0x10, 1, 0x22, 0, 0x62, 1, b'n']);
    // Input: 14 value.
    assert_eq!(p(InputCommandMessage { value: value("a"), ..Default::default() }.into()), [0x72, 3, 0x0A, 1, b'a']);
    // Call invocation id: 1 completion_id, 16 invocation_id.
    let cid = CallInvocationIdCompletionNotificationMessage { completion_id: 1, invocation_id: "i".into() };
    assert_eq!(p(cid.into()), [0x08, 1, 0x82, 0x01, 1, b'i']);
    // Lazy keys: 17 state_keys.
    let keys = GetLazyStateKeysCompletionNotificationMessage {
        completion_id: 0,
        state_keys: Some(StateKeys { keys: vec![] }),
    };
    assert_eq!(p(keys.into()), [0x8A, 0x01, 0]);
    // Failure metadata: 3.
    let out = OutputCommandMessage {
        result: Some(output_command_message::Result::Failure(Failure {
            code: 1,
            message: String::new(),
            metadata: vec![FailureMetadata::default()],
        })),
        name: String::new(),
    };
    assert_eq!(p(out.into()), [0x7A, 4, 0x08, 1, 0x1A, 0]);
}
