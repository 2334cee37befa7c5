//! Optional bearer-token authentication of the admin API and the ingress.
//!
//! Either HTTP surface may be given a token; it then serves a request only
//! if it carries `Authorization: Bearer <token>` (what the `restate` CLI
//! sends to the admin API), and answers anything else with 401, a JSON
//! `{"message": ...}` body and `WWW-Authenticate: Bearer`. Health checks
//! stay open: load balancers and orchestrators probe them without secrets,
//! and they reveal nothing but liveness. Each router leaves its health
//! routes out of [`protect`].
//!
//! The token is compared in constant time, so the time a refusal takes
//! says nothing about how many leading bytes of a guess were right.

use crate::error::ApiError;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// `router` with every route (and its fallbacks) behind the bearer token,
/// or unchanged without a token. `render` turns the 401 into the router's
/// error shape.
///
/// An empty token matches no request (an empty `Bearer` credential is
/// refused), so a misconfigured empty token locks the surface instead of
/// opening it.
pub(crate) fn protect<S>(router: Router<S>, token: Option<&str>, render: fn(ApiError) -> Response) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let Some(token) = token else { return router };
    let expected: Arc<[u8]> = token.as_bytes().into();
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let expected = expected.clone();
        async move {
            if authorized(&expected, request.headers()) {
                return next.run(request).await;
            }
            let mut response = render(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong credentials: send the header 'Authorization: Bearer <token>'",
            ));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }))
}

/// Whether the request's `Authorization` header carries the expected bearer
/// token. The scheme is case-insensitive (RFC 9110 §11.1).
fn authorized(expected: &[u8], headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return false };
    let Some((scheme, credentials)) = value.to_str().ok().and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    let presented = credentials.trim_start().as_bytes();
    // `subtle` compares equal lengths without an early exit at the first
    // difference (a differing length still fails, without saying where).
    scheme.eq_ignore_ascii_case("bearer") && !presented.is_empty() && bool::from(expected.ct_eq(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn reads_bearer_credentials() {
        assert!(authorized(b"s3cr3t", &with("Bearer s3cr3t")));
        assert!(authorized(b"s3cr3t", &with("bearer  s3cr3t ")));
        assert!(!authorized(b"s3cr3t", &HeaderMap::new()));
        assert!(!authorized(b"s3cr3t", &with("Basic s3cr3t")));
        assert!(!authorized(b"s3cr3t", &with("Bearer s3cr3")));
        assert!(!authorized(b"s3cr3t", &with("Bearers3cr3t")));
        assert!(!authorized(b"", &with("Bearer ")));
        for other in ["s3cr3T", "s3cr3", "s3cr3ts", "000000"] {
            assert!(!authorized(b"s3cr3t", &with(&format!("Bearer {other}"))), "{other:?}");
        }
    }
}
