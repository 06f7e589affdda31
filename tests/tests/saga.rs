//! The order saga end to end: four real service processes per tenant on a real PostgreSQL,
//! driven over HTTP, with the invariants of DESIGN.md checked in SQL at the end of every test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ordermesh_e2e::{
    Cluster, Options, Svc, assert_invariants, concurrently, eventually, key, order_body,
    until_answered,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn cluster_with_stock(tenant: &str, stock: &[(&str, i64)]) -> Cluster {
    let cluster = Cluster::start(tenant).await;
    for (sku, available) in stock {
        cluster.seed_stock(sku, *available).await;
    }
    cluster
}

#[tokio::test]
async fn an_order_is_confirmed_with_a_payment_a_reservation_and_a_notification_for_each_tenant() {
    for tenant in ["tenant-a", "tenant-b"] {
        let stock = [("SKU-1", 10), ("SKU-2", 5)];
        let cluster = Cluster::start(tenant).await;
        cluster.seed_item("SKU-1", 10, 1999).await;
        cluster.seed_item("SKU-2", 5, 500).await;
        let (status, order) = cluster
            .place_order(
                &key(),
                &order_body(&[("SKU-1", 2, 1999), ("SKU-2", 1, 500)]),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{tenant}: {order}");
        assert_eq!(order["status"], "CONFIRMED");
        assert_eq!(order["total_amount"], 4498);
        assert_eq!(
            order["items"][0]["unit_price"], 1999,
            "the catalog price charged"
        );
        let id = order["id"].as_str().unwrap();

        let (_, fetched) = cluster
            .get_json(Svc::Order, &format!("/api/v1/orders/{id}"))
            .await;
        assert_eq!(fetched["status"], "CONFIRMED");
        let (_, payments) = cluster
            .get_json(Svc::Payment, &format!("/api/v1/payments?order_id={id}"))
            .await;
        assert_eq!(payments["items"][0]["status"], "CAPTURED");
        assert_eq!(payments["items"][0]["id"], order["payment_id"]);
        let (_, reservation) = cluster
            .get_json(Svc::Inventory, &format!("/api/v1/reservations/{id}"))
            .await;
        assert_eq!(reservation["status"], "COMMITTED");
        let (_, item) = cluster
            .get_json(Svc::Inventory, "/api/v1/items/SKU-1")
            .await;
        assert_eq!(item["available"], 8);
        let notes = cluster.wait_for_notifications(id, |n| n.len() == 1).await;
        assert_eq!(notes[0]["kind"], "order_confirmed");
        assert_invariants(&cluster, &stock).await;
    }
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_result_and_a_different_body_conflicts() {
    let stock = [("SKU-1", 10)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let key = key();
    let body = order_body(&[("SKU-1", 1, 100)]);
    let first = cluster
        .request(Svc::Order, Method::POST, "/api/v1/orders")
        .header("idempotency-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let replay = cluster
        .request(Svc::Order, Method::POST, "/api/v1/orders")
        .header("idempotency-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay, first, "the replay is the stored result");

    let (status, problem) = cluster
        .place_order(&key, &order_body(&[("SKU-1", 2, 100)]))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        problem["type"],
        "https://ordermesh.dev/problems/idempotency-key-reused"
    );
    let (_, item) = cluster
        .get_json(Svc::Inventory, "/api/v1/items/SKU-1")
        .await;
    assert_eq!(item["available"], 9, "stock was taken once");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_make_one_order() {
    let stock = [("SKU-1", 100)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let key = key();
    let body = order_body(&[("SKU-1", 1, 100)]);
    let results = concurrently(20, |_| {
        let request = cluster
            .request(Svc::Order, Method::POST, "/api/v1/orders")
            .header("idempotency-key", &key)
            .json(&body);
        until_answered(move || request.try_clone().unwrap())
    })
    .await;
    for (status, order) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{order}");
        assert_eq!(order["id"], results[0].1["id"]);
        assert_eq!(order["status"], "CONFIRMED");
    }
    let orders = cluster.db(Svc::Order).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let (_, item) = cluster
        .get_json(Svc::Inventory, "/api/v1/items/SKU-1")
        .await;
    assert_eq!(item["available"], 99);
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_confirm_exactly_ten() {
    let stock = [("SKU-SCARCE", 10)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let body = order_body(&[("SKU-SCARCE", 1, 100)]);
    let results = concurrently(50, |_| {
        let request = cluster
            .request(Svc::Order, Method::POST, "/api/v1/orders")
            .header("idempotency-key", key())
            .json(&body);
        until_answered(move || request.try_clone().unwrap())
    })
    .await;
    let confirmed = results
        .iter()
        .filter(|(_, o)| o["status"] == "CONFIRMED")
        .count();
    let out_of_stock = results
        .iter()
        .filter(|(_, o)| o["status"] == "FAILED" && o["failure_reason"] == "out_of_stock")
        .count();
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::CREATED),
        "{results:?}"
    );
    assert_eq!(confirmed, 10);
    assert_eq!(out_of_stock, 40);
    let (_, item) = cluster
        .get_json(Svc::Inventory, "/api/v1/items/SKU-SCARCE")
        .await;
    assert_eq!(item["available"], 0);
    assert_eq!(item["committed"], 10);
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn out_of_stock_fails_the_order_voids_the_payment_and_leaves_stock_unchanged() {
    let stock = [("SKU-1", 1), ("SKU-2", 5)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let (status, order) = cluster
        .place_order(&key(), &order_body(&[("SKU-2", 2, 100), ("SKU-1", 2, 100)]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["status"], "FAILED");
    assert_eq!(order["failure_reason"], "out_of_stock");
    let id = order["id"].as_str().unwrap();
    let (_, payments) = cluster
        .get_json(Svc::Payment, &format!("/api/v1/payments?order_id={id}"))
        .await;
    assert_eq!(payments["items"][0]["status"], "VOIDED");
    for (sku, available) in stock {
        let (_, item) = cluster
            .get_json(Svc::Inventory, &format!("/api/v1/items/{sku}"))
            .await;
        assert_eq!(item["available"], available, "{sku} unchanged");
    }
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn a_declined_payment_fails_the_order_without_touching_stock() {
    let stock = [("SKU-1", 5)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let mut body = order_body(&[("SKU-1", 1, 100)]);
    body["payment_method"] = json!("card_declined");
    let (status, order) = cluster.place_order(&key(), &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["status"], "FAILED");
    assert_eq!(order["failure_reason"], "payment_declined");
    let (_, item) = cluster
        .get_json(Svc::Inventory, "/api/v1/items/SKU-1")
        .await;
    assert_eq!(item["available"], 5);
    let (status, _) = cluster
        .get_json(
            Svc::Inventory,
            &format!("/api/v1/reservations/{}", order["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no reservation was made");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn orders_confirm_while_notify_is_down_and_the_notification_arrives_when_it_is_back() {
    let stock = [("SKU-1", 5)];
    let mut cluster = cluster_with_stock("tenant-a", &stock).await;
    let exit = cluster.stop_service(Svc::Notify).await;
    assert!(
        exit.success(),
        "notify-service drains and exits 0 on SIGTERM: {exit:?}"
    );

    let (status, order) = cluster
        .place_order(&key(), &order_body(&[("SKU-1", 1, 100)]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["status"], "CONFIRMED");
    let id = order["id"].as_str().unwrap().to_owned();
    let orders = cluster.db(Svc::Order).await;
    eventually(
        "a failed delivery attempt is recorded",
        Duration::from_secs(10),
        || {
            let orders = orders.clone();
            async move {
                let attempts: i32 =
                    sqlx::query_scalar("SELECT attempts FROM outbox WHERE delivered_at IS NULL")
                        .fetch_one(&orders)
                        .await
                        .ok()?;
                (attempts > 0).then_some(())
            }
        },
    )
    .await;

    cluster.start_service(Svc::Notify).await;
    let notes = cluster.wait_for_notifications(&id, |n| !n.is_empty()).await;
    assert_eq!(notes.len(), 1);
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn a_lost_inventory_response_still_converges_to_one_reservation() {
    let stock = [("SKU-1", 5)];
    let cluster = Cluster::start_with(
        "tenant-a",
        Options {
            proxy_inventory: true,
            ..Options::default()
        },
    )
    .await;
    cluster.seed_stock("SKU-1", 5).await;
    let proxy = cluster.inventory_proxy.as_ref().unwrap();
    // Inventory sells the stock (reserve and commit are one call), but payment-service never
    // hears back: not for the first attempt, and not for the first repeat (a replay) either.
    proxy.lose_responses("POST", "/api/v1/reservations", "", 2);

    let key = key();
    let body = order_body(&[("SKU-1", 2, 100)]);
    let (status, problem) = cluster.place_order(&key, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["order_status"], "PENDING");
    let id = problem["order_id"].as_str().unwrap().to_owned();

    // Left alone, the reconciler finishes the order.
    let order = cluster
        .wait_for_order(&id, |o| o["status"] != "PENDING")
        .await;
    assert_eq!(order["status"], "CONFIRMED");
    assert!(
        proxy.lost().len() >= 2,
        "both responses were lost: {:?}",
        proxy.lost()
    );
    // The client's own retry now replays the settled order.
    let (status, replay) = cluster.place_order(&key, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replay["id"], order["id"]);
    let (_, item) = cluster
        .get_json(Svc::Inventory, "/api/v1/items/SKU-1")
        .await;
    assert_eq!(item["available"], 3, "exactly one reservation took stock");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn a_payment_outage_answers_503_and_a_retry_with_the_same_key_completes_the_order() {
    let stock = [("SKU-1", 5)];
    let mut cluster = cluster_with_stock("tenant-a", &stock).await;
    cluster.stop_service(Svc::Payment).await;
    let key = key();
    let body = order_body(&[("SKU-1", 1, 100)]);
    let response = cluster
        .request(Svc::Order, Method::POST, "/api/v1/orders")
        .header("idempotency-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    cluster.start_service(Svc::Payment).await;
    let (status, order) = cluster.place_order(&key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "CONFIRMED");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn a_request_for_another_tenant_is_refused_by_every_service() {
    let cluster = Cluster::start("tenant-a").await;
    for (svc, path) in [
        (Svc::Order, "/api/v1/orders"),
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
        let (status, problem) = ordermesh_e2e::json(
            cluster
                .client
                .get(cluster.url(svc, path))
                .header("x-tenant-id", "tenant-b")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{svc:?}");
        assert_eq!(
            problem["type"],
            "https://ordermesh.dev/problems/wrong-tenant"
        );
    }
    // A caller from another tenant's namespace (as the mesh reports it) is refused too.
    let (status, _) = ordermesh_e2e::json(
        cluster
            .request(Svc::Order, Method::GET, "/api/v1/orders")
            .header("x-forwarded-client-cert", "By=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service;URI=spiffe://cluster.local/ns/tenant-b-orders/sa/order-service")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_invalid_order_request_gets_its_problem_status_and_changes_nothing() {
    let stock = [("SKU-1", 5)];
    let cluster = cluster_with_stock("tenant-a", &stock).await;
    let valid = order_body(&[("SKU-1", 1, 100)]);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let item = |quantity: Value, unit_price: Value| json!([{"sku": "SKU-1", "quantity": quantity, "unit_price": unit_price}]);
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"sku": format!("S{i}"), "quantity": 1, "unit_price": 1}))
        .collect();
    let json_cases: Vec<(&str, Value, StatusCode)> = vec![
        (
            "quantity 0",
            with("items", item(json!(0), json!(100))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative quantity",
            with("items", item(json!(-3), json!(100))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quantity beyond i64",
            with("items", item(json!(1e30), json!(100))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "fractional quantity",
            with("items", item(json!(1.5), json!(100))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown currency",
            with("currency", json!("XYZ")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "lower-case currency",
            with("currency", json!("eur")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty item list",
            with("items", json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "too many items",
            with("items", json!(many)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative amount",
            with("items", item(json!(1), json!(-1))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "overflowing total",
            with("items", item(json!(1000), json!(i64::MAX / 10))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            with("coupon", json!("FREE")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown payment method",
            with("payment_method", json!("cash")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing items",
            json!({"customer_id": "c", "currency": "EUR"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "body is not an object",
            json!([1, 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (name, body, want) in json_cases {
        let (status, problem) = cluster.place_order(&key(), &body).await;
        assert_eq!(status, want, "{name}: {problem}");
    }
    let raw_cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "malformed JSON",
            cluster
                .request(Svc::Order, Method::POST, "/api/v1/orders")
                .header("idempotency-key", key())
                .header("content-type", "application/json")
                .body("{\"customer_id\": "),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no content type",
            cluster
                .request(Svc::Order, Method::POST, "/api/v1/orders")
                .header("idempotency-key", key())
                .body(valid.to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "missing idempotency key",
            cluster
                .request(Svc::Order, Method::POST, "/api/v1/orders")
                .json(&valid),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing tenant header",
            cluster
                .client
                .post(cluster.url(Svc::Order, "/api/v1/orders"))
                .header("idempotency-key", key())
                .json(&valid),
            StatusCode::BAD_REQUEST,
        ),
        (
            "body over the limit",
            cluster
                .request(Svc::Order, Method::POST, "/api/v1/orders")
                .header("idempotency-key", key())
                .json(&with("customer_id", json!("x".repeat(100_000)))),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "unknown order",
            cluster.request(
                Svc::Order,
                Method::GET,
                "/api/v1/orders/00000000-0000-0000-0000-000000000001",
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            "malformed order id",
            cluster.request(Svc::Order, Method::GET, "/api/v1/orders/not-a-uuid"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad page size",
            cluster.request(Svc::Order, Method::GET, "/api/v1/orders?limit=1000"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad status filter",
            cluster.request(Svc::Order, Method::GET, "/api/v1/orders?status=SHIPPED"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, request, want) in raw_cases {
        let (status, problem) = ordermesh_e2e::json(request.send().await.unwrap()).await;
        assert_eq!(status, want, "{name}: {problem}");
        assert_eq!(problem["status"], want.as_u16(), "{name}");
    }
    let orders = cluster.db(Svc::Order).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(count, 0, "no invalid request stored an order");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn orders_are_listed_newest_first_page_by_page() {
    let cluster = cluster_with_stock("tenant-a", &[("SKU-1", 50)]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, order) = cluster
            .place_order(&key(), &order_body(&[("SKU-1", 1, 100)]))
            .await;
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let (_, first) = cluster
        .get_json(Svc::Order, "/api/v1/orders?limit=3&status=CONFIRMED")
        .await;
    let (_, second) = cluster
        .get_json(
            Svc::Order,
            &format!(
                "/api/v1/orders?limit=3&status=CONFIRMED&cursor={}",
                first["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
    let listed: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids);
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn the_documented_example_order_is_accepted() {
    let stock = [("SKU-001", 10)];
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_item("SKU-001", 10, 1999).await;
    // deploy/kind/order.json is what the kind smoke test and the docker-compose docs send.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kind/order.json");
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (status, order) = cluster.place_order(&key(), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["total_amount"], 1999, "at the catalog's price");
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    let stock = [("SKU-1", 5)];
    let mut cluster = Cluster::start_with(
        "tenant-a",
        Options {
            proxy_inventory: true,
            ..Options::default()
        },
    )
    .await;
    cluster.seed_stock("SKU-1", 5).await;
    // payment-service's reservation call takes a second, so the order's request is in flight in
    // payment-service when it is told to stop.
    let proxy = cluster.inventory_proxy.as_ref().unwrap();
    proxy.delay_responses("POST", "/api/v1/reservations", 1, Duration::from_secs(1));
    let key = key();
    let send = cluster
        .request(Svc::Order, Method::POST, "/api/v1/orders")
        .header("idempotency-key", &key)
        .json(&order_body(&[("SKU-1", 1, 100)]))
        .send();
    let in_flight = tokio::spawn(send);
    let payments = cluster.db(Svc::Payment).await;
    eventually(
        "the payment is being processed",
        Duration::from_secs(10),
        || {
            let payments = payments.clone();
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
                    .fetch_one(&payments)
                    .await
                    .ok()?;
                (n == 1).then_some(())
            }
        },
    )
    .await;
    let exit = cluster.stop_service(Svc::Payment).await;
    assert!(
        exit.success(),
        "payment-service exits 0 after draining: {exit:?}"
    );
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the in-flight request was answered"
    );
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "CONFIRMED");
    assert!(
        cluster
            .client
            .get(cluster.url(Svc::Payment, "/healthz"))
            .send()
            .await
            .is_err(),
        "nothing listens after the drain"
    );
    cluster.start_service(Svc::Payment).await;
    assert_invariants(&cluster, &stock).await;
}

#[tokio::test]
async fn a_service_with_bad_configuration_exits_2_naming_the_variable() {
    for (env, expected) in [
        (vec![], "TENANT_ID is required"),
        (
            vec![("TENANT_ID", "Tenant A")],
            "TENANT_ID=\"Tenant A\" is invalid",
        ),
        (
            vec![
                ("TENANT_ID", "tenant-a"),
                ("DATABASE_URL", "postgres://x/y"),
                ("LISTEN_ADDR", "nowhere"),
            ],
            "LISTEN_ADDR=\"nowhere\" is invalid",
        ),
        (
            vec![
                ("TENANT_ID", "tenant-a"),
                ("DATABASE_URL", "postgres://x/y"),
                ("NOTIFY_SERVICE_URL", "http://n"),
            ],
            "PAYMENT_SERVICE_URL is required",
        ),
        (
            vec![
                ("TENANT_ID", "tenant-a"),
                ("DATABASE_URL", "postgres://x/y"),
                ("PAYMENT_SERVICE_URL", "ftp://p"),
                ("NOTIFY_SERVICE_URL", "http://n"),
            ],
            "expected an absolute http(s) URL",
        ),
    ] {
        let output = ordermesh_e2e::service_command(Svc::Order)
            .env_clear()
            .envs(env.clone())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    }
}
