//! order-service's public API against a real PostgreSQL and real payment-, inventory- and
//! notify-services (each with its own fresh database, all in-process through their `build()`):
//! an order confirmed at the catalog's prices and its notification delivered, idempotent replay
//! and key reuse, declined and out-of-stock orders, cancellation (money and stock back, once),
//! listing, and every client mistake answered with problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, json};
use uuid::Uuid;

const TENANT: &str = "tenant-a";

/// order-service and the three services it reaches (directly or through payment-service).
struct Services {
    order: TestApp,
    payment: TestApp,
    inventory: TestApp,
    notify: TestApp,
    /// inventory-service's database, where a test may hold a row's lock.
    inventory_db: String,
}

async fn spawn() -> Services {
    let common = |database| testkit::settings(TENANT, database);
    let inventory_db = testkit::fresh_database("o_inv").await;
    let inventory = inventory_service::build(common(inventory_db.clone()));
    let inventory = TestApp::start(inventory.await.unwrap(), TENANT).await;
    let notify = notify_service::build(common(testkit::fresh_database("o_notify").await));
    let notify = TestApp::start(notify.await.unwrap(), TENANT).await;
    let payment = payment_service::build(payment_service::Settings {
        common: common(testkit::fresh_database("o_pay").await),
        inventory: platform::http_client::Peer::new(
            commerce::contracts::inventory::SERVICE,
            inventory.base.clone(),
        )
        .unwrap(),
    });
    let payment = TestApp::start(payment.await.unwrap(), TENANT).await;
    let order = order_service::build(order_settings(
        testkit::fresh_database("order").await,
        &payment.base,
        &notify.base,
    ));
    let order = TestApp::start(order.await.unwrap(), TENANT).await;
    Services {
        order,
        payment,
        inventory,
        notify,
        inventory_db,
    }
}

/// order-service's settings for a test: its reconciler a minute away unless the test says
/// otherwise.
fn order_settings(
    database: String,
    payment: &url::Url,
    notify: &url::Url,
) -> order_service::Settings {
    use commerce::contracts::{notify, payment};
    use platform::http_client::Peer;
    order_service::Settings {
        common: testkit::settings(TENANT, database),
        payment: Peer::new(payment::SERVICE, payment.clone()).unwrap(),
        notify: Peer::new(notify::SERVICE, notify.clone()).unwrap(),
        payment_timeout: Duration::from_secs(5),
        outbox_poll_interval: Duration::from_millis(100),
        outbox_max_backoff: Duration::from_secs(1),
        reconcile_interval: Duration::from_secs(60),
        reconcile_after: Duration::from_secs(60),
    }
}

impl Services {
    async fn stop(self) {
        self.order.stop().await;
        self.payment.stop().await;
        self.inventory.stop().await;
        self.notify.stop().await;
    }

    /// `POST /api/v1/orders` under `key`.
    async fn place(&self, key: &str, body: &Value) -> (StatusCode, Value, bool) {
        let response = self
            .order
            .request(Method::POST, "/api/v1/orders")
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let (status, order) = json(response).await;
        (status, order, replayed)
    }

    async fn cancel(&self, id: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/orders/{id}/cancel");
        self.order.call(Method::POST, &path, None).await
    }

    /// The kinds of notification notify-service holds for the order, once there are `n`.
    async fn notifications(&self, order_id: &str, n: usize) -> Vec<String> {
        let path = format!("/api/v1/notifications?order_id={order_id}");
        testkit::eventually("the outbox's deliveries", Duration::from_secs(10), || {
            let path = path.clone();
            async move {
                let (_, list) = self.notify.call(Method::GET, &path, None).await;
                let kinds: Vec<String> = list["items"]
                    .as_array()?
                    .iter()
                    .filter_map(|n| n["kind"].as_str().map(String::from))
                    .collect();
                (kinds.len() >= n).then_some(kinds)
            }
        })
        .await
    }
}

fn order_body(items: Value) -> Value {
    json!({"customer_id": "c-1", "currency": "EUR", "items": items})
}

