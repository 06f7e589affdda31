//! The drivers: stock seeding, the closed loop and the open loop.
//!
//! - **Closed loop** (`--concurrency N`): N workers, each sending its next order as soon as the
//!   previous one is answered. Throughput is what the system sustains at that concurrency.
//! - **Open loop** (`--rate R`): order *i* is due at `start + i/R` whatever the answers
//!   ([`Schedule`]); latency runs from that intended start, so when the server (or loadgen's
//!   in-flight cap) falls behind, the wait is counted rather than hidden (no coordinated
//!   omission). How late starts were is reported separately.
//!
//! Both stop at the end of `--duration`, after `--requests` measured requests, or on Ctrl-C;
//! requests in flight then finish (each is bounded by `--timeout`). Requests started during
//! `--warmup` are sent but not recorded. One pooled `reqwest::Client` serves the whole process.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use commerce::contracts::inventory::SetItem;
use reqwest::header::{CONTENT_TYPE, HOST, HeaderValue};
use serde::Deserialize;
use tokio::{
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    args::{Config, Mode},
    plan::{Planned, Planner},
    progress::{self, Progress},
    report::{LATE_START, Outcome, Recorder, RunInfo, Sample, ScheduleLag, Summary},
};

const TENANT_HEADER: &str = "x-tenant-id";
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Pause of a closed-loop worker after a refused connection, so a dead target is not spun on.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The one HTTP client of the process: pooled, keep-alive, no proxy lookups.
pub fn http_client(config: &Config) -> Result<reqwest::Client, String> {
    let pool = match config.mode {
        Mode::Closed { concurrency } => concurrency,
        Mode::Open { max_in_flight, .. } => max_in_flight,
    };
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(concat!("ordermesh-loadgen/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Sets each `--seed-stock` SKU's available stock on each `--inventory`; one line per item.
pub async fn seed_stock(http: &reqwest::Client, config: &Config) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for inventory in &config.inventories {
        for (sku, available) in &config.seed_stock {
            let url = inventory.item_url(sku);
            let response = http
                .put(&url)
                .header(TENANT_HEADER, &inventory.tenant)
                .json(&SetItem {
                    available: *available,
                    unit_price: config.seed_price,
                    currency: config.order.currency.clone(),
                })
                .send()
                .await
                .map_err(|e| format!("seeding stock: PUT {url}: {}", error_chain(&e)))?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                return Err(format!(
                    "seeding stock: PUT {url} answered {status}: {body}"
                ));
            }
            done.push(format!(
                "seeded {} {sku} available={available} unit_price={} via {}",
                inventory.tenant, config.seed_price, inventory.base
            ));
        }
    }
    Ok(done)
}

/// The arrival times of the open loop: request `i` is due `i / rate` seconds after the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
}

impl Schedule {
    pub fn new(rate: f64) -> Self {
        Self { rate }
    }

    /// When request `i` is due, counted from the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due in `[0, window)`.
    pub fn due_within(&self, window: Duration) -> u64 {
        (window.as_secs_f64() * self.rate).ceil() as u64
    }
}

/// Phases of a run: warm-up from `start`, measurement from `measure_from` until `end`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

struct Endpoint {
    orders_url: String,
    tenant: HeaderValue,
}

/// What the workers share.
struct Shared {
    http: reqwest::Client,
    endpoints: Vec<Endpoint>,
    planner: Mutex<Planner>,
    /// `--host-header`: the `Host` of every order request.
    host: Option<HeaderValue>,
    /// `--progress`: the per-second counters.
    progress: Option<Arc<Progress>>,
}

impl Shared {
    fn plan(&self) -> Planned {
        // A poisoned lock only means another worker panicked mid-plan; the planner is still sound.
        let mut planner = self.planner.lock().unwrap_or_else(|e| e.into_inner());
        planner.next()
    }

