//! The order saga's remote step and its settlement: ask payment-service to pay for the order
//! (keyed by the order id, so repeating the call is always safe), then settle the order on the
//! answer. An answer that is not final leaves the order `PENDING` for a retry or the reconciler.

use std::sync::Arc;

use axum::http::StatusCode;
use commerce::contracts::{
    LineItem,
    payment::{CreatePayment, Payment, PaymentMethod},
};
use platform::{Problem, http_client::HttpClient, telemetry::in_span};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    domain::{self, Settlement},
    store::{self, Order},
};

pub const PAYMENT_SERVICE: &str = "payment-service";

pub struct Saga {
    pool: PgPool,
    http: HttpClient,
    payments_url: url::Url,
    outbox_wakeup: Arc<Notify>,
}

impl Saga {
    pub fn new(
        pool: PgPool,
        http: HttpClient,
        payment_base: url::Url,
        outbox_wakeup: Arc<Notify>,
    ) -> Self {
        let payments_url = payment_base.join("api/v1/payments").unwrap_or(payment_base);
        Self {
            pool,
            http,
            payments_url,
            outbox_wakeup,
        }
    }

    /// Drives a `PENDING` order to its end state. `Err` is the problem to answer with: a 503
    /// (the order stays `PENDING`; the same request may be repeated) or a 500.
    pub async fn drive(&self, order: &Order) -> Result<Order, Problem> {
        let outcome = in_span("saga.pay", Some(order.id), self.pay(order)).await?;
        let message = domain::notification_message(order.id, &outcome);
        if outcome == Settlement::Undecided {
            return Err(still_pending(order, "the payment is not settled yet"));
        }
        let (settled, transitioned) = in_span(
            "saga.settle",
            Some(order.id),
            store::settle(&self.pool, order.id, outcome, &message),
        )
        .await?;
        if transitioned {
            count_outcome(&outcome);
            tracing::info!(status = settled.status().as_str(), reason = ?settled.failure_reason, "order settled");
            self.outbox_wakeup.notify_one();
        }
        Ok(settled)
    }

    /// Calls payment-service and reads its answer as a settlement.
    async fn pay(&self, order: &Order) -> Result<Settlement, Problem> {
        let request = payment_request(order)?;
        let reply = self
            .http
            .post_json(
                PAYMENT_SERVICE,
                self.payments_url.clone(),
                Some(order.id),
                &request,
            )
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
                Ok(domain::settlement(&payment))
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

fn payment_request(order: &Order) -> Result<CreatePayment, Problem> {
    let payment_method: PaymentMethod = serde_json::from_value(serde_json::Value::String(
        order.payment_method.clone(),
    ))
    .map_err(|e| {
        tracing::error!(error = %e, "stored payment method is unreadable");
        Problem::internal()
    })?;
    Ok(CreatePayment {
        order_id: order.id,
        amount: order.total_amount,
        currency: order.currency.clone(),
        payment_method,
        items: order
            .items
            .iter()
            .map(|line| LineItem {
                sku: line.sku.clone(),
                quantity: line.quantity,
            })
            .collect(),
    })
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

fn count_outcome(outcome: &Settlement) {
    let (outcome, reason) = match outcome {
        Settlement::Confirmed { .. } => ("confirmed", "none"),
        Settlement::Failed(cause) => ("failed", cause.as_str()),
        Settlement::Undecided => return,
    };
    metrics::counter!("orders_settled_total", "outcome" => outcome, "reason" => reason)
        .increment(1);
}
