//! The trust boundaries of issue 9, end to end on the four real binaries: prices come from the
//! catalog (a client's lower or higher price is refused, never charged), cancelling a confirmed
//! order gives the money and the stock back exactly once, single-valued headers may not repeat,
//! a forged `x-forwarded-client-cert` fails closed, and control characters in any text field are
//! a 422 — never a 5xx. The invariants of DESIGN.md are checked in SQL after each scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ordermesh_e2e::{
    Cluster, GATEWAY_ID, Svc, assert_invariants, concurrently, json, key, order_body,
    order_body_unpriced, spiffe_id, until_answered, xfcc_from,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn payment_of(cluster: &Cluster, order_id: &str) -> Value {
    let (_, list) = cluster
        .get_json(
            Svc::Payment,
            &format!("/api/v1/payments?order_id={order_id}"),
        )
        .await;
    list["items"][0].clone()
}

#[tokio::test]
async fn a_client_price_other_than_the_catalogs_is_never_charged() {
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_item("SKU-003", 1000, 999).await;
    // Issue 9: 500 × SKU-003 at "unit_price": 1 was CONFIRMED and charged 5.00 EUR.
    for (direction, unit_price) in [("lower", 1), ("higher", 5000)] {
        let (status, order) = cluster
            .place_order(&key(), &order_body(&[("SKU-003", 500, unit_price)]))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{direction}: {order}");
        assert_eq!(order["status"], "FAILED", "{direction}");
        assert_eq!(order["failure_reason"], "price_changed", "{direction}");
        assert_eq!(
            order["total_amount"],
            Value::Null,
            "{direction}: nothing charged"
        );
        let payment = payment_of(&cluster, order["id"].as_str().unwrap()).await;
        assert_eq!(payment["status"], "VOIDED", "{direction}: {payment}");
        assert_eq!(payment["amount"], Value::Null, "{direction}");
        assert_eq!(cluster.stock("SKU-003").await, (1000, 0, 0), "{direction}");
    }
    // Without an expectation, or with the right one, the catalog's price is charged.
    let (_, unpriced) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-003", 2)]))
        .await;
    assert_eq!(unpriced["status"], "CONFIRMED", "{unpriced}");
    assert_eq!(unpriced["total_amount"], 1998);
    assert_eq!(unpriced["items"][0]["unit_price"], 999);
    let (_, exact) = cluster
        .place_order(&key(), &order_body(&[("SKU-003", 1, 999)]))
        .await;
    assert_eq!(exact["status"], "CONFIRMED", "{exact}");
    assert_eq!(exact["items"][0]["expected_unit_price"], 999);
    let (_, fetched) = cluster
        .get_json(
            Svc::Order,
            &format!("/api/v1/orders/{}", exact["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(fetched["total_amount"], 999, "GET shows the charged total");
    assert_eq!(fetched["items"][0]["unit_price"], 999);
    // A price change applies to the next order only (997 units are left after 3 were sold).
    assert_eq!(cluster.stock("SKU-003").await, (997, 0, 3));
    cluster.seed_item("SKU-003", 997, 1500).await;
    let (_, repriced) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-003", 1)]))
        .await;
    assert_eq!(repriced["total_amount"], 1500);
    let (_, old) = cluster
        .get_json(
            Svc::Order,
            &format!("/api/v1/orders/{}", exact["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(old["total_amount"], 999);
    assert_invariants(&cluster, &[("SKU-003", 1000)]).await;
}

#[tokio::test]
async fn cancelling_a_confirmed_order_returns_the_money_and_the_stock_with_a_notification() {
    let initial = [("SKU-1", 10)];
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_item("SKU-1", 10, 250).await;
    let (_, order) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-1", 4)]))
        .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(cluster.stock("SKU-1").await, (6, 0, 4));

    let (status, cancelled) = cluster.cancel_order(&id).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(
        cancelled["total_amount"], 1000,
        "what was charged stays visible"
    );
    let payment = payment_of(&cluster, &id).await;
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["amount"], 1000);
    let (_, reservation) = cluster
        .get_json(Svc::Inventory, &format!("/api/v1/reservations/{id}"))
        .await;
    assert_eq!(reservation["status"], "RETURNED");
    assert_eq!(cluster.stock("SKU-1").await, (10, 0, 0), "stock is back");
    let notes = cluster.wait_for_notifications(&id, |n| n.len() == 2).await;
    let mut kinds: Vec<&str> = notes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["order_cancelled", "order_confirmed"]);

    // Repeating the cancel answers the cancelled order and moves nothing.
    let (status, again) = cluster.cancel_order(&id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "CANCELLED");
    assert_eq!(cluster.stock("SKU-1").await, (10, 0, 0));

    // Only a confirmed order can be cancelled.
    let mut declined = order_body_unpriced(&[("SKU-1", 1)]);
    declined["payment_method"] = json!("card_declined");
    let (_, failed) = cluster.place_order(&key(), &declined).await;
    let (status, problem) = cluster.cancel_order(failed["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://ordermesh.dev/problems/order-not-cancellable"
    );
    let (status, _) = cluster.cancel_order(&key()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cluster.cancel_order("not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_invariants(&cluster, &initial).await;
}

#[tokio::test]
async fn concurrent_cancels_of_one_order_refund_it_once() {
    let initial = [("SKU-1", 10)];
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 10).await;
    let (_, order) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-1", 3)]))
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/orders/{id}/cancel");
    let results = concurrently(10, |_| {
        let request = cluster.request(Svc::Order, Method::POST, &path);
        until_answered(move || request.try_clone().unwrap())
    })
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "CANCELLED");
    }
    assert_eq!(cluster.stock("SKU-1").await, (10, 0, 0), "returned once");
    assert_invariants(&cluster, &initial).await;
}

#[tokio::test]
async fn a_cancel_during_a_payment_outage_is_503_and_is_finished_later() {
    let initial = [("SKU-1", 5)];
    let mut cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 5).await;
    let (_, order) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-1", 2)]))
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    cluster.stop_service(Svc::Payment).await;
    let (status, problem) = cluster.cancel_order(&id).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["order_status"], "CANCELLING");
    cluster.start_service(Svc::Payment).await;
    // Left alone, the reconciler finishes the cancel.
    let order = cluster
        .wait_for_order(&id, |o| o["status"] == "CANCELLED")
        .await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(cluster.stock("SKU-1").await, (5, 0, 0));
    assert_invariants(&cluster, &initial).await;
}

#[tokio::test]
async fn repeated_single_valued_headers_are_refused_and_repeated_trace_headers_ignored() {
    let initial = [("SKU-1", 10)];
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 10).await;
    let body = order_body_unpriced(&[("SKU-1", 1)]);
    let xfcc = "URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "x-tenant-id (same value)",
            vec![("x-tenant-id", "tenant-a".into())],
        ),
        (
            "x-tenant-id (other value)",
            vec![("x-tenant-id", "tenant-b".into())],
        ),
        ("Idempotency-Key", vec![("idempotency-key", key())]),
        (
            "x-forwarded-client-cert",
            vec![
                ("x-forwarded-client-cert", xfcc.into()),
                ("x-forwarded-client-cert", xfcc.into()),
            ],
        ),
    ];
    for (name, extra) in cases {
        // `request` already sets one x-tenant-id; `header` appends.
        let extra: Vec<(&str, &str)> = extra.iter().map(|(h, v)| (*h, v.as_str())).collect();
        let (status, problem) = cluster.place_order_with(&key(), &body, &extra).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {problem}");
        assert_eq!(
            problem["type"], "https://ordermesh.dev/problems/duplicate-header",
            "{name}"
        );
    }
    // Every service refuses a repeated tenant header.
    for (svc, path) in [
        (
            Svc::Payment,
            "/api/v1/payments?order_id=00000000-0000-0000-0000-000000000001",
        ),
        (Svc::Inventory, "/api/v1/items/SKU-1"),
        (
            Svc::Notify,
            "/api/v1/notifications?order_id=00000000-0000-0000-0000-000000000001",
        ),
    ] {
        let (status, _) = json(
            cluster
                .request(svc, Method::GET, path)
                .header("x-tenant-id", "tenant-a")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{svc:?}");
    }
    // A repeated traceparent is not an error: it is ignored, and a new trace starts.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, order) = json(
        cluster
            .request(Svc::Order, Method::POST, "/api/v1/orders")
            .header("idempotency-key", key())
            .header("traceparent", traceparent)
            .header("traceparent", traceparent)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_ne!(order["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let orders = cluster.db(Svc::Order).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(
        count, 1,
        "only the request with single headers stored an order"
    );
    assert_invariants(&cluster, &initial).await;
}

#[tokio::test]
async fn an_xfcc_header_not_in_envoys_form_is_refused_by_every_service() {
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 10).await;
    let other = "spiffe://cluster.local/ns/tenant-b-orders/sa/order-service";
    let forged = [
        format!("uri={other}"),
        format!("URI = {other}"),
        format!("URI={}", other.replace("spiffe", "SPIFFE")),
        "URI=//ns/tenant-b-orders/sa/order-service".to_owned(),
        format!("By=spiffe://cluster.local/ns/tenant-a-orders/sa/x;uri={other}"),
        format!("URI={other};"),
        String::new(),
        "garbage".to_owned(),
    ];
    // Each route with the caller the call graph names for it, and what that caller gets.
    for (svc, path, caller, answered) in [
        (
            Svc::Order,
            "/api/v1/orders",
            GATEWAY_ID.to_owned(),
            StatusCode::OK,
        ),
        (
            Svc::Payment,
            "/api/v1/payments?order_id=00000000-0000-0000-0000-000000000001",
            spiffe_id("tenant-a", Svc::Order),
            StatusCode::OK,
        ),
        (
            Svc::Inventory,
            "/api/v1/reservations/00000000-0000-0000-0000-000000000001",
            spiffe_id("tenant-a", Svc::Payment),
            StatusCode::NOT_FOUND,
        ),
        (
            Svc::Notify,
            "/api/v1/notifications?order_id=00000000-0000-0000-0000-000000000001",
            spiffe_id("tenant-a", Svc::Order),
            StatusCode::OK,
        ),
    ] {
        for xfcc in &forged {
            let (status, problem) = json(
                cluster
                    .request(svc, Method::GET, path)
                    .header("x-forwarded-client-cert", xfcc.as_str())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{svc:?} {xfcc:?}: {problem}");
        }
        // What the sidecar writes for the caller the call graph names passes.
        let genuine = xfcc_from(&caller, &spiffe_id("tenant-a", svc));
        let (status, body) = json(
            cluster
                .request(svc, Method::GET, path)
                .header("x-forwarded-client-cert", genuine)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, answered, "{svc:?}: {body}");
    }
}

#[tokio::test]
async fn control_characters_in_any_text_field_are_422_never_5xx() {
    let initial = [("SKU-1", 10)];
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 10).await;
    let valid = order_body_unpriced(&[("SKU-1", 1)]);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let sku = |sku: &str| json!([{"sku": sku, "quantity": 1}]);
    let cases: Vec<(&str, Value)> = vec![
        ("NUL in customer_id", with("customer_id", json!("c\u{0}1"))),
        ("newline in customer_id", with("customer_id", json!("c\n1"))),
        (
            "escape in customer_id",
            with("customer_id", json!("\u{1b}[31m")),
        ),
        ("DEL in customer_id", with("customer_id", json!("c\u{7f}"))),
        (
            "C1 control in customer_id",
            with("customer_id", json!("c\u{85}")),
        ),
        (
            "customer_id over 64 characters",
            with("customer_id", json!("é".repeat(65))),
        ),
        ("NUL in currency", with("currency", json!("EU\u{0}"))),
        ("NUL in a sku", with("items", sku("SKU-1\u{0}"))),
        ("dot-dot sku", with("items", sku(".."))),
        ("lower-case sku", with("items", sku("sku-1"))),
        (
            "sku over 64 characters",
            with("items", sku(&"A".repeat(65))),
        ),
        (
            "NUL in payment_method",
            with("payment_method", json!("card\u{0}")),
        ),
    ];
    for (name, body) in cases {
        let (status, problem) = cluster.place_order(&key(), &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {problem}"
        );
    }
    for (name, request) in [
        (
            "tab in the Idempotency-Key",
            cluster
                .request(Svc::Order, Method::POST, "/api/v1/orders")
                .header("idempotency-key", "a\tb")
                .json(&valid),
        ),
        (
            "NUL in a query value",
            cluster.request(Svc::Order, Method::GET, "/api/v1/orders?status=%00"),
        ),
        (
            "NUL in a path id",
            cluster.request(Svc::Order, Method::GET, "/api/v1/orders/%00"),
        ),
    ] {
        let (status, problem) = json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {problem}");
    }
    let orders = cluster.db(Svc::Order).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing invalid was stored");
    assert_invariants(&cluster, &initial).await;
}
