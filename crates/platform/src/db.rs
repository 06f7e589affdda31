//! The PostgreSQL pool and its migrations, the text-column codec of the services' enums, and the
//! one error every store returns for a database answer it cannot accept.
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

use serde::Serialize;
use sqlx::{
    Decode, Encode, PgPool, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    migrate::Migrator,
    postgres::{PgArgumentBuffer, PgPoolOptions, PgTypeInfo, PgValueRef},
};
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

/// A `text` column holding the spelling of a `T` (a status, a reason, a method — spelled by the
/// type's own `FromStr`/`AsRef<str>`): a store binds `Text(value)` and reads `Text<T>`, and a
/// spelling `T` does not know fails to decode (`sqlx::Error::ColumnDecode`) like any other
/// column of the wrong shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<T>(pub T);

impl<T> Type<Postgres> for Text<T> {
    fn type_info() -> PgTypeInfo {
        <str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <str as Type<Postgres>>::compatible(ty)
    }
}

impl<T: AsRef<str>> Encode<'_, Postgres> for Text<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.as_ref(), buf)
    }
}

impl<'r, T: std::str::FromStr> Decode<'r, Postgres> for Text<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Postgres>>::decode(value)?;
        text.parse().map(Text).map_err(|_| {
            let kind = std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value");
            format!("{text:?} is no {kind}").into()
        })
    }
}

/// The error for a database answer a store cannot accept although the schema allows it to
/// happen only through a bug: a row that vanished under its lock, a guarded update that moved
/// nothing. Every store reports such answers this one way.
pub fn unexpected(what: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected database answer: {what}").into())
}
