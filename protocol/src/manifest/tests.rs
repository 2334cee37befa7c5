use serde_json::json;

use super::*;
use crate::version::ServiceProtocolVersion;

const TS_V4: &str = include_str!("../../testdata/manifest_v4_ts.json");

fn parse_value(v: serde_json::Value) -> Result<EndpointManifest, ManifestError> {
    EndpointManifest::parse(v.to_string().as_bytes())
}

fn minimal() -> serde_json::Value {
    json!({
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 7,
        "services": [{
            "name": "svc",
            "ty": "VIRTUAL_OBJECT",
            "handlers": [{ "name": "h" }]
        }]
    })
}

fn push(array: &mut serde_json::Value, item: serde_json::Value) {
    array.as_array_mut().unwrap().push(item);
}

fn err_text(v: serde_json::Value) -> String {
    match parse_value(v) {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_a_realistic_ts_manifest() {
    let m = EndpointManifest::parse(TS_V4.as_bytes()).unwrap();
    assert_eq!(m.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!((m.min_protocol_version, m.max_protocol_version), (5, 7));
    assert_eq!(m.select_protocol_version(&VersionPolicy::default()), Ok(ServiceProtocolVersion::V7));
    assert_eq!(m.lambda_compression, None);
    assert_eq!(m.services.len(), 3);

    let greeter = m.service("greeter").unwrap();
    assert_eq!(greeter.ty, ServiceType::Service);
    assert!(!greeter.ty.is_keyed());
    assert_eq!(greeter.documentation.as_deref(), Some("Greets people."));
    assert_eq!(greeter.metadata.as_ref().unwrap()["team"], "growth");
    let retry = &greeter.options.retry_policy;
    assert_eq!(retry.retry_policy_initial_interval, Some(100));
    assert_eq!(retry.retry_policy_max_interval, Some(10_000));
    assert_eq!(retry.retry_policy_max_attempts, Some(10));
    assert_eq!(retry.retry_policy_exponentiation_factor, Some(2.0));
    assert_eq!(retry.retry_policy_on_max_attempts, Some(OnMaxAttempts::Kill));
    let greet = &greeter.handlers[0];
    assert_eq!(greet.effective_ty(greeter.ty), None);
    assert_eq!(greet.options.inactivity_timeout, Some(30_000));
    assert_eq!(greet.options.abort_timeout, Some(120_000));
    let input = greet.effective_input();
    assert_eq!(input.content_type.as_deref(), Some("application/json"));
    assert_eq!(input.json_schema, Some(json!({"type": "string"})));

    let counter = m.service("counter").unwrap();
    assert_eq!(counter.options.journal_retention, Some(86_400_000));
    assert_eq!(counter.options.enable_lazy_state, Some(false));
    let tys: Vec<_> = counter.handlers.iter().map(|h| h.effective_ty(counter.ty)).collect();
    assert_eq!(tys, [Some(HandlerType::Exclusive), Some(HandlerType::Shared), Some(HandlerType::Exclusive)]);
    // `input: {}` means "no body expected"; a missing input means the permissive default.
    assert_eq!(counter.handlers[1].effective_input(), InputPayload::default());
    assert_eq!(counter.handlers[1].options.enable_lazy_state, Some(true));
    let reset = &counter.handlers[2];
    assert_eq!(reset.effective_input().content_type.as_deref(), Some("*/*"));
    assert_eq!(reset.effective_input().required, Some(false));
    assert_eq!(reset.effective_output().content_type.as_deref(), Some("application/json"));

    let signup = m.service("signup").unwrap();
    assert_eq!(signup.ty, ServiceType::Workflow);
    assert_eq!(signup.options.idempotency_retention, Some(3_600_000));
    let run = &signup.handlers[0];
    assert_eq!(run.effective_ty(signup.ty), Some(HandlerType::Workflow));
    assert_eq!(run.workflow_completion_retention, Some(604_800_000));
    assert_eq!(run.options.retry_policy.retry_policy_on_max_attempts, Some(OnMaxAttempts::Pause));
    assert_eq!(run.input.as_ref().unwrap().required, Some(true));
    assert_eq!(signup.handlers[1].options.ingress_private, Some(true));
    assert_eq!(signup.handlers[2].effective_ty(signup.ty), Some(HandlerType::Shared));
}

#[test]
fn serialization_round_trips() {
    let m = EndpointManifest::parse(TS_V4.as_bytes()).unwrap();
    let text = serde_json::to_string(&m).unwrap();
    assert_eq!(EndpointManifest::parse(text.as_bytes()).unwrap(), m);
    // Field names come out in the manifest's camelCase.
    for key in
        ["\"protocolMode\":\"BIDI_STREAM\"", "\"retryPolicyOnMaxAttempts\":\"KILL\"", "\"workflowCompletionRetention\""]
    {
        assert!(text.contains(key), "{key} in {text}");
    }
    // Absent optionals are omitted, not serialized as null.
    assert!(!text.contains("null"), "{text}");
}

#[test]
fn the_docs_minimal_example_parses() {
    let m = parse_value(json!({
      "protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 7,
      "services": [{ "name": "counter", "ty": "VIRTUAL_OBJECT", "handlers": [
        {"name": "add", "ty": "EXCLUSIVE",
         "input": {"required": false, "contentType": "application/json"},
         "output": {"setContentTypeIfEmpty": false, "contentType": "application/json"}},
        {"name": "get", "ty": "SHARED", "input": {}, "output": {"contentType": "application/json"}}
      ]}]
    }))
    .unwrap();
    assert_eq!(m.services[0].handlers.len(), 2);
}

#[test]
fn unknown_fields_and_nulls_are_tolerated() {
    let mut v = minimal();
    v["someFutureField"] = json!({"x": 1});
    v["lambdaCompression"] = json!("zstd");
    v["services"][0]["documentation"] = json!(null);
    v["services"][0]["metadata"] = json!(null);
    v["services"][0]["handlers"][0]["futureOption"] = json!(true);
    let m = parse_value(v).unwrap();
    assert_eq!(m.lambda_compression, Some(LambdaCompression::Zstd));
    assert_eq!(m.services[0].documentation, None);
}

#[test]
fn missing_required_fields_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["protocolMode"], "protocolMode"),
        (&["minProtocolVersion"], "minProtocolVersion"),
        (&["maxProtocolVersion"], "maxProtocolVersion"),
        (&["services"], "services"),
        (&["services", "0", "name"], "name"),
        (&["services", "0", "ty"], "ty"),
        (&["services", "0", "handlers"], "handlers"),
        (&["services", "0", "handlers", "0", "name"], "name"),
    ];
    for (path, field) in cases {
        let mut v = minimal();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut v;
        for p in parents {
            target = match p.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*p],
            };
        }
        target.as_object_mut().unwrap().remove(*last).unwrap();
        let text = err_text(v);
        assert!(text.contains(&format!("missing field `{field}`")), "{path:?}: {text}");
    }
}

