//! The accept loop: Tessera's own replacement for `axum::serve`, so that nobody can hold the
//! door (issue 13, findings 2 and 3).
//!
//! `axum::serve` 0.8 exposes none of hyper's connection settings and sets no timer, so a client
//! that connects and sends nothing, or sends one header byte every few seconds, kept its socket
//! (and a file descriptor) forever. Here every connection is bounded:
//!
//! - **Cap.** At most [`ConnectionLimits::max_connections`] connections are served at once (an
//!   [`Arc<Semaphore>`] permit per connection, held until its socket is closed). Beyond the cap a
//!   new connection is accepted, answered with a minimal `503` in the unified error format
//!   (`{"error":"service_unavailable",...}`, `Retry-After: 1`, `Connection: close`) and closed;
//!   at most [`MAX_REFUSING`] such answers are in flight, past that the socket is closed at once.
//! - **First byte.** A client that connects and sends nothing is closed after
//!   [`ConnectionLimits::header_read_timeout`] (a `peek` with a timeout before hyper sees the
//!   socket: hyper's protocol detection waits forever, hyper issue #3756).
//! - **Headers.** HTTP/1 request headers must arrive whole within `header_read_timeout` (hyper's
//!   timer, started when hyper begins reading a request head, not reset per byte: a slowloris is
//!   cut). hyper also starts that timer while a kept-alive HTTP/1 connection waits for its next
//!   request, so such a connection lives at most `min(header_read_timeout, idle_timeout)`.
//! - **Idle.** A connection with no request in flight and no byte read or written for
//!   [`ConnectionLimits::idle_timeout`] is shut down gracefully (HTTP/1: closed; HTTP/2: GOAWAY).
//!   HTTP/2 also pings its peer every [`H2_KEEP_ALIVE_INTERVAL`] and allows
//!   [`H2_MAX_CONCURRENT_STREAMS`] streams per connection.
//! - **Lingering close.** When hyper answers before reading the whole request body (a 413, or any
//!   early error), it stops reading; closing a socket with unread input makes the kernel send a
//!   reset, and a client still writing its body then gets a broken pipe instead of the answer.
//!   So when a connection that answered at least one request closes, its socket is half-closed
//!   (FIN after the response) and the rest of the input is read and discarded, up to
//!   [`LINGER_MAX_BYTES`] and [`LINGER_MAX_TIME`], until the client closes its side or stops
//!   sending for [`LINGER_QUIET`] (RFC 9112 section 9.6). The connection keeps its permit
//!   meanwhile, so lingering sockets count against the cap. A connection that never got a
//!   request through (a slowloris cut by the header timeout) is closed at once.
//! - **Graceful shutdown.** When the shutdown future completes, the listener stops accepting,
//!   every connection is asked to finish its in-flight requests and close, and [`serve`]
//!   returns once all have (as `axum::serve(...).with_graceful_shutdown` did).
//!
//! Each request carries [`ConnectInfo<SocketAddr>`] (the peer address) as `axum::serve` gave it:
//! the client-address extractors rely on it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
// Tokio's monotonic clock: connection deadlines follow the runtime's timer (and its paused time
// in tests); they are not decisions about the time of day (A4).
use tokio::time::Instant;
use tower::ServiceExt;

/// How connections are bounded. The defaults are safe for a public listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a new connection may take to send its first byte, and an HTTP/1 request its
    /// whole header block (default 10 s).
    pub header_read_timeout: Duration,
    /// How long a connection may sit without a request in flight and without traffic before it
    /// is closed (default 60 s).
    pub idle_timeout: Duration,
    /// How many connections are served at once; more are refused with a 503 (default 4096).
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits configured by HEADER_READ_TIMEOUT_SECS, IDLE_TIMEOUT_SECS and
    /// MAX_CONNECTIONS.
    pub fn from_config(config: &crate::config::Config) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// At most this many refusals (the 503 beyond the cap) are written at once; past that, a
/// connection over the cap is closed without an answer.
pub const MAX_REFUSING: usize = 64;
/// At most one `connection_refused` log line per this interval (it counts the refusals).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// How long writing a refusal may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Lingering close: at most this many bytes of unread input are discarded.
pub const LINGER_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Lingering close: for at most this long.
pub const LINGER_MAX_TIME: Duration = Duration::from_secs(5);
/// Lingering close: ends when the client has sent nothing for this long.
pub const LINGER_QUIET: Duration = Duration::from_secs(1);
/// HTTP/2 PING interval (a peer that does not answer within the same time is dropped).
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// HTTP/2 streams per connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The body of the refusal beyond the connection cap (the unified error format).
const REFUSAL_BODY: &str = r#"{"error":"service_unavailable","message":"The server is at its connection limit; retry shortly.","details":null}"#;

