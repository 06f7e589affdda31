//! The HTTP server with bounded connections: each service's router is served by hyper (HTTP/1.1
//! and HTTP/2) under [`ServerLimits`], so that idle, slow or too many connections cannot pile
//! up in a process.
//!
//! - **Header-read timeout**: a connection must deliver a complete request head within it, from
//!   the moment it opens or its first byte of a new request arrives; otherwise it is closed.
//! - **Idle timeout**: a keep-alive connection with no request in flight and no new byte is
//!   closed after it.
//! - **Connection cap**: at most `max_connections` connections per process. Beyond it a new
//!   connection first evicts the connection that has been idle (or reading a head) the longest;
//!   when every connection is serving a request, the new one waits up to `connection_wait` for a
//!   slot and is then refused: without hyper, it is answered a fixed HTTP/1.1 `503`
//!   problem+json (`overloaded`) with `Retry-After: 1` and `Connection: close`, its write side
//!   is shut down, and what the client sends meanwhile (at most 64 KiB, for at most
//!   `refusal_linger`, 100 ms) is read and discarded before the close, so that unread bytes do
//!   not turn the close into a reset that destroys the answer in flight. A peer that does not take the answer within
//!   100 ms is just closed. An HTTP/2 prior-knowledge client cannot be answered in HTTP/1.1:
//!   when its preface has already arrived it is closed without an answer. Refusals run in the
//!   connection's own task, never in the accept loop, and are counted in
//!   `http_server_connections_refused_total`.
//! - **Header size**: request heads over `max_header_bytes` are answered 431 as problem+json by
//!   [`limit_headers`]; hyper's own buffer (twice that) stops anything larger with its bare 431,
//!   and so do its other pre-application errors (a malformed `Content-Length` is its bare 400) —
//!   hyper offers no hook to shape those.
//! - **HTTP/2**: at most `h2_max_concurrent_streams` streams per connection and a header list of
//!   at most twice `max_header_bytes`.

use std::{
    collections::HashMap,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header, response},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{
    metrics::{HTTP_SERVER_CONNECTIONS_CLOSED, HTTP_SERVER_CONNECTIONS_REFUSED},
    problem::Problem,
};

/// The connection limits of one process (`HTTP_*` environment variables, read by
/// [`crate::configuration`]; the defaults are [`ServerLimits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub connection_wait: Duration,
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    /// Connections the kernel may queue before they are accepted (capped by
    /// `net.core.somaxconn`): a burst beyond it has its SYNs dropped and retried a second later.
    pub listen_backlog: u32,
    /// How long a refused connection, once answered, keeps reading (and dropping) what its
    /// client still sends before it is closed, so that the close is not a reset that destroys
    /// the answer; it ends sooner when the client closes or has sent 64 KiB.
    pub refusal_linger: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            connection_wait: Duration::from_millis(250),
            max_header_bytes: 32 * 1024,
            h2_max_concurrent_streams: 100,
            listen_backlog: 4096,
            refusal_linger: Duration::from_millis(100),
        }
    }
}

/// Binds `addr` with `SO_REUSEADDR` (like `TcpListener::bind`) and a listen backlog of
/// `backlog`.
pub fn listen(addr: std::net::SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// 431 as problem+json for a request head over `max_header_bytes` (names, values and the
/// request target counted).
pub async fn limit_headers(State(max): State<usize>, request: Request, next: Next) -> Response {
    let size = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > max {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
        )
        .detail(format!("the request head may hold at most {max} bytes"))
        .into_response();
    }
    next.run(request).await
}

/// What one connection is doing, for its timeouts and for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head to arrive and complete (also right after the connection
    /// opened): bounded by the header-read timeout.
    Head(Instant),
    /// Between requests, nothing received: bounded by the idle timeout.
    Idle(Instant),
    /// Serving this many requests (HTTP/2 may have several): no timeout here; the request
    /// deadline bounds each one.
    Busy(usize),
}

#[derive(Debug)]
struct Connection {
    phase: Mutex<Phase>,
    changed: Notify,
    evict: CancellationToken,
}

impl Connection {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
            evict: CancellationToken::new(),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, update: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = update(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn received(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.set(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        });
    }

    fn request_finished(&self) {
        self.set(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }

    /// When this connection is due to be closed, if it is not serving anything.
    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        match self.phase() {
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Busy(_) => None,
        }
    }

    /// Since when it has been waiting on its client, if it is not serving anything.
    fn waiting_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Head(since) | Phase::Idle(since) => Some(since),
            Phase::Busy(_) => None,
        }
    }
}

