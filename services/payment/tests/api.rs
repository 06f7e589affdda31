//! payment-service against a real PostgreSQL and a real inventory-service (each with its own
//! fresh database, both in-process): capture at the catalog's prices, decline, void (out of stock,
//! price changed), idempotent and concurrent repeats, resuming after inventory-service was down
//! or a response was lost, refunds that return the stock, and every client mistake (an amount
//! that is not its lines' total included) answered with problem+json before anything is reserved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, json};
use uuid::Uuid;

const TENANT: &str = "tenant-a";

/// payment-service and the inventory-service it calls.
struct Services {
    payment: TestApp,
    inventory: TestApp,
}

async fn start_inventory(listen_addr: Option<SocketAddr>, database: Option<String>) -> TestApp {
    let database = match database {
        Some(url) => url,
        None => testkit::fresh_database("payment_inventory").await,
    };
    let mut common = testkit::settings(TENANT, database);
    if let Some(addr) = listen_addr {
        common.listen_addr = addr;
    }
    TestApp::start(inventory_service::build(common).await.unwrap(), TENANT).await
}

async fn start_payment(inventory_url: url::Url) -> TestApp {
    let database = testkit::fresh_database("payment").await;
    let settings = payment_service::Settings {
        common: testkit::settings(TENANT, database),
        inventory: platform::http_client::Peer::new(
            commerce::contracts::inventory::SERVICE,
            inventory_url,
        )
        .unwrap(),
    };
    TestApp::start(payment_service::build(settings).await.unwrap(), TENANT).await
}

async fn spawn() -> Services {
    let inventory = start_inventory(None, None).await;
    let payment = start_payment(inventory.base.clone()).await;
    Services { payment, inventory }
}

impl Services {
    async fn stop(self) {
        self.payment.stop().await;
        self.inventory.stop().await;
    }
}

/// A payment without expected prices: the catalog's are charged.
fn payment_body(order_id: Uuid, method: &str, items: Value) -> Value {
    json!({
        "order_id": order_id,
        "currency": "EUR",
        "payment_method": method,
        "items": items,
    })
}

async fn pay(payment: &TestApp, body: &Value) -> (StatusCode, Value) {
    payment
        .call(Method::POST, "/api/v1/payments", Some(body.clone()))
        .await
}

async fn payments_for_order(payment: &TestApp, order_id: Uuid) -> Vec<Value> {
    let (status, list) = payment
        .call(
            Method::GET,
            &format!("/api/v1/payments?order_id={order_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_payment_is_captured_and_its_reservation_committed() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    s.inventory.seed_stock("B", 10).await;
    let order = Uuid::new_v4();
    let body = payment_body(
        order,
        "card",
        json!([{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 2}]),
    );
    let response = s
        .payment
        .request(Method::POST, "/api/v1/payments")
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, payment) = json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "CAPTURED");
    assert_eq!(payment["failure_reason"], Value::Null);
    assert_eq!(payment["order_id"], order.to_string());
    assert_eq!(
        payment["amount"],
        3 * testkit::UNIT_PRICE,
        "the catalog's prices"
    );
    assert_eq!(
        payment["items"],
        json!([{"sku": "A", "quantity": 2, "unit_price": testkit::UNIT_PRICE},
               {"sku": "B", "quantity": 1, "unit_price": testkit::UNIT_PRICE}])
    );
    assert_eq!(payment["currency"], "EUR");
    assert_eq!(
        location,
        format!("/api/v1/payments/{}", payment["id"].as_str().unwrap())
    );

    let (status, held) = s.inventory.reservation(order).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["status"], "COMMITTED");
    assert_eq!(s.inventory.stock("A").await, (8, 0, 2));
    assert_eq!(s.inventory.stock("B").await, (9, 0, 1));

    let (status, read) = s.payment.call(Method::GET, &location, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, payment);
    assert_eq!(payments_for_order(&s.payment, order).await, [payment]);
    s.stop().await;
}

