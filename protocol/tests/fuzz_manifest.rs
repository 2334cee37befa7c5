//! Property tests of the discovery manifest parser (the seeded short pass of the fuzzing
//! in `fuzz/`; raise `PROPTEST_CASES` for a longer one).
//!
//! Properties: `EndpointManifest::parse` never panics on any bytes or any JSON; a valid
//! manifest round-trips through the JSON the admin API stores (parse → serialize → parse
//! gives the same manifest); damaged manifests are rejected or, if still accepted, round-trip
//! too; and whatever is accepted satisfies what validation promises.

use keel_protocol::manifest::{
    Handler, HandlerType, InvocationOptions, ProtocolMode, RetryPolicy, Service, ServiceType,
};
use keel_protocol::{EndpointManifest, EndpointManifestVersion, ServiceProtocolVersion};
use proptest::prelude::*;
use serde_json::{Value, json};

const TESTDATA: [&str; 3] = [
    include_str!("../testdata/manifest_v4_sdk_py.json"),
    include_str!("../testdata/manifest_v4_sdk_ts.json"),
    include_str!("../testdata/manifest_v4_ts.json"),
];

/// Parses `bytes`; when accepted, checks the promises of validation and the round trip.
fn check(bytes: &[u8]) -> Result<Option<EndpointManifest>, TestCaseError> {
    let manifest = match EndpointManifest::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            return Ok(None);
        }
    };
    prop_assert!(manifest.min_protocol_version >= 1);
    prop_assert!(manifest.min_protocol_version <= manifest.max_protocol_version);
    for (i, service) in manifest.services.iter().enumerate() {
        prop_assert!(valid_name(&service.name, true), "service name {:?}", service.name);
        prop_assert!(manifest.services[..i].iter().all(|s| s.name != service.name));
        let mut workflow_handlers = 0;
        for (j, handler) in service.handlers.iter().enumerate() {
            prop_assert!(valid_name(&handler.name, false), "handler name {:?}", handler.name);
            prop_assert!(service.handlers[..j].iter().all(|h| h.name != handler.name));
            let ty = handler.effective_ty(service.ty);
            prop_assert_eq!(ty.is_some(), service.ty.is_keyed());
            workflow_handlers += usize::from(ty == Some(HandlerType::Workflow));
        }
        if service.ty == ServiceType::Workflow {
            prop_assert_eq!(workflow_handlers, 1);
        }
    }
    let json = serde_json::to_vec(&manifest).expect("serializes");
    let again = EndpointManifest::parse(&json);
    prop_assert!(again.is_ok(), "re-serialized manifest rejected: {:?}", again.err().map(|e| e.to_string()));
    prop_assert_eq!(again.as_ref().ok(), Some(&manifest));
    Ok(Some(manifest))
}

/// The documented name patterns, independently of the crate's implementation.
fn valid_name(name: &str, service: bool) -> bool {
    let mut chars = name.chars();
    let tail_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (service && (c == '.' || c == '-'));
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(tail_ok),
        Some('_') => chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(tail_ok),
        _ => false,
    }
}

// ---- strategies ----------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["SERVICE", "VIRTUAL_OBJECT", "WORKFLOW", "EXCLUSIVE", "SHARED", "BIDI_STREAM"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,8}",
                    prop::sample::select(vec![
                        "name",
                        "ty",
                        "handlers",
                        "services",
                        "protocolMode",
                        "minProtocolVersion",
                        "maxProtocolVersion",
                        "input",
                        "output",
                        "contentType",
                        "metadata",
                        "idempotencyRetention",
                        "workflowCompletionRetention",
                        "retryPolicyExponentiationFactor",
                    ])
                    .prop_map(str::to_owned),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn opt_ms() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.3, any::<u64>())
}

fn options() -> impl Strategy<Value = InvocationOptions> {
    (
        (opt_ms(), opt_ms(), opt_ms(), prop::option::weighted(0.2, any::<bool>())),
        (opt_ms(), opt_ms(), prop::option::weighted(0.3, any::<f64>().prop_filter("finite", |f| f.is_finite()))),
    )
        .prop_map(|((inactivity_timeout, abort_timeout, journal_retention, ingress_private), (ri, rm, rf))| {
            InvocationOptions {
                inactivity_timeout,
                abort_timeout,
                journal_retention,
                ingress_private,
                retry_policy: RetryPolicy {
                    retry_policy_initial_interval: ri,
                    retry_policy_max_interval: rm,
                    retry_policy_exponentiation_factor: rf,
                    ..RetryPolicy::default()
                },
                ..InvocationOptions::default()
            }
        })
}