#[test]
fn unknown_enum_values_are_rejected() {
    let cases: &[(&str, serde_json::Value)] = &[
        ("/protocolMode", json!("HALF_DUPLEX")),
        ("/lambdaCompression", json!("gzip")),
        ("/services/0/ty", json!("ACTOR")),
        ("/services/0/handlers/0/ty", json!("READ_ONLY")),
        ("/services/0/retryPolicyOnMaxAttempts", json!("RETRY")),
        ("/services/0/handlers/0/retryPolicyOnMaxAttempts", json!("pause")),
    ];
    for (pointer, bad) in cases {
        let mut v = minimal();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(parent).unwrap()[key] = bad.clone();
        let text = err_text(v);
        assert!(text.contains("unknown variant"), "{pointer}: {text}");
    }
}

#[test]
fn wrong_types_are_rejected() {
    let mut v = minimal();
    v["minProtocolVersion"] = json!("5");
    assert!(err_text(v).contains("invalid type"));
    let mut v = minimal();
    v["services"][0]["inactivityTimeout"] = json!(-1);
    assert!(matches!(parse_value(v), Err(ManifestError::Json(_))));
    assert!(matches!(EndpointManifest::parse(b"not json"), Err(ManifestError::Json(_))));
    assert!(matches!(EndpointManifest::parse(b""), Err(ManifestError::Json(_))));
}

