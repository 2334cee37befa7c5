//! The discovery endpoint manifest (`GET /discover`, formats v2..v4).
//!
//! Parsing is two-step: serde rejects malformed JSON, missing required fields and unknown
//! enum values (its messages name the field or the variant), then [`EndpointManifest::validate`]
//! checks what the schema cannot express (name patterns, handler types per service type,
//! options valid only on some handlers), naming the offending path.
//!
//! Unknown fields are ignored on purpose, even though the schema forbids them: newer SDKs
//! may add fields and registration should not break over them. All timeouts, intervals and
//! retentions are integers in **milliseconds**.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::version::{ServiceProtocolVersion, VersionError, VersionPolicy};

#[cfg(test)]
mod tests;

/// How the runtime must talk to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProtocolMode {
    /// Both directions concurrently on one HTTP/2 stream; completions are streamed live.
    BidiStream,
    /// Send start plus replay, close the request body, then read the response; every wait
    /// becomes a suspension.
    RequestResponse,
}

/// Compression of Lambda payloads (v4). Irrelevant for HTTP deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaCompression {
    /// zstd-compressed payloads.
    Zstd,
}

/// Kind of service, which decides keying and concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// Stateless, unkeyed; handlers run concurrently.
    Service,
    /// Keyed with state; exclusive handlers are serialized per key.
    VirtualObject,
    /// Keyed; the workflow handler runs once per key.
    Workflow,
}

impl ServiceType {
    /// Whether invocations carry a key (and state).
    pub fn is_keyed(self) -> bool {
        !matches!(self, ServiceType::Service)
    }
}

/// Handler concurrency type on keyed services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HandlerType {
    /// One at a time per key; may write state.
    Exclusive,
    /// Concurrent; read-only state.
    Shared,
    /// The single run handler of a workflow.
    Workflow,
}

/// What happens when the retry policy's attempts are exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnMaxAttempts {
    /// Pause the invocation for an operator to resume.
    Pause,
    /// Kill the invocation.
    Kill,
}

/// The discovery response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointManifest {
    /// Transport mode to use for invocations. Required: the Restate server rejects its absence.
    pub protocol_mode: ProtocolMode,
    /// Lowest invocation protocol version the endpoint speaks.
    pub min_protocol_version: u32,
    /// Highest invocation protocol version the endpoint speaks.
    pub max_protocol_version: u32,
    /// Lambda payload compression (v4); ignored for HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_compression: Option<LambdaCompression>,
    /// Services the endpoint hosts.
    pub services: Vec<Service>,
}

/// Retry policy overrides (v4 in the SDKs). Flattened into services and handlers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// First retry delay, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy_initial_interval: Option<u64>,
    /// Upper bound of the retry delay, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy_max_interval: Option<u64>,
    /// Attempts before `retry_policy_on_max_attempts` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy_max_attempts: Option<u64>,
    /// Growth factor of the delay between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy_exponentiation_factor: Option<f64>,
    /// Pause or kill once attempts are exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy_on_max_attempts: Option<OnMaxAttempts>,
}

/// Options shared by services and handlers (v3+); handler values override service values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationOptions {
    /// Close an idle bidi stream after this long, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout: Option<u64>,
    /// Kill an attempt this long after the inactivity timeout fired, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_timeout: Option<u64>,
    /// Keep the journal of completed invocations this long, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_retention: Option<u64>,
    /// Keep idempotency results this long, ms (not on a workflow's run handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_retention: Option<u64>,
    /// Send no eager state; the SDK reads state lazily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_lazy_state: Option<bool>,
    /// Callable only from other services, not from ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_private: Option<bool>,
    /// Retry policy overrides.
    #[serde(flatten)]
    pub retry_policy: RetryPolicy,
}

