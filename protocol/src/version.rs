//! Protocol versions and content-type negotiation.
//!
//! Two independent version axes exist:
//! * the invocation ("service") protocol, V5..V7, chosen per deployment from the manifest's
//!   `minProtocolVersion..=maxProtocolVersion` and sent as the request `content-type`;
//! * the discovery manifest format, v2..v4, chosen by the SDK from our `Accept` header.

use std::fmt;

/// Invocation protocol versions keel can speak. V1..V4 use a different entry model and
/// V8 (ephemeral commands) is not advertised by any SDK, so neither is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceProtocolVersion {
    /// Commands and notifications ("immutable journal").
    V5 = 5,
    /// V5 plus `StartMessage.random_seed` and `Failure.metadata`.
    V6 = 6,
    /// V6 plus future trees in suspensions, run-proposal acks and error behavior. Target.
    V7 = 7,
}

impl ServiceProtocolVersion {
    /// Every version, oldest first.
    pub const ALL: [ServiceProtocolVersion; 3] = [Self::V5, Self::V6, Self::V7];

    /// The number used in manifests and content types.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Maps a manifest number to a version keel knows.
    pub fn from_u32(n: u32) -> Option<Self> {
        match n {
            5 => Some(Self::V5),
            6 => Some(Self::V6),
            7 => Some(Self::V7),
            _ => None,
        }
    }

    /// `content-type` (and `accept`) of invocation requests; the SDK echoes it back and keel
    /// must check the response carries exactly this value.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V5 => "application/vnd.restate.invocation.v5",
            Self::V6 => "application/vnd.restate.invocation.v6",
            Self::V7 => "application/vnd.restate.invocation.v7",
        }
    }

    /// Parses an invocation content type. Exact match only (after trimming), mirroring the
    /// Restate server, which treats any other response content type as an error.
    pub fn from_content_type(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.content_type() == value.trim())
    }

    /// Whether the SDK sets REQUESTED_ACK on run proposals and expects
    /// `ProposeRunCompletionAckMessage` instead of a full notification.
    pub fn has_run_completion_ack(self) -> bool {
        self >= Self::V7
    }

    /// Whether `SuspensionMessage` carries a future tree (V7) instead of flat lists (V6).
    pub fn has_future_tree(self) -> bool {
        self >= Self::V7
    }

    /// Whether `StartMessage.random_seed` and `Failure.metadata` are understood.
    pub fn has_random_seed(self) -> bool {
        self >= Self::V6
    }
}

impl fmt::Display for ServiceProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.as_u32())
    }
}

/// Why no invocation protocol version could be chosen for a deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The manifest's range is empty or starts at 0.
    #[error("invalid protocol version range {min}..={max} in manifest")]
    InvalidRange {
        /// `minProtocolVersion`.
        min: u32,
        /// `maxProtocolVersion`.
        max: u32,
    },
    /// The ranges do not overlap (Restate's message: "unsupported service protocol versions").
    #[error(
        "unsupported service protocol versions: deployment supports {min}..={max}, keel supports {keel_min}..={keel_max}"
    )]
    Unsupported {
        /// `minProtocolVersion`.
        min: u32,
        /// `maxProtocolVersion`.
        max: u32,
        /// Lowest version keel accepts.
        keel_min: ServiceProtocolVersion,
        /// Highest version keel accepts.
        keel_max: ServiceProtocolVersion,
    },
}

/// The range of invocation protocol versions keel is willing to use. The default is
/// V5..=V7 (what the Restate 1.7 server accepts at registration, with V7 enabled); set
/// `max` to V6 to behave like a stock Restate 1.7 server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionPolicy {
    /// Lowest acceptable version.
    pub min: ServiceProtocolVersion,
    /// Highest acceptable (and preferred) version.
    pub max: ServiceProtocolVersion,
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy { min: ServiceProtocolVersion::V5, max: ServiceProtocolVersion::V7 }
    }
}

impl VersionPolicy {
    /// Picks the newest version both sides support: `min(manifest_max, keel_max)`, provided
    /// it is not below either minimum. Never exceeds the manifest's max, because the SDK
    /// answers an unsupported content type with 415.
    pub fn select(&self, manifest_min: u32, manifest_max: u32) -> Result<ServiceProtocolVersion, VersionError> {
        if manifest_min == 0 || manifest_min > manifest_max {
            return Err(VersionError::InvalidRange { min: manifest_min, max: manifest_max });
        }
        let unsupported = || VersionError::Unsupported {
            min: manifest_min,
            max: manifest_max,
            keel_min: self.min,
            keel_max: self.max,
        };
        let chosen = manifest_max.min(self.max.as_u32());
        if chosen < manifest_min.max(self.min.as_u32()) {
            return Err(unsupported());
        }
        ServiceProtocolVersion::from_u32(chosen).ok_or_else(unsupported)
    }
}

/// Discovery manifest format versions keel can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointManifestVersion {
    /// Adds documentation and metadata.
    V2 = 2,
    /// Adds timeouts, retentions, lazy state and ingress-private.
    V3 = 3,
    /// Adds lambda compression and (as gated by the SDKs) retry policies.
    V4 = 4,
}

impl EndpointManifestVersion {
    /// Every version keel reads, newest first (the order the SDKs probe `Accept` in).
    pub const NEWEST_FIRST: [EndpointManifestVersion; 3] = [Self::V4, Self::V3, Self::V2];

