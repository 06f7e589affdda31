//! order-service publishes its contract: the OpenAPI 3.1 document generated from its routes and
//! types is served at `GET /openapi.json`, and every example in it is valid against its schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::TestApp;

const TENANT: &str = "tenant-a";

#[tokio::test]
async fn the_openapi_document_is_served_and_its_examples_are_valid() {
    let database = testkit::fresh_database("order_openapi").await;
    let settings = order_service::Settings {
        common: testkit::settings(TENANT, database),
        payment: platform::http_client::Peer::new(
            commerce::contracts::payment::SERVICE,
            url::Url::parse("http://127.0.0.1:1/").unwrap(),
        )
        .unwrap(),
        notify: platform::http_client::Peer::new(
            commerce::contracts::notify::SERVICE,
            url::Url::parse("http://127.0.0.1:1/").unwrap(),
        )
        .unwrap(),
        payment_timeout: std::time::Duration::from_secs(1),
        outbox_poll_interval: std::time::Duration::from_secs(1),
        outbox_max_backoff: std::time::Duration::from_secs(1),
        reconcile_interval: std::time::Duration::from_secs(60),
        reconcile_after: std::time::Duration::from_secs(60),
    };
    let app = TestApp::start(order_service::build(settings).await.unwrap(), TENANT).await;
    testkit::openapi::assert_published(&app, order_service::openapi()).await;
    app.stop().await;
}