/// A handler; `workflow` says whether it is (effectively) the WORKFLOW handler, which takes
/// a completion retention instead of an idempotency retention.
fn handler(name: String, ty: Option<HandlerType>, workflow: bool) -> impl Strategy<Value = Handler> {
    (options(), prop::option::of(".{0,10}"), opt_ms()).prop_map(move |(options, documentation, retention)| Handler {
        name: name.clone(),
        ty,
        input: None,
        output: None,
        documentation,
        metadata: None,
        workflow_completion_retention: if workflow { retention } else { None },
        options: InvocationOptions { idempotency_retention: if workflow { None } else { retention }, ..options },
    })
}

/// Handler names, made unique by a suffix; the first character class covers both
/// documented starts (`[a-zA-Z]` and `_[a-zA-Z0-9]`).
fn names(prefix: &'static str, n: std::ops::Range<usize>, service: bool) -> impl Strategy<Value = Vec<String>> {
    let pattern =
        if service { "([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]{0,6}" } else { "([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]{0,6}" };
    prop::collection::vec(pattern, n)
        .prop_map(move |v| v.into_iter().enumerate().map(|(i, s)| format!("{s}{prefix}{i}")).collect())
}

fn service(name: String) -> impl Strategy<Value = Service> {
    let ty = prop_oneof![Just(ServiceType::Service), Just(ServiceType::VirtualObject), Just(ServiceType::Workflow)];
    (ty, names("h", 0..4, false), options(), prop::option::of(".{0,10}")).prop_flat_map(
        move |(ty, handler_names, options, documentation)| {
            let mut handler_names = handler_names;
            if ty == ServiceType::Workflow && handler_names.is_empty() {
                handler_names.push("run".to_owned());
            }
            let handlers: Vec<_> = handler_names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let tys: Vec<Option<HandlerType>> = match ty {
                        ServiceType::Service => vec![None],
                        ServiceType::VirtualObject => {
                            vec![None, Some(HandlerType::Exclusive), Some(HandlerType::Shared)]
                        }
                        ServiceType::Workflow if i == 0 => vec![None, Some(HandlerType::Workflow)],
                        ServiceType::Workflow => vec![Some(HandlerType::Shared)],
                    };
                    let workflow = ty == ServiceType::Workflow && i == 0;
                    prop::sample::select(tys).prop_flat_map(move |t| handler(n.clone(), t, workflow)).boxed()
                })
                .collect();
            let name = name.clone();
            (handlers, Just(options), Just(documentation)).prop_map(move |(handlers, options, documentation)| Service {
                name: name.clone(),
                ty,
                handlers,
                documentation,
                metadata: None,
                options,
            })
        },
    )
}

/// Valid manifests with arbitrary names, types, options and version ranges.
fn manifest() -> impl Strategy<Value = EndpointManifest> {
    let mode = prop_oneof![Just(ProtocolMode::BidiStream), Just(ProtocolMode::RequestResponse)];
    (mode, 1u32..10, 0u32..4, names("s", 0..4, true)).prop_flat_map(|(protocol_mode, min, extra, service_names)| {
        let services: Vec<_> = service_names.into_iter().map(service).collect();
        services.prop_map(move |services| EndpointManifest {
            protocol_mode,
            min_protocol_version: min,
            max_protocol_version: min + extra,
            lambda_compression: None,
            services,
        })
    })
}

/// A JSON-level change to a manifest: a field removed, replaced by arbitrary JSON, or a
/// name broken.
#[derive(Debug, Clone)]
enum Edit {
    Remove(usize),
    Replace(usize, Value),
    Duplicate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), json_value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        any::<usize>().prop_map(Edit::Duplicate),
    ]
}

