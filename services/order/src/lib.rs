//! order-service owns orders and runs the order saga (see DESIGN.md):
//!
//! 1. `POST /api/v1/orders` stores the order `PENDING` under the caller's `Idempotency-Key`;
//! 2. [`saga`] asks payment-service to pay, keyed by the order id (payment-service reserves and
//!    sells the stock with inventory-service in one call and voids the payment if it cannot);
//! 3. the order becomes `CONFIRMED` or `FAILED`, and a notification is written to the
//!    [`outbox`] in the same transaction; the dispatcher delivers it to notify-service;
//! 4. the [`reconciler`] finishes orders left `PENDING` (or `CANCELLING`, a cancel under way) by a
//!    crash, a lost response or a timeout.
//!
//! `routes` (HTTP) → `domain` (rules, no I/O) → `saga` (the calls) → `store` (SQL); beside them
//! the [`outbox`] dispatcher and the [`reconciler`], background tasks that use `saga` and `store`.

pub mod domain;
mod outbox;
mod reconciler;
mod routes;
mod saga;
mod store;

use std::{sync::Arc, time::Duration};

use commerce::contracts::{notify, payment};
use platform::{
    configuration::{CommonSettings, ConfigError, millis_or, required_peer},
    http_client::Peer,
    startup::{Application, Service, ServiceSettings, StartupError},
    telemetry::ServiceIdentity,
};

pub static SERVICE: Service = Service {
    identity: ServiceIdentity {
        name: commerce::contracts::order::SERVICE,
        service_type: "order",
    },
    migrator: &MIGRATOR,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// payment-service (`PAYMENT_SERVICE_URL`, e.g.
    /// `http://payment-service.tenant-a-payments.svc.cluster.local:8080`).
    pub payment: Peer,
    /// notify-service (`NOTIFY_SERVICE_URL`).
    pub notify: Peer,
    /// Budget for one call to payment-service (which itself calls inventory-service once, to
    /// reserve and sell the stock).
    pub payment_timeout: Duration,
    /// How often the outbox is polled when nothing wakes the dispatcher.
    pub outbox_poll_interval: Duration,
    /// Longest wait between two delivery attempts of one notification.
    pub outbox_max_backoff: Duration,
    /// How often the reconciler looks for stuck orders.
    pub reconcile_interval: Duration,
    /// How long an order may stay `PENDING` untouched before the reconciler finishes it.
    pub reconcile_after: Duration,
}

impl ServiceSettings for Settings {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonSettings::from_env()?,
            payment: required_peer(
                "PAYMENT_SERVICE_URL",
                payment::SERVICE,
                "payment-service's base URL",
            )?,
            notify: required_peer(
                "NOTIFY_SERVICE_URL",
                notify::SERVICE,
                "notify-service's base URL",
            )?,
            payment_timeout: millis_or("PAYMENT_TIMEOUT_MS", 5_000)?,
            outbox_poll_interval: millis_or("OUTBOX_POLL_INTERVAL_MS", 1_000)?,
            outbox_max_backoff: millis_or("OUTBOX_MAX_BACKOFF_MS", 30_000)?,
            reconcile_interval: millis_or("RECONCILE_INTERVAL_MS", 5_000)?,
            reconcile_after: millis_or("RECONCILE_AFTER_MS", 15_000)?,
        })
    }

    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// What the routes use: the database and the saga (which the reconciler drives too).
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: platform::db::Database,
    pub saga: Arc<saga::Saga>,
}

/// The OpenAPI document this service serves at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    platform::startup::openapi(&SERVICE, routes::api())
}

pub async fn build(settings: Settings) -> Result<Application, StartupError> {
    Application::build(&SERVICE, settings.common.clone(), |platform| {
        let outbox_wakeup = Arc::new(tokio::sync::Notify::new());
        let saga = Arc::new(saga::Saga::new(
            platform.db.clone(),
            platform.http.with_timeout(settings.payment_timeout),
            settings.payment.clone(),
            outbox_wakeup.clone(),
        ));
        platform.spawn(outbox::run_dispatcher(
            platform.db.clone(),
            outbox_wakeup,
            outbox::DispatcherSettings {
                http: platform.http.clone(),
                notify: settings.notify.clone(),
                poll_interval: settings.outbox_poll_interval,
                max_backoff: settings.outbox_max_backoff,
            },
            platform.migrated.clone(),
            platform.shutdown.clone(),
        ));
        platform.spawn(reconciler::run(
            platform.db.clone(),
            saga.clone(),
            settings.reconcile_interval,
            settings.reconcile_after,
            platform.migrated.clone(),
            platform.shutdown.clone(),
        ));
        routes::router(AppState {
            db: platform.db.clone(),
            saga,
        })
    })
    .await
}
