//! inventory-service owns stock: the units of each SKU that are available, reserved for an order
//! that is not final yet, or committed (sold). payment-service reserves an order's items (all
//! lines or none, once per order id), then commits the reservation when the payment is
//! captured; releasing gives the units back. Stock never goes negative, under any concurrency:
//! every change is a transaction that locks its rows in SKU order, and the table CHECKs back it.
//!
//! `routes` (HTTP) → `domain` (rules, no I/O) → `store` (SQL).

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
        name: commerce::contracts::inventory::SERVICE,
        service_type: "inventory",
    },
    migrator: &MIGRATOR,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// inventory-service needs only the shared settings: it calls no other service.
pub type Settings = CommonSettings;

/// The OpenAPI document this service serves at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    platform::startup::openapi(&SERVICE, routes::api())
}

pub async fn build(settings: Settings) -> Result<Application, StartupError> {
    Application::build(&SERVICE, settings, |platform| {
        routes::router(routes::AppState {
            db: platform.db.clone(),
        })
    })
    .await
}
