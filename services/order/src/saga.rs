//! The order saga's remote steps and the end states they lead to, both keyed so that repeating
//! them is always safe:
//!
//! - **pay**: ask payment-service to pay for the order (keyed by the order id) at the catalog's
//!   prices, then record the outcome its answer gives the order. An answer that is not final leaves the order
//!   `PENDING` for a retry or the reconciler.
//! - **cancel** (the compensating branch): refund the order's payment (keyed by the payment id;
//!   payment-service returns the stock, then the money), then mark the order `CANCELLED` and
//!   queue its notification. Until the refund is confirmed the order stays `CANCELLING`, and a
//!   repeated cancel or the reconciler resumes it.

use std::sync::Arc;

use axum::http::StatusCode;
use commerce::contracts::payment::{CreatePayment, Payment, PaymentStatus};
use platform::{
    Problem,
    db::Database,
    http_client::{HttpClient, Peer},
    telemetry::capture_current,
};
use tokio::sync::Notify;

use crate::{
    domain::{self, PaymentOutcome},
    store::{self, Order},
};

pub struct Saga {
    db: Database,
    http: HttpClient,
    payment: Peer,
    outbox_wakeup: Arc<Notify>,
}

impl Saga {
    pub fn new(db: Database, http: HttpClient, payment: Peer, outbox_wakeup: Arc<Notify>) -> Self {
        Self {
            db,
            http,
            payment,
            outbox_wakeup,
        }
    }

    /// Drives a `PENDING` order to its end state. `Err` is the problem to answer with: a 503
    /// (the order stays `PENDING`; the same request may be repeated) or a 500.
    pub async fn drive(&self, order: &Order) -> Result<Order, Problem> {
        let outcome = self.pay(order).await?;
        let message = domain::notification_message(order.id, &outcome);
        if outcome == PaymentOutcome::Undecided {
            return Err(still_pending(order, "the payment is not final yet"));
        }
        let (ended, transitioned) =
            store::record_outcome(&self.db, order.id, &outcome, &message, &capture_current())
                .await?;
        if transitioned {
            count_outcome(&outcome);
            tracing::info!(status = %ended.status(), reason = ?ended.failure_reason, "order ended");
            self.outbox_wakeup.notify_one();
        }
        Ok(ended)
    }

    /// Drives a `CANCELLING` order to `CANCELLED`: refund its payment (money and stock back),
    /// then record the end state and queue the notification. `Err` is a 503 (the order stays
    /// `CANCELLING`; the same cancel may be repeated) or a 500.
    pub async fn cancel(&self, order: &Order) -> Result<Order, Problem> {
        let payment = self.refund(order).await?;
        if payment.status != PaymentStatus::Refunded {
            tracing::error!(status = ?payment.status, "refund answered a payment that is not refunded");
            return Err(Problem::internal());
        }
        let message = domain::cancellation_message(order.id);
        let (cancelled, transitioned) =
            store::finish_cancel(&self.db, order.id, &message, &capture_current()).await?;
        if transitioned {
            metrics::counter!("orders_cancelled_total").increment(1);
            tracing::info!("order cancelled");
            self.outbox_wakeup.notify_one();
        }
        Ok(cancelled)
    }

    /// `POST /api/v1/payments/{payment_id}/refund` on payment-service.
    #[tracing::instrument(name = "saga.refund", skip_all, fields(order_id = %order.id))]
    async fn refund(&self, order: &Order) -> Result<Payment, Problem> {
        let Some(payment_id) = order.payment_id else {
            tracing::error!("a charged order without a payment id");
            return Err(Problem::internal());
        };
        let payment_id = payment_id.to_string();
        let reply = self
            .http
            .post_json(
                &self.payment,
                &["payments", &payment_id, "refund"],
                Some(order.id),
                &serde_json::json!({}),
            )
            .await
            .map_err(|error| {
                tracing::warn!(%error, "refund call failed; the order stays CANCELLING");
                still_cancelling(order, &error.to_string())
            })?;
        match reply.status {
            StatusCode::OK => reply
                .json()
                .map_err(|e| still_cancelling(order, &e.to_string())),
            status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => Err(
                still_cancelling(order, &format!("payment-service answered {status}")),
            ),
            status => {
                tracing::error!(%status, problem = ?reply.problem(), "payment-service refused the refund");
                Err(Problem::internal())
            }
        }
    }

    /// Calls payment-service and reads the outcome its answer gives the order.
    #[tracing::instrument(name = "saga.pay", skip_all, fields(order_id = %order.id))]
    async fn pay(&self, order: &Order) -> Result<PaymentOutcome, Problem> {
        let request = payment_request(order);
        let reply = self
            .http
            .post_json(&self.payment, &["payments"], Some(order.id), &request)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "payment call failed; the order stays PENDING");
                still_pending(order, &error.to_string())
            })?;
        match reply.status {
            StatusCode::OK | StatusCode::CREATED => {
                let payment: Payment = reply
                    .json()
                    .map_err(|e| still_pending(order, &e.to_string()))?;
                domain::payment_outcome(&order.items, &payment).map_err(|detail| {
                    tracing::error!(%detail, "payment-service charged something else than the order");
                    Problem::internal()
                })
            }
            status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => Err(
                still_pending(order, &format!("payment-service answered {status}")),
            ),
            status => {
                // A 4xx here means payment-service and this service disagree about a contract:
                // a bug to fix, not a client mistake. The order stays PENDING and visible.
                tracing::error!(%status, problem = ?reply.problem(), "payment-service refused the payment request");
                Err(Problem::internal())
            }
        }
    }
}

fn payment_request(order: &Order) -> CreatePayment {
    let (items, amount) = domain::payment_lines(&order.items);
    CreatePayment {
        order_id: order.id,
        amount,
        currency: order.currency.clone(),
        payment_method: order.payment_method.0,
        items,
    }
}

/// 503 with `Retry-After`: the order exists and is still `CANCELLING`.
fn still_cancelling(order: &Order, detail: &str) -> Problem {
    Problem::unavailable(
        format!(
            "order {} is CANCELLING: {detail}; repeat the cancel, or GET the order later",
            order.id
        ),
        1,
    )
    .with("order_id", order.id)
    .with("order_status", "CANCELLING")
}

/// 503 with `Retry-After`: the order exists and is still `PENDING`.
fn still_pending(order: &Order, detail: &str) -> Problem {
    Problem::unavailable(
        format!("order {} is PENDING: {detail}; repeat the request with the same Idempotency-Key, or GET the order later", order.id),
        1,
    )
    .with("order_id", order.id)
    .with("order_status", "PENDING")
}

fn count_outcome(outcome: &PaymentOutcome) {
    let (outcome, reason) = match outcome {
        PaymentOutcome::Confirmed { .. } => ("confirmed", "none"),
        PaymentOutcome::Failed(cause) => ("failed", cause.into()),
        PaymentOutcome::Undecided => return,
    };
    metrics::counter!("orders_settled_total", "outcome" => outcome, "reason" => reason)
        .increment(1);
}
