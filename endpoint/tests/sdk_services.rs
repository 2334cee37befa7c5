//! Discovery against the real SDK test services of `tests/services` (see its
//! README), started with the end-to-end harness (`keel_e2e::SdkService`: its
//! own process group, polled until it accepts connections, killed on drop).
//! `bash tests/services/setup.sh` installs them; without them these tests
//! fail with a message saying so.

use std::time::Duration;

use keel_e2e::{Sdk, SdkService};
use keel_endpoint::{Discovered, DiscoveryError, EndpointAddress, EndpointClient, HttpVersion};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{EndpointManifestVersion, ServiceProtocolVersion};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start(sdk: Sdk) -> SdkService {
    SdkService::start(sdk, std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).await.expect("start the SDK service")
}

fn address(service: &SdkService, use_http_11: bool) -> EndpointAddress {
    let mut address = EndpointAddress::new(service.uri().parse().expect("service uri"));
    address.use_http_11 = use_http_11;
    address
}

fn names(found: &Discovered) -> Vec<&str> {
    found.manifest.services.iter().map(|s| s.name.as_str()).collect()
}

fn assert_sdk_manifest(found: &Discovered, services: &[&str], sdk: &str) {
    assert_eq!(names(found), services.to_vec());
    assert_eq!((found.manifest.min_protocol_version, found.manifest.max_protocol_version), (5, 7));
    assert_eq!(found.protocol_version, ServiceProtocolVersion::V7);
    assert_eq!(found.manifest_version, EndpointManifestVersion::V4);
    let sdk_version = found.sdk_version.as_deref().unwrap_or_default();
    assert!(sdk_version.starts_with(sdk), "x-restate-server: {sdk_version:?}");
}

#[tokio::test]
async fn discovers_the_typescript_services() {
    let service = start(Sdk::TypeScript).await;
    let client = EndpointClient::new();

    let found = client.discover(&address(&service, false), TIMEOUT).await.unwrap();
    let services = ["Greeter", "Counter", "SideEffects", "Signup", "Awaiter", "Steps"];
    assert_sdk_manifest(&found, &services, "restate-sdk-typescript/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!(found.http_version, HttpVersion::Http2);

    // `restate.serve` is h2c only: HTTP/1.1 must fail with a pointer to the fix.
    let err = client.discover(&address(&service, true), TIMEOUT).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Http2Only { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}/discover", service.port)), "{err}");
    service.finish();
}

#[tokio::test]
async fn discovers_the_python_services() {
    let service = start(Sdk::Python).await;
    let client = EndpointClient::new();
    let services = ["PyGreeter", "PyCounter", "PySideEffects", "PySignup", "PyAwaiter", "PySteps"];

    // The Python SDK derives its protocol mode from the discovery request's HTTP version.
    let found = client.discover(&address(&service, false), TIMEOUT).await.unwrap();
    assert_sdk_manifest(&found, &services, "restate-sdk-python/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!(found.http_version, HttpVersion::Http2);

    let found = client.discover(&address(&service, true), TIMEOUT).await.unwrap();
    assert_sdk_manifest(&found, &services, "restate-sdk-python/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::RequestResponse);
    assert_eq!(found.http_version, HttpVersion::Http11);
    service.finish();
}