/// Counts a request as in flight on its connection until its response body is done (or
/// dropped).
struct InFlight(Arc<Connection>);

impl InFlight {
    fn start(connection: Arc<Connection>) -> Self {
        connection.request_started();
        Self(connection)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A TCP stream that reports received bytes to its connection's clock.
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.received();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The open connections, for the cap and for eviction.
#[derive(Debug)]
struct Registry {
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// Asks the connection that has waited on its client the longest to close, if any.
    fn evict_one(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = open
            .values()
            .filter(|c| !c.evict.is_cancelled())
            .filter_map(|c| c.waiting_since().map(|since| (since, c)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, connection)) => {
                connection.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` is cancelled, then lets the
/// open connections finish their requests (graceful shutdown) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    let refusal = refusal_answer().await?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The header-read timeout is this module's (it also covers a connection's first head).
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.saturating_mul(2).max(8192))
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(
            u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(run_connection(
            stream,
            router.clone(),
            builder.clone(),
            registry.clone(),
            limits,
            shutdown.clone(),
            refusal.clone(),
        ));
    }
    // Stop listening at once: a drain serves the connections it has, not new ones.
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Admits one connection under the cap and serves it until it ends, times out, is evicted or
/// the process drains; or, when no slot frees up, refuses it with `refusal`.
async fn run_connection(
    stream: TcpStream,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    registry: Arc<Registry>,
    limits: ServerLimits,
    shutdown: CancellationToken,
    refusal: Bytes,
) {
    let Some(permit) = admit(&registry, &limits).await else {
        metrics::counter!(HTTP_SERVER_CONNECTIONS_REFUSED).increment(1);
        refuse(stream, &refusal, limits.refusal_linger).await;
        return;
    };
    let connection = Arc::new(Connection::new());
    let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
    registry
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, connection.clone());
    serve_connection(stream, router, &builder, &connection, &limits, &shutdown).await;
    registry
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    drop(permit);
}

/// A slot for a new connection: a free one, else one freed (by evicting the connection that has
/// waited on its client the longest, or by any connection ending) within `connection_wait`.
async fn admit(registry: &Registry, limits: &ServerLimits) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = registry.slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    registry.evict_one();
    tokio::time::timeout(
        limits.connection_wait,
        registry.slots.clone().acquire_owned(),
    )
    .await
    .ok()?
    .ok()
}

/// How long a refused peer has to take its answer before it is just closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// How much of what a refused peer sends is read and discarded after its answer, and for how
/// long, before the connection is closed.
const REFUSAL_DRAIN_LIMIT: usize = 64 * 1024;
/// How an HTTP/2 prior-knowledge connection starts (the first line of its preface).
const HTTP2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// The problem a connection refused over the cap is answered with.
fn overloaded() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "Server overloaded",
    )
    .detail("every connection slot is serving a request; repeat the request shortly")
    .retry_after(1)
}

/// [`overloaded`] as the bytes of a complete HTTP/1.1 answer that closes the connection, built
/// once by [`serve`] and written as is to every refused connection.
async fn refusal_answer() -> io::Result<Bytes> {
    let (head, body) = overloaded().into_response().into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    Ok(http1_closing_answer(&head, &body))
}

/// `head` and `body` serialised as an HTTP/1.1 answer with `Content-Length` and
/// `Connection: close`.
fn http1_closing_answer(head: &response::Parts, body: &[u8]) -> Bytes {
    let mut answer = Vec::with_capacity(256 + body.len());
    let reason = head.status.canonical_reason().unwrap_or_default();
    answer.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", head.status.as_u16()).as_bytes());
    let framing = [
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
    ];
    for (name, value) in head
        .headers
        .iter()
        .filter(|(name, _)| !framing.contains(name))
    {
        answer.extend_from_slice(name.as_str().as_bytes());
        answer.extend_from_slice(b": ");
        answer.extend_from_slice(value.as_bytes());
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    answer.extend_from_slice(b"connection: close\r\n\r\n");
    answer.extend_from_slice(body);
    Bytes::from(answer)
}

/// Answers a refused connection with `answer` (unless it speaks HTTP/2), then closes it without
/// a reset: write side shut down, what the client still sends read and discarded, within
/// bounds.
async fn refuse(mut stream: TcpStream, answer: &[u8], linger: Duration) {
    if !read_what_arrived_is_http2(&stream) {
        let written = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, stream.write_all(answer)).await;
        if !matches!(written, Ok(Ok(()))) {
            return; // a slow or vanished peer: closed as it is
        }
    }
    if stream.shutdown().await.is_ok() {
        discard_what_the_client_sends(&mut stream, linger).await;
    }
}

/// Reads (and drops) what the peer has sent so far, without waiting, and tells whether it starts
/// an HTTP/2 prior-knowledge preface.
fn read_what_arrived_is_http2(stream: &TcpStream) -> bool {
    let mut arrived = [0u8; 4096];
    match stream.try_read(&mut arrived) {
        Ok(n) => arrived[..n].starts_with(HTTP2_PREFACE_START),
        Err(_) => false,
    }
}

/// Reads and drops what the peer sends until it closes, [`REFUSAL_DRAIN_LIMIT`] bytes or
/// `linger`, whichever comes first.
async fn discard_what_the_client_sends(stream: &mut TcpStream, linger: Duration) {
    let mut chunk = [0u8; 8192];
    let mut discarded = 0;
    let drain = async {
        while discarded < REFUSAL_DRAIN_LIMIT {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(linger, drain).await;
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    connection: &Arc<Connection>,
    limits: &ServerLimits,
    shutdown: &CancellationToken,
) {
    let io = TokioIo::new(Watched {
        stream,
        connection: connection.clone(),
    });
    let for_requests = connection.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(for_requests.clone());
            let response = router.clone().oneshot(request.map(Body::new));
            async move {
                let response = response.await?;
                // The request stays in flight until hyper has sent (or dropped) the body.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        });
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        let deadline = connection.deadline(limits);
        let wait = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = connection.evict.cancelled() => {
                metrics::counter!(HTTP_SERVER_CONNECTIONS_CLOSED, "reason" => "evicted").increment(1);
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
            () = connection.changed.notified() => {}
            () = wait => {
                if connection.deadline(limits).is_some_and(|at| at <= Instant::now()) {
                    let reason = match connection.phase() {
                        Phase::Idle(_) => "idle",
                        _ => "header_timeout",
                    };
                    metrics::counter!(HTTP_SERVER_CONNECTIONS_CLOSED, "reason" => reason).increment(1);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::PROBLEM_CONTENT_TYPE;

    #[test]
    fn a_connection_is_timed_by_what_it_waits_for() {
        let limits = ServerLimits::default();
        let c = Connection::new();
        let head = c.deadline(&limits).unwrap();
        assert!(head <= Instant::now() + limits.header_read_timeout);
        c.request_started();
        assert_eq!(c.deadline(&limits), None, "no timeout while serving");
        c.request_started();
        c.request_finished();
        assert_eq!(c.deadline(&limits), None, "still one in flight");
        c.request_finished();
        let idle = c.deadline(&limits).unwrap();
        assert!(idle > Instant::now() + limits.idle_timeout - Duration::from_secs(1));
        c.received();
        assert!(matches!(c.phase(), Phase::Head(_)), "bytes start a head");
    }

    #[tokio::test]
    async fn the_refusal_is_one_complete_http1_answer_that_closes_the_connection() {
        let answer = refusal_answer().await.unwrap();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("HTTP/1.1 503 Service Unavailable"));
        let headers: Vec<&str> = lines.collect();
        let count = |name: &str| headers.iter().filter(|h| h.starts_with(name)).count();
        assert_eq!(count("content-length: "), 1, "{headers:?}");
        assert_eq!(count("connection: "), 1, "{headers:?}");
        assert!(headers.contains(&format!("content-length: {}", body.len()).as_str()));
        assert!(headers.contains(&"connection: close"));
        assert!(headers.contains(&"retry-after: 1"));
        let problem = Problem::from_peer(body.as_bytes()).unwrap();
        assert_eq!(
            problem.retry_after(1),
            overloaded(),
            "the header carries Retry-After"
        );
        assert!(headers.contains(&format!("content-type: {PROBLEM_CONTENT_TYPE}").as_str()));
    }

    #[test]
    fn eviction_picks_the_longest_waiting_connection_and_never_a_busy_one() {
        let registry = Registry {
            slots: Arc::new(Semaphore::new(2)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        };
        let busy = Arc::new(Connection::new());
        busy.request_started();
        let waiting = Arc::new(Connection::new());
        registry.open.lock().unwrap().insert(0, busy.clone());
        registry.open.lock().unwrap().insert(1, waiting.clone());
        assert!(registry.evict_one());
        assert!(waiting.evict.is_cancelled());
        assert!(!busy.evict.is_cancelled());
        assert!(!registry.evict_one(), "only busy connections are left");
    }
}
