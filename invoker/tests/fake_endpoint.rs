//! Attempts against a scripted in-test h2c/HTTP/1.1 server: what keel sends (path,
//! headers, StartMessage, replay, closing its side) and how it fails on everything a
//! broken or hostile endpoint can answer. Timeouts here are the behaviour under test, not
//! synchronization: every wait is on an event or a channel, bounded by `EVENT_TIMEOUT`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use keel_endpoint::{EndpointAddress, HttpVersion};
use keel_invoker::{AttemptError, AttemptEvent, AttemptParams, AttemptTimeouts};
use keel_protocol::proto::{self, Future};
use keel_protocol::{DecodeError, Frame, Message, ServiceProtocolVersion, encode};
use support::fake::{FakeSdk, FrameReader, frames, reply, streaming_reply};
use support::{EVENT_TIMEOUT, Running, decode, frame, input, output_value, params};
use tokio::sync::mpsc;

const V7: &str = "application/vnd.restate.invocation.v7";

fn greet() -> AttemptParams {
    params("Greeter", "greet", vec![input("\"Ann\"")])
}

/// An endpoint answering every request with the same status, content type and body.
async fn fixed(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> FakeSdk {
    FakeSdk::start(move |_| {
        let body = body.clone();
        async move { reply(status, content_type, body) }
    })
    .await
}

/// Runs `greet()` against `fake` and returns the events up to the terminal one.
async fn events_of(fake: &FakeSdk, params: AttemptParams) -> Vec<AttemptEvent> {
    let mut run = Running::start(fake.address(params.http_version == HttpVersion::Http11), params);
    let mut events = Vec::new();
    loop {
        let event = run.next().await;
        let terminal = event.is_terminal();
        events.push(event);
        if terminal {
            run.finish().await;
            return events;
        }
    }
}

fn output_frame(text: &str) -> Frame {
    frame(output_value(text))
}

/// (6) Random bytes with the right status and content type are a decode failure.
#[tokio::test]
async fn random_bytes_fail_the_attempt() {
    for seed in [1, 0x5eed, 0xdead_beef] {
        let fake = fixed(StatusCode::OK, Some(V7), Bytes::from(keel_testkit::noise(seed, 4096))).await;
        let events = events_of(&fake, greet()).await;
        assert!(
            matches!(events.as_slice(), [AttemptEvent::Failed(AttemptError::Decode(_))]),
            "seed {seed}: {events:?}"
        );
    }
}

/// Events before the garbage stay valid; the failure follows them.
#[tokio::test]
async fn garbage_after_a_valid_command() {
    let unknown_type = Bytes::from_static(&[0x09, 0x99, 0, 0, 0, 0, 0, 0]);
    let body = [frames(&[output_value("1")]), unknown_type].concat();
    let fake = fixed(StatusCode::OK, Some(V7), body.into()).await;
    let events = events_of(&fake, greet()).await;
    assert_eq!(
        events,
        [
            AttemptEvent::Command { index: 1, frame: output_frame("1") },
            AttemptEvent::Failed(AttemptError::Decode(DecodeError::UnknownMessageType { code: 0x0999 })),
        ]
    );
}

/// (6) A 500 fails the attempt with the status (and the SDK's explanation) in the error.
#[tokio::test]
async fn error_status_fails_with_the_status() {
    let fake = fixed(StatusCode::INTERNAL_SERVER_ERROR, Some("text/plain"), Bytes::from_static(b"kaboom")).await;
    let events = events_of(&fake, greet()).await;
    let expected = AttemptError::BadStatus {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
        body_snippet: "kaboom".into(),
    };
    assert!(expected.to_string().contains("HTTP 500 Internal Server Error"), "{expected}");
    assert_eq!(events, [AttemptEvent::Failed(expected)]);

    let fake = FakeSdk::start(|_| async {
        let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, None, Bytes::new());
        r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("7"));
        r
    })
    .await;
    let events = events_of(&fake, greet()).await;
    let [AttemptEvent::Failed(AttemptError::BadStatus { status, retry_after, .. })] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((*status, *retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(Duration::from_secs(7))));
}

/// A 200 that is not the protocol's content type is never read as frames.
#[tokio::test]
async fn wrong_content_type_fails() {
    for (content_type, shown) in [(Some("application/json"), Some("application/json")), (None, None)] {
        let fake = fixed(StatusCode::OK, content_type, frames(&[output_value("1")])).await;
        let events = events_of(&fake, greet()).await;
        let expected = AttemptError::BadContentType { content_type: shown.map(str::to_owned), expected: V7 };
        assert_eq!(events, [AttemptEvent::Failed(expected)]);
    }
    // Another version's content type is as wrong as any other.
    let v6 = ServiceProtocolVersion::V6.content_type();
    let fake = fixed(StatusCode::OK, Some(v6), frames(&[output_value("1")])).await;
    assert!(matches!(
        events_of(&fake, greet()).await.as_slice(),
        [AttemptEvent::Failed(AttemptError::BadContentType { .. })]
    ));
}