    /// The manifest media type for this version.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V2 => "application/vnd.restate.endpointmanifest.v2+json",
            Self::V3 => "application/vnd.restate.endpointmanifest.v3+json",
            Self::V4 => "application/vnd.restate.endpointmanifest.v4+json",
        }
    }

    /// Parses the discovery response `content-type`, ignoring media-type parameters
    /// (`; charset=...`), surrounding spaces and ASCII case.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        Self::NEWEST_FIRST.into_iter().find(|v| v.content_type().eq_ignore_ascii_case(essence))
    }

    /// What an SDK replies for a given `Accept` header: the newest version whose media
    /// type the header contains (substring match, as the SDKs do), or `None` (they answer
    /// 415). Useful for SDK fakes in tests.
    pub fn negotiate_from_accept(accept: &str) -> Option<Self> {
        Self::NEWEST_FIRST.into_iter().find(|v| accept.contains(v.content_type()))
    }
}

impl fmt::Display for EndpointManifestVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", *self as u8)
    }
}

/// The `Accept` header keel sends on `GET /discover`: v4, then v3, then v2.
pub const DISCOVERY_ACCEPT: &str = "application/vnd.restate.endpointmanifest.v4+json, \
     application/vnd.restate.endpointmanifest.v3+json, \
     application/vnd.restate.endpointmanifest.v2+json";

#[cfg(test)]
mod tests {
    use super::ServiceProtocolVersion::{V5, V6, V7};
    use super::*;

    #[test]
    fn selection_table() {
        let keel = VersionPolicy::default();
        let restate_like = VersionPolicy { min: V5, max: V6 };
        // (manifest min, manifest max, default policy, V6-capped policy)
        let table: &[(u32, u32, Option<ServiceProtocolVersion>, Option<ServiceProtocolVersion>)] = &[
            (5, 7, Some(V7), Some(V6)), // all three SDKs today
            (5, 8, Some(V7), Some(V6)), // a future SDK advertising V8
            (5, 5, Some(V5), Some(V5)),
            (5, 6, Some(V6), Some(V6)),
            (6, 6, Some(V6), Some(V6)),
            (7, 7, Some(V7), None),
            (7, 9, Some(V7), None),
            (8, 9, None, None),
            (1, 4, None, None), // an ancient SDK
            (3, 5, Some(V5), Some(V5)),
        ];
        for &(min, max, want_default, want_v6) in table {
            assert_eq!(keel.select(min, max).ok(), want_default, "default policy, {min}..={max}");
            assert_eq!(restate_like.select(min, max).ok(), want_v6, "V6 policy, {min}..={max}");
        }
    }

    #[test]
    fn selection_errors() {
        let keel = VersionPolicy::default();
        assert_eq!(keel.select(7, 5), Err(VersionError::InvalidRange { min: 7, max: 5 }));
        assert_eq!(keel.select(0, 7), Err(VersionError::InvalidRange { min: 0, max: 7 }));
        let err = keel.select(8, 9).unwrap_err();
        assert!(err.to_string().contains("unsupported service protocol versions"), "{err}");
    }

    #[test]
    fn invocation_content_types_round_trip() {
        for v in ServiceProtocolVersion::ALL {
            assert_eq!(ServiceProtocolVersion::from_content_type(v.content_type()), Some(v));
            assert_eq!(ServiceProtocolVersion::from_u32(v.as_u32()), Some(v));
        }
        assert_eq!(V7.content_type(), "application/vnd.restate.invocation.v7");
        assert_eq!(ServiceProtocolVersion::from_content_type("application/vnd.restate.invocation.v4"), None);
        assert_eq!(ServiceProtocolVersion::from_content_type("application/json"), None);
        assert_eq!(V7.to_string(), "V7");
        assert!(V7.has_run_completion_ack() && !V6.has_run_completion_ack());
        assert!(V7.has_future_tree() && !V6.has_future_tree());
        assert!(V6.has_random_seed() && !V5.has_random_seed());
    }

    #[test]
    fn manifest_content_types() {
        use EndpointManifestVersion as M;
        for v in M::NEWEST_FIRST {
            assert_eq!(M::from_content_type(v.content_type()), Some(v));
        }
        assert_eq!(
            M::from_content_type(" Application/VND.restate.endpointmanifest.v4+json ; charset=utf-8"),
            Some(M::V4)
        );
        assert_eq!(M::from_content_type("application/vnd.restate.endpointmanifest.v1+json"), None);
        assert_eq!(M::from_content_type(""), None);
        assert_eq!(M::V3.to_string(), "v3");
    }

    #[test]
    fn accept_negotiation_like_the_sdks() {
        use EndpointManifestVersion as M;
        assert_eq!(M::negotiate_from_accept(DISCOVERY_ACCEPT), Some(M::V4));
        let restate = "application/vnd.restate.endpointmanifest.v1+json, application/vnd.restate.endpointmanifest.v2+json, application/vnd.restate.endpointmanifest.v3+json, application/vnd.restate.endpointmanifest.v4+json";
        assert_eq!(M::negotiate_from_accept(restate), Some(M::V4));
        assert_eq!(M::negotiate_from_accept(M::V3.content_type()), Some(M::V3));
        assert_eq!(M::negotiate_from_accept(M::V2.content_type()), Some(M::V2));
        assert_eq!(M::negotiate_from_accept("application/vnd.restate.endpointmanifest.v1+json"), None);
        assert_eq!(M::negotiate_from_accept("*/*"), None);
        // keel's own Accept lists every version it can parse, newest first.
        let listed: Vec<_> = DISCOVERY_ACCEPT.split(',').map(str::trim).collect();
        let expected: Vec<_> = M::NEWEST_FIRST.iter().map(|v| v.content_type()).collect();
        assert_eq!(listed, expected);
    }
}
