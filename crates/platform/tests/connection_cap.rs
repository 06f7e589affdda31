//! `platform::server::serve` over the connection cap, on real loopback sockets: a connection
//! refused for want of a slot is answered 503 problem+json with `Retry-After` (not closed
//! unanswered), an HTTP/2 prior-knowledge client is just closed, and a slot that frees up serves
//! the next connection normally.
//!
//! The slots are held by connections *serving* a request (a handler that waits to be released):
//! an idle connection would be evicted to make room instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, routing::get};
use platform::server::{ServerLimits, listen, serve};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Semaphore, mpsc},
};
use tokio_util::sync::CancellationToken;

/// Bound of every wait on the server in these tests (a condition, never a pause).
const PATIENCE: Duration = Duration::from_secs(10);

/// A server whose `/hold` requests stay in flight until [`TestServer::release_one`], and whose
/// `/ok` answers 200 at once.
struct TestServer {
    addr: std::net::SocketAddr,
    holding: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
    shutdown: CancellationToken,
}

#[derive(Clone)]
struct Holds {
    entered: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

async fn hold(State(holds): State<Holds>) -> &'static str {
    let _ = holds.entered.send(());
    holds.release.acquire().await.unwrap().forget();
    "released"
}

impl TestServer {
    async fn start(max_connections: usize) -> Self {
        let limits = ServerLimits {
            max_connections,
            connection_wait: Duration::from_millis(300),
            // Long enough never to end a test's drain: the client's close ends it, so the test
            // does not depend on being scheduled within the production 100 ms.
            refusal_linger: Duration::from_secs(30),
            ..ServerLimits::default()
        };
        let listener = listen("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered, holding) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let router = Router::new()
            .route("/hold", get(hold))
            .route("/ok", get(|| async { "ok" }))
            .with_state(Holds {
                entered,
                release: release.clone(),
            });
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        Self {
            addr,
            holding,
            release,
            shutdown,
        }
    }

    /// A connection whose `GET /hold` is being served (so it holds a slot and cannot be
    /// evicted).
    async fn hold_a_slot(&mut self) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(&get_request("/hold")).await.unwrap();
        tokio::time::timeout(PATIENCE, self.holding.recv())
            .await
            .expect("the held request reached its handler")
            .unwrap();
        stream
    }

    fn release_one(&self) {
        self.release.add_permits(1);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.release.close();
        self.shutdown.cancel();
    }
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").into_bytes()
}

/// One HTTP/1.1 answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer whose body is `content-length` long (the connection may stay open).
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(answer) = parse_answer(&received) {
                return answer;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed after {} bytes without a complete answer: {:?}",
                received.len(),
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("an answer within the bound")
}

fn parse_answer(received: &[u8]) -> Option<Answer> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let body = received.get(end + 4..end + 4 + length)?.to_vec();
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// Everything the server sends until it closes (an error such as a reset is a failure).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closed within the bound")
        .expect("closed cleanly, not reset");
    received
}

fn assert_refused_with_a_problem(answer: &Answer) {
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{answer:?}"
    );
    let retry_after: u64 = answer
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(problem["status"], 503, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with(platform::problem::PROBLEM_TYPE_BASE),
        "{problem}"
    );
    assert!(problem["title"].is_string(), "{problem}");
}

#[tokio::test]
async fn a_connection_over_the_cap_is_answered_503_and_a_freed_slot_serves_the_next() {
    let mut server = TestServer::start(2).await;
    let mut first = server.hold_a_slot().await;
    let _second = server.hold_a_slot().await;

    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    refused.write_all(&get_request("/ok")).await.unwrap();
    let received = read_until_closed(&mut refused).await;
    let answer = parse_answer(&received).unwrap_or_else(|| {
        panic!(
            "a complete answer before the close, got {:?}",
            String::from_utf8_lossy(&received)
        )
    });
    assert_refused_with_a_problem(&answer);

    server.release_one();
    let released = read_answer(&mut first).await;
    assert_eq!(released.status, 200, "{released:?}");
    drop(first);

    let mut next = TcpStream::connect(server.addr).await.unwrap();
    next.write_all(&get_request("/ok")).await.unwrap();
    let served = read_answer(&mut next).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.body, b"ok");
}

#[tokio::test]
async fn a_refused_client_still_sending_its_body_can_finish_and_read_its_503() {
    let mut server = TestServer::start(1).await;
    let _held = server.hold_a_slot().await;

    // The answer comes while the body is still being sent; the rest of the body arrives after
    // it. Unread at the close, those bytes would turn the close into a reset that fails the
    // client's writes (and, on a real network, destroys the answer in flight).
    let part = vec![b'x'; 16 * 1024];
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /ok HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n",
        3 * part.len()
    );
    refused.write_all(head.as_bytes()).await.unwrap();
    refused.write_all(&part).await.unwrap();
    let answer = read_answer(&mut refused).await;
    assert_refused_with_a_problem(&answer);
    for _ in 0..2 {
        refused
            .write_all(&part)
            .await
            .expect("the rest of the body is taken, not reset");
    }
    // The client is done sending: its close ends the server's drain, which then closes.
    refused.shutdown().await.unwrap();
    let rest = read_until_closed(&mut refused).await;
    assert!(rest.is_empty(), "nothing after the answer: {rest:?}");
}

#[tokio::test]
async fn an_http2_prior_knowledge_client_over_the_cap_is_closed_without_an_http1_answer() {
    let mut server = TestServer::start(1).await;
    let _held = server.hold_a_slot().await;

    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    refused
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut refused).await;
    assert!(
        received.is_empty(),
        "no HTTP/1.1 bytes to an HTTP/2 client: {:?}",
        String::from_utf8_lossy(&received)
    );
}