#[tokio::test]
async fn a_repeated_payment_replays_the_stored_one() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let body = payment_body(Uuid::new_v4(), "card", json!([{"sku": "A", "quantity": 2}]));
    let (status, first) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    assert_eq!(
        s.inventory.stock("A").await,
        (8, 0, 2),
        "stock is taken once"
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_make_one_payment_and_one_reservation() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let body = payment_body(order, "card", json!([{"sku": "A", "quantity": 3}]));
    let client = s.payment.client.clone();
    let url = s.payment.url("/api/v1/payments");
    let answers = testkit::concurrently(10, move |_| {
        let request = client
            .post(url.clone())
            .header("x-tenant-id", TENANT)
            .json(&body);
        async move { json(request.send().await.unwrap()).await }
    })
    .await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let replayed = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, replayed), (1, 9), "{answers:?}");
    let id = &answers[0].1["id"];
    for (_, payment) in &answers {
        assert_eq!(&payment["id"], id);
        assert_eq!(payment["status"], "CAPTURED");
    }
    assert_eq!(payments_for_order(&s.payment, order).await.len(), 1);
    assert_eq!(
        s.inventory.stock("A").await,
        (7, 0, 3),
        "one reservation, committed"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_declined_card_is_declined_without_touching_stock() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let body = payment_body(order, "card_declined", json!([{"sku": "A", "quantity": 1}]));
    let (status, payment) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "DECLINED");
    assert_eq!(payment["failure_reason"], "declined");
    let (status, _) = s.inventory.reservation(order).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.inventory.stock("A").await, (10, 0, 0));

    let (status, again) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, payment);
    s.stop().await;
}

#[tokio::test]
async fn out_of_stock_voids_the_payment_and_leaves_stock_alone() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 1).await;
    let order = Uuid::new_v4();
    let body = payment_body(order, "card", json!([{"sku": "A", "quantity": 2}]));
    let (status, payment) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "VOIDED");
    assert_eq!(payment["failure_reason"], "out_of_stock");
    assert_eq!(s.inventory.stock("A").await, (1, 0, 0));
    let (status, _) = s.inventory.reservation(order).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no reservation holds stock");

    s.inventory.seed_stock("A", 50).await;
    let (status, again) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again, payment,
        "a voided payment stays voided, even after a restock"
    );
    assert_eq!(s.inventory.stock("A").await, (50, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_sku_voids_the_payment() {
    let s = spawn().await;
    let body = payment_body(
        Uuid::new_v4(),
        "card",
        json!([{"sku": "GHOST", "quantity": 1}]),
    );
    let (status, payment) = pay(&s.payment, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "VOIDED");
    assert_eq!(payment["failure_reason"], "out_of_stock");
    s.stop().await;
}

/// A free loopback address nobody listens on (yet).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn while_inventory_is_down_the_payment_waits_authorized_and_a_repeat_completes_it() {
    let addr = closed_port();
    let payment = start_payment(url::Url::parse(&format!("http://{addr}/")).unwrap()).await;
    let order = Uuid::new_v4();
    let body = payment_body(order, "card", json!([{"sku": "A", "quantity": 2}]));

    let response = payment
        .request(Method::POST, "/api/v1/payments")
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, problem) = json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(testkit::problem_slug(&problem), "dependency-unavailable");
    assert_eq!(retry_after.unwrap(), "1");
    let stored = payments_for_order(&payment, order).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "AUTHORIZED");

    let inventory = start_inventory(Some(addr), None).await;
    inventory.seed_stock("A", 5).await;
    let (status, completed) = pay(&payment, &body).await;
    assert_eq!(status, StatusCode::OK, "{completed}");
    assert_eq!(completed["status"], "CAPTURED");
    assert_eq!(completed["id"], stored[0]["id"]);
    let (status, held) = inventory.reservation(order).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["status"], "COMMITTED");
    assert_eq!(
        inventory.stock("A").await,
        (3, 0, 2),
        "exactly one reservation"
    );
    payment.stop().await;
    inventory.stop().await;
}

