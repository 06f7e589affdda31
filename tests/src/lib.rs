//! The end-to-end harness: runs the four real service binaries for a tenant as separate
//! processes on free loopback ports, each on a fresh database of the real local PostgreSQL, and
//! gives tests what they need to drive the saga and to break things on purpose: stop and restart
//! a service, put a [`FaultProxy`] between two services, read every database with SQL, and check
//! the invariants of DESIGN.md. [`Options::as_in_the_cluster`] runs the services as deploy/ does,
//! each checking its callers' mesh identities, with proxies standing for the sidecars.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: failing loudly is the point

mod fault_proxy;
mod invariants;
mod jaeger;

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub use fault_proxy::{FaultProxy, SeenRequest};
pub use invariants::{
    Databases, Subject, Unsettled, Violation, assert_invariants, check_invariants,
    wait_until_settled,
};
pub use jaeger::Jaeger;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
pub use testkit::{concurrently, eventually, json, poll};

/// The four services, in start-up order (callees first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Svc {
    Inventory,
    Notify,
    Payment,
    Order,
}

impl Svc {
    pub const ALL: [Svc; 4] = [Svc::Inventory, Svc::Notify, Svc::Payment, Svc::Order];

    pub fn binary(self) -> &'static str {
        match self {
            Svc::Order => "order-service",
            Svc::Payment => "payment-service",
            Svc::Inventory => "inventory-service",
            Svc::Notify => "notify-service",
        }
    }
}

/// Knobs for a cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Route payment-service's calls to inventory-service through a [`FaultProxy`].
    pub proxy_inventory: bool,
    /// Route order-service's calls to notify-service (the outbox) through a [`FaultProxy`].
    pub proxy_notify: bool,
    /// Route order-service's calls to payment-service through a [`FaultProxy`].
    pub proxy_payment: bool,
    /// Extra environment for every service (e.g. OTLP export settings).
    pub env: Vec<(String, String)>,
    /// As in the cluster: `REQUIRE_PEER_IDENTITY=true` on every service, a proxy on each of the
    /// three edges vouching for the caller in `x-forwarded-client-cert` as the callee's sidecar
    /// would, and the test's own requests to order-service carrying the ingress gateway's
    /// identity, as when they come through the mesh.
    pub as_in_the_cluster: bool,
}

/// How long [`Cluster::wait_for`] and its kin wait for a state to be reached.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The ingress gateway's SPIFFE id (callgraph.json).
pub const GATEWAY_ID: &str =
    "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";

/// The SPIFFE id `svc` of `tenant` runs as in the cluster: its ServiceAccount, named after it, in
/// `<tenant>-payments` (payment-service) or `<tenant>-orders` (the others).
pub fn spiffe_id(tenant: &str, svc: Svc) -> String {
    let role = match svc {
        Svc::Payment => "payments",
        Svc::Order | Svc::Inventory | Svc::Notify => "orders",
    };
    format!(
        "spiffe://cluster.local/ns/{tenant}-{role}/sa/{}",
        svc.binary()
    )
}

/// The `x-forwarded-client-cert` a sidecar of `callee` writes for a request from `caller` (a
/// SPIFFE id).
pub fn xfcc_from(caller: &str, callee: &str) -> String {
    format!(
        "By={callee};Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;\
         Subject=\"\";URI={caller}"
    )
}

/// One tenant's four services.
pub struct Cluster {
    pub tenant: String,
    pub client: reqwest::Client,
    ports: BTreeMap<Svc, u16>,
    databases: BTreeMap<Svc, String>,
    processes: BTreeMap<Svc, Child>,
    env: Vec<(String, String)>,
    pub inventory_proxy: Option<FaultProxy>,
    pub notify_proxy: Option<FaultProxy>,
    pub payment_proxy: Option<FaultProxy>,
    logs: PathBuf,
    /// The test's requests to order-service carry the gateway's identity.
    through_gateway: bool,
}

impl Cluster {
    pub async fn start(tenant: &str) -> Cluster {
        Self::start_with(tenant, Options::default()).await
    }

