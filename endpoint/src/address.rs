//! Where a deployment lives and how to reach it.

use std::fmt;

use std::collections::HashSet;

use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::client::HttpVersion;

/// A registered HTTP deployment: what `POST /deployments` names, minus the bookkeeping.
///
/// Every request to the deployment (discovery now, invocations later) is built from this, so
/// the same headers and HTTP version apply to all of them, as Restate does.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointAddress {
    /// Base URL of the SDK endpoint, e.g. `http://127.0.0.1:9080`, possibly with a path
    /// prefix (`http://gateway/services/greeter`) when the endpoint sits behind a router:
    /// the SDKs route on the path *suffix*, so requests go to `{uri}/discover`,
    /// `{uri}/invoke/...`. Only `http` is supported (keel has no TLS client yet).
    pub uri: Uri,
    /// Sent on discovery and on every invocation request, typically credentials for a
    /// gateway in front of the endpoint. They replace keel's own header of the same name
    /// (e.g. `accept`); a name listed twice is sent twice.
    pub additional_headers: Vec<(HeaderName, HeaderValue)>,
    /// Speak HTTP/1.1 instead of h2c. Needed for endpoints that cannot do HTTP/2 (FaaS
    /// dev servers, uvicorn); such endpoints can only do request/response invocations.
    pub use_http_11: bool,
}

impl EndpointAddress {
    /// An h2c deployment at `uri` without extra headers, the common case.
    pub fn new(uri: Uri) -> Self {
        EndpointAddress { uri, additional_headers: Vec::new(), use_http_11: false }
    }

    /// The HTTP version every request to this deployment uses.
    pub fn http_version(&self) -> HttpVersion {
        if self.use_http_11 { HttpVersion::Http11 } else { HttpVersion::Http2 }
    }

    /// The URI of `suffix` (e.g. `/discover`) under the base URI: the base path keeps its
    /// prefix, exactly one `/` separates the two, and a query string on the base URI is
    /// kept at the end (some gateways authenticate with one).
    ///
    /// Fails when the suffix holds characters a URI cannot, or the base has a host but no
    /// scheme. It does not insist on an absolute base: discovery checks that (see
    /// [`crate::DiscoveryError::InvalidUri`]), and addresses are only stored once discovered.
    pub fn join(&self, suffix: &str) -> Result<Uri, http::Error> {
        let mut parts = self.uri.clone().into_parts();
        let (base_path, query) = match &parts.path_and_query {
            Some(pq) => (pq.path(), pq.query()),
            None => ("", None),
        };
        let base_path = base_path.trim_end_matches('/');
        let suffix = suffix.trim_start_matches('/');
        let mut joined = String::with_capacity(base_path.len() + suffix.len() + query.map_or(0, |q| q.len() + 1) + 1);
        joined.push_str(base_path);
        joined.push('/');
        joined.push_str(suffix);
        if let Some(query) = query {
            joined.push('?');
            joined.push_str(query);
        }
        parts.path_and_query = Some(PathAndQuery::try_from(joined)?);
        Ok(Uri::from_parts(parts)?)
    }

    /// Adds [`additional_headers`](Self::additional_headers) to a request's `headers`: the
    /// first occurrence of a name replaces what is there (so a registration can override
    /// keel's `accept`, as Restate allows), later occurrences of that name are appended.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        let mut replaced = HashSet::new();
        for (name, value) in &self.additional_headers {
            if replaced.insert(name) {
                headers.insert(name.clone(), value.clone());
            } else {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// Prints header *names* only: additional headers usually carry credentials, and addresses
/// end up in logs and error reports.
impl fmt::Debug for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.additional_headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("EndpointAddress")
            .field("uri", &self.uri)
            .field("additional_headers", &names)
            .field("use_http_11", &self.use_http_11)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(base: &str, suffix: &str) -> String {
        EndpointAddress::new(base.parse().unwrap()).join(suffix).unwrap().to_string()
    }

    #[test]
    fn joins_paths_with_exactly_one_slash() {
        assert_eq!(join("http://127.0.0.1:9080", "/discover"), "http://127.0.0.1:9080/discover");
        assert_eq!(join("http://127.0.0.1:9080/", "/discover"), "http://127.0.0.1:9080/discover");
        assert_eq!(join("http://h:1/prefix", "/discover"), "http://h:1/prefix/discover");
        assert_eq!(join("http://h:1/prefix/", "discover"), "http://h:1/prefix/discover");
        assert_eq!(join("http://h:1/a/b//", "//invoke/Svc/run"), "http://h:1/a/b/invoke/Svc/run");
        assert_eq!(join("http://h:1/p?token=x", "/discover"), "http://h:1/p/discover?token=x");
    }

    #[test]
    fn rejects_what_cannot_be_a_uri() {
        let base = EndpointAddress::new(Uri::from_static("http://h:1/p"));
        assert!(base.join("/a b").is_err());
        let authority_only = EndpointAddress::new(Uri::from_static("127.0.0.1:9080"));
        assert!(authority_only.join("/discover").is_err());
    }

    #[test]
    fn additional_headers_replace_then_append() {
        let mut addr = EndpointAddress::new(Uri::from_static("http://h:1"));
        let x = HeaderName::from_static("x-token");
        addr.additional_headers.push((http::header::ACCEPT, HeaderValue::from_static("a/b")));
        addr.additional_headers.push((x.clone(), HeaderValue::from_static("1")));
        addr.additional_headers.push((x.clone(), HeaderValue::from_static("2")));
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("keel/default"));
        headers.insert(x.clone(), HeaderValue::from_static("stale"));
        addr.apply_headers(&mut headers);
        assert_eq!(headers.get_all(http::header::ACCEPT).iter().collect::<Vec<_>>(), ["a/b"]);
        assert_eq!(headers.get_all(&x).iter().collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn debug_hides_header_values() {
        let mut addr = EndpointAddress::new(Uri::from_static("http://h:1"));
        addr.additional_headers.push((http::header::AUTHORIZATION, HeaderValue::from_static("Bearer secret")));
        let shown = format!("{addr:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(addr.http_version(), HttpVersion::Http2);
        addr.use_http_11 = true;
        assert_eq!(addr.http_version(), HttpVersion::Http11);
    }
}
