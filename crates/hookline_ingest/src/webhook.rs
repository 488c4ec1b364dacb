use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use hookline_config::CompiledSource;
use hookline_db::NewEvent;
use hookline_domain::{Headers, RequestParts, TemplateInput};
use hookline_providers::Verifier;
use hookline_telemetry::{names, set_remote_parent, trace_id_of, traceparent_of};
use serde::Serialize;
use tracing::Instrument;

use crate::batcher::{Batcher, new_event_id};
use crate::error::WebhookError;
use crate::limits::{InFlight, Throttle};

/// How long a request's whole body may take to arrive once its head is in. actix-web
/// times out only the head (`client_request_timeout`); without this a client that sends
/// fewer bytes than its `Content-Length` and keeps the connection open would hold a
/// request (and its connection) forever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most header bytes (names plus values) a webhook may carry; they are stored with
/// the event. actix-web itself refuses (431, no body) a head over 128 KiB or with more
/// than 96 headers; this refuses, with the JSON error, anything between.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// One source as the webhook route serves it: its templates and its verifier.
pub struct Route {
    /// The validated source config (templates, lifecycle).
    pub source: Arc<CompiledSource>,
    /// Its signature or token check, built with the resolved secrets.
    pub verifier: Verifier,
}

/// What the webhook route needs, shared by every worker thread.
pub struct WebhookState {
    pub sources: BTreeMap<String, Route>,
    pub batcher: Batcher,
    pub max_body_bytes: usize,
    /// `http.request_timeout`: once the body is in, the commit must follow within it.
    pub request_timeout: hookline_domain::HumanDuration,
    /// Webhooks being handled, at most `http.max_in_flight`.
    pub in_flight: InFlight,
    /// Log lines for overload refusals (shed, deadline), at most one a second.
    pub overload_log: Throttle,
}

#[derive(Serialize)]
struct Accepted {
    status: &'static str,
    event_id: uuid::Uuid,
    duplicate: bool,
}

