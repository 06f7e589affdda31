//! `make soak`: the saga under faults, measured. Starts a PostgreSQL cluster of its own and the
//! real (release) binaries for two tenants, with fault proxies on every service-to-service edge;
//! drives bounded open-loop order load (normal, declined, out of stock, repeated keys, concurrent
//! same-key requests, cancels) from clients that time out and resend with the same key; injects
//! faults on a schedule derived from `--seed` (printed, so a run can be replayed); then, once the
//! reconciler and the outbox have had their time, checks every DESIGN.md invariant in SQL per
//! tenant, that every 2xx answer agrees with the final state, and that nothing of one tenant is
//! in the other's databases. Prints a table; exits 1 on any violation.
//!
//! Usage: soak [--orders N] [--rate PER_SEC] [--seed S] [--pg-port P] [--pg-bin DIR]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test driver: failing loudly is the point

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use ordermesh_e2e::{Cluster, Options, Svc, check_invariants};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;

const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];
const SKUS: [(&str, i64); 6] = [
    ("SOAK-1", 1999),
    ("SOAK-2", 2499),
    ("SOAK-3", 999),
    ("SOAK-4", 4999),
    ("SOAK-5", 1250),
    ("SCARCE", 500),
];
const STOCK: i64 = 1_000_000;
const SCARCE_STOCK: i64 = 40;
/// A client gives up on one attempt after this, and resends with the same key.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);
/// A client stops resending after this (the reconciler finishes the order anyway).
const CLIENT_PATIENCE: Duration = Duration::from_secs(90);
/// After the load, how long every order has to settle and every notification to be delivered.
const SETTLE_WITHIN: Duration = Duration::from_secs(180);

/// SplitMix64: small, seeded, reproducible.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "The saga under faults, measured: two tenants' services on a PostgreSQL of its own, bounded open-loop order load, faults on a seeded schedule, every invariant checked at the end."
)]
struct Args {
    /// How many orders to place
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    orders: usize,
    /// Orders started per second (open loop)
    #[arg(long, value_name = "PER_SEC", default_value_t = 60.0)]
    rate: f64,
    /// Seeds every choice and the fault schedule; the same seed replays a run
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// The port of the soak's own PostgreSQL (TEST_DATABASE_URL must point at it)
    #[arg(long, value_name = "P", default_value_t = 56432)]
    pg_port: u16,
    /// Where PostgreSQL's binaries (initdb, pg_ctl) are
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL of its own, so it can be crashed.

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn as_postgres(&self, tool: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(self.bin.join(tool));
        command
    }

    fn setup(root: &Path, port: u16, bin: PathBuf) -> Postgres {
        let pg = Postgres {
            bin,
            data: root.join("pg"),
            port,
        };
        if pg.data.exists() {
            // A previous run's cluster: stop it if it still runs, start afresh.
            let _ = pg
                .as_postgres("pg_ctl")
                .args(["-D", pg.data.to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
            std::fs::remove_dir_all(&pg.data).expect("remove the old cluster");
        }
        std::fs::create_dir_all(&pg.data).expect("data directory");
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(root)
            .status()
            .expect("chown");
        assert!(status.success());
        let out = pg
            .as_postgres("initdb")
            .args([
                "-D",
                pg.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {out:?}");
        pg.start();
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=160 -c shared_buffers=128MB",
            self.port,
            self.data.display()
        );
        let out = self
            .as_postgres("pg_ctl")
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
            ])
            .arg("-l")
            .arg(self.data.join("server.log"))
            .arg("start")
            .output()
            .expect("pg_ctl start");
        assert!(out.status.success(), "pg_ctl start: {out:?}");
    }

    /// An immediate stop: no checkpoint, crash recovery at the next start.
    fn crash(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "fast", "stop"])
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// Faults.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill(Svc),
    Freeze(Svc),
    KillOrderMidSettlement,
    KillPaymentMidSettlement,
    PgCrash,
    PgConnectionStorm,
    Latency,
    Reset,
    LostResponses,
    PartitionNotify,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Kill(svc) => format!("kill -9 {}", svc.binary()),
            Fault::Freeze(svc) => format!("SIGSTOP/SIGCONT {}", svc.binary()),
            Fault::KillOrderMidSettlement => "kill -9 order-service mid-settlement".into(),
            Fault::KillPaymentMidSettlement => "kill -9 payment-service mid-settlement".into(),
            Fault::PgCrash => "PostgreSQL immediate stop + restart".into(),
            Fault::PgConnectionStorm => "PostgreSQL connection storm".into(),
            Fault::Latency => "network latency (+800 ms)".into(),
            Fault::Reset => "network resets".into(),
            Fault::LostResponses => "responses lost after commit".into(),
            Fault::PartitionNotify => "partition of notify-service".into(),
        }
    }

    fn all() -> Vec<Fault> {
        let mut all = Vec::new();
        for svc in Svc::ALL {
            all.push(Fault::Kill(svc));
            all.push(Fault::Freeze(svc));
        }
        all.extend([
            Fault::KillOrderMidSettlement,
            Fault::KillPaymentMidSettlement,
            Fault::PgCrash,
            Fault::PgConnectionStorm,
            Fault::Latency,
            Fault::Reset,
            Fault::LostResponses,
            Fault::PartitionNotify,
        ]);
        all
    }
}

