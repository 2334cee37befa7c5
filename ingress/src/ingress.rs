//! The ingress (port 8080): calls and one-way sends of registered handlers,
//! with Restate's paths and error shapes.
//!
//! `/{service}/{handler}` and `/{object|workflow}/{key}/{handler}` call a
//! handler and wait for its result; a trailing `/send` only enqueues it.
//! Which form a path has depends on the service's type, so the path is
//! parsed against the service catalog (this node's replica of it).
//!
//! A request becomes one `Invoke` command, built entirely here: the
//! invocation id (random, or derived from the idempotency key or workflow
//! id so that a repeat finds the first), the record with its retention, and
//! the input entry carrying body and headers. The id's partition key picks
//! the partition, and the command goes to that partition's leader through
//! the [`ClusterApi`], wherever it runs: a call proposes it and waits for
//! the result there; a send (or a workflow's `run`, which attaches
//! afterwards) only proposes it and answers with the id. The ingress keeps
//! nothing per request after it answers, which is why any node can serve
//! any request behind a plain load balancer.

use crate::api::ClusterApi;
use crate::error::ApiError;
use crate::error::check_health;
use crate::extract::Path;
use crate::handoff;
use crate::reply::{error_response, ingress_error, result_response};
use crate::state::IngressState;
use crate::{attach, auth, idempotency, validate};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keel_partition::catalog::ServiceOverrides;
use keel_partition::invocation::{HandlerKind, InvocationOutcome, InvocationRecord, Status, Target};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, Response as Outcome, partition_for_key};
use keel_protocol::manifest::Service;
use keel_protocol::proto::{Header, InputCommandMessage, Value};
use keel_protocol::{Flags, InvocationId, Message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Settings of the ingress.
#[derive(Debug, Clone)]
pub struct IngressOptions {
    /// Largest accepted request body (413 above it).
    pub max_body_bytes: usize,
    /// Calls and attaches served at once; more are refused with 429.
    /// Completions of awakeables have a pool of their own of the same size,
    /// and health checks take none.
    pub max_inflight_requests: usize,
    /// How long an attach blocks before answering 202 with the same
    /// `Location` (`None`: until the result is there).
    pub attach_timeout: Option<Duration>,
    /// When set, every route but `/restate/health` requires
    /// `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// How long a completed invocation without idempotency key (not a
    /// workflow run) keeps its record, stamped into the invocations this
    /// ingress creates (see [`keel_partition::idempotency`]).
    pub completed_retention: Duration,
}

/// The ingress router.
///
/// Requests are admitted against two pools of in-flight permits. Calls and
/// attaches share one: each may wait as long as its handler runs, so they
/// are what fills it. Completing an awakeable has its own pool: it is
/// exactly what a parked call may be waiting for, so it must never be
/// refused because waiting calls hold every permit. Health checks take no
/// permit, so an overloaded node still answers its probes.
pub fn ingress_router<C: ClusterApi>(cluster: Arc<C>, options: IngressOptions) -> Router {
    let state = IngressState {
        cluster,
        attach_timeout: options.attach_timeout,
        completed_retention_ms: crate::duration::millis(options.completed_retention),
        catalog: Arc::default(),
    };
    let calls = Router::new().merge(attach::routes::<C>()).fallback(invoke::<C>);
    let completions = Router::new()
        .route("/restate/awakeables/{id}/{action}", post(complete_awakeable::<C>))
        .route("/restate/a/{id}/{action}", post(complete_awakeable::<C>));
    let permits = options.max_inflight_requests;
    let protected = admitted(json_405(calls), permits).merge(admitted(json_405(completions), permits));
    let health = Router::new().route("/restate/health", get(health::<C>));
    auth::protect(protected, options.token.as_deref(), ingress_error)
        .merge(json_405(health))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}

/// Answers a wrong method on any route of `router` with a JSON 405. Set on
/// each part before it is layered and merged, as axum applies it to the
/// routes present at the time.
fn json_405<C: ClusterApi>(router: Router<IngressState<C>>) -> Router<IngressState<C>> {
    router.method_not_allowed_fallback(|| async {
        ingress_error(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint"))
    })
}

/// `router` behind a pool of `permits` in-flight permits of its own.
fn admitted<C: ClusterApi>(router: Router<IngressState<C>>, permits: usize) -> Router<IngressState<C>> {
    let inflight = Arc::new(Semaphore::new(permits));
    router.layer(middleware::from_fn(move |request, next| admit(inflight.clone(), request, next)))
}

/// Serves a request only while fewer than the pool's size are in flight;
/// beyond that the node is overloaded: 429 with `Retry-After`, so clients
/// back off (or a load balancer tries another node).
async fn admit(inflight: Arc<Semaphore>, request: axum::extract::Request, next: Next) -> Response {
    let Ok(_permit) = inflight.try_acquire_owned() else {
        let mut r = ingress_error(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "the ingress is overloaded: too many requests in flight, retry later",
        ));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        return r;
    };
    next.run(request).await
}

/// `GET /restate/health`: 200 with the services this node knows, or 503
/// with what is wrong (a hosted partition stopped, the storage failed). It
/// takes no in-flight permit and asks no leader, so it answers while the
/// node is overloaded or a partition is electing.
async fn health<C: ClusterApi>(State(cluster): State<Arc<C>>) -> Response {
    if let Err(e) = check_health(&*cluster) {
        return ingress_error(e);
    }
    let services: Vec<String> =
        cluster.local_catalog().map(|c| c.services.keys().cloned().collect()).unwrap_or_default();
    Json(serde_json::json!({ "services": services })).into_response()
}

/// A parsed invocation request.
struct Request {
    service: Service,
    overrides: ServiceOverrides,
    handler: String,
    kind: HandlerKind,
    key: Option<String>,
    send: bool,
}

/// A percent-decoded path segment (keys may hold `/` and any UTF-8).
fn decode_segment(s: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request(format!("bad path: segment '{s}' is not valid UTF-8 once decoded")))
}