    pub async fn start_with(tenant: &str, mut options: Options) -> Cluster {
        let mut databases = BTreeMap::new();
        let mut ports = BTreeMap::new();
        for svc in Svc::ALL {
            databases.insert(svc, testkit::fresh_database(svc.binary()).await);
            ports.insert(svc, free_port());
        }
        let cluster = options.as_in_the_cluster;
        if cluster {
            options
                .env
                .push(("REQUIRE_PEER_IDENTITY".into(), "true".into()));
        }
        // In the cluster each edge's proxy is the callee's sidecar, vouching for the caller.
        let edge = |wanted: bool, caller: Svc, callee: Svc| {
            let port = ports[&callee];
            let (caller, callee) = (spiffe_id(tenant, caller), spiffe_id(tenant, callee));
            async move {
                if !wanted && !cluster {
                    return None;
                }
                let proxy = FaultProxy::start(port).await;
                if cluster {
                    proxy.vouch_for(&caller, &callee);
                }
                Some(proxy)
            }
        };
        let inventory_proxy = edge(options.proxy_inventory, Svc::Payment, Svc::Inventory).await;
        let notify_proxy = edge(options.proxy_notify, Svc::Order, Svc::Notify).await;
        let payment_proxy = edge(options.proxy_payment, Svc::Order, Svc::Payment).await;
        let logs = target_dir()
            .join("e2e-logs")
            .join(format!("{tenant}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs).expect("log directory");
        let mut cluster = Cluster {
            tenant: tenant.into(),
            client: reqwest::Client::new(),
            ports,
            databases,
            processes: BTreeMap::new(),
            env: options.env,
            inventory_proxy,
            notify_proxy,
            payment_proxy,
            logs,
            through_gateway: cluster,
        };
        for svc in Svc::ALL {
            cluster.start_service(svc).await;
        }
        cluster
    }

    /// `svc`'s API as this cluster's tenant calls it (and, [`Options::as_in_the_cluster`],
    /// order-service's with the ingress gateway's identity, as when it comes through the mesh).
    pub fn api(&self, svc: Svc) -> testkit::Api {
        let base = url::Url::parse(&format!("http://127.0.0.1:{}/", self.ports[&svc])).unwrap();
        let api = testkit::Api::new(self.client.clone(), base, &self.tenant);
        if self.through_gateway && svc == Svc::Order {
            let xfcc = xfcc_from(GATEWAY_ID, &spiffe_id(&self.tenant, Svc::Order));
            return api.with_header("x-forwarded-client-cert", &xfcc);
        }
        api
    }

    pub fn url(&self, svc: Svc, path: &str) -> url::Url {
        self.api(svc).url(path)
    }

    /// The environment `svc` runs with.
    fn service_env(&self, svc: Svc) -> Vec<(String, String)> {
        let base = |s: Svc| format!("http://127.0.0.1:{}", self.ports[&s]);
        let inventory = match &self.inventory_proxy {
            Some(proxy) => format!("http://{}", proxy.addr()),
            None => base(Svc::Inventory),
        };
        let notify = match &self.notify_proxy {
            Some(proxy) => format!("http://{}", proxy.addr()),
            None => base(Svc::Notify),
        };
        let payment = match &self.payment_proxy {
            Some(proxy) => format!("http://{}", proxy.addr()),
            None => base(Svc::Payment),
        };
        let mut env = vec![
            ("TENANT_ID".into(), self.tenant.clone()),
            (
                "LISTEN_ADDR".into(),
                format!("127.0.0.1:{}", self.ports[&svc]),
            ),
            ("DATABASE_URL".into(), self.databases[&svc].clone()),
            ("LOG_FORMAT".into(), "json".into()),
            ("RUST_LOG".into(), "info,sqlx=warn".into()),
            ("UPSTREAM_TIMEOUT_MS".into(), "2000".into()),
            ("PAYMENT_SERVICE_URL".into(), payment),
            ("NOTIFY_SERVICE_URL".into(), notify),
            ("INVENTORY_SERVICE_URL".into(), inventory),
            ("OUTBOX_POLL_INTERVAL_MS".into(), "100".into()),
            ("OUTBOX_MAX_BACKOFF_MS".into(), "300".into()),
            ("RECONCILE_INTERVAL_MS".into(), "200".into()),
            ("RECONCILE_AFTER_MS".into(), "1000".into()),
            ("TRUSTED_PEER_NAMESPACES".into(), "istio-system".into()),
        ];
        env.extend(self.env.iter().cloned());
        env
    }

    /// Starts `svc` (again) on its port and waits until it is ready.
    pub async fn start_service(&mut self, svc: Svc) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", svc.binary())))
            .expect("log file");
        let child = service_command(svc)
            .env_clear()
            .envs(self.service_env(svc))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} from {:?} ({e}); run `cargo build` first",
                    svc.binary(),
                    bin_dir()
                )
            });
        self.processes.insert(svc, child);
        testkit::wait_ready(&self.client, &self.url(svc, "/")).await;
    }

    /// Stops `svc` with SIGTERM and waits for it to exit; returns its exit status.
    pub async fn stop_service(&mut self, svc: Svc) -> std::process::ExitStatus {
        let mut child = self.processes.remove(&svc).expect("service is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {}", svc.binary());
        tokio::task::spawn_blocking(move || child.wait().expect("wait for exit"))
            .await
            .expect("join")
    }

    /// Kills `svc` with SIGKILL (no draining, no flushing) and reaps it.
    pub async fn kill_service(&mut self, svc: Svc) {
        let mut child = self.processes.remove(&svc).expect("service is running");
        let _ = child.kill();
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to `svc`.
    pub fn signal_service(&self, svc: Svc, signal: &str) {
        let pid = self.pid(svc).to_string();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
    }

    /// The database URL of `svc`.
    pub fn database_url(&self, svc: Svc) -> &str {
        &self.databases[&svc]
    }

    /// The process id of `svc`.
    pub fn pid(&self, svc: Svc) -> u32 {
        self.processes[&svc].id()
    }

    /// What `svc` has logged so far (JSON lines).
    pub fn log(&self, svc: Svc) -> String {
        std::fs::read_to_string(self.logs.join(format!("{}.log", svc.binary()))).unwrap_or_default()
    }

    /// A request to `svc` with this cluster's tenant header (see [`Cluster::api`]).
    pub fn request(&self, svc: Svc, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.api(svc).request(method, path)
    }

    /// Sets the available stock of `sku` at the default catalog price (`testkit::UNIT_PRICE`)
    /// through inventory-service's API.
    pub async fn seed_stock(&self, sku: &str, available: i64) {
        self.api(Svc::Inventory).seed_stock(sku, available).await;
    }

    /// Sets the available stock and catalog price of `sku` through inventory-service's API.
    pub async fn seed_item(&self, sku: &str, available: i64, unit_price: i64) {
        self.api(Svc::Inventory)
            .seed_item(sku, available, unit_price)
            .await;
    }

    /// `(available, reserved, committed)` of `sku`, through inventory-service's items API.
    pub async fn stock(&self, sku: &str) -> (i64, i64, i64) {
        self.api(Svc::Inventory).stock(sku).await
    }

    /// `POST /api/v1/orders/{id}/cancel`; returns the status and JSON body.
    pub async fn cancel_order(&self, id: &str) -> (reqwest::StatusCode, Value) {
        let path = format!("/api/v1/orders/{id}/cancel");
        self.api(Svc::Order).call(Method::POST, &path, None).await
    }

    /// `POST /api/v1/orders` with `key` and `body`; returns the status and JSON body.
    pub async fn place_order(&self, key: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        self.place_order_with(key, body, &[]).await
    }

    /// [`Cluster::place_order`] with `headers` besides (a name repeated is sent repeated).
    pub async fn place_order_with(
        &self,
        key: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .request(Svc::Order, Method::POST, "/api/v1/orders")
            .header("idempotency-key", key)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        json(request.send().await.unwrap()).await
    }

    pub async fn get_json(&self, svc: Svc, path: &str) -> (reqwest::StatusCode, Value) {
        self.api(svc).call(Method::GET, path, None).await
    }

    /// Polls `GET path` on `svc` until `until` holds for the JSON body (at most
    /// [`WAIT_TIMEOUT`]) and returns it; fails the test with the body as last seen otherwise.
    pub async fn wait_for(&self, svc: Svc, path: &str, until: impl Fn(&Value) -> bool) -> Value {
        testkit::poll(WAIT_TIMEOUT, || async {
            let (_, body) = self.get_json(svc, path).await;
            if until(&body) { Ok(body) } else { Err(body) }
        })
        .await
        .unwrap_or_else(|body| {
            panic!("GET {path} on {svc:?}: not as awaited after {WAIT_TIMEOUT:?}; last seen {body}")
        })
    }

    /// Polls order `id` until `until` holds for it and returns it (see [`Cluster::wait_for`]).
    pub async fn wait_for_order(&self, id: &str, until: impl Fn(&Value) -> bool) -> Value {
        self.wait_for(Svc::Order, &format!("/api/v1/orders/{id}"), until)
            .await
    }

    /// Polls notify-service's notifications of order `id` until `until` holds for them and
    /// returns them (see [`Cluster::wait_for`]).
    pub async fn wait_for_notifications(
        &self,
        id: &str,
        until: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let path = format!("/api/v1/notifications?order_id={id}");
        let list = self
            .wait_for(Svc::Notify, &path, |list| {
                list["items"].as_array().is_some_and(|items| until(items))
            })
            .await;
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// A pool on `svc`'s database, for assertions in SQL.
    pub async fn db(&self, svc: Svc) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.databases[&svc])
            .await
            .expect("connect to service database")
    }

    /// The four services' databases, for the invariants.
    pub async fn databases(&self) -> Databases {
        Databases {
            orders: self.db(Svc::Order).await,
            payments: self.db(Svc::Payment).await,
            inventory: self.db(Svc::Inventory).await,
            notify: self.db(Svc::Notify).await,
        }
    }

    /// Waits until no order is `PENDING` or `CANCELLING` and the outbox is empty (at most 30 s),
    /// so the invariants may be checked; fails the test otherwise.
    pub async fn wait_until_settled(&self) {
        let within = Duration::from_secs(30);
        if let Err(left) = self.settled_within(within).await {
            panic!("not settled within {within:?}: {left}");
        }
    }

    /// Waits until no order is `PENDING` or `CANCELLING` and the outbox is empty, for at most
    /// `within`; what was left otherwise.
    pub async fn settled_within(&self, within: Duration) -> Result<(), Unsettled> {
        invariants::wait_until_settled(&self.db(Svc::Order).await, within).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.processes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command that runs `svc`'s binary (as built by cargo).
pub fn service_command(svc: Svc) -> Command {
    Command::new(bin_dir().join(svc.binary()))
}

/// A fresh `Idempotency-Key`.
/// Sends the request `build` makes until the answer is not 503, as the contract tells a client
/// to: a 503 (a dependency that did not answer in time, or a refusal at the door) is retry-safe,
/// so the same request — same Idempotency-Key — goes again after its `Retry-After`. Returns the
/// first other answer; fails the test if only 503s come back for [`WAIT_TIMEOUT`]. Tests that
/// load the services from many clients at once use it: on a loaded machine some of those calls
/// time out, and what the test asserts is the outcome a real client ends up with.
pub async fn until_answered(
    build: impl Fn() -> reqwest::RequestBuilder,
) -> (reqwest::StatusCode, Value) {
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        let response = build().send().await.unwrap();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 5);
        let (status, body) = json(response).await;
        if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return (status, body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still 503 after {WAIT_TIMEOUT:?}: {body}"
        );
        eprintln!("503 (repeated after {retry_after} s): {body}");
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
    }
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An order body for `items` given as `(sku, quantity, expected unit_price)`.
pub fn order_body(items: &[(&str, i64, i64)]) -> Value {
    json!({
        "customer_id": "customer-1",
        "currency": "EUR",
        "items": items.iter().map(|(sku, quantity, unit_price)| json!({
            "sku": sku, "quantity": quantity, "unit_price": unit_price
        })).collect::<Vec<_>>(),
    })
}

/// An order body for `items` given as `(sku, quantity)`, without expected prices: the
/// catalog's are charged.
pub fn order_body_unpriced(items: &[(&str, i64)]) -> Value {
    json!({
        "customer_id": "customer-1",
        "currency": "EUR",
        "items": items.iter().map(|(sku, quantity)| json!({
            "sku": sku, "quantity": quantity
        })).collect::<Vec<_>>(),
    })
}

/// A port that was free a moment ago, below the kernel's ephemeral range (32768 and up), so no
/// outgoing connection can take it before the service binds it. Ports are handed out in turn
/// from a per-process starting point, so concurrent tests never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() * 7_919 % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// `target/<profile>`: where cargo put the service binaries (tests run from `target/<profile>/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("target directory")
}

fn bin_dir() -> PathBuf {
    std::env::var_os("ORDERMESH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(target_dir)
}