/// When each fault starts (seconds into the load) and on which tenant.
fn schedule(rng: &mut Rng, load_secs: f64) -> Vec<(f64, Fault, usize)> {
    // Every kind at least once; long runs repeat them. The partition is once (it lasts long).
    let kinds = Fault::all();
    let rounds = ((load_secs / 100.0).ceil() as usize).max(1);
    let mut faults = Vec::new();
    for round in 0..rounds {
        for &kind in &kinds {
            if kind == Fault::PartitionNotify && round > 0 {
                continue;
            }
            faults.push(kind);
        }
    }
    // Shuffle, then spread evenly over the first 85% of the load.
    for i in (1..faults.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        faults.swap(i, j);
    }
    let span = load_secs * 0.85;
    let step = span / faults.len() as f64;
    faults
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1.0 + i as f64 * step, f, rng.below(2) as usize))
        .collect()
}

/// What the faults are injected into: both tenants' clusters and the soak's own PostgreSQL, with
/// the times each fault was active (to tell the latencies measured during faults from the rest).
struct Testbed {
    clusters: Vec<AsyncMutex<Cluster>>,
    pg: Postgres,
    /// Intervals during which a fault was active (open while it still is).
    windows: Mutex<Vec<(Instant, Option<Instant>)>>,
}

impl Testbed {
    async fn inject(&self, fault: Fault, tenant: usize, partition: Duration) {
        let started = Instant::now();
        let window = {
            let mut windows = self.windows.lock().unwrap();
            windows.push((started, None));
            windows.len() - 1
        };
        match fault {
            Fault::Kill(svc) => {
                let mut cluster = self.clusters[tenant].lock().await;
                cluster.kill_service(svc).await;
                cluster.start_service(svc).await;
            }
            Fault::Freeze(svc) => {
                let cluster = self.clusters[tenant].lock().await;
                cluster.signal_service(svc, "STOP");
                tokio::time::sleep(Duration::from_secs(3)).await;
                cluster.signal_service(svc, "CONT");
            }
            Fault::KillOrderMidSettlement => {
                let mut cluster = self.clusters[tenant].lock().await;
                // Hold payment's answers so settlements are in flight, then kill order-service.
                let proxy = cluster.payment_proxy.as_ref().unwrap();
                proxy.delay_responses("POST", "/api/v1/payments", 50, Duration::from_millis(1500));
                tokio::time::sleep(Duration::from_millis(700)).await;
                cluster.kill_service(Svc::Order).await;
                cluster.start_service(Svc::Order).await;
            }
            Fault::KillPaymentMidSettlement => {
                let mut cluster = self.clusters[tenant].lock().await;
                // Hold inventory's answers to the commits: payments are between their reservation
                // and their capture when payment-service dies.
                let proxy = cluster.inventory_proxy.as_ref().unwrap();
                proxy.delay_responses(
                    "POST",
                    "/api/v1/reservations/",
                    50,
                    Duration::from_millis(1500),
                );
                tokio::time::sleep(Duration::from_millis(700)).await;
                cluster.kill_service(Svc::Payment).await;
                cluster.start_service(Svc::Payment).await;
            }
            Fault::PgCrash => {
                self.pg.crash();
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.pg.start();
            }
            Fault::PgConnectionStorm => {
                let mut held = Vec::new();
                for _ in 0..200 {
                    match storm_connection(&self.pg.url()).await {
                        Some(c) => held.push(c),
                        None => break,
                    }
                }
                println!(
                    "    storm: holding {} connections until refused",
                    held.len()
                );
                tokio::time::sleep(Duration::from_secs(4)).await;
                drop(held);
            }
            Fault::Latency => {
                let cluster = self.clusters[tenant].lock().await;
                for proxy in proxies(&cluster) {
                    proxy.delay_responses("POST", "/", 40, Duration::from_millis(800));
                    proxy.delay_responses("GET", "/", 40, Duration::from_millis(800));
                }
            }
            Fault::Reset => {
                let cluster = self.clusters[tenant].lock().await;
                for proxy in proxies(&cluster) {
                    proxy.reset_requests("POST", "/", 15);
                }
            }
            Fault::LostResponses => {
                let cluster = self.clusters[tenant].lock().await;
                for proxy in proxies(&cluster) {
                    proxy.lose_responses("POST", "/", "", 15);
                }
            }
            Fault::PartitionNotify => {
                let cluster = self.clusters[tenant].lock().await;
                cluster.notify_proxy.as_ref().unwrap().partition(partition);
                drop(cluster);
                tokio::time::sleep(partition).await;
            }
        }
        // A fault's effects outlast its injection a little (retries, reconnects).
        self.windows.lock().unwrap()[window].1 = Some(Instant::now() + Duration::from_secs(2));
    }

