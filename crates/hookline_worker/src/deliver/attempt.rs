//! One delivery attempt: the signed `POST`, and what its answer means.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hookline_config::Destination;
use hookline_db::ClaimedDelivery;
use hookline_providers::Signer;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The HTTP client of one destination (its own connection pool).
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Most bytes of a response body read (and dropped) so its connection can be reused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Builds the client: HTTP/1.1, TLS by rustls against the system's CA store.
pub(crate) fn client(destination: &Destination) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(destination.timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(builder) => builder,
        Err(e) => {
            tracing::warn!(
                destination = %destination.name,
                error = %e,
                "no system CA certificates found; https deliveries will fail verification"
            );
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls_config_without_roots())
        }
    };
    let https = builder.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(destination.concurrency)
        .build(https)
}

/// A TLS configuration that trusts nothing: every https handshake then fails with a
/// certificate error, which is retried and visible as `last_error`.
fn rustls_config_without_roots() -> rustls::ClientConfig {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        // ring supports the default versions; this branch is not reachable in practice.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 2xx.
    Delivered { status: u16 },
    /// Worth retrying: 408, 429, 5xx, a timeout or a connection error. `retry_after` is
    /// the destination's `Retry-After`, if it sent one.
    Transient {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Never worth retrying: another 4xx (or a 1xx/3xx: redirects are not followed).
    /// `gone` is 410, which also pauses the destination.
    Refused {
        status: u16,
        error: String,
        gone: bool,
    },
    /// The request could not even be built (the event is gone, a header is unusable).
    Unsendable { error: String },
}

impl Answer {
    /// Whether the answer says the destination is up (for the circuit breaker).
    pub(crate) fn destination_works(&self) -> bool {
        !matches!(self, Answer::Transient { .. })
    }
}

/// Classifies a response status (and its `Retry-After`, read at `now`).
pub(crate) fn classify(status: StatusCode, retry_after: Option<&str>, now: SystemTime) -> Answer {
    let code = status.as_u16();
    if status.is_success() {
        return Answer::Delivered { status: code };
    }
    let reason = status.canonical_reason().unwrap_or("");
    let error = format!("HTTP {code} {reason}").trim_end().to_string();
    if code == 408 || code == 429 || status.is_server_error() {
        return Answer::Transient {
            status: Some(code),
            error,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        };
    }
    Answer::Refused {
        status: code,
        gone: code == 410,
        error: if status.is_redirection() {
            format!("{error} (redirects are not followed)")
        } else {
            error
        },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// is no delay; anything unparsable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::from(now);
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Everything one attempt needs besides the claimed row.
pub(crate) struct Sender {
    pub(crate) destination: Destination,
    pub(crate) uri: Uri,
    pub(crate) signer: Signer,
    pub(crate) extra_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) client: HttpClient,
}

impl Sender {
    /// POSTs `delivery` once, within the destination's timeout, with `traceparent`
    /// (continuing the event's trace) when there is one.
    pub(crate) async fn attempt(
        &self,
        delivery: &ClaimedDelivery,
        traceparent: Option<&str>,
    ) -> Answer {
        let request = match self.request(delivery, traceparent) {
            Ok(request) => request,
            Err(error) => return Answer::Unsendable { error },
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // Drain a little of the body so the connection can be reused; a larger or
            // failing body only costs the connection.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        };
        match tokio::time::timeout(self.destination.timeout, exchange).await {
            Err(_) => Answer::Transient {
                status: None,
                error: format!(
                    "timed out after {} ms",
                    self.destination.timeout.as_millis()
                ),
                retry_after: None,
            },
            Ok(Err(e)) => Answer::Transient {
                status: None,
                error: connection_error(&e),
                retry_after: None,
            },
            Ok(Ok((status, retry_after))) => {
                classify(status, retry_after.as_deref(), SystemTime::now())
            }
        }
    }

    fn request(
        &self,
        delivery: &ClaimedDelivery,
        traceparent: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let Some(payload) = &delivery.payload else {
            return Err("the event's payload is no longer stored (retention pruned it)".into());
        };
        let id = delivery.event_id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let signature = self.signer.sign(&id, timestamp, &payload.body);
        let content_type = payload
            .headers
            .get("content-type")
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
        let mut builder = Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(
                hyper::header::USER_AGENT,
                concat!("hookline/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("hookline-source", header_value(&delivery.source)?)
            .header("hookline-attempt", delivery.attempt.to_string());
        for (name, value) in [
            ("hookline-resource-key", &delivery.resource_key),
            ("hookline-status", &delivery.status),
            ("hookline-outcome", &delivery.outcome),
        ] {
            if let Some(value) = value {
                builder = builder.header(name, header_value(value)?);
            }
        }
        if let Some(tp) = traceparent.and_then(|tp| HeaderValue::from_str(tp).ok()) {
            builder = builder.header("traceparent", tp);
        }
        for (name, value) in &self.extra_headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(payload.body.clone())))
            .map_err(|e| format!("building the request: {e}"))
    }
}

/// A value for a `hookline-*` header; a key or status with control characters cannot be
/// sent as a header and fails the delivery with that reason.
fn header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| {
        format!("{value:?} cannot be sent as a header value (control or non-ASCII characters)")
    })
}

/// A connection error's message with its cause chain (hyper's top level says only
/// "client error (Connect)").
fn connection_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_delivered_retried_and_refused() {
        let now = SystemTime::now();
        let c = |code: u16| classify(StatusCode::from_u16(code).unwrap(), None, now);
        assert_eq!(c(200), Answer::Delivered { status: 200 });
        assert_eq!(c(204), Answer::Delivered { status: 204 });
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(c(code), Answer::Transient { .. }), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 301] {
            assert!(
                matches!(c(code), Answer::Refused { gone: false, .. }),
                "{code}"
            );
        }
        assert!(matches!(c(410), Answer::Refused { gone: true, .. }));
        assert!(!c(503).destination_works());
        assert!(c(404).destination_works());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 2023-11-14T22:13:20Z is 1_700_000_000; two minutes later:
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let answer = classify(StatusCode::TOO_MANY_REQUESTS, Some("3"), now);
        assert!(matches!(
            answer,
            Answer::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
    }
}
