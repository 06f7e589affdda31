//! order-service's public HTTP API (reached through the ingress gateway):
//! `POST /api/v1/orders` (requires exactly one `Idempotency-Key`), `GET /api/v1/orders/{id}`,
//! `GET /api/v1/orders?status=&limit=&cursor=`, and `POST /api/v1/orders/{id}/cancel` (a
//! confirmed order's money and stock go back; repeating it is safe).

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use platform::{Json, Path, Problem, Query, context, headers};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    AppState,
    domain::{
        self, Cancellation, CreateOrderRequest, NewOrder, OrderStatus, parse_idempotency_key,
    },
    store::{self, Order, Stored},
};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays an earlier request's result.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create_order).get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .with_state(state)
}

/// Stores the order under its idempotency key, drives the saga, and answers with the settled
/// order (201). Repeating the request with the same key and body replays the result; with a
/// different body it is a 409. While payment is unreachable the answer is 503 and the order
/// stays `PENDING`: repeating the request resumes it, and the reconciler finishes it anyway.
async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<CreateOrderRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let new_order = NewOrder::parse(&request).map_err(Problem::invalid_fields)?;
    let (order, replayed) =
        match store::insert_pending(&state.pool, &key, &new_order, context::trace_id()).await? {
            Stored::Created(order) => (order, false),
            Stored::Existing(order) if order.request_hash != new_order.fingerprint() => {
                return Err(Problem::conflict(
                    "idempotency-key-reused",
                    "this Idempotency-Key was used for a different request",
                )
                .with("order_id", order.id));
            }
            Stored::Existing(order) => (order, true),
        };
    context::record_order_id(&order.id);
    let order = match order.status() {
        OrderStatus::Pending => state.saga.drive(&order).await?,
        _ => order,
    };
    Ok(created(order, replayed))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let value = headers::single(headers, IDEMPOTENCY_KEY)?.ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "missing-idempotency-key",
            "Missing Idempotency-Key",
        )
        .detail("order creation requires an `Idempotency-Key` header (e.g. a UUID per order)")
    })?;
    parse_idempotency_key(value.as_bytes()).map_err(|reason| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
        )
        .detail(format!("the Idempotency-Key {reason}"))
    })
}

fn created(order: Order, replayed: bool) -> Response {
    let location = format!("/api/v1/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, axum::Json(order)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Cancels a confirmed order: its payment is refunded and its stock returned (200 with the
/// `CANCELLED` order). Repeating it answers the cancelled order again; concurrent cancels
/// refund once. 409 for an order that was never charged (`PENDING`, `FAILED`); 503 while
/// payment-service is unreachable (the order stays `CANCELLING` and is finished later).
async fn cancel_order(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    context::record_order_id(&id);
    let order = store::get(&state.pool, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no order {id}")))?;
    let order = match domain::cancellation(order.status()) {
        Cancellation::Refuse => return Err(not_cancellable(&order)),
        Cancellation::Done | Cancellation::Resume => order,
        Cancellation::Begin => store::begin_cancel(&state.pool, id).await?.0,
    };
    match domain::cancellation(order.status()) {
        Cancellation::Resume => state.saga.cancel(&order).await.map(axum::Json),
        Cancellation::Done => Ok(axum::Json(order)),
        Cancellation::Begin | Cancellation::Refuse => Err(not_cancellable(&order)),
    }
}

fn not_cancellable(order: &Order) -> Problem {
    Problem::conflict(
        "order-not-cancellable",
        format!(
            "only a CONFIRMED order can be cancelled; this one is {}",
            order.status()
        ),
    )
    .with("order_status", order.status())
}

async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    context::record_order_id(&id);
    store::get(&state.pool, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no order {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<OrderStatus>,
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

#[derive(Debug, Serialize)]
struct OrderPage {
    items: Vec<Order>,
    next_cursor: Option<Uuid>,
}

async fn list_orders(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<OrderPage>, Problem> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query string",
        )
        .detail("limit must be between 1 and 100"));
    }
    let mut items = store::list(&state.pool, query.status, query.cursor, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|o| o.id)
    } else {
        None
    };
    Ok(axum::Json(OrderPage { items, next_cursor }))
}