/// One service of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Service name, used in invocation paths.
    pub name: String,
    /// Service kind.
    pub ty: ServiceType,
    /// Handlers, in SDK order.
    pub handlers: Vec<Handler>,
    /// Free-form documentation (v2+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    /// Free-form string metadata (v2+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Timeouts, retentions, lazy state, privacy, retries.
    #[serde(flatten)]
    pub options: InvocationOptions,
}

/// Input rules of a handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputPayload {
    /// Whether a body must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Accepted content type (Accept-style wildcards allowed); unset means no body expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// JSON schema of the body, for documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

/// Output rules of a handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputPayload {
    /// Content type the ingress sets on responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Whether to set the content type on empty responses too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_content_type_if_empty: Option<bool>,
    /// JSON schema of the body, for documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

/// One handler of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    /// Handler name, used in invocation paths.
    pub name: String,
    /// Concurrency type; usually omitted for SERVICE (see [`Handler::effective_ty`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<HandlerType>,
    /// Input rules; see [`Handler::effective_input`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputPayload>,
    /// Output rules; see [`Handler::effective_output`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputPayload>,
    /// Free-form documentation (v2+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    /// Free-form string metadata (v2+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Keep a workflow's result this long, ms (only on the WORKFLOW handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_completion_retention: Option<u64>,
    /// Handler-level overrides of the service options.
    #[serde(flatten)]
    pub options: InvocationOptions,
}

impl Handler {
    /// The handler type after applying defaults: none for SERVICE, EXCLUSIVE when omitted
    /// on a VIRTUAL_OBJECT, WORKFLOW when omitted on a WORKFLOW service.
    pub fn effective_ty(&self, service_ty: ServiceType) -> Option<HandlerType> {
        match service_ty {
            ServiceType::Service => None,
            ServiceType::VirtualObject => Some(self.ty.unwrap_or(HandlerType::Exclusive)),
            ServiceType::Workflow => Some(self.ty.unwrap_or(HandlerType::Workflow)),
        }
    }

    /// Input rules, defaulting to "any content type, body optional" when absent.
    pub fn effective_input(&self) -> InputPayload {
        self.input.clone().unwrap_or_else(|| InputPayload {
            required: Some(false),
            content_type: Some("*/*".to_owned()),
            json_schema: None,
        })
    }

    /// Output rules, defaulting to JSON when absent.
    pub fn effective_output(&self) -> OutputPayload {
        self.output.clone().unwrap_or_else(|| OutputPayload {
            content_type: Some("application/json".to_owned()),
            set_content_type_if_empty: Some(false),
            json_schema: None,
        })
    }
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, wrong shape, a required field missing (named by serde) or an unknown enum
    /// value.
    #[error("invalid endpoint manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// `minProtocolVersion`/`maxProtocolVersion` do not form a valid range.
    #[error(
        "invalid endpoint manifest: minProtocolVersion {min} / maxProtocolVersion {max} do not form a range of versions >= 1"
    )]
    InvalidProtocolVersionRange {
        /// `minProtocolVersion`.
        min: u32,
        /// `maxProtocolVersion`.
        max: u32,
    },
    /// A service or handler name violates the documented pattern.
    #[error("invalid endpoint manifest: {path} {name:?} is not a valid name")]
    InvalidName {
        /// Where, e.g. `services[0].handlers[2].name`.
        path: String,
        /// The rejected name.
        name: String,
    },
    /// Two services, or two handlers of one service, share a name.
    #[error("invalid endpoint manifest: {path} {name:?} is defined twice")]
    Duplicate {
        /// Where the second definition is.
        path: String,
        /// The repeated name.
        name: String,
    },
    /// A handler type does not fit its service type, or a workflow lacks its single run handler.
    #[error("invalid endpoint manifest: {path}: {reason}")]
    HandlerType {
        /// Where.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An option is set where it has no meaning.
    #[error("invalid endpoint manifest: {path}.{field} is not allowed: {reason}")]
    FieldNotAllowed {
        /// The object carrying the field.
        path: String,
        /// JSON field name.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl EndpointManifest {
    /// Parses and validates a discovery response body.
    pub fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        let manifest: EndpointManifest = serde_json::from_slice(body)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The invocation protocol version to use with this endpoint under `policy`.
    pub fn select_protocol_version(&self, policy: &VersionPolicy) -> Result<ServiceProtocolVersion, VersionError> {
        policy.select(self.min_protocol_version, self.max_protocol_version)
    }

    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Checks the rules serde cannot express; see the module docs.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let (min, max) = (self.min_protocol_version, self.max_protocol_version);
        if min == 0 || min > max {
            return Err(ManifestError::InvalidProtocolVersionRange { min, max });
        }
        let mut service_names = HashSet::new();
        for (i, service) in self.services.iter().enumerate() {
            let path = format!("services[{i}]");
            if !is_valid_name(&service.name, true) {
                return Err(ManifestError::InvalidName { path: format!("{path}.name"), name: service.name.clone() });
            }
            if !service_names.insert(service.name.as_str()) {
                return Err(ManifestError::Duplicate { path: format!("{path}.name"), name: service.name.clone() });
            }
            service.validate(&path)?;
        }
        Ok(())
    }
}

