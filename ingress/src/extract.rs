//! axum's `Path` and `Query` extractors, answering a malformed request with
//! the JSON error of this crate instead of axum's plain-text rejection (a
//! path segment that is not UTF-8 once decoded, a query flag that is not a
//! boolean, ...), so that every error a client sees is `{"message": ...}`.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::extract::Path` with a JSON rejection (same status).
pub(crate) struct Path<T>(pub T);

/// `axum::extract::Query` with a JSON rejection (same status).
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(r) => Err(ApiError::new(r.status(), r.body_text())),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(r) => Err(ApiError::new(r.status(), r.body_text())),
        }
    }
}