/// Splits the path into service, key, handler and `/send`, checking each
/// against the catalog: unknown service or handler → 404, a private one
/// or a malformed path → 400.
async fn parse<C: ClusterApi>(state: &IngressState<C>, uri: &Uri) -> Result<Request, Response> {
    let raw: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    if raw.len() < 2 || raw.len() > 4 || raw.iter().any(|s| s.is_empty()) {
        return Err(ingress_error(ApiError::bad_request(format!("bad path '{}'", uri.path()))));
    }
    let segments: Vec<String> =
        raw.iter().map(|s| decode_segment(s)).collect::<Result<_, _>>().map_err(ingress_error)?;
    let name = &segments[0];
    let Some((service, public, overrides)) = state.catalog.find(&*state.cluster, name).await? else {
        return Err(ingress_error(ApiError::not_found(format!(
            "service '{name}' not found, make sure to register the service before calling it."
        ))));
    };
    let keyed = service.ty.is_keyed();
    let (key, rest) = if keyed { (Some(segments[1].clone()), &segments[2..]) } else { (None, &segments[1..]) };
    let (handler, send) = match rest {
        [h] => (h.clone(), false),
        [h, s] if s == "send" => (h.clone(), true),
        _ => return Err(ingress_error(ApiError::bad_request(format!("bad path '{}'", uri.path())))),
    };
    let Some(h) = service.handlers.iter().find(|h| h.name == handler) else {
        return Err(ingress_error(ApiError::not_found(format!("handler '{name}/{handler}' not found"))));
    };
    if !public || h.options.ingress_private.unwrap_or(false) {
        return Err(ingress_error(ApiError::bad_request("the invoked service is not public")));
    }
    let kind = keel_partition::invocation::handler_kind(&service, h);
    Ok(Request { service, overrides, handler, kind, key, send })
}