/// Raises the soft open-file limit to the hard limit and logs both (each connection is a file
/// descriptor). Returns the soft limit in force afterwards, if the platform has one.
pub fn raise_open_file_limit() -> Option<u64> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    match (before, raised) {
        (Some((soft, hard)), Ok(now)) => {
            tracing::info!(
                event = "open_file_limit",
                soft_before = soft,
                hard = hard,
                soft = now,
                "open-file limit: soft {soft} raised to {now} (hard {hard})"
            );
            Some(now)
        }
        (_, Err(error)) => {
            tracing::warn!(event = "open_file_limit", %error, "could not raise the open-file limit");
            before.map(|(soft, _)| soft)
        }
        (None, Ok(now)) => Some(now),
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their requests and close.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // `acquire_many` (the drain at shutdown) counts in u32.
    let max_connections = limits.max_connections.clamp(
        1,
        usize::try_from(u32::MAX)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS),
    );
    let permits = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_INTERVAL)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS);
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_refusal_log: Option<Instant> = None;
    let mut refused_since_log = 0u64;

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE/ENFILE and the like: wait a little rather than spin; per-connection
                    // errors (reset before accept) are just skipped.
                    tracing::warn!(event = "accept_failed", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let connection = Connection {
                    router: router.clone(),
                    builder: builder.clone(),
                    limits,
                    peer,
                    stopping: stopping.clone(),
                };
                tokio::spawn(connection.run(stream, permit));
            }
            Err(_) => {
                refused_since_log += 1;
                if last_refusal_log.is_none_or(|at: Instant| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                    tracing::warn!(
                        event = "connection_refused",
                        %peer,
                        refused = refused_since_log,
                        max_connections,
                        "connection limit reached: {refused_since_log} connection(s) refused"
                    );
                    last_refusal_log = Some(Instant::now());
                    refused_since_log = 0;
                }
                refuse(stream, &refusals);
            }
        }
    }

    // Stop accepting, ask every connection to finish, and wait until all have closed (each
    // holds a permit until its socket is gone).
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

/// Answers a connection over the cap with a minimal 503 and closes it, or closes it at once
/// when [`MAX_REFUSING`] refusals are already being written.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
            REFUSAL_BODY.len()
        );
        let mut stream = stream;
        let written = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            // The client may have sent a request already: discard it briefly so the close does
            // not reset the answer away.
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, drain(&mut stream, 64 * 1024)).await;
        }
    });
}

/// One accepted connection and what it needs to be served.
struct Connection {
    router: Router,
    builder: Builder<TokioExecutor>,
    limits: ConnectionLimits,
    peer: SocketAddr,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let mut stopping = self.stopping.clone();
        // A client that connects and sends nothing: hyper's protocol detection would wait forever.
        let mut first = [0u8; 1];
        let shutting_down = async {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            peeked = tokio::time::timeout(self.limits.header_read_timeout, stream.peek(&mut first)) => {
                match peeked {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
            () = shutting_down => return,
        }

        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Lingering::new(stream, Arc::clone(&activity), permit));
        let service = ConnectionService {
            router: self.router.clone(),
            peer: self.peer,
            activity: Arc::clone(&activity),
        };
        // With upgrades, as axum::serve: a route may take the connection over (WebSocket).
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        loop {
            let idle_check = tokio::time::sleep_until(activity.idle_deadline(self.limits.idle_timeout));
            let stop = stopping.wait_for(|stop| *stop);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = idle_check, if !closing => {
                    if activity.is_idle(self.limits.idle_timeout) {
                        tracing::debug!(peer = %self.peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = stop, if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// A connection's traffic: when it last moved a byte, and how many requests are in flight.
struct Activity {
    started: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether any request reached the router (only then can an answer be lost to a reset).
    served: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }

    /// When the connection becomes idle if nothing happens before.
    fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        self.last() + idle_timeout
    }

    fn is_idle(&self, idle_timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last().elapsed() >= idle_timeout
    }
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.served.store(true, Ordering::Release);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router as a hyper service for one connection: adds the peer address and counts
/// requests in flight.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let in_flight = InFlight::new(Arc::clone(&self.activity));
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await;
            drop(in_flight);
            response
        })
    }
}

/// The socket as hyper sees it: records traffic, and on drop closes lingeringly (see the
/// module doc), holding the connection's permit until the socket is really closed.
struct Lingering {
    stream: Option<TcpStream>,
    activity: Arc<Activity>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lingering {
    fn new(stream: TcpStream, activity: Arc<Activity>, permit: OwnedSemaphorePermit) -> Lingering {
        Lingering {
            stream: Some(stream),
            activity,
            permit: Some(permit),
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = match this.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(stream), permit) = (self.stream.take(), self.permit.take()) else {
            return;
        };
        // No request ever reached the router (a slowloris cut by the header timeout, a
        // malformed head): there is no answer to protect, close at once.
        if !self.activity.served.load(Ordering::Acquire) {
            return;
        }
        // Dropped outside a runtime (process exit): just close.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(linger(stream, permit));
    }
}

/// Half-closes `stream` (the response is complete: FIN), then reads and discards what the
/// client still sends, within the linger bounds, before the socket is closed.
async fn linger(mut stream: TcpStream, permit: Option<OwnedSemaphorePermit>) {
    let _permit = permit;
    let _ = tokio::time::timeout(LINGER_QUIET, stream.shutdown()).await;
    let _ = tokio::time::timeout(LINGER_MAX_TIME, drain(&mut stream, LINGER_MAX_BYTES)).await;
}

/// Reads and discards until end of input, an error, `max_bytes`, or [`LINGER_QUIET`] without
/// a byte.
async fn drain(stream: &mut TcpStream, max_bytes: u64) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while total < max_bytes {
        match tokio::time::timeout(LINGER_QUIET, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => total += n as u64,
            _ => return,
        }
    }
}
