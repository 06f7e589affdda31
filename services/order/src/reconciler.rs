//! The reconciler: finishes orders left `PENDING` or `CANCELLING` — by a crash between storing
//! the order (or its cancel) and settling it, a lost response, or a dependency that was down —
//! by driving the saga again. That is safe because every step is keyed (payments by the order
//! id, refunds by the payment id): payment-service answers with the stored state, or resumes it
//! where it stopped.
//!
//! A pass runs at start-up (a restarted service finishes what its predecessor left at once) and
//! then every interval. It claims a batch at a time and goes on while batches come back full and
//! settle orders: a backlog is drained in one pass, not a batch per interval, and a pass whose
//! batch settles nothing (payment-service still down) stops instead of spinning.

use std::{sync::Arc, time::Duration};

use platform::{
    db::{Database, Migrated},
    telemetry::in_span_linked,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{domain::OrderStatus, saga::Saga, store};

const BATCH: i64 = 20;
/// How soon to look again while the schema is still being migrated.
const MIGRATION_POLL: Duration = Duration::from_millis(200);

pub async fn run(
    db: Database,
    saga: Arc<Saga>,
    interval: Duration,
    older_than: Duration,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    let mut next_pass = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next_pass) => {}
        }
        if !migrated.is_done() {
            next_pass = Instant::now() + MIGRATION_POLL.min(interval);
            continue;
        }
        loop {
            match reconcile_batch(&db, &saga, older_than).await {
                Ok(batch) if batch.claimed == BATCH as usize && batch.settled > 0 => {
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "reconciler pass failed");
                    break;
                }
            }
        }
        next_pass = Instant::now() + interval;
    }
}

/// What one batch did.
struct Batch {
    claimed: usize,
    settled: usize,
}

/// Claims up to [`BATCH`] orders untouched for `older_than` and drives each to its end state.
async fn reconcile_batch(
    db: &Database,
    saga: &Saga,
    older_than: Duration,
) -> Result<Batch, sqlx::Error> {
    let orders = store::claim_stuck(db, older_than, BATCH).await?;
    let mut batch = Batch {
        claimed: orders.len(),
        settled: 0,
    };
    for order in orders {
        // A new trace, linked to the request that created the order.
        let parent = trace_context::extract_stored(&order.trace_context);
        let result = if order.status() == OrderStatus::Cancelling {
            in_span_linked(
                "reconcile.cancel",
                Some(order.id),
                parent,
                saga.cancel(&order),
            )
            .await
        } else {
            in_span_linked(
                "reconcile.order",
                Some(order.id),
                parent,
                saga.drive(&order),
            )
            .await
        };
        let outcome = if result.is_ok() {
            batch.settled += 1;
            "settled"
        } else {
            "still_pending"
        };
        metrics::counter!("order_reconciler_attempts_total", "outcome" => outcome).increment(1);
        tracing::info!(order_id = %order.id, outcome, "reconciled an unsettled order");
    }
    Ok(batch)
}
