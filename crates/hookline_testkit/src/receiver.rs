//! A webhook receiver for delivery tests: an HTTP/1.1 server on port 0 that answers each
//! request as a script says and records every request it got.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// No answer for an hour (the sender's timeout fires first).
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names (lower case) and values, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// How it was answered.
    pub reply: Reply,
}

impl Received {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `webhook-id`, or empty.
    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").unwrap_or_default()
    }
}

/// A script: `(request, how many requests with its webhook-id arrived so far, this one
/// included)` to the answer.
type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

struct State {
    received: Vec<Received>,
    per_id: HashMap<String, usize>,
    in_flight: usize,
    max_in_flight: usize,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    script: Arc<Mutex<Arc<Script>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on 127.0.0.1, port 0, answering 204 until [`Receiver::script`] says
    /// otherwise.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            received: Vec::new(),
            per_id: HashMap::new(),
            in_flight: 0,
            max_in_flight: 0,
        }));
        let script: Arc<Mutex<Arc<Script>>> =
            Arc::new(Mutex::new(Arc::new(|_: &Received, _: usize| {
                Reply::Status(204)
            })));
        let task = tokio::spawn(serve(listener, state.clone(), script.clone()));
        Self {
            addr,
            state,
            script,
            task,
        }
    }

    /// The URL to deliver to (`path` appended).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers from now on as `script` says.
    pub fn script(&self, script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) {
        *self.script.lock().expect("script lock") = Arc::new(script);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state lock").received.clone()
    }

    /// The most requests that were open at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().expect("state lock").max_in_flight
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, script: Arc<Mutex<Arc<Script>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let script = script.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                let script = script.clone();
                async move { Ok::<_, Infallible>(answer(request, &state, &script).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    state: &Mutex<State>,
    script: &Mutex<Arc<Script>>,
) -> Response<Full<Bytes>> {
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let mut received = Received {
        headers,
        body,
        at: Instant::now(),
        reply: Reply::Status(204),
    };
    let nth = {
        let mut state = state.lock().expect("state lock");
        let n = state
            .per_id
            .entry(received.webhook_id().to_string())
            .or_default();
        *n += 1;
        *n
    };
    let script = script.lock().expect("script lock").clone();
    received.reply = script(&received, nth);
    let reply = received.reply;
    {
        let mut state = state.lock().expect("state lock");
        state.received.push(received);
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
    }
    // Counted down when the answer is sent or the sender gave up (the future is dropped).
    let _in_flight = InFlight(state);
    match reply {
        Reply::Status(code) => status(code),
        Reply::RetryAfter(code, secs) => {
            let mut response = status(code);
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from(secs),
            );
            response
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            status(204)
        }
    }
}

struct InFlight<'a>(&'a Mutex<State>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
