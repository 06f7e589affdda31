//! Bounded connections on the real binaries: a client that sends its headers one byte at a time
//! is closed after the header-read timeout while a normal client is served meanwhile, and 2,000
//! idle connections neither exhaust the process (the connection cap holds its open files) nor
//! keep a normal request from being answered within a second. Oversized headers are 431
//! problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ordermesh_e2e::{Cluster, Options, Svc, eventually, json};
use reqwest::{Method, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn options(env: &[(&str, &str)]) -> Options {
    Options {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    }
}

fn addr(cluster: &Cluster, svc: Svc) -> String {
    let url = cluster.url(svc, "/");
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

/// A normal request on a new connection; returns its status and how long it took.
async fn timed_request(cluster: &Cluster) -> (StatusCode, Duration) {
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = fresh
        .get(cluster.url(Svc::Order, "/api/v1/orders?limit=1"))
        .header("x-tenant-id", &cluster.tenant)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    (response.status(), started.elapsed())
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(usize::MAX)
}

#[tokio::test]
async fn a_slow_header_client_is_closed_after_the_timeout_while_others_are_served() {
    let cluster = Cluster::start_with(
        "tenant-a",
        options(&[("HTTP_HEADER_READ_TIMEOUT_MS", "1000")]),
    )
    .await;
    let target = addr(&cluster, Svc::Order);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..100 {
        let target = target.clone();
        slow.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&target).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let drip = async move {
                writer
                    .write_all(b"GET /api/v1/orders HTTP/1.1\r\nx-slow: ")
                    .await?;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    writer.write_all(b"a").await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            };
            let closed = async move {
                let mut buf = [0u8; 1024];
                // Returns once the server closes the connection (0 bytes or a reset).
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            tokio::select! {
                () = closed => {}
                _ = drip => {}
            }
            started.elapsed()
        }));
    }
    // Meanwhile a normal client is served at once.
    let (status, took) = timed_request(&cluster).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        took < Duration::from_secs(1),
        "a normal request took {took:?}"
    );
    for task in slow {
        let closed_after = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the slow client was closed")
            .unwrap();
        assert!(
            closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
            "closed after {closed_after:?}, not after the 1 s header-read timeout"
        );
    }
}

#[tokio::test]
async fn two_thousand_idle_connections_stay_under_the_cap_and_a_normal_request_is_answered() {
    let cap = 100;
    let cluster =
        Cluster::start_with("tenant-a", options(&[("HTTP_MAX_CONNECTIONS", "100")])).await;
    let pid = cluster.pid(Svc::Order);
    let baseline = open_files(pid);
    let target = addr(&cluster, Svc::Order);
    let idle: Vec<TcpStream> =
        futures::future::join_all((0..2000).map(|_| TcpStream::connect(target.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let (status, took) = timed_request(&cluster).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        took < Duration::from_secs(1),
        "a normal request took {took:?}"
    );
    let files = eventually(
        "order-service holds at most the cap of connections",
        Duration::from_secs(10),
        || async {
            let files = open_files(pid);
            (files <= baseline + cap + 5).then_some(files)
        },
    )
    .await;
    assert!(files <= baseline + cap + 5, "{files} open files");
    drop(idle);
}

#[tokio::test]
async fn headers_over_the_limit_are_431_problem_json() {
    let cluster =
        Cluster::start_with("tenant-a", options(&[("HTTP_MAX_HEADER_BYTES", "4096")])).await;
    let (status, problem) = json(
        cluster
            .request(Svc::Order, Method::GET, "/api/v1/orders")
            .header("x-padding", "p".repeat(5000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{problem}"
    );
    assert_eq!(
        problem["type"],
        "https://ordermesh.dev/problems/headers-too-large"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let cluster =
        Cluster::start_with("tenant-a", options(&[("HTTP_IDLE_TIMEOUT_MS", "500")])).await;
    let mut stream = TcpStream::connect(addr(&cluster, Svc::Order))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let answered = Instant::now();
    // Keep-alive: the connection stays open, then the server closes it once idle for 500 ms.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return answered.elapsed(),
                Ok(_) => {} // the rest of the body
            }
        }
    })
    .await
    .expect("the idle connection was closed");
    assert!(
        closed >= Duration::from_millis(400) && closed < Duration::from_secs(3),
        "closed after {closed:?}, not after the 500 ms idle timeout"
    );
}
