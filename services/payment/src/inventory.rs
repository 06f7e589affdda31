//! The client side of payment-service's one outgoing edge, payment → inventory-service: sell an
//! order's items at the catalog's prices (reserve and commit in one call), and release the
//! reservation (which returns sold stock when an order is cancelled) — both keyed by the order id
//! and so safe to repeat.
//!
//! Each answer is classified into what completing the payment needs to know; the platform's
//! [`HttpClient`] supplies the timeouts, trace and tenant headers and `x-order-id`.

use axum::http::StatusCode;
use commerce::contracts::{
    LineItem,
    inventory::{self, CreateReservation, OUT_OF_STOCK, PRICE_CHANGED},
};
use platform::http_client::{CallError, HttpClient, Peer, Reply};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct InventoryClient {
    http: HttpClient,
    inventory: Peer,
}

/// What inventory-service said about selling an order's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The order has a reservation (made now, or by an earlier attempt) at these prices: sold to
    /// it (`COMMITTED`), or given back by an operator since (`RELEASED` / `RETURNED`).
    Made(inventory::Reservation),
    /// The stock was short when the order first asked; nothing is held for it.
    OutOfStock { sku: String },
    /// A line's expected price or currency was not the catalog's; nothing is held for it.
    PriceChanged { sku: String },
}

/// Why there is no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No answer, or a 5xx / 429: the outcome is unknown and the same call may be repeated.
    #[error(transparent)]
    Unavailable(#[from] CallError),
    #[error("inventory-service answered {status}")]
    Overloaded { status: StatusCode },
    /// An answer that the contract does not allow for this call: a bug on one side.
    #[error("inventory-service answered {status} unexpectedly: {detail}")]
    Unexpected { status: StatusCode, detail: String },
}

impl InventoryClient {
    /// `inventory` is inventory-service (`INVENTORY_SERVICE_URL`).
    pub fn new(http: HttpClient, inventory: Peer) -> Self {
        Self { http, inventory }
    }

    /// `POST /api/v1/reservations` with `commit`: all the order's lines or none, once per order,
    /// reserved and sold in one transaction (a payment is captured at once, so nothing is gained
    /// by holding the stock first; a repeat commits a reservation an earlier request left held).
    pub async fn reserve_and_commit(
        &self,
        order_id: Uuid,
        currency: String,
        items: Vec<LineItem>,
    ) -> Result<Reservation, InventoryError> {
        let body = CreateReservation {
            order_id,
            currency,
            items,
            commit: true,
        };
        let reply = self
            .http
            .post_json(&self.inventory, &["reservations"], Some(order_id), &body)
            .await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => Ok(Reservation::Made(reply.json()?)),
            StatusCode::CONFLICT => {
                let sku = problem_member(&reply, "sku").unwrap_or_default();
                match problem_slug(&reply).as_deref() {
                    Some(OUT_OF_STOCK) => Ok(Reservation::OutOfStock { sku }),
                    Some(PRICE_CHANGED) => Ok(Reservation::PriceChanged { sku }),
                    _ => Err(unexpected(&reply)),
                }
            }
            _ => Err(transient_or_unexpected(&reply)),
        }
    }

    /// `POST /api/v1/reservations/{order_id}/release`: gives the order's stock back — a
    /// committed reservation is returned. Done now or before, it answers 200 either way.
    pub async fn release(&self, order_id: Uuid) -> Result<(), InventoryError> {
        let order = order_id.to_string();
        let reply = self
            .http
            .post_json(
                &self.inventory,
                &["reservations", &order, "release"],
                Some(order_id),
                &serde_json::json!({}),
            )
            .await?;
        match reply.status {
            StatusCode::OK => Ok(()),
            _ => Err(transient_or_unexpected(&reply)),
        }
    }
}

fn problem_slug(reply: &Reply) -> Option<String> {
    reply.problem().and_then(|p| p.slug().map(str::to_owned))
}

fn problem_member(reply: &Reply, member: &str) -> Option<String> {
    reply
        .problem()
        .and_then(|p| p.extensions.get(member).cloned())
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// 5xx and 429 are worth repeating later; any other status is a contract violation.
fn transient_or_unexpected(reply: &Reply) -> InventoryError {
    if reply.status.is_server_error() || reply.status == StatusCode::TOO_MANY_REQUESTS {
        InventoryError::Overloaded {
            status: reply.status,
        }
    } else {
        unexpected(reply)
    }
}

fn unexpected(reply: &Reply) -> InventoryError {
    InventoryError::Unexpected {
        status: reply.status,
        detail: reply
            .problem()
            .and_then(|p| p.detail.or(Some(p.title)))
            .unwrap_or_else(|| "no problem document".into()),
    }
}