/// Every (object, key) and (array, index) slot of `v`, in document order, as paths.
fn slots(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                out.push(path.clone());
                slots(child, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(i.to_string());
                out.push(path.clone());
                slots(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn apply_edit(mut v: Value, e: &Edit) -> Value {
    let mut all = Vec::new();
    slots(&v, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return v;
    }
    let at = match e {
        Edit::Remove(i) | Edit::Replace(i, _) | Edit::Duplicate(i) => *i % all.len(),
    };
    let (last, parent_path) = all[at].split_last().expect("non-empty path");
    let mut parent = &mut v;
    for step in parent_path {
        parent = match parent {
            Value::Object(m) => m.get_mut(step).expect("path exists"),
            Value::Array(a) => &mut a[step.parse::<usize>().expect("index")],
            _ => unreachable!("slots only descend into containers"),
        };
    }
    match (parent, e) {
        (Value::Object(m), Edit::Remove(_)) => {
            m.remove(last);
        }
        (Value::Array(a), Edit::Remove(_)) => {
            a.remove(last.parse::<usize>().expect("index"));
        }
        (Value::Object(m), Edit::Replace(_, new)) => {
            m.insert(last.clone(), new.clone());
        }
        (Value::Array(a), Edit::Replace(_, new)) => a[last.parse::<usize>().expect("index")] = new.clone(),
        (Value::Array(a), Edit::Duplicate(_)) => {
            let i = last.parse::<usize>().expect("index");
            a.insert(i, a[i].clone());
        }
        (Value::Object(m), Edit::Duplicate(_)) => {
            if let Some(Value::String(s)) = m.get_mut(last) {
                s.insert(0, '-');
            }
        }
        _ => {}
    }
    v
}

#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(usize, u8),
    Truncate(usize),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, m)| ByteEdit::Flip(at, m)),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply_bytes(mut b: Vec<u8>, e: &ByteEdit) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    let len = b.len();
    match e {
        ByteEdit::Flip(at, m) => b[at % len] ^= m,
        ByteEdit::Truncate(at) => b.truncate(at % len),
    }
    b
}

fn base() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(TESTDATA.to_vec()).prop_map(|s| serde_json::from_str(s).expect("testdata is JSON")),
        manifest().prop_map(|m| serde_json::to_value(&m).expect("serializes")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = (EndpointManifestVersion::from_content_type(text), EndpointManifestVersion::negotiate_from_accept(text));
            let _ = ServiceProtocolVersion::from_content_type(text);
        }
    }

    #[test]
    fn random_json(v in json_value()) {
        check(&serde_json::to_vec(&v).expect("serializes"))?;
    }

    /// Generated valid manifests are accepted and round-trip.
    #[test]
    fn valid_manifests_round_trip(m in manifest()) {
        let bytes = serde_json::to_vec(&m).expect("serializes");
        let parsed = check(&bytes)?;
        prop_assert_eq!(parsed, Some(m));
    }

    /// Valid manifests damaged at the JSON level (fields dropped, replaced by arbitrary JSON,
    /// array entries duplicated, names broken) or at the byte level.
    #[test]
    fn mutated_manifests(v in base(), edits in prop::collection::vec(edit(), 1..4),
                         byte_edits in prop::collection::vec(byte_edit(), 0..2)) {
        let v = edits.iter().fold(v, apply_edit);
        let bytes = serde_json::to_vec(&v).expect("serializes");
        check(&bytes)?;
        let bytes = byte_edits.iter().fold(bytes, apply_bytes);
        check(&bytes)?;
    }
}

#[test]
fn testdata_manifests_are_accepted() {
    for text in TESTDATA {
        let manifest = EndpointManifest::parse(text.as_bytes()).expect("testdata manifest is valid");
        assert!(!manifest.services.is_empty());
    }
}

#[test]
fn deeply_nested_json_is_rejected_without_overflow() {
    for depth in [200, 100_000] {
        let schema = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(
            r#"{{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":7,"services":[{{"name":"S","ty":"SERVICE","handlers":[{{"name":"h","input":{{"jsonSchema":{schema}}}}}]}}]}}"#
        );
        assert!(EndpointManifest::parse(text.as_bytes()).is_err(), "depth {depth}");
    }
}

/// Found by `valid_manifests_round_trip`: without serde_json's `float_roundtrip`, this
/// retry factor came back one ULP off (…782e-115 → …787e-115) after the JSON round trip
/// the catalog does.
#[test]
fn float_options_survive_the_round_trip() {
    let factor = 3.714_415_510_159_378_2e-115_f64;
    let text = format!(
        r#"{{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":7,"services":[{{"name":"S","ty":"SERVICE","retryPolicyExponentiationFactor":{factor:e},"handlers":[]}}]}}"#
    );
    let manifest = EndpointManifest::parse(text.as_bytes()).expect("valid");
    assert_eq!(manifest.services[0].options.retry_policy.retry_policy_exponentiation_factor, Some(factor));
    let again = EndpointManifest::parse(&serde_json::to_vec(&manifest).expect("serializes")).expect("valid");
    assert_eq!(again, manifest);
}