#[test]
fn semantic_validation() {
    let check = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut v = minimal();
        edit(&mut v);
        let text = err_text(v);
        assert!(text.contains(needle), "expected {needle:?} in {text}");
    };
    check(&|v| v["minProtocolVersion"] = json!(8), "minProtocolVersion 8");
    check(&|v| v["minProtocolVersion"] = json!(0), "minProtocolVersion 0");
    check(&|v| v["services"][0]["name"] = json!("9lives"), "services[0].name \"9lives\"");
    check(&|v| v["services"][0]["name"] = json!("_"), "services[0].name");
    check(&|v| v["services"][0]["name"] = json!(""), "services[0].name");
    check(&|v| v["services"][0]["handlers"][0]["name"] = json!("do.it"), "services[0].handlers[0].name");
    check(&|v| v["services"][0]["handlers"][0]["name"] = json!("do-it"), "services[0].handlers[0].name");
    check(
        &|v| {
            let dup = v["services"][0].clone();
            push(&mut v["services"], dup)
        },
        "services[1].name \"svc\" is defined twice",
    );
    check(
        &|v| push(&mut v["services"][0]["handlers"], json!({"name": "h"})),
        "services[0].handlers[1].name \"h\" is defined twice",
    );
    check(&|v| v["services"][0]["handlers"][0]["ty"] = json!("WORKFLOW"), "only allowed on WORKFLOW services");
    check(
        &|v| v["services"][0]["handlers"][0]["workflowCompletionRetention"] = json!(1),
        "services[0].handlers[0].workflowCompletionRetention is not allowed",
    );
    let workflow = |v: &mut serde_json::Value| v["services"][0]["ty"] = json!("WORKFLOW");
    check(
        &|v| {
            workflow(v);
            v["services"][0]["handlers"][0]["ty"] = json!("EXCLUSIVE");
        },
        "only WORKFLOW and SHARED",
    );
    check(
        &|v| {
            workflow(v);
            v["services"][0]["handlers"][0]["ty"] = json!("SHARED");
        },
        "exactly one WORKFLOW handler, found 0",
    );
    check(
        &|v| {
            workflow(v);
            push(&mut v["services"][0]["handlers"], json!({"name": "run2"}));
        },
        "exactly one WORKFLOW handler, found 2",
    );
    check(
        &|v| {
            workflow(v);
            v["services"][0]["handlers"][0]["idempotencyRetention"] = json!(1);
        },
        "idempotencyRetention is not allowed",
    );
}

#[test]
fn valid_names() {
    for ok in ["a", "Greeter", "_1", "_a.b-c", "my.pkg.Service", "x_y-z"] {
        assert!(is_valid_name(ok, true), "{ok}");
    }
    for ok in ["a", "_1x", "getStatus", "a_b_9"] {
        assert!(is_valid_name(ok, false), "{ok}");
    }
    for bad in ["", "_", "1a", "-a", ".a", "__", "a b", "é"] {
        assert!(!is_valid_name(bad, true), "{bad}");
    }
    for bad in ["a.b", "a-b", "_.", "a/b"] {
        assert!(!is_valid_name(bad, false), "{bad}");
    }
}

#[test]
fn service_types_and_lambda() {
    let mut v = minimal();
    v["services"][0]["ty"] = json!("SERVICE");
    v["services"][0]["handlers"][0]["ty"] = json!("SHARED");
    // A type on a SERVICE handler is tolerated and carries no meaning.
    let m = parse_value(v).unwrap();
    assert_eq!(m.services[0].handlers[0].effective_ty(ServiceType::Service), None);
    assert_eq!(m.protocol_mode, ProtocolMode::RequestResponse);
    assert!(ServiceType::VirtualObject.is_keyed() && ServiceType::Workflow.is_keyed());
}

/// Manifests served by the real SDKs for keel's end-to-end test services
/// (`tests/services/{ts,py}`), fetched with `GET /discover` over h2c and
/// `accept: application/vnd.restate.endpointmanifest.v4+json`, stored byte for byte.
/// TS: `@restatedev/restate-sdk` 1.17.2; Python: `restate-sdk` 1.3.0 under hypercorn 0.18.0.
const SDK_TS_V4: &str = include_str!("../../testdata/manifest_v4_sdk_ts.json");
const SDK_PY_V4: &str = include_str!("../../testdata/manifest_v4_sdk_py.json");

