//! notify-service against a real PostgreSQL: delivery is recorded once per (order, kind).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, json};
use uuid::Uuid;

async fn spawn() -> TestApp {
    let database = testkit::fresh_database("notify").await;
    let settings = testkit::settings("tenant-a", database);
    TestApp::start(notify_service::build(settings).await.unwrap(), "tenant-a").await
}

#[tokio::test]
async fn a_notification_is_delivered_once_per_order_and_kind() {
    let app = spawn().await;
    let order_id = Uuid::new_v4();
    let deliver = |kind: &str, message: &str| {
        let body = json!({"order_id": order_id, "kind": kind, "message": message});
        app.call(Method::POST, "/api/v1/notifications", Some(body))
    };
    let (status, first) = deliver("order_confirmed", "confirmed").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = deliver("order_confirmed", "confirmed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], again["id"]);
    let (status, _) = deliver("order_failed", "failed").await;
    assert_eq!(status, StatusCode::CREATED);

    let list_path = format!("/api/v1/notifications?order_id={order_id}");
    let (status, list) = app.call(Method::GET, &list_path, None).await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["order_confirmed", "order_failed"]);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_record_one_notification() {
    let app = spawn().await;
    let order_id = Uuid::new_v4();
    let body = json!({"order_id": order_id, "kind": "order_confirmed", "message": "confirmed"});
    let statuses = testkit::concurrently(10, |_| {
        let send = app
            .request(Method::POST, "/api/v1/notifications")
            .json(&body)
            .send();
        async move { send.await.unwrap().status() }
    })
    .await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 9);
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_problem_details() {
    let app = spawn().await;
    let order_id = Uuid::new_v4();
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "malformed json",
            app.request(Method::POST, "/api/v1/notifications").header("content-type", "application/json").body("{"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown kind",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_shipped", "message": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": "x", "extra": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty message",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL in the message",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": "a\u{0}b"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "control characters in the message",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": "forged\nlog line \u{1b}[0m"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "message over 1000 characters",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": "é".repeat(1001)})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "body over the limit",
            app.request(Method::POST, "/api/v1/notifications").json(&json!({"order_id": order_id, "kind": "order_failed", "message": "x".repeat(70_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "bad order id in query",
            app.request(Method::GET, "/api/v1/notifications?order_id=nope"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "other tenant",
            app.client.get(app.url(&format!("/api/v1/notifications?order_id={order_id}"))).header("x-tenant-id", "tenant-b"),
            StatusCode::FORBIDDEN,
        ),
        (
            "missing tenant",
            app.client.get(app.url(&format!("/api/v1/notifications?order_id={order_id}"))),
            StatusCode::BAD_REQUEST,
        ),
        ("unknown route", app.request(Method::GET, "/api/v1/nothing"), StatusCode::NOT_FOUND),
        ("wrong method", app.request(Method::DELETE, "/api/v1/notifications"), StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (name, request, want) in cases {
        let (status, problem) = json(request.send().await.unwrap()).await;
        assert_eq!(status, want, "{name}: {problem}");
        assert_eq!(problem["status"], want.as_u16(), "{name}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("https://ordermesh.dev/problems/"),
            "{name}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_database_outage_is_a_503_with_retry_after_and_not_ready() {
    // Nothing listens on port 1: the database is down from the start.
    let mut settings = testkit::settings("tenant-a", "postgres://postgres@127.0.0.1:1/none".into());
    settings.database.acquire_timeout = std::time::Duration::from_millis(300);
    // Not ready, so not `TestApp::start`; every answer is still checked against the contract.
    let app = TestApp::spawn(notify_service::build(settings).await.unwrap(), "tenant-a");
    let base = app.base.as_str().trim_end_matches('/').to_owned();
    let client = app.client.clone();

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "the process itself is alive"
    );
    let (status, _) = json(client.get(format!("{base}/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let response = client
        .post(format!("{base}/api/v1/notifications"))
        .header("x-tenant-id", "tenant-a")
        .json(&json!({"order_id": Uuid::new_v4(), "kind": "order_confirmed", "message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, problem) = json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(
        problem["type"],
        "https://ordermesh.dev/problems/dependency-unavailable"
    );

    app.stop().await;
}

/// The build that answers is visible: `x-service-version` on every response (errors too) and
/// `service_info{version}` in the metrics — how a canary differs from stable for its callers.
#[tokio::test]
async fn every_response_says_which_build_served_it() {
    let database = testkit::fresh_database("notify").await;
    let mut settings = testkit::settings("tenant-a", database);
    settings.service_version = "canary".into();
    let app = TestApp::start(notify_service::build(settings).await.unwrap(), "tenant-a").await;
    for (method, path) in [
        (
            Method::GET,
            "/api/v1/notifications?order_id=00000000-0000-0000-0000-000000000000",
        ),
        (Method::POST, "/api/v1/notifications"),
    ] {
        let response = app.request(method, path).send().await.unwrap();
        assert_eq!(
            response.headers()["x-service-version"],
            "canary",
            "{path} ({})",
            response.status()
        );
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.lines().any(|l| l.starts_with("service_info{")
            && l.contains(r#"version="canary""#)
            && l.ends_with(" 1")),
        "no service_info with version=\"canary\" in:\n{metrics}"
    );
}

/// The document refuses exactly what notify-service refuses (issue 20): a message of white space
/// only (Unicode's, beyond ASCII's) or with any control character (C0, DEL, C1) is refused by
/// both, and so is the nil UUID as `order_id`; a message with U+FEFF, neither, is allowed by both.
#[tokio::test]
async fn the_document_allows_exactly_what_notify_service_accepts() {
    let app = spawn().await;
    let contract = testkit::openapi::Contract::new(notify_service::openapi());
    let body = |message: &str| json!({"order_id": Uuid::new_v4(), "kind": "order_confirmed", "message": message});
    let body_errors = |body: &serde_json::Value| {
        contract.request_body_errors("POST", "/api/v1/notifications", body)
    };
    for message in [
        "\u{3000}", " \u{a0} ", "a\u{85}b", "a\u{9f}", "a\u{7f}", "\u{1b}",
    ] {
        let body = body(message);
        assert!(
            !body_errors(&body).is_empty(),
            "the document allows {message:?}"
        );
        let (status, problem) = app
            .call(Method::POST, "/api/v1/notifications", Some(body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{message:?}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], "message");
    }
    let nil = json!({"order_id": Uuid::nil(), "kind": "order_confirmed", "message": "m"});
    assert!(
        !body_errors(&nil).is_empty(),
        "the document allows the nil UUID"
    );
    let (status, problem) = app
        .call(Method::POST, "/api/v1/notifications", Some(nil))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "order_id");
    for message in [
        "\u{feff}",
        "Zoë's order\u{a0}is confirmed",
        &"é".repeat(1000),
    ] {
        let body = body(message);
        assert_eq!(body_errors(&body), Vec::<String>::new(), "{message:?}");
        let (status, notification) = app
            .call(Method::POST, "/api/v1/notifications", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message:?}: {notification}");
    }
    app.stop().await;
}
