//! order-service's public HTTP API (reached through the ingress gateway):
//! `POST /api/v1/orders` (requires exactly one `Idempotency-Key`), `GET /api/v1/orders/{id}`,
//! `GET /api/v1/orders?status=&limit=&cursor=`, and `POST /api/v1/orders/{id}/cancel` (a
//! confirmed order's money and stock go back; repeating it is safe). Each route is documented by
//! its `#[utoipa::path]` (see `platform::openapi` for what every route shares).

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{Json, Path, Problem, Query, context, headers, telemetry::capture_current};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    domain::{self, Cancellation, CreateOrderRequest, IdempotencyKey, NewOrder, OrderStatus},
    store::{self, Order, Stored},
};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays an earlier request's result.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The routes with their documentation, before the state is given.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
}

pub(crate) fn router(app: AppState) -> OpenApiRouter {
    api().with_state(app)
}

/// Places an order: stores it under its `Idempotency-Key`, pays for it (which reserves its stock
/// at the catalog's prices) and answers with the settled order.
///
/// 201 with the order `CONFIRMED` (prices and total charged) or `FAILED` (`payment_declined`,
/// `out_of_stock`, `price_changed`: nothing charged). Repeating the request with the same key and
/// body replays the result (`idempotent-replayed: true`); with a different body it is a 409. While
/// payment is unreachable the answer is 503 and the order stays `PENDING`: repeating the request
/// resumes it, and the reconciler finishes it anyway.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    params(IdempotencyKeyHeader),
    request_body = CreateOrderRequest,
    responses(
        (status = 201, description = "The order, settled: `CONFIRMED` or `FAILED`", body = Order,
            headers(
                ("location" = String, description = "The order's URL"),
                ("idempotent-replayed" = String, description = "`true` when this answer replays an earlier request's")
            ),
            links(
                ("GetOrder" = (operation_id = "get_order", parameters(("path.id" = "$response.body#/id")))),
                ("CancelOrder" = (operation_id = "cancel_order", parameters(("path.id" = "$response.body#/id")))),
            )),
        (status = 400, description = "Missing or invalid `Idempotency-Key`", body = Problem,
            content_type = "application/problem+json",
            examples(
                ("missing-idempotency-key" = (summary = "Missing Idempotency-Key", value = json!({
                    "type": "https://ordermesh.dev/problems/missing-idempotency-key",
                    "title": "Missing Idempotency-Key",
                    "status": 400,
                    "detail": "order creation requires an `Idempotency-Key` header (e.g. a UUID per order)"
                }))),
                ("invalid-idempotency-key" = (summary = "Invalid Idempotency-Key", value = json!({
                    "type": "https://ordermesh.dev/problems/invalid-idempotency-key",
                    "title": "Invalid Idempotency-Key",
                    "status": 400,
                    "detail": "the Idempotency-Key must be 1-255 visible ASCII characters"
                }))),
            )),
        (status = 409, description = "The key was used for a different request", body = Problem,
            content_type = "application/problem+json",
            examples(("idempotency-key-reused" = (summary = "Conflict", value = json!({
                "type": "https://ordermesh.dev/problems/idempotency-key-reused",
                "title": "Conflict",
                "status": 409,
                "detail": "this Idempotency-Key was used for a different request",
                "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f"
            }))))),
    ),
)]
async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<CreateOrderRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let new_order = NewOrder::parse(&request).map_err(Problem::invalid_fields)?;
    let (order, replayed) = match store::insert_pending(
        &app.db,
        &key,
        &new_order,
        context::trace_id(),
        &capture_current(),
    )
    .await?
    {
        Stored::Created(order) => (order, false),
        Stored::Existing(order) if order.request_hash != new_order.request_hash() => {
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
        OrderStatus::Pending => app.saga.drive(&order).await?,
        _ => order,
    };
    Ok(created(order, replayed))
}

/// Documents the `Idempotency-Key` header; [`create_order`] reads it from the `HeaderMap`, where
/// a missing key and a repeated one can be told apart.
struct IdempotencyKeyHeader;

impl IntoParams for IdempotencyKeyHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![platform::openapi::required_parameter(
            "Idempotency-Key",
            utoipa::openapi::path::ParameterIn::Header,
            format!(
                "Required, exactly one: 1 to {} visible ASCII characters (`!` to `~`), \
                 e.g. a UUID per order",
                domain::MAX_IDEMPOTENCY_KEY_LEN
            ),
            domain::idempotency_key_schema(),
        )]
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Problem> {
    let value = headers::single(headers, IDEMPOTENCY_KEY)?.ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "missing-idempotency-key",
            "Missing Idempotency-Key",
        )
        .detail("order creation requires an `Idempotency-Key` header (e.g. a UUID per order)")
    })?;
    IdempotencyKey::parse(value.as_bytes()).map_err(|reason| {
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

/// Cancels a confirmed order: its payment is refunded and its stock returned.
///
/// 200 with the `CANCELLED` order. Repeating it answers the cancelled order again; concurrent
/// cancels refund once. 409 for an order that was never charged (`PENDING`, `FAILED`); 503 while
/// payment-service is unreachable (the order stays `CANCELLING` and is finished later).
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order, `CANCELLED`", body = Order,
            links(("GetOrder" = (operation_id = "get_order", parameters(("path.id" = "$response.body#/id")))))),
        (status = 404, description = "No such order"),
        (status = 409, description = "Only a `CONFIRMED` order can be cancelled", body = Problem,
            content_type = "application/problem+json",
            examples(("order-not-cancellable" = (summary = "Conflict", value = json!({
                "type": "https://ordermesh.dev/problems/order-not-cancellable",
                "title": "Conflict",
                "status": 409,
                "detail": "only a CONFIRMED order can be cancelled; this one is FAILED",
                "order_status": "FAILED"
            }))))),
    ),
)]
async fn cancel_order(
    State(app): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    context::record_order_id(&id);
    let order = store::get(&app.db, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no order {id}")))?;
    let order = match domain::cancellation(order.status()) {
        Cancellation::Refuse => return Err(not_cancellable(&order)),
        Cancellation::Done | Cancellation::Resume => order,
        Cancellation::Begin => store::begin_cancel(&app.db, id).await?.0,
    };
    match domain::cancellation(order.status()) {
        Cancellation::Resume => app.saga.cancel(&order).await.map(axum::Json),
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

/// One order.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order"),
    ),
)]
async fn get_order(
    State(app): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    context::record_order_id(&id);
    store::get(&app.db, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no order {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only orders in this state.
    status: Option<OrderStatus>,
    /// Orders per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// One page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct OrderPage {
    items: Vec<Order>,
    /// Where the next page starts (`cursor`), or `null` on the last page.
    next_cursor: Option<Uuid>,
}

/// The orders, newest first, optionally in one state, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(ListQuery),
    responses((status = 200, description = "A page of orders", body = OrderPage)),
)]
async fn list_orders(
    State(app): State<AppState>,
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
    let mut items = store::list(&app.db, query.status, query.cursor, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|o| o.id)
    } else {
        None
    };
    Ok(axum::Json(OrderPage { items, next_cursor }))
}