fn key() -> String {
    Uuid::new_v4().to_string()
}

#[tokio::test]
async fn an_order_is_confirmed_at_the_catalog_price_and_its_notification_delivered() {
    let s = spawn().await;
    s.inventory.seed_item("A", 10, 1999).await;
    let body = order_body(json!([{"sku": "A", "quantity": 2}]));
    let (status, order, replayed) = s.place(&key(), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert!(!replayed);
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["total_amount"], 3998);
    assert_eq!(order["items"][0]["unit_price"], 1999);
    assert_eq!(order["payment_method"], "card");
    assert_eq!(s.inventory.stock("A").await, (8, 0, 2));

    let id = order["id"].as_str().unwrap();
    let (status, stored) = s
        .order
        .call(Method::GET, &format!("/api/v1/orders/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored, order);
    assert_eq!(s.notifications(id, 1).await, ["order_confirmed"]);
    s.stop().await;
}

#[tokio::test]
async fn a_repeated_key_replays_and_another_body_under_it_conflicts() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let key = key();
    let body = order_body(json!([{"sku": "A", "quantity": 1}]));
    let (_, first, _) = s.place(&key, &body).await;
    let (status, again, replayed) = s.place(&key, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(again, first);
    assert_eq!(s.inventory.stock("A").await, (9, 0, 1), "charged once");

    let other = order_body(json!([{"sku": "A", "quantity": 2}]));
    let (status, problem, _) = s.place(&key, &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "idempotency-key-reused");
    s.stop().await;
}

#[tokio::test]
async fn declined_out_of_stock_and_changed_price_orders_fail_without_charging() {
    let s = spawn().await;
    s.inventory.seed_item("A", 1, 500).await;
    let cases = [
        (
            json!({"customer_id": "c-1", "currency": "EUR", "payment_method": "card_declined",
                   "items": [{"sku": "A", "quantity": 1}]}),
            "payment_declined",
        ),
        (
            order_body(json!([{"sku": "A", "quantity": 2}])),
            "out_of_stock",
        ),
        (
            order_body(json!([{"sku": "A", "quantity": 1, "unit_price": 499}])),
            "price_changed",
        ),
    ];
    for (body, reason) in cases {
        let (status, order, _) = s.place(&key(), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{reason}: {order}");
        assert_eq!(order["status"], "FAILED", "{reason}");
        assert_eq!(order["failure_reason"], reason);
        assert_eq!(order["total_amount"], Value::Null, "{reason}");
        let id = order["id"].as_str().unwrap();
        assert_eq!(s.notifications(id, 1).await, ["order_failed"]);
    }
    assert_eq!(s.inventory.stock("A").await, (1, 0, 0), "nothing reserved");
    s.stop().await;
}

#[tokio::test]
async fn a_confirmed_order_is_cancelled_once_and_only_confirmed_ones_are() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let (_, order, _) = s
        .place(&key(), &order_body(json!([{"sku": "A", "quantity": 2}])))
        .await;
    let id = order["id"].as_str().unwrap();
    let (status, cancelled) = s.cancel(id).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(s.inventory.stock("A").await, (5, 0, 0), "the stock is back");
    let (status, again) = s.cancel(id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, cancelled);
    let payment_path = format!("/api/v1/payments/{}", order["payment_id"].as_str().unwrap());
    let (_, payment) = s.payment.call(Method::GET, &payment_path, None).await;
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(
        s.notifications(id, 2).await,
        ["order_confirmed", "order_cancelled"]
    );

    let declined = json!({"customer_id": "c-1", "currency": "EUR",
                          "payment_method": "card_declined", "items": [{"sku": "A", "quantity": 1}]});
    let (_, failed, _) = s.place(&key(), &declined).await;
    let (status, problem) = s.cancel(failed["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "order-not-cancellable");
    assert_eq!(problem["order_status"], "FAILED");
    s.stop().await;
}

#[tokio::test]
async fn orders_are_listed_newest_first_by_status_and_page() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, order, _) = s
            .place(&key(), &order_body(json!([{"sku": "A", "quantity": 1}])))
            .await;
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    let (status, page) = s
        .order
        .call(Method::GET, "/api/v1/orders?status=CONFIRMED&limit=2", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let next = format!(
        "/api/v1/orders?limit=2&cursor={}",
        page["next_cursor"].as_str().unwrap()
    );
    let (_, rest) = s.order.call(Method::GET, &next, None).await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str());
    assert_eq!(rest["next_cursor"], Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn client_mistakes_are_problems_and_store_nothing() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let valid = order_body(json!([{"sku": "A", "quantity": 1}]));
    let missing_key = s
        .order
        .request(Method::POST, "/api/v1/orders")
        .json(&valid)
        .send()
        .await
        .unwrap();
    let (status, problem) = json(missing_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(testkit::problem_slug(&problem), "missing-idempotency-key");

    let (status, problem, _) = s.place("has space", &valid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(testkit::problem_slug(&problem), "invalid-idempotency-key");

    let invalid =
        json!({"customer_id": " ", "currency": "XYZ", "items": [{"sku": "a", "quantity": 0}]});
    let (status, problem, _) = s.place(&key(), &invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "customer_id",
            "currency",
            "items[0].sku",
            "items[0].quantity"
        ]
    );

    let lookups = [
        ("/api/v1/orders/not-a-uuid", StatusCode::BAD_REQUEST),
        ("/api/v1/orders?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/orders?status=SHIPPED", StatusCode::BAD_REQUEST),
    ];
    for (path, expected) in lookups {
        let (status, problem) = s.order.call(Method::GET, path, None).await;
        assert_eq!(status, expected, "{path}: {problem}");
    }
    let unknown = format!("/api/v1/orders/{}", Uuid::new_v4());
    let (status, problem) = s.order.call(Method::GET, &unknown, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(testkit::problem_slug(&problem), "not-found");

    s.order
        .assert_tenant_enforced(Method::GET, "/api/v1/orders", Value::Null)
        .await;
    let (_, page) = s.order.call(Method::GET, "/api/v1/orders", None).await;
    assert_eq!(page["items"], json!([]), "nothing was stored");
    assert_eq!(s.inventory.stock("A").await, (5, 0, 0));
    s.stop().await;
}

/// The document refuses exactly what order-service refuses (issue 20): every value below is
/// checked against the published schema and sent, and the answer is the one the document gives
/// it — a key or body it refuses gets 400/422, one it allows is served.
#[tokio::test]
async fn the_document_allows_exactly_what_order_service_accepts() {
    let s = spawn().await;
    s.inventory.seed_item("DOC-1", 10, 1999).await;
    let contract = testkit::openapi::Contract::new(order_service::openapi());
    let body_errors = |body: &Value| contract.request_body_errors("POST", "/api/v1/orders", body);
    let valid = order_body(json!([{"sku": "DOC-1", "quantity": 1}]));

    // Idempotency-Key: 1 to 255 visible ASCII characters.
    let long = "k".repeat(256);
    for refused in [
        &b""[..],
        b"has space",
        b"tab\there",
        "ü".as_bytes(),
        long.as_bytes(),
    ] {
        let documented = json!(String::from_utf8_lossy(refused));
        let errors =
            contract.parameter_errors("POST", "/api/v1/orders", "Idempotency-Key", &documented);
        assert!(
            !errors.is_empty(),
            "the document allows the key {refused:?}"
        );
        let response = s
            .order
            .request(Method::POST, "/api/v1/orders")
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(refused).unwrap(),
            )
            .json(&valid)
            .send()
            .await
            .unwrap();
        let (status, problem) = json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused:?}: {problem}");
        assert_eq!(testkit::problem_slug(&problem), "invalid-idempotency-key");
    }
    for allowed in ["!", "~", &"k".repeat(255)] {
        let errors =
            contract.parameter_errors("POST", "/api/v1/orders", "Idempotency-Key", &json!(allowed));
        assert_eq!(errors, Vec::<String>::new(), "{allowed:?}");
    }
    let (status, order, _) = s.place(&"k".repeat(255), &valid).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    // Bodies the document refuses: currency outside ISO 4217's list, blank or control-laden
    // customer ids (C1 and Unicode white space included), a quantity of 0, every line expecting
    // the price 0.
    let refused = [
        json!({"customer_id": "c-1", "currency": "AAA", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        json!({"customer_id": "\u{3000}", "currency": "EUR", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        json!({"customer_id": "a\u{85}b", "currency": "EUR", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        json!({"customer_id": "a\u{9f}", "currency": "EUR", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        json!({"customer_id": "x".repeat(65), "currency": "EUR", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        order_body(json!([{"sku": "DOC-1", "quantity": 0}])),
        order_body(json!([{"sku": "DOC-1", "quantity": 1.5}])),
        order_body(json!([{"sku": "DOC-1", "quantity": 1, "unit_price": 0}])),
        order_body(json!([
            {"sku": "DOC-1", "quantity": 1, "unit_price": 0.0},
            {"sku": "DOC-2", "quantity": 3, "unit_price": 0}
        ])),
    ];
    for body in refused {
        assert!(!body_errors(&body).is_empty(), "the document allows {body}");
        let (status, problem, _) = s.place(&key(), &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(testkit::problem_slug(&problem), "validation-failed");
    }

    // Bodies it allows are served: a customer id with U+FEFF (neither control nor white space),
    // and integers written `2.0` (JSON Schema's integer 2, read as 2).
    let allowed = [
        json!({"customer_id": "\u{feff}", "currency": "EUR", "items": [{"sku": "DOC-1", "quantity": 1}]}),
        order_body(json!([{"sku": "DOC-1", "quantity": 2.0, "unit_price": 1999.0}])),
    ];
    for body in allowed {
        assert_eq!(body_errors(&body), Vec::<String>::new(), "{body}");
        let (status, order, _) = s.place(&key(), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}: {order}");
        assert_eq!(order["status"], "CONFIRMED", "{order}");
    }
    let (_, order, _) = s
        .place(
            &key(),
            &order_body(json!([{"sku": "DOC-1", "quantity": 2.0}])),
        )
        .await;
    assert_eq!(order["items"][0]["quantity"], 2, "{order}");

    // One line expecting 0 beside one that does not is an order (0 is a price): the document
    // allows it and the order is settled, failed on the price it did not find.
    s.inventory.seed_item("DOC-2", 10, 1999).await;
    let one_free = order_body(json!([
        {"sku": "DOC-1", "quantity": 1, "unit_price": 0},
        {"sku": "DOC-2", "quantity": 1, "unit_price": 1999}
    ]));
    assert_eq!(body_errors(&one_free), Vec::<String>::new());
    let (status, order, _) = s.place(&key(), &one_free).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["failure_reason"], "price_changed", "{order}");

    // Lines whose expected prices add up past 10^12 beside one expecting none, in either order:
    // no total is formed, so none is too large (the document states the limit only when every
    // line expects a price); the order is settled.
    let big = json!({"sku": "DOC-1", "quantity": 2, "unit_price": commerce::values::MAX_AMOUNT});
    let unpriced = json!({"sku": "DOC-2", "quantity": 1});
    for items in [json!([big, unpriced]), json!([unpriced, big])] {
        let body = order_body(items);
        assert_eq!(body_errors(&body), Vec::<String>::new(), "{body}");
        let (status, order, _) = s.place(&key(), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}: {order}");
        assert_eq!(order["status"], "FAILED", "{order}");
    }
    s.stop().await;
}

/// Orders whose handler order-service counted as cut short because the caller went away.
async fn orders_cut_short(order: &TestApp) -> u64 {
    order
        .metrics_text()
        .await
        .lines()
        .filter(|line| {
            line.starts_with("http_server_requests_cancelled_total{")
                && line.contains(r#"reason="caller_gone""#)
                && line.contains(r#"route="/api/v1/orders""#)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A caller that gives up mid-saga does not cut the order short: the handler runs on to its
/// answer (`ON_CALLER_GONE`'s default, `finish`), so the order is settled at once rather than
/// left PENDING for the reconciler (a minute away here), and the cut is counted.
#[tokio::test]
async fn an_order_whose_caller_gives_up_is_settled_all_the_same_and_counted() {
    use sqlx::{Connection, Executor};
    let s = spawn().await;
    s.inventory.seed_item("GONE", 10, 1999).await;
    // Hold the item's row: the order's stock step waits on PostgreSQL's lock.
    let mut holder = sqlx::PgConnection::connect(&s.inventory_db).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT 1 FROM items WHERE sku = 'GONE' FOR UPDATE")
        .await
        .unwrap();
    let cut_before = orders_cut_short(&s.order).await;

    let body = order_body(json!([{"sku": "GONE", "quantity": 1}]));
    let gave_up = s
        .order
        .request(Method::POST, "/api/v1/orders")
        .header("idempotency-key", key())
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the caller gave up");
    testkit::eventually("the cut counted", Duration::from_secs(10), || async {
        (orders_cut_short(&s.order).await > cut_before).then_some(())
    })
    .await;
    holder.execute("ROLLBACK").await.unwrap();

    let confirmed = testkit::eventually("the order settled", Duration::from_secs(10), || async {
        let (_, list) = s.order.call(Method::GET, "/api/v1/orders", None).await;
        let order = list["items"].as_array()?.first()?.clone();
        (order["status"] != "PENDING").then_some(order)
    })
    .await;
    assert_eq!(confirmed["status"], "CONFIRMED", "{confirmed}");
    assert_eq!(s.inventory.stock("GONE").await, (9, 0, 1));
    s.stop().await;
}

/// Orders left PENDING by an order-service whose payment-service was unreachable are all settled
/// by the next order-service on the same database as soon as it starts: its reconciler's first
/// pass runs at start-up (the next one is a minute away here) and drains more than one batch.
#[tokio::test]
async fn a_restarted_order_service_settles_every_stuck_order_at_once() {
    const STUCK: usize = 45; // more than two of the reconciler's batches (20)
    let s = spawn().await;
    s.inventory.seed_item("STUCK", 100, 1999).await;
    let database = testkit::fresh_database("o_stuck").await;
    let unreachable = url::Url::parse("http://127.0.0.1:1/").unwrap();
    let before = order_service::build(order_settings(
        database.clone(),
        &unreachable,
        &s.notify.base,
    ));
    let before = TestApp::start(before.await.unwrap(), TENANT).await;
    let body = order_body(json!([{"sku": "STUCK", "quantity": 1}]));
    for _ in 0..STUCK {
        let reply = before
            .request(Method::POST, "/api/v1/orders")
            .header("idempotency-key", key())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    before.stop().await;

    let mut settings = order_settings(database, &s.payment.base, &s.notify.base);
    settings.reconcile_after = Duration::ZERO;
    let after = TestApp::start(order_service::build(settings).await.unwrap(), TENANT).await;
    testkit::eventually(
        "every stuck order confirmed",
        Duration::from_secs(30),
        || async {
            let (_, list) = after
                .call(
                    Method::GET,
                    "/api/v1/orders?status=CONFIRMED&limit=100",
                    None,
                )
                .await;
            (list["items"].as_array()?.len() == STUCK).then_some(())
        },
    )
    .await;
    let (_, pending) = after
        .call(Method::GET, "/api/v1/orders?status=PENDING&limit=100", None)
        .await;
    assert_eq!(pending["items"], json!([]), "{pending}");
    assert_eq!(
        s.inventory.stock("STUCK").await,
        (100 - STUCK as i64, 0, STUCK as i64)
    );
    after.stop().await;
    s.stop().await;
}
