use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use hookline_db::{
    DeliveryView, Event, EventFilter, Pool, event_deliveries, find_event, find_events,
    find_resource,
};
use hookline_domain::Secret;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::json_error;

/// What the admin listener needs.
pub struct AdminState {
    pub pool: Pool,
    pub token: Option<Secret>,
    pub metrics: PrometheusHandle,
}

/// Routes of the admin listener: `/metrics` (open: keep the listener off the public
/// network) and the bearer-protected `/v1/*` API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/v1/events/{id}", web::get().to(get_event))
        .route("/v1/events", web::get().to(list_events))
        .route(
            "/v1/resources/{source}/{resource_key}",
            web::get().to(get_resource),
        );
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Checks `Authorization: Bearer <token>` in constant time and returns the refusal, if
/// any; the admin API is off when no token is configured.
fn deny(req: &HttpRequest, state: &AdminState) -> Option<HttpResponse> {
    let Some(token) = &state.token else {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "admin_api_disabled",
            Some("set admin.token to enable the admin API".into()),
        ));
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Digests of equal length, so not even the token's length shows in the timing.
    let matches = Sha256::digest(presented.as_bytes())
        .ct_eq(Sha256::digest(token.expose().as_bytes()).as_slice());
    if bool::from(matches) && !presented.is_empty() {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some("missing or wrong bearer token".into()),
        ))
    }
}

fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "admin query failed");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None)
}

/// An event as the admin API shows it: the body as text when it is UTF-8, base64 otherwise;
/// once retention pruned the payload, `"payload_pruned": true` and no body, headers or
/// query.
pub fn event_json(e: &Event) -> serde_json::Value {
    let body = match std::str::from_utf8(&e.body) {
        _ if e.payload_pruned => json!({}),
        Ok(text) => json!({ "body": text }),
        Err(_) => {
            json!({ "body_base64": base64::engine::general_purpose::STANDARD.encode(&e.body) })
        }
    };
    let fmt = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let mut value = json!({
        "id": e.id,
        "source": e.source,
        "dedup_key": e.dedup_key,
        "resource_key": e.resource_key,
        "status": e.status,
        "state": e.state,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "received_at": fmt(Some(e.received_at)),
        "processed_at": fmt(e.processed_at),
        "headers": e.headers,
        "query": e.query,
        "body_bytes": e.body.len(),
        "payload_pruned": e.payload_pruned,
    });
    if e.payload_pruned {
        for gone in ["headers", "query", "body_bytes"] {
            value[gone] = serde_json::Value::Null;
        }
    }
    if let (Some(map), serde_json::Value::Object(body)) = (value.as_object_mut(), body) {
        map.extend(body);
    }
    value
}

/// An event's deliveries as the admin API shows them (`GET /v1/events/{id}`).
pub fn deliveries_json(deliveries: &[DeliveryView]) -> serde_json::Value {
    let fmt = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    deliveries
        .iter()
        .map(|d| {
            json!({
                "destination": d.destination,
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "latency_ms": d.latency_ms,
                "next_attempt_at": fmt(Some(d.next_attempt_at)),
                "delivered_at": fmt(d.delivered_at),
            })
        })
        .collect()
}

async fn get_event(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Some(denied) = deny(&req, &state) {
        return denied;
    }
    let Ok(id) = path.parse::<Uuid>() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("event id is not a UUID".into()),
        );
    };
    let mut conn = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match find_event(&mut conn, id).await {
        Ok(Some(event)) => {
            let deliveries = match event_deliveries(&mut conn, id).await {
                Ok(deliveries) => deliveries,
                Err(e) => return unavailable(e),
            };
            let mut value = event_json(&event);
            if let Some(map) = value.as_object_mut() {
                map.insert("deliveries".into(), deliveries_json(&deliveries));
            }
            HttpResponse::Ok().json(value)
        }
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some(format!("no event {id}")),
        ),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    source: Option<String>,
    dedup_key: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_events(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Some(denied) = deny(&req, &state) {
        return denied;
    }
    let q = query.into_inner();
    let wanted = match q
        .state
        .as_deref()
        .map(str::parse::<hookline_domain::EventState>)
    {
        None => None,
        Some(Ok(state)) => Some(state),
        Some(Err(e)) => {
            return json_error(StatusCode::BAD_REQUEST, "bad_request", Some(e.to_string()));
        }
    };
    let filter = EventFilter {
        source: q.source,
        dedup_key: q.dedup_key,
        state: wanted,
        since: None,
        until: None,
        limit: q.limit.unwrap_or(100),
    };
    let mut conn = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match find_events(&mut conn, &filter).await {
        Ok(events) => HttpResponse::Ok()
            .json(json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() })),
        Err(e) => unavailable(e),
    }
}

async fn get_resource(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    if let Some(denied) = deny(&req, &state) {
        return denied;
    }
    let (source, key) = path.into_inner();
    let mut conn = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match find_resource(&mut conn, &source, &key).await {
        Ok(Some(view)) => HttpResponse::Ok().json(view),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some(format!("no resource {source}/{key}")),
        ),
        Err(e) => unavailable(e),
    }
}
