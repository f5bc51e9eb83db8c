//! Errors as `application/problem+json` (RFC 9457).

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orchestrate_core::store::StoreError;
use orchestrate_core::Error;
use serde_json::json;

/// A failed request: its status and what to tell the client.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    /// The error's code (`unknown_workflow`, `execution_not_found`, ..).
    code: &'static str,
}

impl Problem {
    /// A problem with `status`, a short `title`, a machine `code` and a
    /// `detail` for people.
    pub fn new(
        status: StatusCode,
        title: &'static str,
        code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            code,
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::UnknownWorkflow { .. }
            | Error::ExecutionNotFound(_)
            | Error::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Error::NotInterrupted { .. } | Error::Store(StoreError::Conflict { .. }) => {
                StatusCode::CONFLICT
            }
            Error::Validation(_)
            | Error::UnknownAgent { .. }
            | Error::UnknownPattern { .. }
            | Error::PatternParams { .. }
            | Error::ValueTooDeep { .. }
            | Error::WorkflowMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, title, error.code(), error.to_string())
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        // Axum's own statuses: 400 malformed JSON, 413 too large, 415 not
        // JSON, 422 JSON of the wrong shape.
        let status = rejection.status();
        let title = status.canonical_reason().unwrap_or("Bad Request");
        Self::new(status, title, "bad_body", rejection.body_text())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
