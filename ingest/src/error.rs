//! The one error type of the request path and its mapping to HTTP responses.
//!
//! Every failure a client can see is a variant here, so the status code and the JSON body
//! (`{"success":false,"error":{"code","message","field"?}}`, contracts.md) are decided in one place.
//! A partially rejected batch is also expressed here: it answers 400 with its own body shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// Seconds a client is asked to wait after a 503 before retrying.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 5;

/// One rejected message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    /// The offending field (`""` for the message as a whole).
    pub field: String,
    /// A stable machine-readable rule name: required, type, enum, format, max_length, max_size.
    pub rule: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("origin {0} is not allowed for this write key")]
    OriginNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("request body stalled for more than {0} s")]
    BodyTimeout(u64),
    #[error("{0}")]
    BadFraming(String),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("invalid gzip body: {0}")]
    InvalidGzip(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("{} message(s) rejected", rejected.len())]
    Rejected {
        accepted: usize,
        rejected: Vec<Rejection>,
    },
    #[error("rate limit per {scope} exceeded; retry after {retry_after} s")]
    RateLimited {
        /// `address` or `key`.
        scope: &'static str,
        /// Seconds until a request would pass (the `Retry-After` header).
        retry_after: u64,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            IngestError::BodyRead(_)
            | IngestError::BadFraming(_)
            | IngestError::InvalidGzip(_)
            | IngestError::InvalidJson(_)
            | IngestError::InvalidField { .. }
            | IngestError::Rejected { .. } => StatusCode::BAD_REQUEST,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::NotFound => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Stable machine-readable code for the `error.code` field.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::OriginNotAllowed(_) => "origin_not_allowed",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::PayloadTooLarge(_) => "payload_too_large",
            IngestError::BodyTimeout(_) => "request_timeout",
            IngestError::BodyRead(_) => "body_read_error",
            IngestError::BadFraming(_) => "bad_framing",
            IngestError::InvalidGzip(_) => "invalid_gzip",
            IngestError::InvalidJson(_) => "invalid_json",
            IngestError::InvalidField { .. } => "invalid_body",
            IngestError::Rejected { .. } => "rejected",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::NotFound => "not_found",
            IngestError::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The JSON body of the response.
    pub fn body(&self) -> serde_json::Value {
        match self {
            IngestError::Rejected { accepted, rejected } => json!({
                "success": false,
                "accepted": accepted,
                "rejected": rejected,
            }),
            IngestError::InvalidField { field, message } => json!({
                "success": false,
                "error": {"code": self.code(), "message": message, "field": field},
            }),
            _ => json!({
                "success": false,
                "error": {"code": self.code(), "message": self.to_string()},
            }),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        match &self {
            IngestError::Unavailable(_) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_UNAVAILABLE_SECS),
                );
            }
            IngestError::RateLimited { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            IngestError::Unauthorized(_) => {
                // Basic auth is one of the accepted forms; say so without triggering a browser
                // login dialog (no realm prompt for XHR/fetch anyway).
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_the_contract() {
        let e = IngestError::PayloadTooLarge("too big".into());
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            e.body(),
            json!({"success":false,"error":{"code":"payload_too_large","message":"too big"}})
        );
        let e = IngestError::InvalidField {
            field: "batch".into(),
            message: "batch must be an array".into(),
        };
        assert_eq!(e.body()["error"]["field"], "batch");
        let e = IngestError::Rejected {
            accepted: 1,
            rejected: vec![Rejection {
                index: 2,
                field: "event".into(),
                rule: "required",
                message: "track needs an event".into(),
            }],
        };
        assert_eq!(
            e.body(),
            json!({"success":false,"accepted":1,"rejected":[
                {"index":2,"field":"event","rule":"required","message":"track needs an event"}]})
        );
        let r = IngestError::Unavailable("disk full".into()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let e = IngestError::RateLimited {
            scope: "key",
            retry_after: 3,
        };
        assert_eq!(e.body()["error"]["code"], "rate_limited");
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
