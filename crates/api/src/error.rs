//! The one place where errors become HTTP responses: Octavia's WSME fault body
//! `{"faultcode", "faultstring", "debuginfo"}`. A 5xx never echoes internal text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rocta_model::Id;
use rocta_store::StoreError;

/// An API error: status and Octavia's message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A WSME-style 400 (type, enum, range errors).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Octavia's `ValidationException`: 400 "Validation failure: ...".
    pub fn validation(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Validation failure: {detail}"))
    }

    /// WSME's message for a field with a bad value.
    pub fn invalid_field(field: &str, value: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: '{value}'. {reason}"
        ))
    }

    /// 404 "`<Resource>` `<id>` not found."
    pub fn not_found(resource: &str, id: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{resource} {id} not found."))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A child write while the load balancer is not ACTIVE (`ImmutableObject`).
    pub fn immutable(lb_id: Id) -> Self {
        Self::conflict(format!(
            "Load Balancer {lb_id} is immutable and cannot be updated."
        ))
    }

    /// A load-balancer write in the wrong state (`LBPendingStateError`).
    pub fn lb_state(state: impl std::fmt::Display, lb_id: Id) -> Self {
        Self::conflict(format!(
            "Invalid state {state} of loadbalancer resource {lb_id}"
        ))
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Policy does not allow this request to be performed.",
        )
    }

    pub fn quota(resource: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("Quota has been met for resources: {resource}"),
        )
    }

    /// The amphora provider refusing an option (Octavia answers 501).
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Provider 'amphora' does not support a requested option: {what}"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error. Please check the logs.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            tracing::warn!(error = %e, "database busy");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is busy; retry the request.",
            );
        }
        tracing::error!(error = %e, "store error");
        ApiError::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let faultcode = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        let body = serde_json::json!({
            "faultcode": faultcode,
            "faultstring": self.message,
            "debuginfo": null,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The pecan-style body of a routing 404/405 (`{"code", "title", "description"}`).
pub fn routing_error(status: StatusCode) -> Response {
    let body = serde_json::json!({
        "code": status.as_u16(),
        "title": status.canonical_reason().unwrap_or(""),
        "description": "",
    });
    (status, axum::Json(body)).into_response()
}
