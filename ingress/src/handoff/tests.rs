use super::*;
use std::collections::BTreeMap;

fn ask(prefer: &[&str], uri: &str) -> Result<Option<Handoff>, ApiError> {
    let mut headers = HeaderMap::new();
    for p in prefer {
        headers.append("prefer", HeaderValue::from_str(p).unwrap());
    }
    requested(&headers, &uri.parse().unwrap())
}

#[test]
fn prefer_and_timeout_set_the_wait() {
    assert_eq!(ask(&[], "/S/h").unwrap(), None);
    let h = ask(&["wait=10"], "/S/h").unwrap().unwrap();
    assert_eq!((h.wait, h.preferred_secs), (Duration::from_secs(10), Some(10)));
    let h = ask(&["handling=lenient, Wait=\"3\""], "/S/h").unwrap().unwrap();
    assert_eq!(h.wait, Duration::from_secs(3));
    assert_eq!(ask(&["respond-async"], "/S/h").unwrap().unwrap().wait, Duration::ZERO);
    let h = ask(&["wait=60"], "/S/h?timeout=PT2S").unwrap().unwrap();
    assert_eq!((h.wait, h.preferred_secs), (Duration::from_secs(2), Some(60)));
    let h = ask(&[], "/S/h?timeout=1500ms").unwrap().unwrap();
    assert_eq!((h.wait, h.preferred_secs), (Duration::from_millis(1500), None));
    // Unknown preferences are ignored.
    assert_eq!(ask(&["return=minimal"], "/S/h").unwrap(), None);
}

#[test]
fn malformed_waits_are_400() {
    assert_eq!(ask(&["wait=soon"], "/S/h").unwrap_err().status, StatusCode::BAD_REQUEST);
    let e = ask(&[], "/S/h?timeout=forever").unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(e.message.starts_with("bad timeout"), "{}", e.message);
}

#[test]
fn default_answer_is_202_with_the_attach_location() {
    let id = InvocationId::new(5, 77);
    let h = Handoff { wait: Duration::from_secs(1), preferred_secs: Some(1) };
    let r = response(&id, &h, None);
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = format!("/restate/invocation/{id}/attach");
    assert_eq!(r.headers()[header::LOCATION], location.as_str());
    assert_eq!(r.headers()["preference-applied"], "wait=1");
    assert_eq!(r.headers()["x-restate-id"], id.to_string().as_str());
}

#[test]
fn custom_answers_fill_their_placeholders() {
    let id = InvocationId::new(5, 77);
    let custom = AsyncResponse {
        status: 303,
        headers: BTreeMap::from([("location".to_string(), "https://app.example{{attach_url}}".to_string())]),
        body: "job {{invocation_id}}".into(),
    };
    check("h", &custom).unwrap();
    let r = response(&id, &Handoff { wait: Duration::ZERO, preferred_secs: None }, Some(&custom));
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], format!("https://app.example/restate/invocation/{id}/attach").as_str());
    assert!(r.headers().get("preference-applied").is_none());
    let bad = AsyncResponse { status: 99, ..custom.clone() };
    assert_eq!(check("h", &bad).unwrap_err().status, StatusCode::BAD_REQUEST);
    let bad = AsyncResponse { headers: BTreeMap::from([("bad name".into(), "v".into())]), ..custom };
    assert!(check("h", &bad).unwrap_err().message.contains("bad header name"));
}
