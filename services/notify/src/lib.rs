//! notify-service owns notifications. order-service's outbox delivers one per order outcome
//! (`order_confirmed`, `order_failed` or `order_cancelled`); this service records ("delivers") it exactly once per
//! `(order_id, kind)`, however often the outbox repeats the call.
//!
//! `routes` (HTTP) → `domain` (validation) → `store` (SQL).

pub mod domain;
mod routes;
mod store;

use platform::{
    configuration::CommonSettings,
    startup::{Application, Service, StartupError},
    telemetry::ServiceIdentity,
};

pub static SERVICE: Service = Service {
    identity: ServiceIdentity {
        name: commerce::contracts::notify::SERVICE,
        service_type: "notify",
    },
    migrator: &MIGRATOR,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// notify-service needs only the shared settings.
pub type Settings = CommonSettings;

/// The OpenAPI document this service serves at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    platform::startup::openapi(&SERVICE, routes::api())
}

pub async fn build(settings: Settings) -> Result<Application, StartupError> {
    Application::build(&SERVICE, settings, |platform| {
        routes::router(platform.db.clone())
    })
    .await
}