/// A stream ending without a terminal message, or inside a frame, is a failure.
#[tokio::test]
async fn end_of_stream_without_end_fails() {
    let fake = fixed(StatusCode::OK, Some(V7), frames(&[output_value("1")])).await;
    let events = events_of(&fake, greet()).await;
    assert_eq!(
        events,
        [
            AttemptEvent::Command { index: 1, frame: output_frame("1") },
            AttemptEvent::Failed(AttemptError::UnexpectedEof)
        ]
    );

    let whole = frames(&[output_value("1")]);
    let fake = fixed(StatusCode::OK, Some(V7), whole.slice(..whole.len() - 1)).await;
    let events = events_of(&fake, greet()).await;
    let needed = whole.len();
    let truncated = DecodeError::Truncated { buffered: needed - 1, needed };
    assert_eq!(events, [AttemptEvent::Failed(AttemptError::Decode(truncated))]);
}

/// Notifications flow only from runtime to SDK.
#[tokio::test]
async fn sdk_sending_a_notification_is_a_violation() {
    let done = proto::SleepCompletionNotificationMessage { completion_id: 1, void: Some(proto::Void {}) };
    let fake = fixed(StatusCode::OK, Some(V7), frames(&[done.into()])).await;
    let events = events_of(&fake, greet()).await;
    assert!(matches!(events.as_slice(), [AttemptEvent::Failed(AttemptError::ProtocolViolation(_))]), "{events:?}");
}

/// Connection refused is a transport failure.
#[tokio::test]
async fn unreachable_endpoint_fails() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = EndpointAddress::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let mut run = Running::start(address, greet());
    let event = run.next().await;
    assert!(matches!(&event, AttemptEvent::Failed(AttemptError::Transport(_))), "{event:?}");
    run.finish().await;
}

/// A broken journal fails before any request is made.
#[tokio::test]
async fn invalid_journal_fails_without_a_request() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let fake = FakeSdk::start(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { reply(StatusCode::OK, Some(V7), Bytes::new()) }
    })
    .await;
    let sleep = frame(proto::SleepCommandMessage { wake_up_time: 1, result_completion_id: 1, name: String::new() });
    for journal in [vec![], vec![sleep]] {
        let events = events_of(&fake, params("Greeter", "greet", journal)).await;
        let [AttemptEvent::Failed(error @ AttemptError::InvalidJournal(_))] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert!(!error.is_retryable());
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0);
}