/// Request headers forwarded to the handler (Restate drops these few),
/// plus Restate's pseudo-header `x-restate-ingress-path` with the request's
/// path and query.
fn forwarded_headers(headers: &HeaderMap, uri: &Uri) -> Vec<Header> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    headers
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "connection" | "host" | "idempotency-key" | "idempotency-expires"))
        .filter_map(|(n, v)| v.to_str().ok().map(|v| Header { key: n.as_str().to_string(), value: v.to_string() }))
        .chain(std::iter::once(Header { key: "x-restate-ingress-path".into(), value: path.to_string() }))
        .collect()
}

/// `GET|POST /{service}[/{key}]/{handler}[/send]`: validates the request,
/// builds its `Invoke` command (see the module comment) and proposes it on
/// the invocation's partition. A call answers with the handler's result
/// (or 202 with a handoff when the caller asked not to wait long); a send
/// answers 202 `Accepted`, or `PreviouslyAccepted` for a repeat of an
/// idempotent one; a second `run` of a workflow id is 409.
async fn invoke<C: ClusterApi>(
    State(state): State<IngressState<C>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if method != Method::GET && method != Method::POST {
        return ingress_error(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} not allowed")));
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return ingress_error(ApiError::new(r.status(), r.body_text())),
    };
    let cluster = &*state.cluster;
    let req = match parse(&state, &uri).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let options = match idempotency::request_options(&headers, &uri, req.send, req.kind) {
        Ok(o) => o,
        Err(e) => return ingress_error(e),
    };
    // A send answers at once anyway: a handoff applies to calls only.
    let handoff = match handoff::requested(&headers, &uri) {
        Ok(h) => h.filter(|_| !req.send),
        Err(e) => return ingress_error(e),
    };
    let Some(handler) = req.service.handlers.iter().find(|h| h.name == req.handler) else {
        return ingress_error(ApiError::not_found(format!("handler '{}' not found", req.handler)));
    };
    if let Err(e) = validate::input(handler, &headers, &body) {
        return ingress_error(e);
    }
    let policy = handoff.map_or(WaitPolicy::UNBOUNDED, |h| WaitPolicy {
        timeout_ms: Some(crate::duration::millis(h.wait)),
        until_parked: true,
    });
    let custom = req.overrides.async_responses.get(&req.handler).and_then(Option::as_ref);
    let handed_off = |id: &InvocationId| match &handoff {
        Some(h) => handoff::response(id, h, custom),
        None => ingress_error(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "a wait without a bound ended early")),
    };
    // A workflow's run handler runs once per workflow id, an idempotent
    // request once per key: their ids are derived, so a repeat is a duplicate.
    let workflow_run = req.kind == HandlerKind::Workflow;
    let idempotent = options.idempotency_key.is_some();
    let id = idempotency::invocation_id(
        &req.service.name,
        &req.handler,
        req.key.as_deref(),
        req.kind,
        options.idempotency_key.as_deref(),
    );
    let input = InputCommandMessage {
        headers: forwarded_headers(&headers, &uri),
        value: Some(Value { content: body }),
        name: String::new(),
    };
    let frame = match Message::InputCommand(input).to_frame(Flags::NONE) {
        Ok(f) => f,
        Err(e) => return ingress_error(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())),
    };
    let target =
        Target { service: req.service.name.clone(), handler: req.handler.clone(), key: req.key, kind: req.kind };
    let created_at_ms = crate::duration::now_ms();
    let execution_at_ms = options.delay.map(crate::duration::ms_after_now);
    let record = InvocationRecord {
        target,
        deployment_id: None,
        created_at_ms,
        journal_len: 0,
        status: execution_at_ms.map_or(Status::Invoked, |fire_at_ms| Status::Scheduled { fire_at_ms }),
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: keel_partition::idempotency::retention_ms(
            &req.overrides,
            &req.service,
            handler,
            idempotent,
            state.completed_retention_ms,
        ),
        attached: Vec::new(),
    };
    let envelope = Envelope::client(Command::Invoke { id: id.to_bytes(), record, input: frame.to_bytes().to_vec() });
    let partition = partition_for_key(id.partition_key, cluster.partition_count());
    let id_header = HeaderValue::try_from(id.to_string()).unwrap_or(HeaderValue::from_static("invalid"));
    if req.send || workflow_run {
        let duplicate = match cluster.propose(partition, envelope.clone()).await {
            Ok(Outcome::Invocation(InvocationOutcome::Exists(_))) => true,
            Ok(_) => false,
            Err(e) => return e.into(),
        };
        if !req.send {
            // A workflow run: refuse a second one, else wait for this one.
            if duplicate {
                let mut r = error_response(
                    StatusCode::CONFLICT,
                    "the workflow method was already invoked".into(),
                    "invocation",
                );
                r.headers_mut().insert("x-restate-id", id_header);
                return r;
            }
            return match cluster.attach(partition, id.to_bytes(), policy).await {
                Ok(Some(Waited::Done(result))) => {
                    let r = result_response(result, id_header, Some("application/json".into()), false);
                    attach::with_expiry(cluster, partition, &id, r).await
                }
                Ok(Some(Waited::Pending)) => handed_off(&id),
                Ok(None) => ingress_error(ApiError::not_found(format!("invocation {id} not found"))),
                Err(e) => e.into(),
            };
        }
        let status = if duplicate { "PreviouslyAccepted" } else { "Accepted" };
        let mut body = serde_json::json!({ "invocationId": id.to_string(), "status": status });
        if let (Some(at), false) = (execution_at_ms, duplicate) {
            body["executionTime"] = idempotency::rfc3339(at).into();
        }
        let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
        r.headers_mut().insert("x-restate-id", id_header);
        return r;
    }
    let rules = handler.effective_output();
    let content_type = rules.content_type.clone();
    let set_if_empty = rules.set_content_type_if_empty.unwrap_or(false);
    match cluster.call(partition, envelope, policy).await {
        Ok(Waited::Done(result)) if idempotent => {
            let r = result_response(result, id_header, content_type, set_if_empty);
            attach::with_expiry(cluster, partition, &id, r).await
        }
        Ok(Waited::Done(result)) => result_response(result, id_header, content_type, set_if_empty),
        Ok(Waited::Pending) => handed_off(&id),
        Err(e) => e.into(),
    }
}

