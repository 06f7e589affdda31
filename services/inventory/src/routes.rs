//! inventory-service's HTTP API. Operators set stock and catalog prices through the items
//! endpoints; only payment-service calls the reservation endpoints, always keyed by the order id.
//!
//! | route | answers |
//! |---|---|
//! | `PUT /api/v1/items/{sku}` | 200 `Item` (sets `available`, `unit_price`, `currency`) |
//! | `GET /api/v1/items/{sku}` | 200 `Item`, 404 |
//! | `POST /api/v1/reservations` | 201 new (priced; `COMMITTED` at once with `"commit": true`), 200 repeat, 409 `out-of-stock` / `price-changed` / `reservation-conflict` |
//! | `GET /api/v1/reservations/{order_id}` | 200 `Reservation`, 404 |
//! | `POST /api/v1/reservations/{order_id}/commit` | 200, 404, 409 `reservation-released` |
//! | `POST /api/v1/reservations/{order_id}/release` | 200 (`RELEASED`, or `RETURNED` when it was committed), 404 |
//!
//! Each route is documented by its `#[utoipa::path]` (see `platform::openapi` for what every
//! route shares).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use commerce::contracts::inventory::{
    CreateReservation, Item, OUT_OF_STOCK, PRICE_CHANGED, RESERVATION_COMMITTED,
    RESERVATION_CONFLICT, RESERVATION_RELEASED, Reservation, SetItem,
};
use platform::{Json, Path, Problem, db::Database};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::{self, RecordState, Refusal, Repeat, ReservationAction},
    store::{self, Applied, Record, Reserved},
};

const RESERVATIONS_TOTAL: &str = "inventory_reservations_total";
/// Commits and releases, by action and outcome (the metric's name predates the wording).
const ACTIONS_TOTAL: &str = "inventory_settlements_total";
const STOCK_SETS_TOTAL: &str = "inventory_stock_updates_total";

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
}

/// The routes with their documentation, before the state is given.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_item, set_item))
        .routes(routes!(create_reservation))
        .routes(routes!(get_reservation))
        .routes(routes!(commit))
        .routes(routes!(release))
}

pub fn router(app: AppState) -> OpenApiRouter {
    api().with_state(app)
}

/// 400, like every other malformed path parameter (see `platform::Path`).
fn invalid_path(reason: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-path-parameter",
        "Invalid path parameter",
    )
    .detail(reason)
}

/// Documents the `{sku}` path parameter with the SKU rule [`domain::parse_sku`] checks.
struct SkuPath;

impl utoipa::IntoParams for SkuPath {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![platform::openapi::required_parameter(
            "sku",
            utoipa::openapi::path::ParameterIn::Path,
            format!("The SKU: `{}`", commerce::schemas::sku_pattern()),
            commerce::schemas::sku(),
        )]
    }
}

/// Sets one SKU's stock on hand and catalog price (operators and seeding; no service calls it).
///
/// Units held by reservations or sold are kept apart and unchanged.
#[utoipa::path(
    put,
    path = "/api/v1/items/{sku}",
    tag = "items",
    params(SkuPath),
    request_body = SetItem,
    responses((status = 200, description = "The item as set", body = Item,
        links(("GetItem" = (operation_id = "get_item", parameters(("path.sku" = "$response.body#/sku"))))))),
)]
async fn set_item(
    State(app): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<SetItem>,
) -> Result<axum::Json<Item>, Problem> {
    let sku = domain::parse_sku(&sku).map_err(invalid_path)?;
    let update = domain::parse_item(&body).map_err(Problem::invalid_fields)?;
    let item = store::set_item(&app.db, sku.as_str(), &update).await?;
    metrics::counter!(STOCK_SETS_TOTAL).increment(1);
    tracing::info!(sku = %sku, available = update.available, unit_price = update.unit_price.get(), currency = %update.currency, "item set");
    Ok(axum::Json(item))
}

/// One SKU's stock and catalog price.
#[utoipa::path(
    get,
    path = "/api/v1/items/{sku}",
    tag = "items",
    params(SkuPath),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 404, description = "No such SKU"),
    ),
)]
async fn get_item(
    State(app): State<AppState>,
    Path(sku): Path<String>,
) -> Result<axum::Json<Item>, Problem> {
    let sku = domain::parse_sku(&sku).map_err(invalid_path)?;
    store::item(&app.db, sku.as_str())
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no item with SKU `{sku}`")))
}

