//! The public listener: actix-web's HTTP/1 service over connections that carry one
//! deadline more than actix-web gives them, so a slow client holds a connection for
//! seconds, never indefinitely.
//!
//! actix-web bounds the head of the *first* request of a connection
//! (`client_request_timeout`) and an idle kept-alive connection (`keep_alive`). Once a
//! byte of a later request arrives on a kept-alive connection, nothing bounds the rest of
//! its head (actix-http clears the keep-alive timer and does not start the head timer
//! again): a client sending one header byte a second holds the connection and its buffers
//! for hours. Every connection here is therefore [`Watched`]: outside a request (from the
//! accept, or from the end of its last answer, until its next request reaches the app) it
//! may spend at most [`BETWEEN_REQUESTS`], however its bytes trickle in; then its next
//! read or write fails and actix drops it. Inside a request, the handler's own limits
//! apply (the body timeout, `http.request_timeout`).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{HttpService, Request, Response};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Extensions, Server, Service, ServiceFactory, fn_service};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until};

/// How long a client may take, from connecting, to send its first request's head
/// (actix-web's `client_request_timeout`; 408 and close after it).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a kept-alive connection may sit idle, with not one byte of a next request
/// (actix-web's `keep_alive`).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Once the server decided to close a connection, how long it waits for the client to
/// acknowledge before dropping it (actix-web's `client_disconnect_timeout`).
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The most a connection may spend outside a request, in total: an idle keep-alive
/// period plus the time to send a head. The bound actix-web lacks for later requests.
pub const BETWEEN_REQUESTS: Duration =
    Duration::from_secs(KEEP_ALIVE.as_secs() + HEAD_TIMEOUT.as_secs());

/// What one connection is doing: shared by its IO ([`Watched`], which enforces the bound)
/// and the app's middleware ([`enter`], which marks requests in and out). Both live on
/// the connection's worker thread.
pub struct Activity {
    busy: Cell<usize>,
    idle_since: Cell<Instant>,
}

/// A request of a connection being handled; dropping it (the answer is ready, or the
/// request was abandoned) starts the connection's time outside requests again.
pub struct Busy(Rc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let busy = self.0.busy.get().saturating_sub(1);
        self.0.busy.set(busy);
        if busy == 0 {
            self.0.idle_since.set(Instant::now());
        }
    }
}

/// Marks `req`'s connection busy until the returned guard drops (call it from a
/// middleware around the whole app). `None` off a [`Watched`] connection (tests that
/// call the app directly).
pub fn enter(req: &actix_web::dev::ServiceRequest) -> Option<Busy> {
    let activity = req.conn_data::<Rc<Activity>>()?.clone();
    activity.busy.set(activity.busy.get() + 1);
    Some(Busy(activity))
}

/// A TCP connection whose reads and writes fail once it has spent
/// [`BETWEEN_REQUESTS`] outside a request. Its timer wakes the connection's task at that
/// moment, so a client that sends nothing at all is dropped on time too.
pub struct Watched {
    io: TcpStream,
    activity: Rc<Activity>,
    timer: Pin<Box<Sleep>>,
    armed_for: Instant,
}

impl Watched {
    fn new(io: TcpStream) -> Self {
        let now = Instant::now();
        let deadline = now + BETWEEN_REQUESTS;
        Self {
            io,
            activity: Rc::new(Activity {
                busy: Cell::new(0),
                idle_since: Cell::new(now),
            }),
            timer: Box::pin(sleep_until(deadline)),
            armed_for: deadline,
        }
    }

    /// An error once the connection has been outside a request for too long; otherwise
    /// arms the timer for that moment (registering this task to be woken then).
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.activity.busy.get() > 0 {
            return Ok(());
        }
        let deadline = self.activity.idle_since.get() + BETWEEN_REQUESTS;
        if deadline != self.armed_for {
            self.timer.as_mut().reset(deadline);
            self.armed_for = deadline;
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head within the time allowed between requests",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A client that does not read its answer is as slow as one that does not send.
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` with `workers` threads, every connection [`Watched`], the
/// actix timeouts above set explicitly, and a graceful stop that closes idle kept-alive
/// connections at once (as `actix_web::HttpServer` does).
///
/// # Errors
/// If the listener cannot be registered.
pub fn serve<F, I, S, B>(listener: TcpListener, workers: usize, app: F) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let builder = Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(30);
    let stopping = builder.graceful_shutdown_signal();
    Ok(builder
        .listen("hookline-public", listener, move || {
            let stopping = stopping.clone();
            let http = HttpService::build()
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(HEAD_TIMEOUT)
                .client_disconnect_timeout(DISCONNECT_TIMEOUT)
                .h1_allow_half_closed(true)
                .local_addr(addr)
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .on_connect_ext(|io: &Watched, ext: &mut Extensions| {
                    ext.insert(io.activity.clone());
                })
                .h1(map_config(
                    app().into_factory().map_err(|e| e.into().error_response()),
                    // Only URL generation and `ConnectionInfo` fallbacks read the app
                    // config's host and address; Hookline uses neither.
                    |_| AppConfig::default(),
                ));
            fn_service(|io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok((Watched::new(io), peer)))
            })
            .and_then(http)
        })?
        .run())
}