impl Service {
    fn validate(&self, path: &str) -> Result<(), ManifestError> {
        let mut handler_names = HashSet::new();
        let mut workflow_handlers = 0usize;
        for (j, handler) in self.handlers.iter().enumerate() {
            let hpath = format!("{path}.handlers[{j}]");
            if !is_valid_name(&handler.name, false) {
                return Err(ManifestError::InvalidName { path: format!("{hpath}.name"), name: handler.name.clone() });
            }
            if !handler_names.insert(handler.name.as_str()) {
                return Err(ManifestError::Duplicate { path: format!("{hpath}.name"), name: handler.name.clone() });
            }
            let effective = handler.effective_ty(self.ty);
            let mismatch =
                |reason: &str| ManifestError::HandlerType { path: format!("{hpath}.ty"), reason: reason.to_owned() };
            match (self.ty, handler.ty) {
                (ServiceType::Service | ServiceType::VirtualObject, Some(HandlerType::Workflow)) => {
                    return Err(mismatch("WORKFLOW handlers are only allowed on WORKFLOW services"));
                }
                (ServiceType::Workflow, Some(HandlerType::Exclusive)) => {
                    return Err(mismatch("WORKFLOW services allow only WORKFLOW and SHARED handlers"));
                }
                _ => {}
            }
            if effective == Some(HandlerType::Workflow) {
                workflow_handlers += 1;
                if handler.options.idempotency_retention.is_some() {
                    return Err(ManifestError::FieldNotAllowed {
                        path: hpath,
                        field: "idempotencyRetention",
                        reason: "the WORKFLOW handler keeps its result per workflowCompletionRetention instead",
                    });
                }
            } else if handler.workflow_completion_retention.is_some() {
                return Err(ManifestError::FieldNotAllowed {
                    path: hpath,
                    field: "workflowCompletionRetention",
                    reason: "only the WORKFLOW handler of a workflow has a completion to retain",
                });
            }
        }
        if self.ty == ServiceType::Workflow && workflow_handlers != 1 {
            return Err(ManifestError::HandlerType {
                path: path.to_owned(),
                reason: format!("a WORKFLOW service needs exactly one WORKFLOW handler, found {workflow_handlers}"),
            });
        }
        Ok(())
    }
}

/// Checks `^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]*$`, plus `.` and `-` in the tail for
/// service names (`^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*$`).
fn is_valid_name(name: &str, service: bool) -> bool {
    let bytes = name.as_bytes();
    let tail = match bytes {
        [first, rest @ ..] if first.is_ascii_alphabetic() => rest,
        [b'_', second, rest @ ..] if second.is_ascii_alphanumeric() => rest,
        _ => return false,
    };
    tail.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || (service && (b == b'.' || b == b'-')))
}
