//! Finishing an `AUTHORIZED` payment: sell the order's stock (one call to inventory-service
//! reserves it, prices it from its catalog and commits it, in one transaction), then capture
//! exactly the reservation's priced amount, recorded with the capture in one statement; or void
//! when the stock is not there or a price is not the one the caller expected. Every step is safe
//! to repeat, so a request that fails or crashes anywhere leaves a state the next identical
//! request resumes from:
//!
//! | crash or failure after… | stored state | a repeat… |
//! |---|---|---|
//! | the payment row is inserted | `AUTHORIZED`, nothing reserved | reserves and commits (201) |
//! | the reservation is made | `AUTHORIZED`, `COMMITTED` | gets the same priced reservation back (200), captures |
//! | the capture / the void | final | replays the payment |
//!
//! (A reservation left `RESERVED` by a request that did not commit — the two-step protocol
//! inventory-service still offers — is committed by the repeat, and then captured.)
//!
//! A refund runs the other way (see [`refund`]): return the stock, then mark the payment
//! `REFUNDED`; a repeat after a failure in between returns nothing twice.
//!
//! inventory-service decides a reservation once per order, out-of-stock included, so every
//! attempt for an order sees the same answer: the payment is voided only when no stock is held
//! for the order, and captured only once its stock is committed (`domain::settle`). Captures and
//! voids are conditional on `AUTHORIZED`, so concurrent attempts agree on one outcome.

use commerce::contracts::payment::{FailureReason, PaymentStatus};
use platform::{Problem, db::Database};

use crate::{
    domain,
    inventory::{InventoryClient, InventoryError, Reservation},
    store::{self, Stored},
};

#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

impl CompletionError {
    /// Whether the payment was left `AUTHORIZED` because a dependency did not answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CompletionError::Inventory(
                InventoryError::Unavailable(_) | InventoryError::Overloaded { .. }
            )
        )
    }
}

/// 503 with `Retry-After` when inventory-service gave no usable answer (the payment stays
/// `AUTHORIZED`; the same request completes it later); 500 when it broke the contract.
impl From<CompletionError> for Problem {
    fn from(error: CompletionError) -> Self {
        match error {
            CompletionError::Database(e) => Problem::from(e),
            CompletionError::Inventory(InventoryError::Unavailable(call)) => {
                tracing::warn!(error = %call, "inventory-service unavailable; payment left AUTHORIZED");
                call.to_problem()
            }
            CompletionError::Inventory(e @ InventoryError::Overloaded { .. }) => {
                tracing::warn!(error = %e, "inventory-service unavailable; payment left AUTHORIZED");
                Problem::unavailable(e.to_string(), 1)
            }
            CompletionError::Inventory(e @ InventoryError::Unexpected { .. }) => {
                tracing::error!(error = %e, "inventory-service broke its contract; payment left AUTHORIZED");
                Problem::internal()
            }
        }
    }
}

/// Takes an `AUTHORIZED` payment to `CAPTURED` or `VOIDED`; returns it as stored afterwards.
pub async fn capture_or_void(
    db: &Database,
    inventory: &InventoryClient,
    authorized: &Stored,
) -> Result<Stored, CompletionError> {
    let order_id = authorized.payment.order_id;
    let terms = &authorized.terms;
    let (status, reason, priced) = match inventory
        .reserve_and_commit(order_id, terms.currency.clone(), terms.items.clone())
        .await?
    {
        Reservation::OutOfStock { sku } => {
            tracing::info!(%sku, "stock short; voiding the payment");
            (PaymentStatus::Voided, Some(FailureReason::OutOfStock), None)
        }
        Reservation::PriceChanged { sku } => {
            tracing::info!(%sku, "price not the expected one; voiding the payment");
            (
                PaymentStatus::Voided,
                Some(FailureReason::PriceChanged),
                None,
            )
        }
        Reservation::Made(reservation) => {
            let broken = |detail| InventoryError::Unexpected {
                status: axum::http::StatusCode::OK,
                detail,
            };
            let (amount, lines) = domain::charge(terms, &reservation).map_err(broken)?;
            let (status, reason) = domain::settle(reservation.status).map_err(broken)?;
            if status == PaymentStatus::Voided {
                tracing::warn!(
                    "the order's reservation was released before it was sold; voiding the payment"
                );
            }
            (status, reason, Some(store::Priced { amount, lines }))
        }
    };
    Ok(store::finish_authorized(db, order_id, status, reason, priced.as_ref()).await?)
}

/// Pays a `CAPTURED` payment back: first the order's stock goes back on sale (inventory-service
/// returns the committed reservation), then the payment becomes `REFUNDED`. `None` when a
/// concurrent refund won the race to the second step (the caller reads what it left).
pub async fn refund(
    db: &Database,
    inventory: &InventoryClient,
    captured: &Stored,
) -> Result<Option<Stored>, CompletionError> {
    inventory.release(captured.payment.order_id).await?;
    Ok(store::refund(db, captured.payment.id).await?)
}
