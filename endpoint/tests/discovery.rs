//! Discovery against in-process fake endpoints: the happy paths over both HTTP versions and
//! every failure the admin API has to explain.

mod support;

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, StatusCode, Uri, Version};
use keel_endpoint::{Discovered, DiscoveryError, EndpointAddress, EndpointClient, HttpVersion, MAX_MANIFEST_BYTES};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{DISCOVERY_ACCEPT, EndpointManifestVersion, ServiceProtocolVersion};
use serde_json::json;
use support::{FakeEndpoint, Proto, TS_MANIFEST, TS_SERVICES, V4, reply, ts_manifest_with};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn discover(addr: &EndpointAddress) -> Result<Discovered, DiscoveryError> {
    EndpointClient::new().discover(addr, TIMEOUT).await
}

async fn discover_err(addr: &EndpointAddress) -> DiscoveryError {
    match discover(addr).await {
        Ok(found) => panic!("expected discovery to fail, got {found:?}"),
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(&addr.uri.to_string().trim_end_matches('/').to_string()), "no uri in: {text}");
            err
        }
    }
}

fn http11(uri: Uri) -> EndpointAddress {
    EndpointAddress { use_http_11: true, ..EndpointAddress::new(uri) }
}

fn service_names(found: &Discovered) -> Vec<&str> {
    found.manifest.services.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn discovers_the_ts_manifest_over_h2c() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let found = discover(&EndpointAddress::new(server.uri(""))).await.unwrap();

    assert_eq!(service_names(&found), TS_SERVICES);
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!(found.manifest_version, EndpointManifestVersion::V4);
    assert_eq!(found.protocol_version, ServiceProtocolVersion::V7);
    assert_eq!(found.sdk_version.as_deref(), Some("restate-sdk-fake/0.0.1"));
    assert_eq!(found.http_version, HttpVersion::Http2);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str(), seen[0].version),
        ("GET", "/discover", Version::HTTP_2)
    );
    assert_eq!(seen[0].headers.get("accept").unwrap(), DISCOVERY_ACCEPT);
}

#[tokio::test]
async fn discovers_a_request_response_endpoint_over_http11() {
    let manifest = ts_manifest_with(&[("protocolMode", json!("REQUEST_RESPONSE")), ("maxProtocolVersion", json!(6))]);
    let v3 = EndpointManifestVersion::V3.content_type();
    let server = FakeEndpoint::fixed(Proto::Http1, StatusCode::OK, Some(v3), manifest).await;
    let found = discover(&http11(server.uri(""))).await.unwrap();

    assert_eq!(found.manifest.protocol_mode, ProtocolMode::RequestResponse);
    assert_eq!(found.manifest_version, EndpointManifestVersion::V3);
    assert_eq!(found.protocol_version, ServiceProtocolVersion::V6);
    assert_eq!(found.http_version, HttpVersion::Http11);
    assert_eq!(server.seen()[0].version, Version::HTTP_11);
}

#[tokio::test]
async fn joins_a_path_prefix() {
    let server = FakeEndpoint::start(Proto::H2c, |seen| async move {
        if seen.path == "/gateway/greeter/discover" {
            reply(StatusCode::OK, Some(V4), TS_MANIFEST)
        } else {
            reply(StatusCode::NOT_FOUND, None, format!("no route {}", seen.path))
        }
    })
    .await;
    for base in ["/gateway/greeter", "/gateway/greeter/"] {
        let found = discover(&EndpointAddress::new(server.uri(base))).await;
        assert!(found.is_ok(), "{base}: {found:?}");
    }
}

#[tokio::test]
async fn sends_additional_headers() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let mut addr = EndpointAddress::new(server.uri(""));
    let custom = HeaderName::from_static("x-custom");
    addr.additional_headers = vec![
        (http::header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret")),
        (custom.clone(), HeaderValue::from_static("one")),
        (custom.clone(), HeaderValue::from_static("two")),
    ];
    discover(&addr).await.unwrap();

    let headers = &server.seen()[0].headers;
    assert_eq!(headers.get("authorization").unwrap(), "Bearer s3cret");
    assert_eq!(headers.get_all(&custom).iter().collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(headers.get("accept").unwrap(), DISCOVERY_ACCEPT);
}

#[tokio::test]
async fn clones_share_one_h2_connection() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let addr = EndpointAddress::new(server.uri(""));
    let client = EndpointClient::new();
    let other = client.clone();
    client.discover(&addr, TIMEOUT).await.unwrap();
    other.discover(&addr, TIMEOUT).await.unwrap();
    assert_eq!(server.seen().len(), 2);
    assert_eq!(server.connections(), 1, "the second discovery should reuse the pooled h2 connection");
}

#[tokio::test]
async fn not_found_is_a_bad_status_with_a_hint() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::NOT_FOUND, Some("text/plain"), "no such route").await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::BadStatus { status, .. } if *status == StatusCode::NOT_FOUND), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status(), err.is_retryable()), ("META0003", 500, false));
    let text = err.to_string();
    assert!(text.contains("404") && text.contains("no such route") && text.contains("/discover"), "{text}");
}

