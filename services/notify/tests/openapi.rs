//! notify-service publishes its contract: the OpenAPI 3.1 document generated from its routes and
//! types is served at `GET /openapi.json`, and every example in it is valid against its schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::TestApp;

const TENANT: &str = "tenant-a";

#[tokio::test]
async fn the_openapi_document_is_served_and_its_examples_are_valid() {
    let database = testkit::fresh_database("notify_openapi").await;
    let settings = testkit::settings(TENANT, database);
    let app = TestApp::start(notify_service::build(settings).await.unwrap(), TENANT).await;
    testkit::openapi::assert_published(&app, notify_service::openapi()).await;
    app.stop().await;
}

/// The check every `TestApp` applies to its answers refuses what the document does not allow.
#[test]
fn the_contract_refuses_answers_the_document_does_not_allow() {
    let contract = testkit::openapi::Contract::new(notify_service::openapi());
    let json = Some("application/json");
    let problem_json = Some("application/problem+json");
    let notification = serde_json::json!({
        "id": "0190f3a2-7d9e-7f30-ab42-5c6d7e8f9012",
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "kind": "order_confirmed",
        "message": "confirmed",
        "delivered_at": "2026-12-02T10:15:31.5Z"
    })
    .to_string();
    let problem = |slug: &str, status: u16| {
        serde_json::json!({
            "type": format!("https://ordermesh.dev/problems/{slug}"),
            "title": "t",
            "status": status,
        })
        .to_string()
    };
    let path = "/api/v1/notifications";
    let ok = |method, path, status, content_type, body: &str| {
        contract.check(method, path, status, content_type, body.as_bytes())
    };

    assert_eq!(ok("POST", path, 201, json, &notification), Ok(()));
    assert_eq!(
        ok(
            "GET",
            "/api/v1/nothing",
            404,
            problem_json,
            &problem("not-found", 404)
        ),
        Ok(())
    );
    assert_eq!(
        ok(
            "DELETE",
            path,
            405,
            problem_json,
            &problem("method-not-allowed", 405)
        ),
        Ok(())
    );
    assert_eq!(
        ok(
            "POST",
            path,
            422,
            problem_json,
            &problem("validation-failed", 422)
        ),
        Ok(())
    );
    let refused = [
        (
            "an undocumented status",
            ok("POST", path, 202, json, &notification),
        ),
        (
            "a body that is not the schema's",
            ok("POST", path, 201, json, r#"{"id": "not-a-uuid"}"#),
        ),
        (
            "an undocumented content type",
            ok("POST", path, 201, Some("text/plain"), &notification),
        ),
        (
            "an error that is not problem+json",
            ok("POST", path, 422, json, &problem("validation-failed", 422)),
        ),
        (
            "an undocumented problem type",
            ok("POST", path, 409, problem_json, &problem("conflict", 409)),
        ),
        (
            "a problem type the status does not document",
            ok(
                "POST",
                path,
                422,
                problem_json,
                &problem("malformed-json", 422),
            ),
        ),
        (
            "a problem whose status is not the answer's",
            ok(
                "POST",
                path,
                503,
                problem_json,
                &problem("dependency-unavailable", 500),
            ),
        ),
        (
            "an unknown route answered other than 404",
            ok("GET", "/api/v1/nothing", 200, json, "{}"),
        ),
    ];
    for (what, result) in refused {
        assert!(result.is_err(), "{what} was allowed");
    }
}
