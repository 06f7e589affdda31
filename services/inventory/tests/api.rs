//! inventory-service against a real PostgreSQL: seeding stock and catalog prices, reserving all
//! lines or none once per order at the catalog's prices (or refusing a changed price), commit,
//! release and return, stock never negative under concurrency, and every client mistake
//! answered with problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, json};
use uuid::Uuid;

const TENANT: &str = "tenant-a";

async fn spawn() -> TestApp {
    let database = testkit::fresh_database("inventory").await;
    let settings = testkit::settings(TENANT, database);
    TestApp::start(inventory_service::build(settings).await.unwrap(), TENANT).await
}

#[tokio::test]
async fn seeding_sets_available_stock_and_get_reads_it() {
    let app = spawn().await;
    let (status, item) = app
        .call(
            Method::PUT,
            "/api/v1/items/SKU-1",
            Some(json!({ "available": 7, "unit_price": 1999, "currency": "EUR" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        item,
        json!({"sku": "SKU-1", "available": 7, "reserved": 0, "committed": 0,
               "unit_price": 1999, "currency": "EUR"})
    );
    app.seed_stock("SKU-1", 3).await;
    assert_eq!(app.stock("SKU-1").await, (3, 0, 0));
    let (_, item) = app.call(Method::GET, "/api/v1/items/SKU-1", None).await;
    assert_eq!(item["unit_price"], testkit::UNIT_PRICE);

    let (status, problem) = app.call(Method::GET, "/api/v1/items/NOPE", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(testkit::problem_slug(&problem), "not-found");
    app.stop().await;
}

#[tokio::test]
async fn a_reservation_is_priced_from_the_catalog_when_it_is_made() {
    let app = spawn().await;
    app.seed_item("A", 10, 250).await;
    app.seed_item("B", 10, 1000).await;
    let order = Uuid::new_v4();
    let (status, reservation) = app
        .reserve(
            order,
            json!([{"sku": "B", "quantity": 1, "unit_price": 1000}, {"sku": "A", "quantity": 2}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reservation}");
    assert_eq!(reservation["currency"], "EUR");
    assert_eq!(
        reservation["items"],
        json!([{"sku": "A", "quantity": 2, "unit_price": 250},
               {"sku": "B", "quantity": 1, "unit_price": 1000}])
    );
    assert_eq!(reservation["amount"], 1500);
    // A later price change does not touch what was reserved.
    app.seed_item("A", 8, 999).await;
    let (status, again) = app
        .reserve(
            order,
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1, "unit_price": 1000}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["amount"], 1500);
    app.stop().await;
}

#[tokio::test]
async fn an_expected_price_or_currency_that_is_not_the_catalogs_reserves_nothing() {
    let app = spawn().await;
    app.seed_item("A", 10, 250).await;
    app.seed_item("B", 10, 1000).await;
    for (name, currency, items) in [
        (
            "lower",
            "EUR",
            json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1, "unit_price": 1}]),
        ),
        (
            "higher",
            "EUR",
            json!([{"sku": "A", "quantity": 1, "unit_price": 251}]),
        ),
        (
            "other currency",
            "USD",
            json!([{"sku": "A", "quantity": 1}]),
        ),
    ] {
        let order = Uuid::new_v4();
        let body = json!({"order_id": order, "currency": currency, "items": items});
        let (status, problem) = app
            .call(Method::POST, "/api/v1/reservations", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {problem}");
        assert_eq!(testkit::problem_slug(&problem), "price-changed", "{name}");
        // Even once the price is right, the order keeps its answer.
        let (status, again) = app
            .call(Method::POST, "/api/v1/reservations", Some(body))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {again}");
        assert_eq!(testkit::problem_slug(&again), "price-changed");
        let (status, _) = app
            .call(Method::GET, &format!("/api/v1/reservations/{order}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: nothing held");
    }
    assert_eq!(app.stock("A").await, (10, 0, 0));
    assert_eq!(app.stock("B").await, (10, 0, 0));
    app.stop().await;
}

#[tokio::test]
async fn releasing_a_committed_reservation_returns_its_stock_once() {
    let app = spawn().await;
    app.seed_stock("A", 5).await;
    let order = Uuid::new_v4();
    app.reserve(order, json!([{"sku": "A", "quantity": 3}]))
        .await;
    app.commit_or_release(order, "commit").await;
    assert_eq!(app.stock("A").await, (2, 0, 3));
    let results = testkit::concurrently(5, |_| {
        let send = app
            .request(
                Method::POST,
                &format!("/api/v1/reservations/{order}/release"),
            )
            .send();
        async move { json(send.await.unwrap()).await }
    })
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "RETURNED");
    }
    assert_eq!(app.stock("A").await, (5, 0, 0), "returned exactly once");
    let (status, problem) = app.commit_or_release(order, "commit").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "reservation-released");
    app.stop().await;
}

#[tokio::test]
async fn a_reservation_holds_stock_until_commit_sells_it() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    app.seed_stock("B", 5).await;
    let order = Uuid::new_v4();
    let (status, reservation) = app
        .reserve(
            order,
            json!([{"sku": "B", "quantity": 2}, {"sku": "A", "quantity": 3}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reservation}");
    assert_eq!(reservation["status"], "RESERVED");
    assert_eq!(reservation["order_id"], order.to_string());
    assert_eq!(
        reservation["items"],
        json!([{"sku": "A", "quantity": 3, "unit_price": testkit::UNIT_PRICE},
               {"sku": "B", "quantity": 2, "unit_price": testkit::UNIT_PRICE}])
    );
    assert_eq!(app.stock("A").await, (7, 3, 0));
    assert_eq!(app.stock("B").await, (3, 2, 0));

    let (status, committed) = app.commit_or_release(order, "commit").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(committed["status"], "COMMITTED");
    assert_eq!(app.stock("A").await, (7, 0, 3));
    assert_eq!(app.stock("B").await, (3, 0, 2));

    let (status, again) = app.commit_or_release(order, "commit").await;
    assert_eq!(status, StatusCode::OK, "commit is idempotent");
    assert_eq!(again, committed);
    assert_eq!(
        app.stock("A").await,
        (7, 0, 3),
        "a repeated commit moves nothing"
    );

    let (status, read) = app
        .call(Method::GET, &format!("/api/v1/reservations/{order}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, committed);
    app.stop().await;
}

/// `POST /api/v1/reservations` with `"commit": true` (what payment-service sends).
async fn reserve_and_commit(app: &TestApp, order: Uuid, items: Value) -> (StatusCode, Value) {
    let body = json!({"order_id": order, "currency": "EUR", "items": items, "commit": true});
    app.call(Method::POST, "/api/v1/reservations", Some(body))
        .await
}

#[tokio::test]
async fn a_reservation_that_commits_sells_the_stock_in_one_call() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 3}]);
    let (status, sold) = reserve_and_commit(&app, order, items.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{sold}");
    assert_eq!(sold["status"], "COMMITTED");
    assert_eq!(sold["amount"], 3 * testkit::UNIT_PRICE);
    assert_eq!(
        app.stock("A").await,
        (7, 0, 3),
        "sold without being held first"
    );

    let (status, again) = reserve_and_commit(&app, order, items.clone()).await;
    assert_eq!(status, StatusCode::OK, "a repeat answers with the sale");
    assert_eq!(again, sold);
    assert_eq!(app.stock("A").await, (7, 0, 3), "and moves nothing");

    let (status, problem) =
        reserve_and_commit(&app, order, json!([{"sku": "A", "quantity": 4}])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "reservation-conflict");

    let (status, short) =
        reserve_and_commit(&app, Uuid::new_v4(), json!([{"sku": "A", "quantity": 8}])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{short}");
    assert_eq!(testkit::problem_slug(&short), "out-of-stock");
    assert_eq!(app.stock("A").await, (7, 0, 3), "a refusal sells nothing");

    let (status, returned) = app.commit_or_release(order, "release").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(returned["status"], "RETURNED");
    assert_eq!(app.stock("A").await, (10, 0, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_repeat_that_commits_sells_a_held_reservation_but_not_a_released_one() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    let (held, released) = (Uuid::new_v4(), Uuid::new_v4());
    let items = json!([{"sku": "A", "quantity": 2}]);
    for order in [held, released] {
        let (status, reservation) = app.reserve(order, items.clone()).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(reservation["status"], "RESERVED");
    }
    app.commit_or_release(released, "release").await;
    assert_eq!(app.stock("A").await, (8, 2, 0));

    let (status, sold) = reserve_and_commit(&app, held, items.clone()).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert_eq!(sold["status"], "COMMITTED");
    assert_eq!(app.stock("A").await, (8, 0, 2));

    let (status, replay) = reserve_and_commit(&app, released, items).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["status"], "RELEASED", "released stays released");
    assert_eq!(app.stock("A").await, (8, 0, 2), "and takes nothing");
    app.stop().await;
}

#[tokio::test]
async fn release_gives_stock_back_and_then_commit_is_refused() {
    let app = spawn().await;
    app.seed_stock("A", 4).await;
    let order = Uuid::new_v4();
    let (status, _) = app
        .reserve(order, json!([{"sku": "A", "quantity": 4}]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.stock("A").await, (0, 4, 0));

    let (status, released) = app.commit_or_release(order, "release").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["status"], "RELEASED");
    assert_eq!(app.stock("A").await, (4, 0, 0));

    let (status, again) = app.commit_or_release(order, "release").await;
    assert_eq!(status, StatusCode::OK, "release is idempotent");
    assert_eq!(again, released);
    assert_eq!(
        app.stock("A").await,
        (4, 0, 0),
        "a repeated release moves nothing"
    );

    let (status, problem) = app.commit_or_release(order, "commit").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "reservation-released");

    let (status, replay) = app
        .reserve(order, json!([{"sku": "A", "quantity": 4}]))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a repeat answers with the stored reservation"
    );
    assert_eq!(replay["status"], "RELEASED");
    assert_eq!(app.stock("A").await, (4, 0, 0), "and takes no stock again");
    app.stop().await;
}

#[tokio::test]
async fn unknown_reservations_are_not_found() {
    let app = spawn().await;
    let order = Uuid::new_v4();
    for action in ["commit", "release"] {
        let (status, problem) = app.commit_or_release(order, action).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        assert_eq!(testkit::problem_slug(&problem), "not-found");
    }
    let (status, _) = app
        .call(Method::GET, &format!("/api/v1/reservations/{order}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_reservation_replays_and_different_items_conflict() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 2}]);
    let (status, first) = app.reserve(order, items.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = app.reserve(order, items).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    assert_eq!(app.stock("A").await, (8, 2, 0), "stock is taken once");

    let (status, problem) = app
        .reserve(order, json!([{"sku": "A", "quantity": 3}]))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "reservation-conflict");
    assert_eq!(app.stock("A").await, (8, 2, 0));
    app.stop().await;
}

#[tokio::test]
async fn out_of_stock_reserves_no_line_and_the_answer_stays_the_same() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    app.seed_stock("B", 1).await;
    let order = Uuid::new_v4();
    let items = json!([{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 2}]);
    let (status, problem) = app.reserve(order, items.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        testkit::problem_slug(&problem),
        commerce::contracts::inventory::OUT_OF_STOCK
    );
    assert_eq!(problem["sku"], "B");
    assert_eq!(app.stock("A").await, (10, 0, 0), "all lines or none");
    assert_eq!(app.stock("B").await, (1, 0, 0));
    let (status, _) = app
        .call(Method::GET, &format!("/api/v1/reservations/{order}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no reservation holds stock");

    // The decision is kept per order: after a restock the same order is still refused, so an
    // order whose payment was voided for lack of stock can never end up holding stock.
    app.seed_stock("B", 100).await;
    let (status, problem) = app.reserve(order, items).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "out-of-stock");
    assert_eq!(problem["sku"], "B");
    assert_eq!(app.stock("B").await, (100, 0, 0));

    let (status, ok) = app
        .reserve(Uuid::new_v4(), json!([{"sku": "B", "quantity": 2}]))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another order gets the new stock: {ok}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_sku_is_out_of_stock() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    let (status, problem) = app
        .reserve(
            Uuid::new_v4(),
            json!([{"sku": "A", "quantity": 1}, {"sku": "GHOST", "quantity": 1}]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(testkit::problem_slug(&problem), "out-of-stock");
    assert_eq!(problem["sku"], "GHOST");
    assert_eq!(app.stock("A").await, (10, 0, 0));

    // Only unknown SKUs: no item row to lock at all, and still refused, then remembered.
    let order = Uuid::new_v4();
    for attempt in ["first", "repeat"] {
        let (status, problem) = app
            .reserve(order, json!([{"sku": "GHOST", "quantity": 1}]))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{attempt}: {problem}");
        assert_eq!(testkit::problem_slug(&problem), "out-of-stock");
        assert_eq!(problem["sku"], "GHOST", "{attempt}");
    }
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_reservations_for_ten_units_reserve_exactly_ten() {
    let app = spawn().await;
    app.seed_stock("HOT", 10).await;
    let client = app.client.clone();
    let url = app.url("/api/v1/reservations");
    let statuses = testkit::concurrently(50, move |_| {
        let request = client
            .post(url.clone())
            .header("x-tenant-id", TENANT)
            .json(&json!({"order_id": Uuid::new_v4(), "currency": "EUR", "items": [{"sku": "HOT", "quantity": 1}]}));
        async move { request.send().await.unwrap().status() }
    })
    .await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (10, 40), "{statuses:?}");
    assert_eq!(app.stock("HOT").await, (0, 10, 0));
    app.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_of_one_reservation_take_stock_once() {
    let app = spawn().await;
    app.seed_stock("A", 100).await;
    let order = Uuid::new_v4();
    let client = app.client.clone();
    let url = app.url("/api/v1/reservations");
    let statuses = testkit::concurrently(10, move |_| {
        let request = client.post(url.clone()).header("x-tenant-id", TENANT).json(
            &json!({"order_id": order, "currency": "EUR", "items": [{"sku": "A", "quantity": 3}]}),
        );
        async move { request.send().await.unwrap().status() }
    })
    .await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let replayed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((created, replayed), (1, 9), "{statuses:?}");
    assert_eq!(app.stock("A").await, (97, 3, 0));
    app.stop().await;
}

#[tokio::test]
async fn invalid_reservation_requests_are_client_errors() {
    let app = spawn().await;
    app.seed_stock("A", 10).await;
    let order = Uuid::new_v4();
    let line = |sku: &str, quantity: i64| json!({"sku": sku, "quantity": quantity});
    let cases: Vec<(&str, Value, StatusCode)> = vec![
        (
            "empty items",
            json!({"order_id": order, "currency": "EUR", "items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quantity 0",
            json!({"order_id": order, "currency": "EUR", "items": [line("A", 0)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quantity -1",
            json!({"order_id": order, "currency": "EUR", "items": [line("A", -1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quantity 1001",
            json!({"order_id": order, "currency": "EUR", "items": [line("A", 1001)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad sku",
            json!({"order_id": order, "currency": "EUR", "items": [line("a b", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "duplicate sku",
            json!({"order_id": order, "currency": "EUR", "items": [line("A", 1), line("A", 2)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "nil order id",
            json!({"order_id": Uuid::nil(), "currency": "EUR", "items": [line("A", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            json!({"order_id": order, "currency": "EUR", "items": [line("A", 1)], "rush": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown line field",
            json!({"order_id": order, "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "price": 5}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing items",
            json!({"order_id": order, "currency": "EUR"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "order id not a uuid",
            json!({"order_id": "42", "currency": "EUR", "items": [line("A", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL in a SKU",
            json!({"order_id": order, "currency": "EUR", "items": [line("A\u{0}", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "dot-dot SKU",
            json!({"order_id": order, "currency": "EUR", "items": [line("..", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "lower-case SKU",
            json!({"order_id": order, "currency": "EUR", "items": [line("a", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "newline in a SKU",
            json!({"order_id": order, "currency": "EUR", "items": [line("A\nB", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL in the currency",
            json!({"order_id": order, "currency": "EU\u{0}", "items": [line("A", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing currency",
            json!({"order_id": order, "items": [line("A", 1)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative expected price",
            json!({"order_id": order, "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": -1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "too many lines",
            json!({"order_id": order, "currency": "EUR", "items": (0..51).map(|i| line(&format!("S{i}"), 1)).collect::<Vec<_>>()}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (name, body, expected) in cases {
        let (status, problem) = app
            .call(Method::POST, "/api/v1/reservations", Some(body))
            .await;
        assert_eq!(status, expected, "{name}: {problem}");
    }
    let malformed = app
        .request(Method::POST, "/api/v1/reservations")
        .header("content-type", "application/json")
        .body("{\"order_id\": ")
        .send()
        .await
        .unwrap();
    let (status, problem) = json(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(testkit::problem_slug(&problem), "malformed-json");

    let (status, problem) = app
        .call(
            Method::POST,
            "/api/v1/reservations",
            Some(
                json!({"order_id": order, "currency": "EUR", "items": [line("A", 0), line("", 1)]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[0].quantity", "items[1].sku"]);
    assert_eq!(app.stock("A").await, (10, 0, 0), "nothing was reserved");
    app.stop().await;
}

#[tokio::test]
async fn invalid_stock_updates_are_client_errors() {
    let app = spawn().await;
    let item = |available: Value, unit_price: Value, currency: Value| json!({"available": available, "unit_price": unit_price, "currency": currency});
    let cases: Vec<(&str, &str, Value, StatusCode)> = vec![
        (
            "negative",
            "/api/v1/items/A",
            item(json!(-1), json!(100), json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "too large",
            "/api/v1/items/A",
            item(json!(1_000_000_001), json!(100), json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            "/api/v1/items/A",
            json!({"available": 1, "unit_price": 1, "currency": "EUR", "reserved": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not a number",
            "/api/v1/items/A",
            item(json!("many"), json!(100), json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no price",
            "/api/v1/items/A",
            json!({"available": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "zero price",
            "/api/v1/items/A",
            item(json!(1), json!(0), json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "price too large",
            "/api/v1/items/A",
            item(json!(1), json!(1_000_000_000_001i64), json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL in the currency",
            "/api/v1/items/A",
            item(json!(1), json!(100), json!("E\u{0}R")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown currency",
            "/api/v1/items/A",
            item(json!(1), json!(100), json!("XXX")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad sku in path",
            "/api/v1/items/a%20b",
            item(json!(1), json!(100), json!("EUR")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "NUL sku in path",
            "/api/v1/items/A%00",
            item(json!(1), json!(100), json!("EUR")),
            StatusCode::BAD_REQUEST,
        ),
        (
            "dots in a sku in path",
            "/api/v1/items/..A",
            item(json!(1), json!(100), json!("EUR")),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, path, body, expected) in cases {
        let (status, problem) = app.call(Method::PUT, path, Some(body)).await;
        assert_eq!(status, expected, "{name}: {problem}");
    }
    let (status, _) = app.call(Method::GET, "/api/v1/items/A", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no invalid update created the item"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_order_ids_in_paths_are_problems() {
    let app = spawn().await;
    for (method, path) in [
        (Method::GET, "/api/v1/reservations/not-a-uuid"),
        (Method::POST, "/api/v1/reservations/not-a-uuid/commit"),
        (Method::POST, "/api/v1/reservations/12345/release"),
    ] {
        let (status, problem) = app.call(method, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert_eq!(testkit::problem_slug(&problem), "invalid-path-parameter");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_tenant_header_is_required_and_must_match() {
    let app = spawn().await;
    let body = testkit::item_body(5, testkit::UNIT_PRICE);
    app.assert_tenant_enforced(Method::PUT, "/api/v1/items/A", body)
        .await;
    let (status, _) = app.call(Method::GET, "/api/v1/items/A", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the other tenant's write was refused"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn().await;
    let lines: Vec<Value> = (0..5_000)
        .map(|i| json!({"sku": format!("SKU-{i:06}"), "quantity": 1}))
        .collect();
    let body = json!({"order_id": Uuid::new_v4(), "currency": "EUR", "items": lines});
    assert!(body.to_string().len() > 64 * 1024);
    let (status, problem) = app
        .call(Method::POST, "/api/v1/reservations", Some(body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(testkit::problem_slug(&problem), "payload-too-large");
    app.stop().await;
}

#[tokio::test]
async fn reservation_outcomes_are_counted_in_metrics() {
    let app = spawn().await;
    app.seed_stock("A", 1).await;
    app.reserve(Uuid::new_v4(), json!([{"sku": "A", "quantity": 1}]))
        .await;
    app.reserve(Uuid::new_v4(), json!([{"sku": "A", "quantity": 1}]))
        .await;
    let text = app.metrics_text().await;
    assert!(
        text.contains("inventory_reservations_total{outcome=\"reserved\"}"),
        "{text}"
    );
    assert!(
        text.contains("inventory_reservations_total{outcome=\"out_of_stock\"}"),
        "{text}"
    );
    app.stop().await;
}

/// The document refuses exactly what inventory-service refuses (issue 20): a catalog price of 0,
/// a currency outside ISO 4217's list, a lower-case SKU and a reservation for the nil UUID are
/// refused by both; stock of 0 is allowed by both, and integers written `7.0` are stored as 7.
#[tokio::test]
async fn the_document_allows_exactly_what_inventory_service_accepts() {
    let app = spawn().await;
    let contract = testkit::openapi::Contract::new(inventory_service::openapi());
    let template = "/api/v1/items/{sku}";
    let body_errors = |body: &Value| contract.request_body_errors("PUT", template, body);
    let item = |available: Value, unit_price: Value, currency: &str| json!({"available": available, "unit_price": unit_price, "currency": currency});
    for body in [
        item(json!(1), json!(0), "EUR"),
        item(json!(1), json!(1999), "AAA"),
        item(json!(1.5), json!(1999), "EUR"),
    ] {
        assert!(!body_errors(&body).is_empty(), "the document allows {body}");
        let (status, problem) = app
            .call(Method::PUT, "/api/v1/items/DOC-1", Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
    for sku in ["sku-1", "-A", "A.B"] {
        let errors = contract.parameter_errors("PUT", template, "sku", &json!(sku));
        assert!(!errors.is_empty(), "the document allows the SKU {sku}");
        let (status, problem) = app
            .call(
                Method::PUT,
                &format!("/api/v1/items/{sku}"),
                Some(item(json!(1), json!(1), "EUR")),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sku}: {problem}");
    }

    for body in [
        item(json!(0), json!(1), "EUR"),
        item(json!(7.0), json!(1999.0), "JPY"),
    ] {
        assert_eq!(body_errors(&body), Vec::<String>::new(), "{body}");
        let (status, stored) = app
            .call(Method::PUT, "/api/v1/items/DOC-1", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}: {stored}");
    }
    let (_, stored) = app.call(Method::GET, "/api/v1/items/DOC-1", None).await;
    assert_eq!(
        (&stored["available"], &stored["unit_price"]),
        (&json!(7), &json!(1999))
    );

    // A reservation expecting a price of 0 is a valid request (0 is a price); the catalog's
    // differs, so it is refused as a changed price, as documented.
    let reservation = json!({
        "order_id": Uuid::new_v4(),
        "currency": "JPY",
        "items": [{"sku": "DOC-1", "quantity": 1.0, "unit_price": 0}],
    });
    let errors = contract.request_body_errors("POST", "/api/v1/reservations", &reservation);
    assert_eq!(errors, Vec::<String>::new());
    let (status, problem) = app
        .call(Method::POST, "/api/v1/reservations", Some(reservation))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(testkit::problem_slug(&problem), "price-changed");

    // The nil UUID names no order: refused by both.
    let nil = json!({
        "order_id": Uuid::nil(),
        "currency": "JPY",
        "items": [{"sku": "DOC-1", "quantity": 1}],
    });
    let errors = contract.request_body_errors("POST", "/api/v1/reservations", &nil);
    assert!(!errors.is_empty(), "the document allows the nil UUID");
    let (status, problem) = app
        .call(Method::POST, "/api/v1/reservations", Some(nil))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    app.stop().await;
}
