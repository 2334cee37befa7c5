//! The discovery manifest parser (`EndpointManifest::parse`) and the discovery/invocation
//! content-type parsers against arbitrary bytes.
//!
//! Checked: no panic; a manifest that parses re-serializes (what the admin API stores in
//! the catalog) into JSON that parses and validates again, to the same value, and selects
//! the same protocol version; its accessors agree with what validation promised.
#![no_main]

use keel_protocol::manifest::HandlerType;
use keel_protocol::{EndpointManifest, EndpointManifestVersion, ServiceProtocolVersion, VersionPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // The same bytes as a content type or Accept header of a discovery response.
        let _ = EndpointManifestVersion::from_content_type(text);
        let _ = EndpointManifestVersion::negotiate_from_accept(text);
        let _ = ServiceProtocolVersion::from_content_type(text);
    }

    let manifest = match EndpointManifest::parse(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(manifest.min_protocol_version >= 1 && manifest.min_protocol_version <= manifest.max_protocol_version);
    let policy = VersionPolicy::default();
    let selected = manifest.select_protocol_version(&policy);

    let json = serde_json::to_vec(&manifest).expect("a parsed manifest serializes");
    let again = EndpointManifest::parse(&json).expect("a serialized valid manifest parses and validates");
    assert_eq!(again, manifest, "round trip through {}", String::from_utf8_lossy(&json));
    assert_eq!(again.select_protocol_version(&policy), selected);

    for service in &manifest.services {
        assert!(manifest.service(&service.name).is_some());
        let mut workflow_handlers = 0;
        for handler in &service.handlers {
            let ty = handler.effective_ty(service.ty);
            assert_eq!(ty.is_some(), service.ty.is_keyed());
            workflow_handlers += usize::from(ty == Some(HandlerType::Workflow));
            let _ = (handler.effective_input(), handler.effective_output());
        }
        if service.ty == keel_protocol::manifest::ServiceType::Workflow {
            assert_eq!(workflow_handlers, 1);
        }
    }
});