    /// Sends one order; the latency runs from `started`.
    async fn send(&self, planned: &Planned, started: Instant) -> Sample {
        let mut sample = Sample {
            latency: Duration::ZERO,
            status: None,
            outcome: Outcome::Error("transport".into()),
            replay: planned.replay,
            answered_as_replay: false,
            traced: planned.trace.is_some(),
            sampled_trace: planned
                .trace
                .as_ref()
                .filter(|t| t.sampled)
                .map(|t| t.trace_id.clone()),
        };
        let Some(endpoint) = self.endpoints.get(planned.target) else {
            sample.outcome = Outcome::Error("no_target".into());
            return sample;
        };
        let mut request = self
            .http
            .post(&endpoint.orders_url)
            .header(TENANT_HEADER, endpoint.tenant.clone())
            .header(IDEMPOTENCY_KEY, planned.idempotency_key.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(planned.body.clone());
        if let Some(trace) = &planned.trace {
            request = request.header("traceparent", trace.traceparent());
        }
        if let Some(host) = &self.host {
            request = request.header(HOST, host.clone());
        }
        match request.send().await {
            Err(error) => sample.outcome = Outcome::Error(error_kind(&error).into()),
            Ok(response) => {
                let status = response.status().as_u16();
                sample.status = Some(status);
                sample.answered_as_replay = response
                    .headers()
                    .get(IDEMPOTENT_REPLAYED)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                // The body is always read in full so the connection goes back to the pool.
                sample.outcome = match response.bytes().await {
                    Err(error) if error.is_timeout() => Outcome::Error("timeout".into()),
                    Err(_) => Outcome::Error("unreadable_body".into()),
                    Ok(body) => outcome_of(status, &body),
                };
            }
        }
        sample.latency = started.elapsed();
        if let Some(progress) = &self.progress {
            progress.record(&sample);
        }
        if !planned.replay && sample.status == Some(201) {
            let mut planner = self.planner.lock().unwrap_or_else(|e| e.into_inner());
            planner.remember(planned);
        }
        sample
    }
}

/// What an answer means for the order.
pub fn outcome_of(status: u16, body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    struct Answer {
        status: String,
        failure_reason: Option<String>,
    }
    match status {
        200 | 201 => match serde_json::from_slice::<Answer>(body) {
            Ok(answer) => match answer.status.as_str() {
                "CONFIRMED" => Outcome::Confirmed,
                "FAILED" => {
                    Outcome::Failed(answer.failure_reason.unwrap_or_else(|| "unknown".into()))
                }
                "PENDING" => Outcome::Pending,
                _ => Outcome::Error("unknown_order_status".into()),
            },
            Err(_) => Outcome::Error("unreadable_body".into()),
        },
        // A dependency is down: the order is stored and stays PENDING until it is finished.
        503 => Outcome::Pending,
        other => Outcome::Error(format!("http_{other}")),
    }
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "unreadable_body"
    } else {
        "transport"
    }
}

/// The error with its causes on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs the load described by `config` and summarises it.
pub async fn run(
    config: &Config,
    http: reqwest::Client,
    nonce: u64,
    stop: CancellationToken,
) -> Result<Summary, String> {
    let endpoints = config
        .targets
        .iter()
        .map(|t| {
            Ok(Endpoint {
                orders_url: t.orders_url(),
                tenant: HeaderValue::from_str(&t.tenant).map_err(|e| e.to_string())?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let host = config
        .host_header
        .as_deref()
        .map(HeaderValue::from_str)
        .transpose()
        .map_err(|e| format!("--host-header: {e}"))?;
    let progress = config
        .progress
        .then(Progress::new)
        .transpose()?
        .map(Arc::new);
    let shared = Arc::new(Shared {
        http,
        endpoints,
        planner: Mutex::new(Planner::new(config, nonce)),
        host,
        progress: progress.clone(),
    });
    let start = Instant::now();
    let printing = CancellationToken::new();
    let printer = progress.map(|p| progress::spawn_printer(p, start, printing.clone()));
    let window = Window {
        start,
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let (recorder, last_done, lag) = match config.mode {
        Mode::Closed { concurrency } => {
            let (rec, last) =
                closed_loop(&shared, window, concurrency, config.requests, &stop).await?;
            (rec, last, None)
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let (rec, last, lag) = open_loop(
                &shared,
                window,
                Schedule::new(rate),
                max_in_flight,
                config.requests,
                &stop,
            )
            .await?;
            (rec, last, Some(lag))
        }
    };
    printing.cancel();
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    let elapsed = last_done
        .map(|t| t.saturating_duration_since(window.measure_from))
        .unwrap_or_default();
    let (concurrency, rate, max_in_flight) = match config.mode {
        Mode::Closed { concurrency } => (Some(concurrency), None, None),
        Mode::Open {
            rate,
            max_in_flight,
        } => (None, Some(rate), Some(max_in_flight)),
    };
    let info = RunInfo {
        mode: if rate.is_some() { "open" } else { "closed" },
        concurrency,
        rate,
        max_in_flight,
        targets: config
            .targets
            .iter()
            .map(|t| format!("{}={}", t.tenant, t.base))
            .collect(),
        warmup_s: config.warmup.as_secs_f64(),
        seed: config.seed,
    };
    Ok(Summary::new(info, &recorder, elapsed, lag))
}

type Finished = (Recorder, Option<Instant>);

async fn closed_loop(
    shared: &Arc<Shared>,
    window: Window,
    concurrency: usize,
    limit: Option<u64>,
    stop: &CancellationToken,
) -> Result<Finished, String> {
    let issued = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let shared = Arc::clone(shared);
            let issued = Arc::clone(&issued);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut recorder = Recorder::new()?;
                let mut last_done = None;
                loop {
                    let now = Instant::now();
                    if stop.is_cancelled() || now >= window.end {
                        break;
                    }
                    let measured = now >= window.measure_from;
                    if measured
                        && let Some(limit) = limit
                        && issued.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        break;
                    }
                    let planned = shared.plan();
                    let sample = shared.send(&planned, now).await;
                    let refused = sample.outcome == Outcome::Error("connect".into());
                    if measured {
                        recorder.record(sample);
                        last_done = Some(Instant::now());
                    }
                    if refused {
                        tokio::select! {
                            () = tokio::time::sleep(CONNECT_BACKOFF) => {}
                            () = stop.cancelled() => break,
                        }
                    }
                }
                Ok::<_, String>((recorder, last_done))
            })
        })
        .collect();
    let mut total = Recorder::new()?;
    let mut last_done: Option<Instant> = None;
    for worker in workers {
        let (recorder, last) = worker.await.map_err(|e| format!("worker failed: {e}"))??;
        total.merge(recorder)?;
        last_done = last_done.max(last);
    }
    Ok((total, last_done))
}

