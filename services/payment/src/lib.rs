//! payment-service owns payments. order-service asks it to pay for an order (keyed by the order
//! id); it authorises the payment, has inventory-service reserve and commit the order's stock in
//! one call, then captures — or voids the payment when the stock is short, or declines it outright for
//! the `card_declined` test method. A failure anywhere leaves the payment `AUTHORIZED`, and the
//! same request repeated later resumes it: see [`completion`].
//!
//! `routes` (HTTP) → `domain` (rules, no I/O) → `completion` (the steps across services, via
//! `inventory`, the client of the one outgoing edge) → `store` (SQL).

pub mod completion;
pub mod domain;
mod inventory;
mod routes;
mod store;

use platform::{
    configuration::{CommonSettings, ConfigError, required_peer},
    http_client::Peer,
    startup::{Application, Service, ServiceSettings, StartupError},
    telemetry::ServiceIdentity,
};

pub static SERVICE: Service = Service {
    identity: ServiceIdentity {
        name: commerce::contracts::payment::SERVICE,
        service_type: "payment",
    },
    migrator: &MIGRATOR,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The shared settings plus where inventory-service is.
#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// inventory-service (`INVENTORY_SERVICE_URL`, e.g. `http://inventory-service:8080`).
    pub inventory: Peer,
}

impl ServiceSettings for Settings {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonSettings::from_env()?,
            inventory: required_peer(
                "INVENTORY_SERVICE_URL",
                commerce::contracts::inventory::SERVICE,
                "inventory-service's base URL, e.g. http://inventory-service:8080",
            )?,
        })
    }

    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// The OpenAPI document this service serves at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    platform::startup::openapi(&SERVICE, routes::api())
}

pub async fn build(settings: Settings) -> Result<Application, StartupError> {
    let inventory = settings.inventory;
    Application::build(&SERVICE, settings.common, |platform| {
        routes::router(routes::AppState {
            db: platform.db.clone(),
            inventory: inventory::InventoryClient::new(platform.http.clone(), inventory),
        })
    })
    .await
}