#[tokio::test]
async fn server_error_is_a_retryable_bad_status() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::INTERNAL_SERVER_ERROR, None, "x".repeat(5000)).await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    let DiscoveryError::BadStatus { status, body_snippet, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body_snippet.len() < 600 && body_snippet.ends_with('…'), "snippet is bounded: {body_snippet}");
    assert_eq!((err.restate_code(), err.http_status(), err.is_retryable()), ("META0003", 500, true));
}

#[tokio::test]
async fn wrong_or_missing_content_type() {
    for content_type in [Some("application/json"), Some("application/vnd.restate.endpointmanifest.v1+json"), None] {
        let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, content_type, TS_MANIFEST).await;
        let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
        assert!(matches!(&err, DiscoveryError::BadContentType { .. }), "{content_type:?}: {err:?}");
        assert_eq!((err.restate_code(), err.http_status()), ("META0013", 500));
        assert!(err.to_string().contains(V4), "lists the accepted types: {err}");
    }
}

#[tokio::test]
async fn malformed_json() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), "{\"protocolMode\": \"BIDI_").await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::BadManifest { .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status()), ("META0013", 500));
}

#[tokio::test]
async fn invalid_manifest_names_the_field() {
    let manifest = ts_manifest_with(&[("services", json!([{"name": "bad name", "ty": "SERVICE", "handlers": []}]))]);
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), manifest).await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::BadManifest { .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status()), ("META0013", 400));
    assert!(err.to_string().contains("services[0].name"), "{err}");
}

#[tokio::test]
async fn unsupported_protocol_versions() {
    let manifest = ts_manifest_with(&[("minProtocolVersion", json!(1)), ("maxProtocolVersion", json!(4))]);
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), manifest).await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::UnsupportedProtocolVersions { min: 1, max: 4, .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status()), ("META0012", 500));
    assert!(err.to_string().contains("1..=4"), "{err}");
}

#[tokio::test]
async fn body_too_large() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), vec![b' '; MAX_MANIFEST_BYTES + 1]).await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::BodyTooLarge { .. }), "{err:?}");
    assert_eq!(err.restate_code(), "META0013");
}

#[tokio::test]
async fn connection_refused() {
    // Bind, note the port, close: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for addr in [EndpointAddress::new(format!("http://127.0.0.1:{port}").parse().unwrap())]
        .into_iter()
        .flat_map(|a| [a.clone(), EndpointAddress { use_http_11: true, ..a }])
    {
        let err = discover_err(&addr).await;
        assert!(matches!(&err, DiscoveryError::Unreachable { .. }), "{err:?}");
        assert_eq!((err.restate_code(), err.http_status(), err.is_retryable()), ("META0003", 500, true));
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    }
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = FakeEndpoint::start(Proto::H2c, |_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        reply(StatusCode::OK, Some(V4), TS_MANIFEST)
    })
    .await;
    let addr = EndpointAddress::new(server.uri(""));
    let started = Instant::now();
    let err = EndpointClient::new().discover(&addr, Duration::from_millis(200)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(&err, DiscoveryError::Timeout { .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status(), err.is_retryable()), ("META0003", 500, true));
    assert!(err.to_string().contains(&addr.uri.to_string()) && err.to_string().contains("200ms"), "{err}");
}

#[tokio::test]
async fn h2c_to_an_http11_only_server_that_answers_400() {
    let server = FakeEndpoint::http1_rejecting_h2_preface().await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::Http11Only { .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status()), ("META0014", 500));
    assert!(err.to_string().contains("use_http_11 = true"), "{err}");
}

#[tokio::test]
async fn h2c_to_an_http11_only_server_that_hangs_up() {
    // hyper's HTTP/1.1 server closes on the HTTP/2 preface without a word: nothing proves
    // it speaks HTTP/1.1, so this stays "unreachable", but the message suggests the fix.
    let server = FakeEndpoint::fixed(Proto::Http1, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let err = discover_err(&EndpointAddress::new(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("use_http_11 = true"), "{err}");
}

#[tokio::test]
async fn http11_to_an_h2c_only_server() {
    let server = FakeEndpoint::fixed(Proto::H2c, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let err = discover_err(&http11(server.uri(""))).await;
    assert!(matches!(&err, DiscoveryError::Http2Only { .. }), "{err:?}");
    assert_eq!((err.restate_code(), err.http_status()), ("META0003", 500));
    assert!(err.to_string().contains("without use_http_11"), "{err}");
}

/// Restate accepts a BIDI_STREAM manifest discovered over HTTP/1.1 (the user
/// asked for HTTP/1.1; invocations then run request/response), and so does keel.
#[tokio::test]
async fn bidi_manifest_over_http11_is_accepted() {
    let server = FakeEndpoint::fixed(Proto::Http1, StatusCode::OK, Some(V4), TS_MANIFEST).await;
    let discovered = discover(&http11(server.uri(""))).await.expect("discovered");
    assert_eq!(discovered.http_version, HttpVersion::Http11);
}

#[tokio::test]
async fn unusable_uris() {
    for uri in ["https://127.0.0.1:9080", "ftp://127.0.0.1/x", "/relative/path", "127.0.0.1:9080"] {
        let addr = EndpointAddress::new(uri.parse().unwrap());
        let err = discover_err(&addr).await;
        assert!(matches!(&err, DiscoveryError::InvalidUri { .. }), "{uri}: {err:?}");
        assert_eq!((err.restate_code(), err.http_status()), ("META0003", 400));
    }
}