    /// Whether a request from `started` to `ended` overlapped a fault.
    fn during_fault(&self, started: Instant, ended: Instant) -> bool {
        self.windows
            .lock()
            .unwrap()
            .iter()
            .any(|(from, to)| *from <= ended && to.is_none_or(|to| started <= to))
    }
}

fn proxies(cluster: &Cluster) -> Vec<&ordermesh_e2e::FaultProxy> {
    [
        &cluster.payment_proxy,
        &cluster.inventory_proxy,
        &cluster.notify_proxy,
    ]
    .into_iter()
    .filter_map(Option::as_ref)
    .collect()
}

/// Opens one connection and keeps it; `None` once the server refuses more.
async fn storm_connection(url: &str) -> Option<sqlx::postgres::PgConnection> {
    use sqlx::Connection;
    tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::postgres::PgConnection::connect(url),
    )
    .await
    .ok()?
    .ok()
}

// ---------------------------------------------------------------------------------------------
// Clients.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Normal,
    Declined,
    OutOfStock,
    RepeatedKey,
    ConcurrentSameKey,
}

/// What the clients were told, to compare with the final state.
#[derive(Default)]
struct Ledger {
    /// (tenant, key) → every 2xx order answer: (order id, status).
    answers: HashMap<(usize, String), Vec<(String, String)>>,
    /// (tenant, order id) → a cancel was answered 200 (`CANCELLED`).
    cancelled: HashMap<(usize, String), String>,
    sent: usize,
    confirmed: usize,
    failed: usize,
    cancelled_count: usize,
    unavailable_then_completed: usize,
    gave_up: usize,
    unexpected: Vec<String>,
    latency_calm: Vec<u64>,
    latency_fault: Vec<u64>,
}

struct Client {
    http: reqwest::Client,
    order_urls: Vec<String>,
    testbed: Arc<Testbed>,
    ledger: Arc<Mutex<Ledger>>,
}

enum Attempt {
    Answered(StatusCode, Value),
    Retry,
}