#[tokio::test]
async fn inventory_going_down_between_calls_is_resumed_from_the_stored_state() {
    // inventory-service stops and restarts on the same address and database, as after a crash.
    let addr = closed_port();
    let database = testkit::fresh_database("payment_inventory").await;
    let inventory = start_inventory(Some(addr), Some(database.clone())).await;
    inventory.seed_stock("A", 5).await;
    let payment = start_payment(inventory.base.clone()).await;

    // An earlier attempt's reservation went through but its answer was lost.
    let order = Uuid::new_v4();
    let (status, _) = inventory
        .reserve(order, json!([{"sku": "A", "quantity": 2}]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    inventory.stop().await;

    let body = payment_body(order, "card", json!([{"sku": "A", "quantity": 2}]));
    let (status, _) = pay(&payment, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let inventory = start_inventory(Some(addr), Some(database)).await;
    let (status, completed) = pay(&payment, &body).await;
    assert_eq!(status, StatusCode::OK, "{completed}");
    assert_eq!(completed["status"], "CAPTURED");
    assert_eq!(
        inventory.stock("A").await,
        (3, 0, 2),
        "the earlier reservation was reused"
    );
    payment.stop().await;
    inventory.stop().await;
}

#[tokio::test]
async fn a_reservation_committed_before_a_lost_response_is_captured_on_repeat() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 1}]);
    s.inventory.reserve(order, items.clone()).await;
    let (status, _) = s.inventory.commit_or_release(order, "commit").await;
    assert_eq!(status, StatusCode::OK);

    let (status, payment) = pay(&s.payment, &payment_body(order, "card", items)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "CAPTURED");
    assert_eq!(s.inventory.stock("A").await, (4, 0, 1));
    s.stop().await;
}

#[tokio::test]
async fn a_reservation_left_held_is_committed_and_captured() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 1}]);
    let (status, held) = s.inventory.reserve(order, items.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        held["status"], "RESERVED",
        "the two-step protocol holds first"
    );

    let (status, payment) = pay(&s.payment, &payment_body(order, "card", items)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "CAPTURED");
    assert_eq!(s.inventory.stock("A").await, (4, 0, 1));
    s.stop().await;
}

