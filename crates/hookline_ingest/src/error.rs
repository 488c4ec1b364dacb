use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Everything `POST /webhooks/{source}` can answer besides success. Each maps to one
/// status code and a JSON body `{"error": <code>, "detail": <text>}`; nothing a client
/// sends produces a 500.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No source has this name.
    #[error("unknown source")]
    UnknownSource,
    /// The body is larger than `http.max_body_bytes`.
    #[error("body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The signature or token did not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// A key template could not be rendered (missing part, body not JSON, too long).
    #[error("{0}")]
    BadPayload(String),
    /// A `Content-Encoding` other than `identity`: bodies are verified and stored as
    /// sent, and nothing is decompressed (no zip bomb can inflate past the limit).
    #[error("content-encoding {0} is not accepted")]
    UnsupportedEncoding(String),
    /// The request's headers (names and values) add up to more than
    /// [`crate::webhook::MAX_HEADER_BYTES`]; they would be stored with the event.
    #[error("headers exceed {0} bytes")]
    HeadersTooLarge(usize),
    /// The body did not arrive within [`crate::webhook::BODY_TIMEOUT`].
    #[error("body not received within {0} s")]
    BodyTimeout(u64),
    /// The database (or the request body stream) is unavailable: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Not committed within `http.request_timeout` of the body's arrival (a stalled or
    /// overloaded database). It may still commit; the retry is then a duplicate.
    #[error("not stored within {0}")]
    Deadline(hookline_domain::HumanDuration),
    /// `http.max_in_flight` webhooks are being handled already: refused at once, before
    /// the body is read, so overload costs no memory.
    #[error("more than {0} webhooks in flight")]
    Shed(usize),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl WebhookError {
    /// The machine-readable code, also the metrics `outcome` label.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::UnknownSource => "unknown_source",
            WebhookError::PayloadTooLarge { .. } => "payload_too_large",
            WebhookError::InvalidSignature(_) => "invalid_signature",
            WebhookError::BadPayload(_) => "bad_payload",
            WebhookError::UnsupportedEncoding(_) => "unsupported_encoding",
            WebhookError::BodyTimeout(_) => "request_timeout",
            WebhookError::HeadersTooLarge(_) => "headers_too_large",
            WebhookError::Unavailable(_) | WebhookError::Deadline(_) | WebhookError::Shed(_) => {
                "unavailable"
            }
        }
    }

    /// The metrics `outcome` label: the code, except that the two overload refusals are
    /// told apart from a database that is down.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::Deadline(_) => "deadline",
            WebhookError::Shed(_) => "shed",
            other => other.code(),
        }
    }

    /// A 503: the client should retry later (`Retry-After`).
    fn retry_later(&self) -> bool {
        matches!(
            self,
            WebhookError::Unavailable(_) | WebhookError::Deadline(_) | WebhookError::Shed(_)
        )
    }
}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::UnknownSource => StatusCode::NOT_FOUND,
            WebhookError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadPayload(_) => StatusCode::BAD_REQUEST,
            WebhookError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            WebhookError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            WebhookError::Unavailable(_) | WebhookError::Deadline(_) | WebhookError::Shed(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            WebhookError::UnknownSource => None,
            // Internal causes are logged, not sent: they may name hosts or users.
            WebhookError::Unavailable(_) => {
                Some("temporarily unavailable, retry later".to_string())
            }
            WebhookError::Deadline(_) | WebhookError::Shed(_) => {
                Some(format!("{self}, retry later"))
            }
            other => Some(other.to_string()),
        };
        let mut response = HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.code(),
            detail,
        });
        if matches!(self, WebhookError::BodyTimeout(_)) {
            // The connection still holds the unread rest of the body: do not reuse it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.retry_later() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// A JSON error body for the non-webhook routes (admin API, fallbacks).
pub fn json_error(status: StatusCode, code: &str, detail: Option<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: code,
        detail,
    })
}
