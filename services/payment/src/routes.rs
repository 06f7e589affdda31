//! payment-service's HTTP API (called by order-service only).
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/payments` | 201 new, 200 repeat (the stored payment), 409 `payment-conflict`, 422 (an amount that is not the total of the expected prices), 503 + `Retry-After` while inventory-service is down |
//! | `GET /api/v1/payments/{id}` | 200 `Payment`, 404 |
//! | `GET /api/v1/payments?order_id=…` | 200 `PaymentList` (0 or 1 items) |
//! | `POST /api/v1/payments/{id}/refund` | 200 `REFUNDED` (money and stock back), 404, 409 `not-refundable`, 503 + `Retry-After` |
//!
//! Only order-service calls this API (the mesh allows no other caller); it refunds a payment
//! only as the step of cancelling its order. Each route is documented by its `#[utoipa::path]`
//! (see `platform::openapi` for what every route shares).

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use commerce::contracts::payment::{
    CreatePayment, NOT_REFUNDABLE, PAYMENT_CONFLICT, Payment, PaymentList, PaymentStatus,
};
use platform::{Json, Path, Problem, Query, db::Database};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    completion,
    domain::{self, Refund},
    inventory::InventoryClient,
    store::{self, Stored},
};

const PAYMENTS_TOTAL: &str = "payments_total";
const REFUNDS_TOTAL: &str = "payment_refunds_total";

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub inventory: InventoryClient,
}

/// The routes with their documentation, before the state is given.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_payment, list_for_order))
        .routes(routes!(get_payment))
        .routes(routes!(refund))
}

pub fn router(app: AppState) -> OpenApiRouter {
    api().with_state(app)
}

/// Pays for an order and reserves its stock, once per `order_id`.
///
/// 201 when this call created the payment, 200 when it existed (a final payment is replayed; an
/// `AUTHORIZED` one is resumed first). A declined card or stock that cannot be reserved is a
/// payment `DECLINED` or `VOIDED`, not an error. While inventory-service is unreachable the
/// answer is 503 and the payment stays `AUTHORIZED`: the same request repeated completes it.
#[utoipa::path(
    post,
    path = "/api/v1/payments",
    tag = "payments",
    request_body = CreatePayment,
    responses(
        (status = 201, description = "Created: captured, declined or voided", body = Payment,
            headers(("location" = String, description = "The payment's URL")),
            links(
                ("GetPayment" = (operation_id = "get_payment", parameters(("path.id" = "$response.body#/id")))),
                ("Refund" = (operation_id = "refund", parameters(("path.id" = "$response.body#/id")))),
                ("PaymentOfOrder" = (operation_id = "list_for_order", parameters(("query.order_id" = "$response.body#/order_id")))),
            )),
        (status = 200, description = "The order's existing payment (replayed or resumed)", body = Payment,
            links(
                ("GetPayment" = (operation_id = "get_payment", parameters(("path.id" = "$response.body#/id")))),
                ("Refund" = (operation_id = "refund", parameters(("path.id" = "$response.body#/id")))),
                ("PaymentOfOrder" = (operation_id = "list_for_order", parameters(("query.order_id" = "$response.body#/order_id")))),
            )),
        (status = 409, description = "The order already has a payment with other terms",
            body = Problem, content_type = "application/problem+json",
            examples(("payment-conflict" = (summary = "Conflict", value = json!({
                "type": "https://ordermesh.dev/problems/payment-conflict",
                "title": "Conflict",
                "status": 409,
                "detail": "this order already has a payment with different items, expected prices, amount, currency or method",
                "payment_id": "0190f3a2-6c8d-7e2f-9a31-4b5c6d7e8f90"
            }))))),
        (status = 422, description = "Invalid fields, or an `amount` that is not the total of the expected prices",
            body = Problem, content_type = "application/problem+json",
            examples(("validation-failed" = (summary = "Request failed validation", value = json!({
                "type": "https://ordermesh.dev/problems/validation-failed",
                "title": "Request failed validation",
                "status": 422,
                "detail": "amount: must be the total of the items' expected prices (3998)",
                "errors": [{"field": "amount", "message": "must be the total of the items' expected prices (3998)"}]
            }))))),
    ),
)]
async fn create_payment(
    State(app): State<AppState>,
    Json(body): Json<CreatePayment>,
) -> Result<Response, Problem> {
    let request = domain::parse_payment(body).map_err(Problem::invalid_fields)?;
    platform::context::record_order_id(&request.order_id);
    let (stored, created) = store::insert_or_find(&app.db, &request).await?;
    if stored.terms != request.terms() {
        count_payment("conflict");
        return Err(Problem::conflict(
            PAYMENT_CONFLICT,
            "this order already has a payment with different items, expected prices, amount, currency or method",
        )
        .with("payment_id", stored.payment.id));
    }
    let stored = if domain::is_final(stored.payment.status) {
        count_payment(if created {
            domain::outcome_label(stored.payment.status)
        } else {
            "replayed"
        });
        stored
    } else {
        let completed = completion::capture_or_void(&app.db, &app.inventory, &stored)
            .await
            .inspect_err(|e| {
                if e.is_unavailable() {
                    count_payment("unavailable");
                }
            })?;
        count_payment(domain::outcome_label(completed.payment.status));
        tracing::info!(status = %completed.payment.status, "payment completed");
        completed
    };
    Ok(payment_response(created, stored))
}