#[tokio::test]
async fn a_reservation_released_before_commit_voids_the_payment() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 5).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 1}]);
    s.inventory.reserve(order, items.clone()).await;
    s.inventory.commit_or_release(order, "release").await;

    let (status, payment) = pay(&s.payment, &payment_body(order, "card", items)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "VOIDED");
    assert_eq!(payment["failure_reason"], "out_of_stock");
    assert_eq!(
        s.inventory.stock("A").await,
        (5, 0, 0),
        "no stock is held for the order"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_same_order_with_different_terms_conflicts() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 1}]);
    let (status, original) = pay(&s.payment, &payment_body(order, "card", items.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let expected = testkit::UNIT_PRICE;
    let variants = [
        json!({"order_id": order, "amount": expected, "currency": "EUR", "payment_method": "card",
               "items": [{"sku": "A", "quantity": 1, "unit_price": expected}]}),
        payment_body(order, "card_declined", items.clone()),
        payment_body(order, "card", json!([{"sku": "A", "quantity": 2}])),
        json!({"order_id": order, "currency": "USD", "payment_method": "card", "items": items}),
    ];
    for body in variants {
        let (status, problem) = pay(&s.payment, &body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(testkit::problem_slug(&problem), "payment-conflict");
        assert_eq!(problem["payment_id"], original["id"]);
    }
    assert_eq!(s.inventory.stock("A").await, (9, 0, 1));
    s.stop().await;
}

#[tokio::test]
async fn an_invented_order_cannot_set_its_own_amount() {
    // Issue 9: an invented order id, amount 1 and 1,000 units was CAPTURED.
    let s = spawn().await;
    s.inventory.seed_item("SKU-005", 1000, 1250).await;
    let order = Uuid::new_v4();
    for body in [
        json!({"order_id": order, "amount": 1, "currency": "EUR", "payment_method": "card",
               "items": [{"sku": "SKU-005", "quantity": 1000}]}),
        json!({"order_id": order, "amount": 1, "currency": "EUR", "payment_method": "card",
               "items": [{"sku": "SKU-005", "quantity": 1000, "unit_price": 1}]}),
    ] {
        let (status, problem) = pay(&s.payment, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "amount");
    }
    assert!(payments_for_order(&s.payment, order).await.is_empty());
    assert_eq!(
        s.inventory.stock("SKU-005").await,
        (1000, 0, 0),
        "nothing reserved"
    );
    let (status, _) = s.inventory.reservation(order).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Consistent with itself but below the catalog: voided, nothing reserved or charged.
    let (status, payment) = pay(
        &s.payment,
        &json!({"order_id": order, "amount": 1000, "currency": "EUR", "payment_method": "card",
                "items": [{"sku": "SKU-005", "quantity": 1000, "unit_price": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "VOIDED");
    assert_eq!(payment["failure_reason"], "price_changed");
    assert_eq!(payment["amount"], Value::Null, "nothing charged");
    assert_eq!(
        s.inventory.stock("SKU-005").await,
        (1000, 0, 0),
        "nothing reserved"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_payment_is_charged_the_catalog_price_whatever_the_caller_hoped() {
    let s = spawn().await;
    s.inventory.seed_item("A", 10, 700).await;
    // Expecting more than the catalog is as wrong as expecting less.
    let (_, higher) = pay(
        &s.payment,
        &json!({"order_id": Uuid::new_v4(), "amount": 800, "currency": "EUR", "payment_method": "card",
                "items": [{"sku": "A", "quantity": 1, "unit_price": 800}]}),
    )
    .await;
    assert_eq!(higher["failure_reason"], "price_changed");
    let (_, exact) = pay(
        &s.payment,
        &json!({"order_id": Uuid::new_v4(), "amount": 1400, "currency": "EUR", "payment_method": "card",
                "items": [{"sku": "A", "quantity": 2, "unit_price": 700}]}),
    )
    .await;
    assert_eq!(exact["status"], "CAPTURED");
    assert_eq!(exact["amount"], 1400);
    let (_, unpriced) = pay(
        &s.payment,
        &payment_body(Uuid::new_v4(), "card", json!([{"sku": "A", "quantity": 3}])),
    )
    .await;
    assert_eq!(unpriced["status"], "CAPTURED");
    assert_eq!(unpriced["amount"], 2100);
    assert_eq!(s.inventory.stock("A").await, (5, 0, 5));
    s.stop().await;
}

#[tokio::test]
async fn a_captured_payment_is_refunded_once_and_only_captured_ones_are() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let (_, captured) = pay(
        &s.payment,
        &payment_body(Uuid::new_v4(), "card", json!([{"sku": "A", "quantity": 1}])),
    )
    .await;
    let refund_path = format!(
        "/api/v1/payments/{}/refund",
        captured["id"].as_str().unwrap()
    );
    let (status, refunded) = s.payment.call(Method::POST, &refund_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refunded["status"], "REFUNDED");
    assert_eq!(refunded["id"], captured["id"]);
    let (status, again) = s.payment.call(Method::POST, &refund_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, refunded);
    assert_eq!(
        s.inventory.stock("A").await,
        (10, 0, 0),
        "the stock is back on sale, once"
    );
    let (_, reservation) = s
        .inventory
        .reservation(captured["order_id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(reservation["status"], "RETURNED");

    let (_, declined) = pay(
        &s.payment,
        &payment_body(
            Uuid::new_v4(),
            "card_declined",
            json!([{"sku": "A", "quantity": 1}]),
        ),
    )
    .await;
    let path = format!(
        "/api/v1/payments/{}/refund",
        declined["id"].as_str().unwrap()
    );
    let (status, problem) = s.payment.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "not-refundable");

    let path = format!("/api/v1/payments/{}/refund", Uuid::new_v4());
    let (status, _) = s.payment.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn lookups_by_id_and_by_order() {
    let s = spawn().await;
    let (status, problem) = s
        .payment
        .call(
            Method::GET,
            &format!("/api/v1/payments/{}", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(testkit::problem_slug(&problem), "not-found");
    assert!(
        payments_for_order(&s.payment, Uuid::new_v4())
            .await
            .is_empty()
    );

    for (path, expected_slug) in [
        ("/api/v1/payments", "invalid-query"),
        ("/api/v1/payments?order_id=nope", "invalid-query"),
        ("/api/v1/payments?order_id=&x=1", "invalid-query"),
        ("/api/v1/payments/not-a-uuid", "invalid-path-parameter"),
        ("/api/v1/payments/123/refund", "invalid-path-parameter"),
    ] {
        let method = if path.ends_with("refund") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, problem) = s.payment.call(method, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert_eq!(testkit::problem_slug(&problem), expected_slug, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn invalid_payment_requests_are_client_errors() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let line = |sku: &str, quantity: i64| json!({"sku": sku, "quantity": quantity});
    let with = |field: &str, value: Value| {
        let mut body = payment_body(order, "card", json!([line("A", 1)]));
        body[field] = value;
        body
    };
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(&str, Value)> = vec![
        ("amount 0", with("amount", json!(0))),
        ("negative amount", with("amount", json!(-1))),
        (
            "amount over the maximum",
            with("amount", json!(commerce::values::MAX_AMOUNT + 1)),
        ),
        ("amount overflowing i64", with("amount", json!(u64::MAX))),
        ("amount as a string", with("amount", json!("10"))),
        (
            "amount without expected prices",
            with("amount", json!(testkit::UNIT_PRICE)),
        ),
        (
            "amount that is not the expected prices' total",
            with(
                "items",
                json!([{"sku": "A", "quantity": 1, "unit_price": 100}]),
            )
            .as_object()
            .cloned()
            .map(|mut body| {
                body.insert("amount".into(), json!(99));
                Value::Object(body)
            })
            .unwrap(),
        ),
        ("NUL in the currency", with("currency", json!("EU\u{0}"))),
        ("NUL in a sku", with("items", json!([line("A\u{0}", 1)]))),
        ("dot-dot sku", with("items", json!([line("..", 1)]))),
        (
            "control character in a sku",
            with("items", json!([line("A\u{7f}", 1)])),
        ),
        ("lowercase currency", with("currency", json!("eur"))),
        ("unknown currency", with("currency", json!("XXX"))),
        (
            "unknown payment method",
            with("payment_method", json!("cash")),
        ),
        ("empty items", with("items", json!([]))),
        ("quantity 0", with("items", json!([line("A", 0)]))),
        ("quantity -1", with("items", json!([line("A", -1)]))),
        ("quantity 1001", with("items", json!([line("A", 1001)]))),
        ("bad sku", with("items", json!([line("a/b", 1)]))),
        (
            "duplicate sku",
            with("items", json!([line("A", 1), line("A", 1)])),
        ),
        (
            "too many items",
            with(
                "items",
                json!(
                    (0..51)
                        .map(|i| line(&format!("S{i}"), 1))
                        .collect::<Vec<_>>()
                ),
            ),
        ),
        ("nil order id", with("order_id", json!(Uuid::nil()))),
        ("unknown field", with("coupon", json!("FREE"))),
        ("missing field", {
            let mut body = payment_body(order, "card", json!([line("A", 1)]));
            body.as_object_mut().unwrap().remove("currency");
            body
        }),
    ];
    for (name, body) in cases {
        let (status, problem) = pay(&s.payment, &body).await;
        assert_eq!(status, unprocessable, "{name}: {problem}");
        assert_eq!(
            testkit::problem_slug(&problem),
            "validation-failed",
            "{name}"
        );
    }
    assert!(
        payments_for_order(&s.payment, order).await.is_empty(),
        "nothing was stored"
    );

    let malformed = s
        .payment
        .request(Method::POST, "/api/v1/payments")
        .header("content-type", "application/json")
        .body("{\"order_id\": \"")
        .send()
        .await
        .unwrap();
    let (status, problem) = json(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(testkit::problem_slug(&problem), "malformed-json");

    let lines: Vec<Value> = (0..5_000)
        .map(|i| line(&format!("SKU-{i:06}"), 1))
        .collect();
    let (status, problem) = pay(&s.payment, &with("items", json!(lines))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(testkit::problem_slug(&problem), "payload-too-large");
    assert_eq!(s.inventory.stock("A").await, (10, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn the_tenant_header_is_required_and_must_match() {
    let s = spawn().await;
    let body = payment_body(Uuid::new_v4(), "card", json!([{"sku": "A", "quantity": 1}]));
    s.payment
        .assert_tenant_enforced(Method::POST, "/api/v1/payments", body)
        .await;
    s.stop().await;
}

#[tokio::test]
async fn payment_outcomes_are_counted_in_metrics() {
    let s = spawn().await;
    s.inventory.seed_stock("A", 1).await;
    pay(
        &s.payment,
        &payment_body(Uuid::new_v4(), "card", json!([{"sku": "A", "quantity": 1}])),
    )
    .await;
    let text = s.payment.metrics_text().await;
    assert!(
        text.contains("payments_total{outcome=\"captured\"}"),
        "{text}"
    );
    s.stop().await;
}

/// The document refuses exactly what payment-service refuses (issue 20): an `amount` of 0, a
/// currency outside ISO 4217's list and the nil UUID as `order_id` are refused by both (422); a line expecting a price of 0 is
/// allowed by both (the catalog's price differs: the payment is voided, `price_changed`), and
/// integers written `2.0` are served as the integer 2.
#[tokio::test]
async fn the_document_allows_exactly_what_payment_service_accepts() {
    let s = spawn().await;
    s.inventory.seed_stock("DOC-1", 10).await;
    let contract = testkit::openapi::Contract::new(payment_service::openapi());
    let body_errors = |body: &Value| contract.request_body_errors("POST", "/api/v1/payments", body);
    let price = testkit::UNIT_PRICE;
    let priced = |amount: Value, currency: &str, unit_price: Value| {
        json!({
            "order_id": Uuid::new_v4(),
            "amount": amount,
            "currency": currency,
            "payment_method": "card",
            "items": [{"sku": "DOC-1", "quantity": 1, "unit_price": unit_price}],
        })
    };
    let nil_order = {
        let mut body = priced(json!(price), "EUR", json!(price));
        body["order_id"] = json!(Uuid::nil());
        body
    };
    for body in [
        priced(json!(0), "EUR", json!(0)),
        priced(json!(price), "AAA", json!(price)),
        priced(json!(price), "EUR", json!(price as f64 + 0.5)),
        nil_order,
    ] {
        assert!(!body_errors(&body).is_empty(), "the document allows {body}");
        let (status, problem) = pay(&s.payment, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(testkit::problem_slug(&problem), "validation-failed");
    }

    let free = payment_body(
        Uuid::new_v4(),
        "card",
        json!([{"sku": "DOC-1", "quantity": 1, "unit_price": 0}]),
    );
    assert_eq!(body_errors(&free), Vec::<String>::new());
    let (status, payment) = pay(&s.payment, &free).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["failure_reason"], "price_changed", "{payment}");

    let whole = priced(json!(2.0 * price as f64), "EUR", json!(price as f64));
    let whole = {
        let mut body = whole;
        body["items"][0]["quantity"] = json!(2.0);
        body
    };
    assert_eq!(body_errors(&whole), Vec::<String>::new());
    let (status, payment) = pay(&s.payment, &whole).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "CAPTURED", "{payment}");
    assert_eq!(payment["amount"], 2 * price);
    assert_eq!(payment["items"][0]["quantity"], 2);
    s.stop().await;
}

#[tokio::test]
async fn callers_the_call_graph_does_not_name_are_refused_as_documented() {
    // As deploy/ runs it: a request without the sidecar's header is refused too.
    let inventory = start_inventory(None, None).await;
    let mut common = testkit::settings(TENANT, testkit::fresh_database("payment").await);
    common.peer_identity.require = true;
    let settings = payment_service::Settings {
        common,
        inventory: platform::http_client::Peer::new(
            commerce::contracts::inventory::SERVICE,
            inventory.base.clone(),
        )
        .unwrap(),
    };
    let payment = TestApp::start(payment_service::build(settings).await.unwrap(), TENANT).await;
    let refund = format!("/api/v1/payments/{}/refund", Uuid::new_v4());
    let xfcc = |caller: &str| {
        format!(
            "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;URI=spiffe://{caller}"
        )
    };
    let app = &payment;
    let send = |header: Option<String>| {
        let mut request = app.request(Method::POST, &refund);
        if let Some(header) = header {
            request = request.header("x-forwarded-client-cert", header);
        }
        async move {
            let answer = json(request.send().await.unwrap()).await;
            app.assert_contract_kept();
            answer
        }
    };
    for refused in [
        None,
        Some(xfcc("cluster.local/ns/tenant-a-orders/sa/notify-service")),
        Some(xfcc("evil.example/ns/tenant-a-orders/sa/order-service")),
    ] {
        let (status, problem) = send(refused.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused:?}: {problem}");
        assert_eq!(
            testkit::problem_slug(&problem),
            "caller-not-allowed",
            "{refused:?}"
        );
    }
    // order-service is the route's caller: it gets past the check (to an unknown payment).
    let (status, problem) = send(Some(xfcc(
        "cluster.local/ns/tenant-a-orders/sa/order-service",
    )))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    payment.stop().await;
    inventory.stop().await;
}
