//! The streaming service-protocol decoder against arbitrary byte streams.
//!
//! Input layout: byte 0 picks the size limit, bytes 1..3 seed the chunking, the rest is
//! the stream. Checked: no panic; chunking never changes what comes out (frames, errors,
//! the end-of-stream verdict); frames re-serialize to exactly the bytes they came from;
//! every message that decodes survives encode → decode. Allocations from untrusted
//! lengths are caught by libFuzzer's `-malloc_limit_mb` (defaults to the RSS limit).
#![no_main]

use keel_protocol::{DecodeError, Decoder, Frame, MessageKind, MessageType, encode_with_flags};
use libfuzzer_sys::fuzz_target;

/// Drains every frame the decoder has; the error that stopped it, if any.
fn drain(decoder: &mut Decoder, frames: &mut Vec<Frame>) -> Option<DecodeError> {
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn check_frame(frame: &Frame) {
    assert_eq!(frame.header.length as usize, frame.payload.len());
    let _ = frame.notification_id().map_err(|e| e.to_string());
    match frame.decode_message() {
        Ok(message) => {
            assert_eq!(message.code(), frame.header.code);
            assert_eq!(message.kind(), MessageKind::of_code(frame.header.code));
            let bytes = encode_with_flags(&message, frame.header.flags).expect("a decoded payload fits u32");
            let mut again = Decoder::with_max_message_size(usize::MAX);
            again.push(&bytes);
            let (header, decoded) = again.next_message().expect("re-encoded message decodes").expect("complete");
            assert_eq!(header.flags, frame.header.flags);
            assert_eq!(decoded, message);
            assert!(again.finish().is_ok());
        }
        Err(DecodeError::UnknownMessageType { code }) => {
            assert_eq!(code, frame.header.code);
            assert!(MessageType::from_code(code).is_none());
        }
        Err(e @ DecodeError::Protobuf { .. }) => {
            assert!(MessageType::from_code(frame.header.code).is_some());
            let _ = e.to_string();
        }
        Err(e) => panic!("decode_message returned a stream-level error: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit, s0, s1, stream @ ..] = data else { return };
    let max = match limit {
        0..=127 => usize::from(*limit) * 3,
        128..=254 => usize::from(*limit) << 12,
        255 => Decoder::DEFAULT_MAX_MESSAGE_SIZE,
    };

    // Reference: the whole stream in one push.
    let mut whole = Decoder::with_max_message_size(max);
    whole.push(stream);
    let mut expected = Vec::new();
    let expected_err = drain(&mut whole, &mut expected);
    let expected_end = whole.finish();

    // The same stream in pseudo-random chunks (sizes 0..=16, zero-length pushes included),
    // draining after every push like the invoker does.
    let mut state = u32::from(u16::from_le_bytes([*s0, *s1])) | 1;
    let mut chunked = Decoder::with_max_message_size(max);
    let mut frames = Vec::new();
    let mut err = None;
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 17) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        chunked.push(chunk);
        rest = tail;
        if err.is_none() {
            err = drain(&mut chunked, &mut frames);
        }
    }
    if err.is_none() {
        err = drain(&mut chunked, &mut frames);
    }
    assert_eq!(frames, expected);
    assert_eq!(err, expected_err);
    assert_eq!(chunked.finish(), expected_end);
    assert_eq!(chunked.buffered(), whole.buffered());

    // A poisoned decoder stays poisoned; a healthy one ends on a boundary or says it did not.
    if let Some(e) = &expected_err {
        assert!(matches!(e, DecodeError::MessageTooLarge { .. }), "{e:?}");
        assert_eq!(whole.next_frame().as_ref().err(), Some(e));
        let _ = e.to_string();
    } else if let Err(e) = &expected_end {
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
    }

    // Frames are the input, verbatim.
    let mut rebuilt = Vec::new();
    for frame in &expected {
        rebuilt.extend_from_slice(&frame.to_bytes());
        check_frame(frame);
    }
    assert_eq!(&stream[..rebuilt.len()], &rebuilt[..]);
    assert_eq!(rebuilt.len() + whole.buffered(), stream.len());
});
