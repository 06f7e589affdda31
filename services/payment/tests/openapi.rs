//! payment-service publishes its contract: the OpenAPI 3.1 document generated from its routes and
//! types is served at `GET /openapi.json`, and every example in it is valid against its schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::TestApp;

const TENANT: &str = "tenant-a";

#[tokio::test]
async fn the_openapi_document_is_served_and_its_examples_are_valid() {
    let database = testkit::fresh_database("payment_openapi").await;
    let settings = payment_service::Settings {
        common: testkit::settings(TENANT, database),
        inventory: platform::http_client::Peer::new(
            commerce::contracts::inventory::SERVICE,
            url::Url::parse("http://127.0.0.1:1/").unwrap(),
        )
        .unwrap(),
    };
    let app = TestApp::start(payment_service::build(settings).await.unwrap(), TENANT).await;
    testkit::openapi::assert_published(&app, payment_service::openapi()).await;
    app.stop().await;
}