/// `POST /restate/awakeables/{id}/resolve` (body: the value, as is) and
/// `…/reject` (body: the failure message; code 500) complete an awakeable:
/// the signal is delivered to the invocation awaiting it → 202.
async fn complete_awakeable<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    Path((raw_id, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use keel_protocol::proto::{Failure, signal_notification_message::Result as SignalResult};
    let body = match body {
        Ok(b) => b,
        Err(r) => return ingress_error(ApiError::new(r.status(), r.body_text())),
    };
    let Ok(awakeable) = raw_id.parse::<keel_protocol::AwakeableId>() else {
        return ingress_error(ApiError::bad_request(format!("bad awakeable id '{raw_id}'")));
    };
    let result = match action.as_str() {
        "resolve" => SignalResult::Value(Value { content: body }),
        "reject" => SignalResult::Failure(Failure {
            code: 500,
            message: String::from_utf8_lossy(&body).into_owned(),
            metadata: Vec::new(),
        }),
        other => {
            return ingress_error(ApiError::not_found(format!("no awakeable action '{other}': use resolve or reject")));
        }
    };
    let target = awakeable.invocation_id.to_bytes();
    let message = match keel_partition::outbox::signal(&target, awakeable.signal_index, result) {
        Ok(keel_partition::outbox::OutboxMessage::Deliver { id, completion_id, notification }) => {
            Command::Deliver { id, completion_id, notification }
        }
        Ok(_) => return ingress_error(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected signal message")),
        Err(e) => return ingress_error(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e)),
    };
    let partition = partition_for_key(awakeable.invocation_id.partition_key, cluster.partition_count());
    match cluster.propose(partition, Envelope::client(message)).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests;