/// Reserves an order's stock, all lines or none, priced from the catalog; once per `order_id`.
///
/// 201 when this call reserved the stock; 200 with the stored reservation on a repeat. A refusal
/// is kept for the order: repeating it is refused the same way, even after a restock.
#[utoipa::path(
    post,
    path = "/api/v1/reservations",
    tag = "reservations",
    request_body = CreateReservation,
    responses(
        (status = 201, description = "Reserved now, priced: `RESERVED`, or `COMMITTED` when the request commits", body = Reservation,
            links(
                ("GetReservation" = (operation_id = "get_reservation", parameters(("path.order_id" = "$response.body#/order_id")))),
                ("Commit" = (operation_id = "commit", parameters(("path.order_id" = "$response.body#/order_id")))),
                ("Release" = (operation_id = "release", parameters(("path.order_id" = "$response.body#/order_id")))),
            )),
        (status = 200, description = "The order's stored reservation (a repeat; one that commits commits a held reservation first)", body = Reservation,
            links(
                ("GetReservation" = (operation_id = "get_reservation", parameters(("path.order_id" = "$response.body#/order_id")))),
                ("Commit" = (operation_id = "commit", parameters(("path.order_id" = "$response.body#/order_id")))),
                ("Release" = (operation_id = "release", parameters(("path.order_id" = "$response.body#/order_id")))),
            )),
        (status = 404, description = "A repeat of a request whose reservation holds no stock"),
        (status = 409, description = "Refused, nothing reserved: stock short or SKU unknown, a price or currency that is not the catalog's (`sku` names the line), or the order's reservation has other terms",
            body = Problem, content_type = "application/problem+json",
            examples(
                ("out-of-stock" = (summary = "Out of stock", value = json!({
                    "type": "https://ordermesh.dev/problems/out-of-stock",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "not enough stock of `SKU-001` for this order",
                    "sku": "SKU-001"
                }))),
                ("price-changed" = (summary = "Price changed", value = json!({
                    "type": "https://ordermesh.dev/problems/price-changed",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "`SKU-001` is not sold at the expected price and currency",
                    "sku": "SKU-001"
                }))),
                ("reservation-conflict" = (summary = "Other terms", value = json!({
                    "type": "https://ordermesh.dev/problems/reservation-conflict",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "a reservation with different items, prices or currency exists for this order",
                    "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f"
                }))),
            )),
    ),
)]
async fn create_reservation(
    State(app): State<AppState>,
    Json(body): Json<CreateReservation>,
) -> Result<Response, Problem> {
    let request = domain::parse_reservation(body).map_err(Problem::invalid_fields)?;
    platform::context::record_order_id(&request.order_id);
    match store::reserve(&app.db, &request).await? {
        Reserved::Created(record) => {
            count_reservation("reserved");
            tracing::info!("stock reserved");
            Ok(reservation_response(StatusCode::CREATED, &record))
        }
        Reserved::Rejected { sku, refusal } => {
            count_reservation(refusal.into());
            tracing::info!(%sku, reason = %refusal, "reservation refused");
            Err(refused_reservation(&sku, refusal))
        }
        Reserved::Existing(record) => answer_repeat(&app, &request, &record).await,
    }
}

async fn answer_repeat(
    app: &AppState,
    request: &domain::ReservationRequest,
    record: &Record,
) -> Result<Response, Problem> {
    let repeat = domain::judge_repeat(
        &record.items,
        &record.currency,
        record.state,
        record.refused(),
        request,
    );
    Ok(match repeat {
        Repeat::Replay => {
            count_reservation("replayed");
            reservation_response(StatusCode::OK, record)
        }
        Repeat::Commit => {
            count_reservation("replayed");
            commit_held(app, request.order_id).await?
        }
        Repeat::Refused { sku, refusal } => {
            count_reservation(refusal.into());
            refused_reservation(&sku, refusal).into_response()
        }
        Repeat::Conflict => {
            count_reservation("conflict");
            Problem::conflict(
                RESERVATION_CONFLICT,
                "a reservation with different items, prices or currency exists for this order",
            )
            .with("order_id", request.order_id)
            .into_response()
        }
    })
}

/// A repeat that commits found the reservation held: commit it and answer with it (200). When it
/// was released in between, the released reservation is the answer, as for any replay.
async fn commit_held(app: &AppState, order_id: Uuid) -> Result<Response, Problem> {
    let outcome = apply(app, order_id, ReservationAction::Commit).await?;
    let record = match outcome {
        Applied::Done(record, _) => Some(record),
        Applied::Refused(_) | Applied::Missing => store::reservation(&app.db, order_id).await?,
    };
    Ok(match record {
        Some(record) => reservation_response(StatusCode::OK, &record),
        None => no_reservation(order_id).into_response(),
    })
}

fn count_reservation(outcome: &'static str) {
    metrics::counter!(RESERVATIONS_TOTAL, "outcome" => outcome).increment(1);
}

/// 409 naming the first line that stopped the reservation.
fn refused_reservation(sku: &str, refusal: Refusal) -> Problem {
    match refusal {
        Refusal::OutOfStock => Problem::conflict(
            OUT_OF_STOCK,
            format!("not enough stock of `{sku}` for this order"),
        ),
        Refusal::PriceChanged => Problem::conflict(
            PRICE_CHANGED,
            format!("`{sku}` is not sold at the expected price and currency"),
        ),
    }
    .with("sku", sku)
}