#[test]
fn parses_the_real_sdk_manifests_of_the_test_services() {
    use HandlerType::{Exclusive, Shared, Workflow};
    type Expected = [(&'static str, ServiceType, &'static [(&'static str, Option<HandlerType>)])];
    // The same services in both SDKs; the Python ones carry a `Py` prefix.
    let expected: &Expected = &[
        (
            "Greeter",
            ServiceType::Service,
            &[("greet", None), ("greetTwice", None), ("failTerminal", None), ("sleepThenEcho", None)],
        ),
        (
            "Counter",
            ServiceType::VirtualObject,
            &[("add", Some(Exclusive)), ("get", Some(Shared)), ("reset", Some(Exclusive)), ("keys", Some(Shared))],
        ),
        ("SideEffects", ServiceType::Service, &[("flaky", None)]),
        (
            "Signup",
            ServiceType::Workflow,
            &[("run", Some(Workflow)), ("confirm", Some(Shared)), ("status", Some(Shared))],
        ),
        ("Awaiter", ServiceType::Service, &[("waitForAwakeable", None), ("resolveLater", None), ("sendDelayed", None)]),
    ];

    for (text, prefix) in [(SDK_TS_V4, ""), (SDK_PY_V4, "Py")] {
        let m = EndpointManifest::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{prefix:?}: {e}"));
        m.validate().unwrap();
        assert_eq!(m.protocol_mode, ProtocolMode::BidiStream, "{prefix:?}");
        assert_eq!((m.min_protocol_version, m.max_protocol_version), (5, 7), "{prefix:?}");
        assert_eq!(m.select_protocol_version(&VersionPolicy::default()), Ok(ServiceProtocolVersion::V7));
        assert_eq!(m.lambda_compression, None);

        let names: Vec<_> = m.services.iter().map(|s| s.name.clone()).collect();
        let want: Vec<_> = expected.iter().map(|(name, ..)| format!("{prefix}{name}")).collect();
        assert_eq!(names, want);
        for (name, ty, handlers) in expected {
            let service = m.service(&format!("{prefix}{name}")).unwrap();
            assert_eq!(service.ty, *ty, "{prefix}{name}");
            // Neither SDK emits service-level options when none are configured.
            assert_eq!(service.options, InvocationOptions::default(), "{prefix}{name}");
            let got: Vec<_> = service.handlers.iter().map(|h| (h.name.as_str(), h.effective_ty(service.ty))).collect();
            assert_eq!(got, *handlers, "{prefix}{name}");
            for h in &service.handlers {
                // Keyed services state every handler's type explicitly; services never do.
                assert_eq!(h.ty, h.effective_ty(service.ty), "{prefix}{name}.{}", h.name);
                assert_eq!(h.options, InvocationOptions::default(), "{prefix}{name}.{}", h.name);
                assert_eq!(h.workflow_completion_retention, None);
            }
        }
    }

    // TS declares every handler the same way: optional JSON in, JSON out, no schemas.
    let ts = EndpointManifest::parse(SDK_TS_V4.as_bytes()).unwrap();
    for h in ts.services.iter().flat_map(|s| &s.handlers) {
        let input =
            InputPayload { required: Some(false), content_type: Some("application/json".into()), json_schema: None };
        let output = OutputPayload {
            content_type: Some("application/json".into()),
            set_content_type_if_empty: Some(false),
            json_schema: None,
        };
        assert_eq!((h.input.as_ref(), h.output.as_ref()), (Some(&input), Some(&output)), "{}", h.name);
        assert_eq!((&h.documentation, &h.metadata), (&None, &None));
    }

    // Python derives the payloads from the type hints and the documentation from docstrings:
    // a handler without an input parameter takes no body (`input: {}`), one returning `None`
    // declares no output content type.
    let py = EndpointManifest::parse(SDK_PY_V4.as_bytes()).unwrap();
    let greeter = py.service("PyGreeter").unwrap();
    let greet = &greeter.handlers[0];
    assert_eq!(greet.effective_input().json_schema, Some(json!({"type": "string"})));
    assert_eq!(greet.effective_output().content_type.as_deref(), Some("application/json"));
    assert!(greet.documentation.as_deref().unwrap().contains("Hello"));
    let fail_terminal = &greeter.handlers[2];
    assert_eq!(fail_terminal.effective_input(), InputPayload::default());
    assert_eq!(
        fail_terminal.effective_output(),
        OutputPayload { set_content_type_if_empty: Some(false), ..Default::default() }
    );
    let counter = py.service("PyCounter").unwrap();
    let no_body: Vec<_> = counter
        .handlers
        .iter()
        .filter(|h| h.effective_input().content_type.is_none())
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(no_body, ["get", "reset", "keys"]);
    let send_delayed = &py.service("PyAwaiter").unwrap().handlers[2];
    assert_eq!(send_delayed.effective_input().json_schema, Some(json!({"type": "object"})));
}