async fn open_loop(
    shared: &Arc<Shared>,
    window: Window,
    schedule: Schedule,
    max_in_flight: usize,
    limit: Option<u64>,
    stop: &CancellationToken,
) -> Result<(Recorder, Option<Instant>, ScheduleLag), String> {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Sample, Instant)>();
    let collector = tokio::spawn(async move {
        let mut recorder = Recorder::new()?;
        let mut last_done = None;
        while let Some((sample, done)) = rx.recv().await {
            recorder.record(sample);
            last_done = last_done.max(Some(done));
        }
        Ok::<_, String>((recorder, last_done))
    });

    let mut lag = ScheduleLag::default();
    let mut measured: u64 = 0;
    // Bounded by construction: at most rate × (warm-up + duration) requests.
    for i in 0..schedule.due_within(window.end - window.start) {
        let intended = window.start + schedule.offset(i);
        if intended >= window.end {
            break;
        }
        let is_measured = intended >= window.measure_from;
        if is_measured && limit.is_some_and(|limit| measured >= limit) {
            break;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(intended) => {}
        }
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => {
                permit.map_err(|e| format!("in-flight limit: {e}"))?
            }
        };
        if is_measured {
            measured += 1;
            let behind = Instant::now().saturating_duration_since(intended);
            if behind > LATE_START {
                lag.late_starts += 1;
            }
            lag.max_lag_ms = lag.max_lag_ms.max(behind.as_secs_f64() * 1000.0);
        }
        let planned = shared.plan();
        let shared = Arc::clone(shared);
        let tx = tx.clone();
        tokio::spawn(async move {
            let sample = shared.send(&planned, intended).await;
            drop(permit);
            if is_measured {
                // The collector outlives every sender; a closed channel only means it failed.
                let _ = tx.send((sample, Instant::now()));
            }
        });
    }
    drop(tx);
    let (recorder, last_done) = collector
        .await
        .map_err(|e| format!("collector failed: {e}"))??;
    lag.max_lag_ms = (lag.max_lag_ms * 1000.0).round() / 1000.0;
    Ok((recorder, last_done, lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_constant_rate() {
        let s = Schedule::new(200.0);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(5));
        assert_eq!(s.offset(200), Duration::from_secs(1));
        assert_eq!(s.due_within(Duration::from_secs(10)), 2000);
        // Equal spacing, no drift: request i is due at exactly i/rate.
        let s = Schedule::new(3.0);
        for i in 0..1000u64 {
            let gap = s.offset(i + 1) - s.offset(i);
            assert!(
                gap.abs_diff(Duration::from_secs_f64(1.0 / 3.0)) < Duration::from_micros(1),
                "{i}: {gap:?}"
            );
        }
        assert_eq!(s.offset(3000), Duration::from_secs(1000));
        assert_eq!(s.due_within(Duration::from_millis(500)), 2);
        assert_eq!(Schedule::new(0.5).due_within(Duration::from_secs(3)), 2);
    }

    #[test]
    fn the_schedule_agrees_with_due_within() {
        for rate in [0.7, 1.0, 13.0, 250.0, 10_000.0] {
            let s = Schedule::new(rate);
            let window = Duration::from_millis(2_345);
            let counted = (0..).take_while(|i| s.offset(*i) < window).count() as u64;
            assert_eq!(counted, s.due_within(window), "rate {rate}");
        }
    }

    #[test]
    fn answers_map_to_order_outcomes() {
        let order = |status: &str, reason: &str| {
            format!(
                r#"{{"id":"x","status":"{status}","failure_reason":{reason},"total_amount":1}}"#
            )
        };
        assert_eq!(
            outcome_of(201, order("CONFIRMED", "null").as_bytes()),
            Outcome::Confirmed
        );
        assert_eq!(
            outcome_of(201, order("FAILED", r#""out_of_stock""#).as_bytes()),
            Outcome::Failed("out_of_stock".into())
        );
        assert_eq!(
            outcome_of(201, order("FAILED", "null").as_bytes()),
            Outcome::Failed("unknown".into())
        );
        assert_eq!(
            outcome_of(201, order("PENDING", "null").as_bytes()),
            Outcome::Pending
        );
        assert_eq!(outcome_of(503, b"{}"), Outcome::Pending);
        assert_eq!(outcome_of(409, b"{}"), Outcome::Error("http_409".into()));
        assert_eq!(outcome_of(500, b""), Outcome::Error("http_500".into()));
        assert_eq!(
            outcome_of(201, b"not json"),
            Outcome::Error("unreadable_body".into())
        );
    }
}
