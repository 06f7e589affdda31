//! The PostgreSQL pool and its migrations.
//!
//! The pool connects lazily, so a service starts (and answers `/healthz`) while its database is
//! still coming up; migrations are applied by a background task that retries until they succeed,
//! and only then does `/readyz` report ready.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::configuration::DatabaseSettings;

/// A pool that has not connected yet; the first query connects.
///
/// Connections are not pinged before each use (sqlx's `test_before_acquire`): the ping is a
/// round trip per statement, as many as the statements themselves. A connection the server
/// closed fails its next statement instead, with an I/O error that answers 503 (nothing was
/// written; the request may be repeated) and leaves the pool, which opens a new one.
pub fn lazy_pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .connect_lazy(&settings.url)
}

/// Whether the migrations have been applied.
#[derive(Debug, Clone, Default)]
pub struct Migrated(Arc<AtomicBool>);

impl Migrated {
    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn mark_done(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Applies `migrator` to the pool, retrying with backoff until it succeeds or shutdown begins.
pub async fn migrate_until_done(
    pool: PgPool,
    migrator: &'static Migrator,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match migrator.run(&pool).await {
            Ok(()) => {
                migrated.mark_done();
                tracing::info!("database migrations applied");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database migrations not applied yet");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Whether `error` is a violation of a unique constraint (a concurrent insert won the race).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