/// `POST /webhooks/{source}`: verify, key, store, answer. No outbound call happens here;
/// publishing follows the commit, off the request path.
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<WebhookState>,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let source_name = path.into_inner();
    let source = state.sources.get(&source_name);
    // Unknown names share one label: arbitrary paths must not grow the metric series.
    let label = source
        .map_or("unknown", |s| s.source.name.as_str())
        .to_string();
    // The server span of the HTTP semantic conventions; a provider's own traceparent (if
    // it sends one) becomes its parent.
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "webhook",
        otel.name = "POST /webhooks/{source}",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhooks/{source}",
        url.path = %req.path(),
        http.response.status_code = tracing::field::Empty,
        webhook.source = %label,
        event.id = tracing::field::Empty,
        trace_id = trace_id_of(incoming).unwrap_or_default(),
    );
    set_remote_parent(&span, incoming);
    let result = match source {
        None => Err(WebhookError::UnknownSource),
        // Refused before the body is read: overload must not cost memory.
        Some(source) => match state.in_flight.try_enter() {
            None => Err(WebhookError::Shed(state.in_flight.max())),
            Some(_slot) => {
                handle(&req, payload, source, &state, &span)
                    .instrument(span.clone())
                    .await
            }
        },
    };
    let outcome = match &result {
        Ok(a) if a.duplicate => "duplicate",
        Ok(_) => "accepted",
        Err(e) => e.outcome(),
    };
    metrics::counter!(names::INGEST_REQUESTS, "source" => label.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::INGEST_LATENCY, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    match &result {
        Ok(a) => {
            tracing::debug!(webhook.source = %label, event.id = %a.event_id, duplicate = a.duplicate, "webhook stored")
        }
        Err(WebhookError::Unavailable(cause)) => {
            tracing::warn!(webhook.source = %label, error = %cause, "webhook refused: database unavailable")
        }
        Err(e @ (WebhookError::Deadline(_) | WebhookError::Shed(_))) => {
            if let Some(refusals) = state.overload_log.admit() {
                tracing::warn!(webhook.source = %label, error = e.outcome(), detail = %e, refusals, "webhooks refused: overloaded (refusals counts those since the last line)")
            }
        }
        Err(e) => {
            tracing::info!(webhook.source = %label, error = e.code(), detail = %e, "webhook rejected")
        }
    }
    let status = match &result {
        Ok(a) if a.duplicate => StatusCode::OK,
        Ok(_) => StatusCode::ACCEPTED,
        Err(e) => actix_web::ResponseError::status_code(e),
    };
    span.record("http.response.status_code", status.as_u16());
    if let Ok(a) = &result {
        span.record("event.id", tracing::field::display(a.event_id));
    }
    let accepted = result?;
    Ok(HttpResponse::build(status).json(accepted))
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    state: &WebhookState,
    span: &tracing::Span,
) -> Result<Accepted, WebhookError> {
    let source = &*route.source;
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(WebhookError::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    refuse_content_encoding(req)?;
    let body = tokio::time::timeout(BODY_TIMEOUT, read_body(req, payload, state.max_body_bytes))
        .await
        .map_err(|_| WebhookError::BodyTimeout(BODY_TIMEOUT.as_secs()))??;
    // The deadline counts from here: the body's pace is the client's (BODY_TIMEOUT
    // bounds it); what follows is ours.
    let commit_by = tokio::time::Instant::now() + state.request_timeout.get();
    let headers = Headers::new(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec())),
    );
    let parts = RequestParts {
        source: &source.name,
        headers: &headers,
        query: req.query_string(),
        body: &body,
    };
    // Verify on the raw bytes before anything parses them.
    let verified = route
        .verifier
        .verify(parts, SystemTime::now())
        .map_err(|e| WebhookError::InvalidSignature(e.to_string()))?;

    let input = TemplateInput::new(verified.parts());
    let render = |field: &str, template: &hookline_domain::Template| {
        template
            .render(&input)
            .map_err(|e| WebhookError::BadPayload(format!("{field}: {e}")))
    };
    let dedup_key = render("dedup_key", &source.dedup_key)?;
    let resource_key = source
        .resource_key
        .as_ref()
        .map(|t| render("resource_key", t))
        .transpose()?;
    let status = source
        .status
        .as_ref()
        .map(|t| render("status", t))
        .transpose()?;
    drop(input);

    // A key already known to be committed gets the database's answer without the trip.
    if let Some(event_id) = state.batcher.committed_id(&source.name, &dedup_key) {
        metrics::counter!(names::INGEST_DEDUP_CACHE_HITS).increment(1);
        return Ok(Accepted {
            status: "duplicate",
            event_id,
            duplicate: true,
        });
    }

    let event = NewEvent {
        id: new_event_id(),
        source: source.name.clone(),
        dedup_key,
        resource_key,
        status,
        headers: NewEvent::headers_json(&headers),
        query: req.query_string().to_string(),
        body,
        // Our span's context when traces are exported; otherwise the caller's, passed on.
        traceparent: traceparent_of(span)
            .or_else(|| headers.get_str("traceparent").map(str::to_string)),
        dedup_horizon: source.retention.dedup_horizon,
    };
    // Past the deadline the request is answered 503 while its row may still be queued or
    // committing: nothing uncommitted is acknowledged, and a row that commits after all
    // makes the client's retry a duplicate.
    let stored = tokio::time::timeout_at(commit_by, state.batcher.insert(event))
        .await
        .map_err(|_| WebhookError::Deadline(state.request_timeout))?
        .map_err(WebhookError::Unavailable)?;
    Ok(Accepted {
        status: if stored.duplicate {
            "duplicate"
        } else {
            "accepted"
        },
        event_id: stored.event_id,
        duplicate: stored.duplicate,
    })
}

/// Refuses (415) a body with any `Content-Encoding` but `identity`, before reading it:
/// signatures cover the bytes as sent, and inflating a body invites a zip bomb.
fn refuse_content_encoding(req: &HttpRequest) -> Result<(), WebhookError> {
    for value in req.headers().get_all(CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let identity = text
            .split(',')
            .all(|coding| coding.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(WebhookError::UnsupportedEncoding(text.trim().to_string()));
        }
    }
    Ok(())
}

/// Reads the body, refusing (413) as soon as it is known to exceed `limit`: from
/// `Content-Length` before reading anything, or after at most `limit` bytes of a chunked
/// stream. Never buffers more than the limit.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, WebhookError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::PayloadTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| WebhookError::BadPayload(format!("could not read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