/// The reservation with `status`, or 404 for a rejected request (which holds no stock).
fn reservation_response(status: StatusCode, record: &Record) -> Response {
    match record.to_reservation() {
        Some(reservation) => (status, axum::Json(reservation)).into_response(),
        None => no_reservation(record.order_id).into_response(),
    }
}

fn no_reservation(order_id: Uuid) -> Problem {
    Problem::not_found(format!("no reservation holds stock for order {order_id}"))
}

/// The order's reservation, while it holds or held stock.
#[utoipa::path(
    get,
    path = "/api/v1/reservations/{order_id}",
    tag = "reservations",
    params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        (status = 404, description = "No reservation holds stock for the order"),
    ),
)]
async fn get_reservation(
    State(app): State<AppState>,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<Reservation>, Problem> {
    platform::context::record_order_id(&order_id);
    store::reservation(&app.db, order_id)
        .await?
        .and_then(|record| record.to_reservation())
        .map(axum::Json)
        .ok_or_else(|| no_reservation(order_id))
}

/// Commits the order's reservation: its stock is sold. Repeating it is safe.
#[utoipa::path(
    post,
    path = "/api/v1/reservations/{order_id}/commit",
    tag = "reservations",
    params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    responses(
        (status = 200, description = "The reservation, `COMMITTED`", body = Reservation,
            links(("Release" = (operation_id = "release", parameters(("path.order_id" = "$response.body#/order_id")))))),
        (status = 404, description = "No reservation holds stock for the order"),
        (status = 409, description = "The reservation was released: nothing is held to sell",
            body = Problem, content_type = "application/problem+json",
            examples(("reservation-released" = (summary = "Released", value = json!({
                "type": "https://ordermesh.dev/problems/reservation-released",
                "title": "Conflict",
                "status": 409,
                "detail": "the reservation was released or returned: its stock is back on sale and cannot be committed"
            }))))),
    ),
)]
async fn commit(
    State(app): State<AppState>,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<Reservation>, Problem> {
    commit_or_release(&app, order_id, ReservationAction::Commit).await
}

/// Releases the order's reservation: its stock is back on sale (`RELEASED`, or `RETURNED` when it
/// had been committed). Repeating it is safe.
#[utoipa::path(
    post,
    path = "/api/v1/reservations/{order_id}/release",
    tag = "reservations",
    params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    responses(
        (status = 200, description = "The reservation, `RELEASED` or `RETURNED`", body = Reservation,
            links(("GetReservation" = (operation_id = "get_reservation", parameters(("path.order_id" = "$response.body#/order_id")))))),
        (status = 404, description = "No reservation holds stock for the order"),
    ),
)]
async fn release(
    State(app): State<AppState>,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<Reservation>, Problem> {
    commit_or_release(&app, order_id, ReservationAction::Release).await
}

/// 200 with the reservation in the target state (moved now or before); 409 when it went the
/// other way; 404 when no reservation holds stock for the order.
async fn commit_or_release(
    app: &AppState,
    order_id: Uuid,
    action: ReservationAction,
) -> Result<axum::Json<Reservation>, Problem> {
    platform::context::record_order_id(&order_id);
    match apply(app, order_id, action).await? {
        Applied::Done(record, _) => record
            .to_reservation()
            .map(axum::Json)
            .ok_or_else(|| no_reservation(order_id)),
        Applied::Refused(state) => Err(refused(state)),
        Applied::Missing => Err(no_reservation(order_id)),
    }
}

/// Commits or releases the order's reservation, counted and logged.
async fn apply(
    app: &AppState,
    order_id: Uuid,
    action: ReservationAction,
) -> Result<Applied, Problem> {
    let outcome = store::commit_or_release(&app.db, order_id, action).await?;
    let label = match &outcome {
        Applied::Done(_, true) => "applied",
        Applied::Done(_, false) => "unchanged",
        Applied::Refused(_) => "refused",
        Applied::Missing => "missing",
    };
    let action_label: &'static str = action.into();
    metrics::counter!(ACTIONS_TOTAL, "action" => action_label, "outcome" => label).increment(1);
    if let Applied::Done(_, true) = outcome {
        tracing::info!(%action, "reservation committed or released");
    }
    Ok(outcome)
}

fn refused(state: RecordState) -> Problem {
    match state {
        RecordState::Committed => Problem::conflict(
            RESERVATION_COMMITTED,
            "the reservation is committed: its stock is sold",
        ),
        _ => Problem::conflict(
            RESERVATION_RELEASED,
            "the reservation was released or returned: its stock is back on sale and cannot be committed",
        ),
    }
}