impl Client {
    async fn once(
        &self,
        tenant: usize,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Attempt {
        let mut request = self
            .http
            .post(format!("{}{path}", self.order_urls[tenant]))
            .header("x-tenant-id", TENANTS[tenant])
            .timeout(CLIENT_TIMEOUT);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let result = request.send().await;
        let answered = match result {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(bytes) => Some((
                        status,
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    )),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let micros = started.elapsed().as_micros() as u64;
        {
            let during = self.testbed.during_fault(started, Instant::now());
            let mut ledger = self.ledger.lock().unwrap();
            if during {
                ledger.latency_fault.push(micros);
            } else {
                ledger.latency_calm.push(micros);
            }
        }
        match answered {
            Some((status, body)) if status != StatusCode::SERVICE_UNAVAILABLE => {
                Attempt::Answered(status, body)
            }
            _ => Attempt::Retry,
        }
    }

    /// Sends until answered (not 503, not a timeout or broken connection), or out of patience.
    async fn until_answered(
        &self,
        tenant: usize,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Value, bool)> {
        let deadline = Instant::now() + CLIENT_PATIENCE;
        let mut retried = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.once(tenant, path, key, body).await {
                Attempt::Answered(status, value) => return Some((status, value, retried)),
                Attempt::Retry if Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Attempt::Retry => return None,
            }
        }
    }

    async fn place(&self, tenant: usize, key: &str, body: &Value) -> Option<(String, String)> {
        let Some((status, value, retried)) = self
            .until_answered(tenant, "/api/v1/orders", Some(key), Some(body))
            .await
        else {
            self.ledger.lock().unwrap().gave_up += 1;
            return None;
        };
        let mut ledger = self.ledger.lock().unwrap();
        if !status.is_success() {
            ledger.unexpected.push(format!(
                "{} order key {key}: {status} {value}",
                TENANTS[tenant]
            ));
            return None;
        }
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        let state = value["status"].as_str().unwrap_or_default().to_owned();
        ledger
            .answers
            .entry((tenant, key.to_owned()))
            .or_default()
            .push((id.clone(), state.clone()));
        if retried {
            ledger.unavailable_then_completed += 1;
        }
        Some((id, state))
    }

    async fn cancel(&self, tenant: usize, id: &str) {
        let path = format!("/api/v1/orders/{id}/cancel");
        let Some((status, value, _)) = self.until_answered(tenant, &path, None, None).await else {
            self.ledger.lock().unwrap().gave_up += 1;
            return;
        };
        let mut ledger = self.ledger.lock().unwrap();
        if status.is_success() {
            ledger.cancelled_count += 1;
            ledger.cancelled.insert(
                (tenant, id.to_owned()),
                value["status"].as_str().unwrap_or_default().to_owned(),
            );
        } else {
            ledger
                .unexpected
                .push(format!("{} cancel {id}: {status} {value}", TENANTS[tenant]));
        }
    }

    async fn run_order(&self, n: usize, mut rng: Rng, run: &str) {
        let tenant = rng.below(2) as usize;
        let kind = match rng.below(100) {
            0..=69 => Kind::Normal,
            70..=79 => Kind::Declined,
            80..=85 => Kind::OutOfStock,
            86..=92 => Kind::RepeatedKey,
            _ => Kind::ConcurrentSameKey,
        };
        let key = format!("soak-{run}-{n}");
        let lines = 1 + rng.below(2) as usize;
        let first_sku = rng.below(5) as usize;
        let mut items = Vec::new();
        for l in 0..lines {
            let (sku, price) = if kind == Kind::OutOfStock {
                SKUS[5]
            } else {
                SKUS[(first_sku + l) % 5]
            };
            let mut item = json!({"sku": sku, "quantity": 1 + rng.below(3)});
            if rng.chance(50) {
                item["unit_price"] = json!(price);
            }
            items.push(item);
            if kind == Kind::OutOfStock {
                break;
            }
        }
        let body = json!({
            "customer_id": format!("{}-c{}", TENANTS[tenant], rng.below(50)),
            "currency": "EUR",
            "items": items,
            "payment_method": if kind == Kind::Declined { "card_declined" } else { "card" },
        });
        self.ledger.lock().unwrap().sent += 1;
        let result = match kind {
            Kind::ConcurrentSameKey => {
                let (a, b) = tokio::join!(
                    self.place(tenant, &key, &body),
                    self.place(tenant, &key, &body)
                );
                a.or(b)
            }
            Kind::RepeatedKey => {
                let first = self.place(tenant, &key, &body).await;
                self.place(tenant, &key, &body).await.or(first)
            }
            _ => self.place(tenant, &key, &body).await,
        };
        let Some((id, status)) = result else {
            return;
        };
        {
            let mut ledger = self.ledger.lock().unwrap();
            match status.as_str() {
                "CONFIRMED" => ledger.confirmed += 1,
                "FAILED" => ledger.failed += 1,
                other => ledger
                    .unexpected
                    .push(format!("order {id} answered {other}")),
            }
        }
        if status == "CONFIRMED" && rng.chance(10) {
            self.cancel(tenant, &id).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

async fn check_answers(cluster: &Cluster, tenant: usize, ledger: &Ledger) -> Vec<String> {
    let db = cluster.db(Svc::Order).await;
    let rows: Vec<(uuid::Uuid, String, String)> =
        sqlx::query_as("SELECT id, status, idempotency_key FROM orders")
            .fetch_all(&db)
            .await
            .unwrap();
    let by_id: HashMap<String, (String, String)> = rows
        .into_iter()
        .map(|(id, status, key)| (id.to_string(), (status, key)))
        .collect();
    let mut violations = Vec::new();
    for ((t, key), answers) in &ledger.answers {
        if *t != tenant {
            continue;
        }
        let ids: std::collections::BTreeSet<&String> = answers.iter().map(|(id, _)| id).collect();
        if ids.len() != 1 {
            violations.push(format!("key {key}: answers name several orders {ids:?}"));
        }
        for (id, answered) in answers {
            match by_id.get(id) {
                None => violations.push(format!("key {key}: answered order {id} is not stored")),
                Some((status, stored_key)) => {
                    let cancelled = ledger.cancelled.contains_key(&(tenant, id.clone()));
                    let agrees = status == answered
                        || (answered == "CONFIRMED" && status == "CANCELLED" && cancelled);
                    if !agrees || stored_key != key {
                        violations.push(format!(
                            "order {id}: answered {answered} (key {key}), stored {status} (key {stored_key})"
                        ));
                    }
                }
            }
        }
    }
    for ((t, id), answered) in &ledger.cancelled {
        if *t == tenant && by_id.get(id).map(|(s, _)| s.as_str()) != Some("CANCELLED") {
            violations.push(format!(
                "cancel of {id} answered {answered}, stored {:?}",
                by_id.get(id)
            ));
        }
    }
    violations
}

/// Nothing of `tenant` in `other`'s databases: no order id, payment, reservation or notification
/// for an order the other tenant's clients were answered, and no customer of `tenant`.
async fn check_isolation(other: &Cluster, tenant: usize, ledger: &Ledger) -> Vec<String> {
    let ids: Vec<uuid::Uuid> = ledger
        .answers
        .iter()
        .filter(|((t, _), _)| *t == tenant)
        .flat_map(|(_, a)| a.iter().filter_map(|(id, _)| id.parse().ok()))
        .collect();
    let mut violations = Vec::new();
    let checks = [
        (
            Svc::Order,
            "SELECT count(*) FROM orders WHERE id = ANY($1) OR customer_id LIKE $2 || '-%'",
        ),
        (
            Svc::Payment,
            "SELECT count(*) FROM payments WHERE order_id = ANY($1) OR $2 = ''",
        ),
        (
            Svc::Inventory,
            "SELECT count(*) FROM reservations WHERE order_id = ANY($1) OR $2 = ''",
        ),
        (
            Svc::Notify,
            "SELECT count(*) FROM notifications WHERE order_id = ANY($1) OR $2 = ''",
        ),
    ];
    for (svc, sql) in checks {
        let db = other.db(svc).await;
        let n: i64 = sqlx::query_scalar(sql)
            .bind(&ids)
            .bind(TENANTS[tenant])
            .fetch_one(&db)
            .await
            .unwrap();
        if n != 0 {
            violations.push(format!(
                "{n} rows of {} in {}'s {} database",
                TENANTS[tenant],
                other.tenant,
                svc.binary()
            ));
        }
    }
    violations
}

fn percentile(values: &mut [u64], p: f64) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_unstable();
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.1} ms", values[i] as f64 / 1000.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/soak");
    std::fs::create_dir_all(&root).unwrap();
    let load_secs = args.orders as f64 / args.rate;
    let mut rng = Rng(args.seed);
    let plan = schedule(&mut rng, load_secs);
    let partition = Duration::from_secs_f64((load_secs * 0.4).clamp(5.0, 60.0));
    println!(
        "soak: {} orders at {}/s over two tenants, seed {} (replay: --seed {} --orders {} --rate {})",
        args.orders, args.rate, args.seed, args.seed, args.orders, args.rate
    );
    println!("fault schedule (seconds into the load, tenant, fault):");
    for (at, fault, tenant) in &plan {
        println!("  {at:7.1}s  {}  {}", TENANTS[*tenant], fault.name());
    }

    // The harness creates the services' databases at TEST_DATABASE_URL and runs the binaries
    // from ORDERMESH_BIN_DIR (mk/soak.mk sets both): it must be this run's own cluster, never a
    // shared one, since the soak crashes it.
    let pg = Postgres::setup(&root, args.pg_port, args.pg_bin.clone());
    assert_eq!(
        std::env::var("TEST_DATABASE_URL").ok(),
        Some(pg.url()),
        "run with TEST_DATABASE_URL={} (the soak's own cluster)",
        pg.url()
    );
    let mut clusters = Vec::new();
    let mut order_urls = Vec::new();
    for tenant in TENANTS {
        let cluster = Cluster::start_with(
            tenant,
            Options {
                proxy_inventory: true,
                proxy_notify: true,
                proxy_payment: true,
                env: vec![("DATABASE_ACQUIRE_TIMEOUT_MS".into(), "1000".into())],
                ..Options::default()
            },
        )
        .await;
        for (sku, price) in SKUS {
            let stock = if sku == "SCARCE" { SCARCE_STOCK } else { STOCK };
            cluster.seed_item(sku, stock, price).await;
        }
        order_urls.push(
            cluster
                .url(Svc::Order, "")
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
        );
        clusters.push(AsyncMutex::new(cluster));
    }
    let testbed = Arc::new(Testbed {
        clusters,
        pg,
        windows: Mutex::new(Vec::new()),
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        order_urls,
        testbed: testbed.clone(),
        ledger: ledger.clone(),
    });

    // Faults, on their schedule.
    let load_started = Instant::now();
    let injector = {
        let testbed = testbed.clone();
        let plan = plan.clone();
        tokio::spawn(async move {
            let mut injected: BTreeMap<String, usize> = BTreeMap::new();
            for (at, fault, tenant) in plan {
                tokio::time::sleep_until((load_started + Duration::from_secs_f64(at)).into()).await;
                println!(
                    "  [{:7.1}s] inject {} on {}",
                    load_started.elapsed().as_secs_f64(),
                    fault.name(),
                    TENANTS[tenant]
                );
                testbed.inject(fault, tenant, partition).await;
                *injected.entry(fault.name()).or_default() += 1;
            }
            injected
        })
    };

    // Open-loop load: order n starts at n / rate, whatever the earlier ones are doing (bounded).
    let limit = Arc::new(tokio::sync::Semaphore::new(400));
    let run = format!("{}-{}", args.seed, uuid::Uuid::new_v4().simple());
    let mut tasks = Vec::with_capacity(args.orders);
    for n in 0..args.orders {
        tokio::time::sleep_until(
            (load_started + Duration::from_secs_f64(n as f64 / args.rate)).into(),
        )
        .await;
        let permit = limit.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        let order_rng = Rng(args.seed ^ (n as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            client.run_order(n, order_rng, &run).await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let injected = injector.await.unwrap();
    println!(
        "load done in {:.0}s; waiting for the reconciler and the outbox",
        load_started.elapsed().as_secs_f64()
    );

    // Checks.
    drop(client);
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    let mut violations: Vec<String> = ledger.unexpected.clone();
    if ledger.gave_up > 0 {
        violations.push(format!(
            "{} requests never answered within {CLIENT_PATIENCE:?}",
            ledger.gave_up
        ));
    }
    let Testbed { clusters, pg, .. } = Arc::try_unwrap(testbed).ok().unwrap();
    let clusters: Vec<Cluster> = clusters.into_iter().map(AsyncMutex::into_inner).collect();
    let initial: Vec<(&str, i64)> = SKUS
        .iter()
        .map(|(sku, _)| {
            (
                *sku,
                if *sku == "SCARCE" {
                    SCARCE_STOCK
                } else {
                    STOCK
                },
            )
        })
        .collect();
    for (t, cluster) in clusters.iter().enumerate() {
        if let Err(left) = cluster.settled_within(SETTLE_WITHIN).await {
            violations.push(format!(
                "{}: not settled within {SETTLE_WITHIN:?}: {left}",
                TENANTS[t]
            ));
        }
        match check_invariants(&cluster.databases().await, &initial).await {
            Ok(found) => violations.extend(found.iter().map(|v| format!("{}: {v}", TENANTS[t]))),
            Err(e) => violations.push(format!("{}: a database did not answer: {e}", TENANTS[t])),
        }
        violations.extend(check_answers(cluster, t, &ledger).await);
        violations.extend(check_isolation(&clusters[1 - t], t, &ledger).await);
    }

    // The table.
    let mut calm = ledger.latency_calm.clone();
    let mut faulty = ledger.latency_fault.clone();
    println!();
    println!("| soak (seed {}) | value |", args.seed);
    println!("|---|---|");
    println!("| orders sent | {} |", ledger.sent);
    println!(
        "| confirmed (answered `CONFIRMED`; cancels included) | {} |",
        ledger.confirmed
    );
    println!("| failed (declined, out of stock) | {} |", ledger.failed);
    println!("| cancelled | {} |", ledger.cancelled_count);
    println!(
        "| answered 503 / timed out, then completed with the same key | {} |",
        ledger.unavailable_then_completed
    );
    for fault in Fault::all() {
        println!(
            "| fault: {} | {} |",
            fault.name(),
            injected.get(&fault.name()).copied().unwrap_or(0)
        );
    }
    println!(
        "| latency p50 / p99 outside faults | {} / {} |",
        percentile(&mut calm, 0.5),
        percentile(&mut calm, 0.99)
    );
    println!(
        "| latency p50 / p99 during faults | {} / {} |",
        percentile(&mut faulty, 0.5),
        percentile(&mut faulty, 0.99)
    );
    println!("| **violations** | **{}** |", violations.len());
    for v in violations.iter().take(30) {
        println!("  violation: {v}");
    }
    if violations.len() > 30 {
        println!("  … and {} more", violations.len() - 30);
    }
    // Stop everything before exiting (process::exit runs no destructors): the services first,
    // then this run's PostgreSQL.
    drop(clusters);
    drop(pg);
    std::process::exit(i32::from(!violations.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line mk/soak.mk builds, and the defaults a bare `soak` runs with.
    #[test]
    fn the_makefiles_command_line_parses() {
        let args = Args::try_parse_from([
            "soak",
            "--pg-port",
            "56433",
            "--pg-bin",
            "/usr/lib/postgresql/17/bin",
            "--seed",
            "3",
            "--orders",
            "500",
            "--rate",
            "10",
        ])
        .unwrap();
        assert_eq!(
            (args.orders, args.rate, args.seed, args.pg_port),
            (500, 10.0, 3, 56433)
        );
        assert_eq!(args.pg_bin, PathBuf::from("/usr/lib/postgresql/17/bin"));
        let defaults = Args::try_parse_from(["soak"]).unwrap();
        assert_eq!(
            (
                defaults.orders,
                defaults.rate,
                defaults.seed,
                defaults.pg_port
            ),
            (10_000, 60.0, 1, 56432)
        );
    }
}