/// What the SDK receives: method, path, headers, StartMessage, the verbatim replay; and
/// that keel ends its side of the stream once End arrives.
#[tokio::test]
async fn request_carries_start_and_replay_and_closes_after_end() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let fake = FakeSdk::start(move |request: http::Request<hyper::body::Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let (parts, body) = request.into_parts();
            let (tx, response) = streaming_reply();
            tokio::spawn(async move {
                let mut reader = FrameReader::new(body);
                let start = reader.next().await.expect("start");
                let Message::Start(start) = decode(&start) else { panic!("first frame is not Start") };
                let mut replay = Vec::new();
                for _ in 0..start.known_entries {
                    replay.push(reader.next().await.expect("journal entry"));
                }
                tx.send(frames(&[output_value("42"), proto::EndMessage {}.into()])).await.expect("send");
                // After End, keel must end its request body (the TS SDK waits for that).
                let rest = reader.next().await;
                seen_tx.send((parts, start, replay, rest)).expect("report");
            });
            response
        }
    })
    .await;

    let done = frame(proto::SleepCompletionNotificationMessage { completion_id: 1, void: Some(proto::Void {}) });
    let sleep = frame(proto::SleepCommandMessage { wake_up_time: 5, result_completion_id: 1, name: "nap".into() });
    let journal = vec![input("1"), sleep, done];
    let mut p = params("Counter", "add", journal.clone());
    p.key = Some("my key".into());
    p.eager_state = Some(vec![(Bytes::from_static(b"count"), Bytes::from_static(b"41"))]);
    p.partial_state = false;
    p.retry_count_since_last_stored_entry = 3;
    p.duration_since_last_stored_entry = Duration::from_millis(2500);
    p.headers = vec![("traceparent".into(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into())];
    let mut address = EndpointAddress::new(format!("http://{}/base/", fake.addr).parse().unwrap());
    address.additional_headers.push((http::HeaderName::from_static("x-gateway"), http::HeaderValue::from_static("g")));
    let id = p.invocation_id;

    let mut run = Running::start(address, p);
    // Two of the three entries are commands, so the first new command is number 2.
    assert_eq!(run.next().await, AttemptEvent::Command { index: 2, frame: output_frame("42") });
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;

    let (parts, start, replay, rest) = tokio::time::timeout(EVENT_TIMEOUT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(parts.method, http::Method::POST);
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert_eq!(parts.uri.path(), "/base/invoke/Counter/add");
    let header = |name: &str| parts.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some(V7));
    assert_eq!(header("accept").as_deref(), Some(V7));
    assert_eq!(header("x-restate-invocation-id"), Some(id.to_string()));
    assert_eq!(header("x-restate-service-key").as_deref(), Some("my%20key"));
    assert_eq!(header("traceparent").as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_eq!(header("x-gateway").as_deref(), Some("g"));
    let expected = proto::StartMessage {
        id: Bytes::copy_from_slice(&id.to_bytes()),
        debug_id: id.to_string(),
        known_entries: 3,
        state_map: vec![proto::start_message::StateEntry {
            key: Bytes::from_static(b"count"),
            value: Bytes::from_static(b"41"),
        }],
        partial_state: false,
        key: "my key".into(),
        retry_count_since_last_stored_entry: 3,
        duration_since_last_stored_entry: 2500,
        random_seed: 0x5eed,
        ..Default::default()
    };
    assert_eq!(start, expected);
    assert_eq!(replay, journal);
    assert_eq!(rest, None, "the request body ends after End");
}

/// Request/response mode: over HTTP/1.1 the body is Start plus the replay, complete with
/// a content-length, before the SDK answers.
#[tokio::test]
async fn http11_sends_the_whole_body_first() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let fake = FakeSdk::start_with(true, move |request: http::Request<hyper::body::Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let (parts, body) = request.into_parts();
            let mut reader = FrameReader::new(body);
            let mut all = Vec::new();
            while let Some(frame) = reader.next().await {
                all.push(frame);
            }
            seen_tx.send((parts, all)).expect("report");
            reply(StatusCode::OK, Some(V7), frames(&[output_value("\"hi\""), proto::EndMessage {}.into()]))
        }
    })
    .await;
    let p = AttemptParams { http_version: HttpVersion::Http11, ..greet() };
    let events = events_of(&fake, p).await;
    assert_eq!(events, [AttemptEvent::Command { index: 1, frame: output_frame("\"hi\"") }, AttemptEvent::Ended]);
    let (parts, all) = seen.recv().await.unwrap();
    assert_eq!(parts.version, http::Version::HTTP_11);
    assert!(parts.headers.contains_key(http::header::CONTENT_LENGTH), "{:?}", parts.headers);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], input("\"Ann\""));
}

/// With nothing happening for the inactivity timeout keel ends its side, which asks the
/// SDK to suspend; if the SDK then stays silent for the abort timeout, the attempt fails.
#[tokio::test]
async fn inactivity_closes_the_body_and_abort_fails_the_attempt() {
    for suspend in [true, false] {
        let fake = FakeSdk::start(move |request: http::Request<hyper::body::Incoming>| async move {
            let (tx, response) = streaming_reply();
            tokio::spawn(async move {
                let mut reader = FrameReader::new(request.into_body());
                while reader.next().await.is_some() {}
                if suspend {
                    let awaiting = Future { waiting_completions: vec![1], ..Default::default() };
                    let suspension = proto::SuspensionMessage { awaiting_on: Some(awaiting), ..Default::default() };
                    let _ = tx.send(encode(&suspension.into()).unwrap()).await;
                } else {
                    // Stay silent, holding the response open until keel drops it.
                    tx.closed().await;
                }
            });
            response
        })
        .await;
        let timeouts = AttemptTimeouts { inactivity: Duration::from_millis(200), abort: Duration::from_millis(300) };
        let events = events_of(&fake, AttemptParams { timeouts, ..greet() }).await;
        if suspend {
            assert!(matches!(events.as_slice(), [AttemptEvent::Suspended { .. }]), "{events:?}");
        } else {
            assert_eq!(events, [AttemptEvent::Failed(AttemptError::AbortTimeout(Duration::from_millis(300)))]);
        }
    }
}

/// Dropping the events receiver abandons the attempt at once.
#[tokio::test]
async fn dropping_the_events_receiver_ends_the_attempt() {
    let fake = FakeSdk::start(|_| async {
        let (tx, response) = streaming_reply();
        tokio::spawn(async move { tx.closed().await });
        response
    })
    .await;
    let run = Running::start(fake.address(false), greet());
    run.abandon().await;
}
