//! The worker's small admin listener (`/metrics`, `/healthz`, `/readyz`), on hyper so the
//! worker does not link a web framework.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hookline_db::{Pool, ping};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// How long `/readyz` waits for the database: under the 1 s a probe may take, so a
/// database that hangs reads as unreachable instead of timing the probe out.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// What the probes look at.
pub(crate) struct AdminState {
    pub pool: Pool,
    pub consumer_connected: Arc<AtomicBool>,
}

/// Serves connections until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "admin listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

async fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "method_not_allowed" }),
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(
                hookline_telemetry::metrics_handle().render(),
            )));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        "/readyz" => readyz(state).await,
        path => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not_found", "detail": format!("GET {path}") }),
        ),
    }
}

/// Ready when the database answers and the consumer is attached to the broker: a worker
/// that cannot do either takes no work and should be looked at. Answers within 1 s: the
/// consumer state is a flag the consume loop keeps, and the ping is bounded.
async fn readyz(state: &AdminState) -> Response<Full<Bytes>> {
    let database = tokio::time::timeout(PING_TIMEOUT, ping(&state.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    let consumer = state.consumer_connected.load(Ordering::SeqCst);
    let ready = database && consumer;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": if database { "ok" } else { "unreachable" },
        "consumer": if consumer { "connected" } else { "disconnected" },
    });
    let mut response = json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    );
    if !ready {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
