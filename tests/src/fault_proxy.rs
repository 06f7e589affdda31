//! A fault-injecting HTTP proxy, put between two real services to break things on purpose:
//! lose a response (the request reaches the upstream service and is processed — its transaction
//! commits — but the caller gets only the status line and a body that breaks off), or delay one.
//! It also records the head of every request it forwards, so tests can see what crossed a hop;
//! and it can reset requests before they reach the upstream, or partition it (requests are held
//! unanswered, never forwarded, until the partition ends). Standing for the callee's sidecar, it
//! can vouch for the caller as Envoy does: append the caller's element to
//! `x-forwarded-client-cert` ([`FaultProxy::vouch_for`]).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use bytes::Bytes;

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path_prefix: String,
    /// Suffix the path must end with ("" for any).
    path_suffix: String,
    remaining: usize,
    fault: Fault,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The caller never gets the (committed) answer.
    LoseResponse,
    /// The answer arrives this much later.
    Delay(std::time::Duration),
    /// The request never reaches the upstream; the caller's connection breaks.
    Reset,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    rules: Arc<Mutex<Vec<Rule>>>,
    lost: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    partitioned_until: Arc<Mutex<Option<tokio::time::Instant>>>,
    /// The XFCC element appended to every forwarded request, if any.
    vouched: Arc<Mutex<Option<String>>>,
}

/// The head of one request the proxy forwarded.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Shared,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Shared {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            client: reqwest::Client::new(),
            rules: Arc::default(),
            lost: Arc::default(),
            seen: Arc::default(),
            partitioned_until: Arc::default(),
            vouched: Arc::default(),
        };
        let app = Router::new().fallback(forward).with_state(shared.clone());
        // The proxy lives in a thread of its own, with its own runtime, so it outlives the
        // runtime of whichever test created it.
        let std_listener = listener.into_std().expect("std listener");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        FaultProxy { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Loses the responses to the next `count` requests `method path` whose path starts with
    /// `prefix` and ends with `suffix`.
    pub fn lose_responses(&self, method: &str, prefix: &str, suffix: &str, count: usize) {
        self.add_rule(method, prefix, suffix, count, Fault::LoseResponse);
    }

    /// Holds back the responses to the next `count` matching requests for `delay`.
    pub fn delay_responses(
        &self,
        method: &str,
        prefix: &str,
        count: usize,
        delay: std::time::Duration,
    ) {
        self.add_rule(method, prefix, "", count, Fault::Delay(delay));
    }

    fn add_rule(&self, method: &str, prefix: &str, suffix: &str, count: usize, fault: Fault) {
        self.shared.rules.lock().unwrap().push(Rule {
            method: method.into(),
            path_prefix: prefix.into(),
            path_suffix: suffix.into(),
            remaining: count,
            fault,
        });
    }

    /// Breaks the next `count` matching requests before they reach the upstream.
    pub fn reset_requests(&self, method: &str, prefix: &str, count: usize) {
        self.add_rule(method, prefix, "", count, Fault::Reset);
    }

    /// Cuts the upstream off for `duration`: requests arriving meanwhile are held unanswered and
    /// never forwarded (the callers time out), as in a network partition.
    pub fn partition(&self, duration: std::time::Duration) {
        *self.shared.partitioned_until.lock().unwrap() =
            Some(tokio::time::Instant::now() + duration);
    }

    /// From now on, appends the element an Istio sidecar of `callee` writes for a verified
    /// client certificate of `caller` (SPIFFE ids) to each request's `x-forwarded-client-cert`,
    /// after whatever the request carried — Envoy's `APPEND_FORWARD`, Istio's default.
    pub fn vouch_for(&self, caller: &str, callee: &str) {
        *self.shared.vouched.lock().unwrap() = Some(format!(
            "By={callee};Hash={CERT_HASH};Subject=\"\";URI={caller}"
        ));
    }

    /// Every request forwarded so far, in arrival order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests (`METHOD path -> upstream status`) whose responses were lost so far.
    pub fn lost(&self) -> Vec<String> {
        self.shared.lost.lock().unwrap().clone()
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let target = format!(
        "{}{}",
        shared.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let until = *shared.partitioned_until.lock().unwrap();
    if let Some(until) = until.filter(|u| *u > tokio::time::Instant::now()) {
        tokio::time::sleep_until(until).await;
        return broken(Response::builder().status(StatusCode::BAD_GATEWAY));
    }
    let fault = take_rule(&shared, method.as_str(), &path);
    if let Some(Fault::Reset) = fault {
        return broken(Response::builder().status(StatusCode::BAD_GATEWAY));
    }
    let mut headers = request.headers().clone();
    append_vouched(&shared, &mut headers);
    shared.seen.lock().unwrap().push(SeenRequest {
        method: method.to_string(),
        path: path.clone(),
        headers: headers.clone(),
    });
    headers.remove("host");
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let upstream = shared
        .client
        .request(method.clone(), target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(upstream) = upstream else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let status = upstream.status();
    let headers: HeaderMap = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut builder = Response::builder().status(status);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    if let Some(Fault::Delay(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    if let Some(Fault::LoseResponse) = fault {
        shared
            .lost
            .lock()
            .unwrap()
            .push(format!("{method} {path} -> {status}"));
        // The upstream committed; the caller sees the connection break mid-body.
        return broken(builder);
    }
    builder.body(Body::from(bytes)).unwrap_or_default()
}

/// A response whose body breaks off: the caller's connection fails.
fn broken(builder: axum::http::response::Builder) -> Response {
    let broken = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("response lost by FaultProxy"))
    });
    builder.body(Body::from_stream(broken)).unwrap_or_default()
}

/// A SHA-256 in the form Envoy writes a certificate's `Hash` (the tests' certificates are
/// notional: only the form matters to the services).
const CERT_HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

/// Appends the vouched-for caller's element, if any, as Envoy's `APPEND_FORWARD` does.
fn append_vouched(shared: &Shared, headers: &mut HeaderMap) {
    let Some(element) = shared.vouched.lock().unwrap().clone() else {
        return;
    };
    let value = match headers.get(XFCC) {
        Some(existing) => format!("{},{element}", existing.to_str().unwrap_or_default()),
        None => element,
    };
    headers.insert(XFCC, value.parse().unwrap());
}

const XFCC: &str = "x-forwarded-client-cert";

fn take_rule(shared: &Shared, method: &str, path: &str) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap();
    for rule in rules.iter_mut() {
        if rule.remaining > 0
            && rule.method == method
            && path.starts_with(&rule.path_prefix)
            && path.ends_with(&rule.path_suffix)
        {
            rule.remaining -= 1;
            return Some(rule.fault);
        }
    }
    None
}
