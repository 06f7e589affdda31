//! The reconciler: finishes orders left `PENDING` or `CANCELLING` — by a crash between storing
//! the order (or its cancel) and settling it, a lost response, or a dependency that was down —
//! by driving the saga again. That is safe because every step is keyed (payments by the order
//! id, refunds by the payment id): payment-service answers with the stored state, or resumes it
//! where it stopped.

use std::{sync::Arc, time::Duration};

use platform::{
    db::{Database, Migrated},
    telemetry::in_span_linked,
};
use tokio_util::sync::CancellationToken;

use crate::{domain::OrderStatus, saga::Saga, store};

const BATCH: i64 = 20;

pub async fn run(
    db: Database,
    saga: Arc<Saga>,
    interval: Duration,
    older_than: Duration,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if !migrated.is_done() {
            continue;
        }
        match store::claim_stuck(&db, older_than, BATCH).await {
            Ok(orders) => {
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
                        "settled"
                    } else {
                        "still_pending"
                    };
                    metrics::counter!("order_reconciler_attempts_total", "outcome" => outcome)
                        .increment(1);
                    tracing::info!(order_id = %order.id, outcome, "reconciled an unsettled order");
                }
            }
            Err(error) => tracing::warn!(%error, "reconciler pass failed"),
        }
    }
}
