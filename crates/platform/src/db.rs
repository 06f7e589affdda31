//! The PostgreSQL pool and its migrations, the text-column codec of the services' enums, and the
//! one error every store returns for a database answer it cannot accept.
//!
//! The pool connects lazily, so a service starts (and answers `/healthz`) while its database is
//! still coming up; migrations are applied by a background task that retries until they succeed,
//! and only then does `/readyz` report ready. Stores run their statements on a [`Database`]: the
//! pool plus the connections it keeps between uses (see there why).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use serde::Serialize;
use sqlx::{
    Decode, Either, Encode, Execute, Executor, PgConnection, PgPool, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::{
        PgArgumentBuffer, PgPoolOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo, PgValueRef,
    },
};
use tokio_util::sync::CancellationToken;

use crate::configuration::DatabaseSettings;

/// The service's database: its sqlx pool, and the connections that finished their work cleanly,
/// kept here for the next statement instead of going back to the pool.
///
/// Why: sqlx sends a ping (a `Sync` and its `ReadyForQuery`) on every connection returned to its
/// pool, before the next task may take it — a round trip per statement or transaction, and it
/// offers no switch. A connection whose statement ran to completion needs no such check, so it
/// is kept (at most the pool's size) and reused as it is; measured under load, that took 16% off
/// the services' CPU per order and 10% off PostgreSQL's. Anything else — an error, a future
/// dropped mid-statement, a transaction not committed — drops the connection the normal way, and
/// sqlx's ping flushes it (rolling back what was left open) before anyone reuses it.
///
/// Every statement goes through here (`&Database` is an sqlx [`Executor`]; [`Database::lease`]
/// for several statements or a transaction), so a kept connection is never out of reach of the
/// code that needs one: connections are only ever kept, leased or in sqlx's pool.
#[derive(Debug, Clone)]
pub struct Database {
    pool: PgPool,
    kept: Arc<Mutex<Kept>>,
}

/// The kept connections, and how many leases are waiting on the pool for one.
#[derive(Debug, Default)]
struct Kept {
    connections: Vec<PoolConnection<Postgres>>,
    /// A lease waiting on the pool is only served by a connection that goes back to the pool:
    /// while any waits, finished connections go back instead of being kept. Both are decided
    /// under the one lock, so a lease never waits while a kept connection sits idle.
    waiting: usize,
}

impl Database {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            kept: Arc::default(),
        }
    }

    /// The pool itself (migrations run on it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection for several statements or a transaction: a kept one, or one from the pool.
    /// Call [`Lease::done`] when the work finished cleanly; dropping the lease instead returns it
    /// through sqlx's ping.
    pub async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        let waiting = {
            let Ok(mut kept) = self.kept.lock() else {
                return Err(sqlx::Error::PoolClosed);
            };
            if let Some(connection) = kept.connections.pop() {
                return Ok(Lease {
                    connection,
                    database: self,
                });
            }
            kept.waiting += 1;
            Waiting(&self.kept)
        };
        let connection = self.pool.acquire().await;
        drop(waiting);
        Ok(Lease {
            connection: connection?,
            database: self,
        })
    }

    /// Connections not in use: idle in the pool or kept here.
    pub fn idle(&self) -> usize {
        self.pool.num_idle() + self.kept.lock().map_or(0, |kept| kept.connections.len())
    }

    /// Leases waiting on the pool for a connection (all are in use).
    pub fn waiting(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.waiting)
    }

    /// Connections open (in use, idle or kept).
    pub fn size(&self) -> u32 {
        self.pool.size()
    }

    /// Closes the pool and gives the kept connections back to it (closing waits for every
    /// connection). The pool is marked closed first, so nothing is kept from then on.
    pub async fn close(&self) {
        let closing = self.pool.close();
        let kept = self
            .kept
            .lock()
            .map(|mut kept| std::mem::take(&mut kept.connections))
            .unwrap_or_default();
        drop(kept);
        closing.await;
    }

    /// Keeps a connection that finished cleanly, unless a lease waits on the pool, the pool is
    /// closing, or enough are kept: then it goes back to the pool (dropped outside the lock).
    fn keep(&self, connection: PoolConnection<Postgres>) {
        // `is_closed` is checked under the lock `close` takes after marking the pool closed: a
        // connection is either kept before `close` empties the list, or not at all.
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let keep_at_most = self.pool.options().get_max_connections() as usize;
        if kept.waiting == 0 && kept.connections.len() < keep_at_most && !self.pool.is_closed() {
            kept.connections.push(connection);
        } else {
            drop(kept);
            drop(connection);
        }
    }
}

/// One lease waiting on the pool; stops counting when dropped (served, failed or cancelled).
struct Waiting<'a>(&'a Mutex<Kept>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut kept) = self.0.lock() {
            kept.waiting -= 1;
        }
    }
}

/// A connection taken from a [`Database`] (it dereferences to the connection).
#[derive(Debug)]
pub struct Lease<'a> {
    connection: PoolConnection<Postgres>,
    database: &'a Database,
}

impl Lease<'_> {
    /// The work on this connection ran to completion (no statement pending, no transaction
    /// open): keep it for the next one.
    pub fn done(self) {
        self.database.keep(self.connection);
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

/// One statement on a leased connection, which is kept when the statement succeeds. Rows are
/// collected before they are handed on (the statements here return a page at most), so the
/// connection is free again before the caller sees the first one.
impl<'c> Executor<'c> for &'c Database {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        futures::stream::once(async move {
            let mut lease = self.lease().await?;
            let results: Vec<_> = lease.fetch_many(query).try_collect().await?;
            lease.done();
            Ok::<_, sqlx::Error>(futures::stream::iter(results).map(Ok))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(async move {
            let mut lease = self.lease().await?;
            let row = lease.fetch_optional(query).await?;
            lease.done();
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}

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
    database: Database,
    migrator: &'static Migrator,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match migrator.run(database.pool()).await {
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
