//! `platform::db::Database` against a real PostgreSQL: a connection whose work finished cleanly
//! is kept and reused without sqlx's release ping, and nothing a failed, dropped or unfinished use
//! leaves behind reaches the next statement. The pool has one connection, so every statement
//! below runs on the same one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use platform::db::Database;
use sqlx::{Connection, Executor, postgres::PgPoolOptions};

async fn database() -> Database {
    let url = testkit::fresh_database("platform_db").await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect(&url)
        .await
        .unwrap();
    let db = Database::new(pool);
    db.execute("CREATE TABLE t (n int)").await.unwrap();
    db
}

async fn count(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_connection_that_finished_cleanly_is_kept_for_the_next_statement() {
    let db = database().await;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(db.idle(), 1, "kept, not in use");
    for n in 0..20 {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(n)
            .execute(&db)
            .await
            .unwrap();
    }
    let rows: Vec<i32> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows, (0..20).collect::<Vec<_>>());
    let again: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(again, backend, "the one connection, reused");

    let mut lease = db.lease().await.unwrap();
    let mut tx = lease.begin().await.unwrap();
    tx.execute("INSERT INTO t VALUES (100)").await.unwrap();
    tx.commit().await.unwrap();
    lease.done();
    assert_eq!(
        count(&db).await,
        21,
        "a committed transaction's lease is kept"
    );
}

#[tokio::test]
async fn a_lease_waiting_on_the_pool_gets_the_next_connection_that_finishes() {
    let db = database().await;
    let first = db.lease().await.unwrap();
    let second = tokio::spawn({
        let db = db.clone();
        async move {
            let lease = db.lease().await?;
            lease.done();
            Ok::<_, sqlx::Error>(())
        }
    });
    while db.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    first.done();
    let served = tokio::time::timeout(Duration::from_secs(5), second).await;
    assert!(
        matches!(served, Ok(Ok(Ok(())))),
        "served by the finished connection, not timed out waiting on the pool: {served:?}"
    );
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_before_the_connection_is_reused() {
    let db = database().await;
    let mut lease = db.lease().await.unwrap();
    let mut tx = lease.begin().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)").await.unwrap();
    drop(tx);
    drop(lease); // not done: back through sqlx, which flushes the rollback
    assert_eq!(count(&db).await, 0);
    let in_transaction: Option<String> =
        sqlx::query_scalar("SELECT txid_current_if_assigned()::text")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        in_transaction, None,
        "the next statement runs outside any transaction"
    );
}

#[tokio::test]
async fn a_failed_or_abandoned_statement_leaves_nothing_for_the_next() {
    let db = database().await;
    let error = db.execute("SELECT * FROM no_such_table").await;
    assert!(error.is_err());
    assert_eq!(count(&db).await, 0, "the connection works after an error");

    let slow = sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.5)").fetch_one(&db);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err(),
        "abandoned mid-statement"
    );
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        answer, 42,
        "the next statement gets its own answer, not the abandoned one's"
    );
}

#[tokio::test]
async fn closing_gives_the_kept_connections_back() {
    let db = database().await;
    assert_eq!(count(&db).await, 0);
    assert_eq!(db.idle(), 1);
    tokio::time::timeout(Duration::from_secs(5), db.close())
        .await
        .expect("close does not wait for a kept connection");
    assert!(db.pool().is_closed());
    assert!(sqlx::query("SELECT 1").execute(&db).await.is_err());
}