fn count_payment(outcome: &'static str) {
    metrics::counter!(PAYMENTS_TOTAL, "outcome" => outcome).increment(1);
}

fn payment_response(created: bool, stored: Stored) -> Response {
    if !created {
        return (StatusCode::OK, axum::Json(stored.payment)).into_response();
    }
    let location = format!("/api/v1/payments/{}", stored.payment.id);
    let mut response = (StatusCode::CREATED, axum::Json(stored.payment)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// One payment.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{id}",
    tag = "payments",
    params(("id" = Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 404, description = "No such payment"),
    ),
)]
async fn get_payment(
    State(app): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Payment>, Problem> {
    Ok(axum::Json(find(&app, id).await?.payment))
}

/// The payment `id` (its order recorded on the request's span), or 404.
async fn find(app: &AppState, id: Uuid) -> Result<Stored, Problem> {
    let stored = store::by_id(&app.db, id)
        .await?
        .ok_or_else(|| no_payment(id))?;
    platform::context::record_order_id(&stored.payment.order_id);
    Ok(stored)
}

fn no_payment(id: Uuid) -> Problem {
    Problem::not_found(format!("no payment {id}"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ByOrder {
    /// The order whose payment to find.
    order_id: Uuid,
}

/// The order's payment, as a list of zero or one.
///
/// For operators and tests; order-service finds a payment again by repeating its keyed `POST`.
#[utoipa::path(
    get,
    path = "/api/v1/payments",
    tag = "payments",
    params(ByOrder),
    responses((status = 200, description = "The order's payment, if any", body = PaymentList)),
)]
async fn list_for_order(
    State(app): State<AppState>,
    Query(ByOrder { order_id }): Query<ByOrder>,
) -> Result<axum::Json<PaymentList>, Problem> {
    platform::context::record_order_id(&order_id);
    let items = store::by_order(&app.db, order_id)
        .await?
        .map(|stored| stored.payment)
        .into_iter()
        .collect();
    Ok(axum::Json(PaymentList { items }))
}

/// Pays a captured payment back, stock included.
///
/// The reservation is returned (its stock back on sale), then the payment is `REFUNDED` (see
/// `completion::refund`); repeating it answers the refunded payment again. order-service calls it
/// only to cancel a confirmed order.
#[utoipa::path(
    post,
    path = "/api/v1/payments/{id}/refund",
    tag = "payments",
    params(("id" = Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The payment, `REFUNDED`", body = Payment,
            links(("GetPayment" = (operation_id = "get_payment", parameters(("path.id" = "$response.body#/id")))))),
        (status = 404, description = "No such payment"),
        (status = 409, description = "Only a `CAPTURED` payment can be refunded", body = Problem,
            content_type = "application/problem+json",
            examples(("not-refundable" = (summary = "Conflict", value = json!({
                "type": "https://ordermesh.dev/problems/not-refundable",
                "title": "Conflict",
                "status": 409,
                "detail": "only a CAPTURED payment can be refunded; this one is DECLINED"
            }))))),
    ),
)]
async fn refund(
    State(app): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Payment>, Problem> {
    let stored = find(&app, id).await?;
    let current = match domain::refund(stored.payment.status) {
        Refund::Apply => match completion::refund(&app.db, &app.inventory, &stored).await? {
            Some(refunded) => {
                metrics::counter!(REFUNDS_TOTAL, "outcome" => "refunded").increment(1);
                tracing::info!("payment refunded and stock returned");
                refunded
            }
            // A concurrent refund won the race: answer with what it left.
            None => store::by_id(&app.db, id)
                .await?
                .ok_or_else(|| no_payment(id))?,
        },
        Refund::AlreadyRefunded | Refund::NotRefundable => stored,
    };
    if current.payment.status == PaymentStatus::Refunded {
        return Ok(axum::Json(current.payment));
    }
    metrics::counter!(REFUNDS_TOTAL, "outcome" => "refused").increment(1);
    Err(Problem::conflict(
        NOT_REFUNDABLE,
        format!(
            "only a CAPTURED payment can be refunded; this one is {}",
            current.payment.status
        ),
    ))
}
