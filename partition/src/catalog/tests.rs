use super::*;
use crate::Command;
use crate::testing::TestPartition;
use std::collections::BTreeMap;

fn register(p: &mut TestPartition, record: &DeploymentRecord, force: bool, breaking: bool) -> CatalogOutcome {
    p.catalog(Command::RegisterDeployment { record: record.clone(), force, breaking })
}

fn remove(p: &mut TestPartition, id: &str) -> CatalogOutcome {
    p.catalog(Command::RemoveDeployment { id: id.into() })
}

fn update_service(p: &mut TestPartition, name: &str, patch: &ServiceOverrides) -> CatalogOutcome {
    p.catalog(Command::UpdateService { name: name.into(), patch: patch.clone() })
}

const TS_MANIFEST: &[u8] = include_bytes!("../../../protocol/testdata/manifest_v4_sdk_ts.json");

fn record(id: &str, uri: &str, manifest: &[u8]) -> DeploymentRecord {
    DeploymentRecord {
        id: id.into(),
        uri: uri.into(),
        additional_headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        use_http_11: false,
        sdk_version: Some("restate-sdk-typescript/1.17.2".into()),
        created_at_ms: 1_000,
        manifest_json: manifest.to_vec(),
    }
}

/// The TS manifest with `Counter` turned into a plain service.
fn counter_as_service() -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(TS_MANIFEST).unwrap();
    for service in json["services"].as_array_mut().unwrap() {
        if service["name"] == "Counter" {
            service["ty"] = "SERVICE".into();
            for handler in service["handlers"].as_array_mut().unwrap() {
                handler.as_object_mut().unwrap().remove("ty");
            }
        }
    }
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn register_creates_services_at_revision_one() {
    let mut p = TestPartition::new();
    let outcome = register(&mut p, &record("dp_a", "http://a", TS_MANIFEST), false, false);
    assert_eq!(outcome, CatalogOutcome::Registered { id: "dp_a".into(), created: true });
    let data = load(&p.store).unwrap();
    assert_eq!(data.deployments.keys().collect::<Vec<_>>(), vec!["dp_a"]);
    let names: Vec<_> = data.services.keys().cloned().collect();
    assert_eq!(names, vec!["Awaiter", "Counter", "Greeter", "SideEffects", "Signup"]);
    assert!(data.services.values().all(|s| s.revision == 1 && s.deployment_id == "dp_a"));
}

#[test]
fn same_uri_same_manifest_is_a_no_op_and_different_needs_force() {
    let mut p = TestPartition::new();
    register(&mut p, &record("dp_a", "http://a", TS_MANIFEST), false, false);
    let before = p.store.dump();
    // Same URI and manifest under a new candidate id: answered with the old id.
    let again = register(&mut p, &record("dp_b", "http://a", TS_MANIFEST), false, false);
    assert_eq!(again, CatalogOutcome::Registered { id: "dp_a".into(), created: false });
    assert_eq!(p.store.dump(), before);
    // Different manifest at the same URI: conflict without force, nothing written.
    let changed = counter_as_service();
    let conflict = register(&mut p, &record("dp_c", "http://a", &changed), false, false);
    assert!(matches!(conflict, CatalogOutcome::Conflict(ref m) if m.contains("force")), "{conflict:?}");
    assert_eq!(p.store.dump(), before);
    // With force: overwritten in place, revisions bumped, id kept.
    let forced = register(&mut p, &record("dp_c", "http://a", &changed), true, false);
    assert_eq!(forced, CatalogOutcome::Registered { id: "dp_a".into(), created: false });
    let data = load(&p.store).unwrap();
    assert_eq!(data.deployments.len(), 1);
    assert_eq!(data.services["Counter"].revision, 2);
}

#[test]
fn new_uri_creates_new_revisions_and_type_change_is_breaking() {
    let mut p = TestPartition::new();
    register(&mut p, &record("dp_a", "http://a", TS_MANIFEST), false, false);
    let outcome = register(&mut p, &record("dp_b", "http://b", TS_MANIFEST), false, false);
    assert_eq!(outcome, CatalogOutcome::Registered { id: "dp_b".into(), created: true });
    let data = load(&p.store).unwrap();
    assert_eq!(data.services["Greeter"].revision, 2);
    assert_eq!(data.services["Greeter"].deployment_id, "dp_b");

    let changed = counter_as_service();
    let before = p.store.dump();
    let conflict = register(&mut p, &record("dp_c", "http://c", &changed), false, false);
    assert!(matches!(conflict, CatalogOutcome::Conflict(ref m) if m.contains("Counter")), "{conflict:?}");
    assert_eq!(p.store.dump(), before);
    let allowed = register(&mut p, &record("dp_c", "http://c", &changed), false, true);
    assert_eq!(allowed, CatalogOutcome::Registered { id: "dp_c".into(), created: true });
}

#[test]
fn invalid_manifest_is_rejected_without_writes() {
    let mut p = TestPartition::new();
    let outcome = register(&mut p, &record("dp_a", "http://a", b"{\"services\": 3}"), false, false);
    assert!(matches!(outcome, CatalogOutcome::Invalid(_)), "{outcome:?}");
    assert!(p.store.entries.is_empty());
}

#[test]
fn remove_drops_the_deployment_and_its_latest_services() {
    let mut p = TestPartition::new();
    register(&mut p, &record("dp_a", "http://a", TS_MANIFEST), false, false);
    assert_eq!(remove(&mut p, "dp_x"), CatalogOutcome::NotFound("deployment dp_x not found".into()));
    assert_eq!(remove(&mut p, "dp_a"), CatalogOutcome::Removed);
    assert_eq!(load(&p.store).unwrap(), CatalogData::default());
}

#[test]
fn overrides_merge_and_reset_on_re_registration() {
    let mut p = TestPartition::new();
    register(&mut p, &record("dp_a", "http://a", TS_MANIFEST), false, false);
    let patch = ServiceOverrides { public: Some(false), idempotency_retention_ms: Some(60_000), ..Default::default() };
    assert_eq!(update_service(&mut p, "Greeter", &patch), CatalogOutcome::ServiceUpdated);
    let second = ServiceOverrides { abort_timeout_ms: Some(5), ..Default::default() };
    update_service(&mut p, "Greeter", &second);
    let overrides = &load(&p.store).unwrap().services["Greeter"].overrides;
    assert_eq!(
        overrides,
        &ServiceOverrides {
            public: Some(false),
            idempotency_retention_ms: Some(60_000),
            abort_timeout_ms: Some(5),
            ..Default::default()
        }
    );
    assert!(matches!(update_service(&mut p, "Nope", &patch), CatalogOutcome::NotFound(_)));
    // Async responses are set per handler and removed by a `None`.
    let answer = AsyncResponse { status: 202, headers: BTreeMap::new(), body: "{{invocation_id}}".into() };
    let set = ServiceOverrides {
        async_responses: BTreeMap::from([("greet".into(), Some(answer.clone())), ("other".into(), Some(answer))]),
        ..Default::default()
    };
    update_service(&mut p, "Greeter", &set);
    let unset = ServiceOverrides { async_responses: BTreeMap::from([("other".into(), None)]), ..Default::default() };
    update_service(&mut p, "Greeter", &unset);
    let stored = &load(&p.store).unwrap().services["Greeter"].overrides.async_responses;
    assert_eq!(stored.keys().collect::<Vec<_>>(), ["greet"]);
    register(&mut p, &record("dp_b", "http://b", TS_MANIFEST), false, false);
    assert_eq!(load(&p.store).unwrap().services["Greeter"].overrides, ServiceOverrides::default());
}
