//! Order rules, with no I/O: what a valid order request is (prices are only the client's
//! expectation), the request hash that makes idempotency keys safe, which outcome a
//! payment's answer gives an order (at the catalog prices it was charged), and when an order may
//! be cancelled.

use commerce::{
    contracts::{
        LineItem, parse_line_items,
        payment::{FailureReason, Payment, PaymentMethod, PaymentStatus},
    },
    schemas,
    values::{Amount, Currency, FieldError, ValidLineItem, check_text, expected_total},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest `customer_id`, in characters.
pub const MAX_CUSTOMER_ID_CHARS: usize = 64;

/// `POST /api/v1/orders` as the client sends it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "customer_id": "c-1",
    "currency": "EUR",
    "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": 1999}],
    "payment_method": "card"
}))]
pub struct CreateOrderRequest {
    /// 1 to 64 characters, not only white space (stored trimmed), no control characters.
    #[schema(schema_with = customer_id_schema)]
    pub customer_id: String,
    /// An ISO 4217 code this platform settles in, e.g. `EUR`.
    #[schema(schema_with = schemas::currency)]
    pub currency: String,
    #[schema(schema_with = order_items_schema)]
    pub items: Vec<LineItem>,
    /// Defaults to `card`; `card_declined` is the test method payment-service always declines.
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
}

/// `customer_id`'s schema: the text rule [`NewOrder::parse`] checks.
fn customer_id_schema() -> utoipa::openapi::schema::Object {
    schemas::required_text(MAX_CUSTOMER_ID_CHARS).build()
}

/// `items`' schema: the lines, and not every one of them expecting the price 0 (the expected total
/// [`NewOrder::parse`] refuses).
fn order_items_schema() -> utoipa::openapi::schema::Array {
    use utoipa::PartialSchema;
    schemas::lines(LineItem::schema())
        .description(Some(format!(
            "1 to {} lines, each SKU at most once. When every line expects a price, not all of \
             them are 0 and Σ unit_price × quantity is at most {} minor units.",
            commerce::values::MAX_LINE_ITEMS,
            commerce::values::MAX_AMOUNT
        )))
        .extensions(Some(schemas::not_every_price_zero()))
        .build()
}

/// One line of an order as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    #[schema(schema_with = schemas::sku)]
    pub sku: String,
    #[schema(schema_with = schemas::quantity)]
    pub quantity: i64,
    /// What the client expected to pay per unit, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub expected_unit_price: Option<i64>,
    /// The catalog price charged per unit; `null` until the payment is captured.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub unit_price: Option<i64>,
}

/// An order request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: String,
    pub currency: Currency,
    pub lines: Vec<ValidLineItem>,
    pub payment_method: PaymentMethod,
}

impl NewOrder {
    /// Validates a request, reporting every invalid field at once.
    pub fn parse(request: &CreateOrderRequest) -> Result<NewOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        // Checked before trimming: `trim` would silently drop some control characters (NEL).
        let customer_id = request.customer_id.trim();
        let customer_check =
            check_text(&request.customer_id, MAX_CUSTOMER_ID_CHARS).and_then(|()| {
                if customer_id.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(())
                }
            });
        if let Err(message) = customer_check {
            errors.push(FieldError::new("customer_id", message));
        }
        let currency = Currency::parse(&request.currency)
            .map_err(|e| errors.push(FieldError::new("currency", e)))
            .ok();
        let lines = parse_line_items(&request.items)
            .map_err(|e| errors.extend(e))
            .ok();
        if let Some(lines) = &lines {
            match expected_total(lines) {
                Ok(Some(total)) if total.get() == 0 => errors.push(FieldError::new(
                    "items",
                    "the expected order total must be greater than 0",
                )),
                Ok(_) => {}
                Err(message) => errors.push(FieldError::new("items", message)),
            }
        }
        match (currency, lines) {
            (Some(currency), Some(lines)) if errors.is_empty() => Ok(NewOrder {
                customer_id: customer_id.to_owned(),
                currency,
                lines,
                payment_method: request.payment_method.unwrap_or(PaymentMethod::Card),
            }),
            _ => Err(errors),
        }
    }

    /// The lines as stored before anything is charged.
    pub fn stored_lines(&self) -> Vec<OrderLine> {
        self.lines
            .iter()
            .map(|line| OrderLine {
                sku: line.sku.to_string(),
                quantity: line.quantity.get(),
                expected_unit_price: line.expected_unit_price.map(Amount::get),
                unit_price: None,
            })
            .collect()
    }

    /// The request hash: SHA-256 of the validated order; the same key with the same hash is a replay,
    /// with another it is a conflict.
    pub fn request_hash(&self) -> String {
        let canonical = serde_json::json!({
            "customer_id": self.customer_id,
            "currency": self.currency.code(),
            "lines": self.stored_lines(),
            "payment_method": self.payment_method,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the order asks payment-service to charge: its lines with the client's expected prices,
/// and their total when every line has one. The price charged is the catalog's.
pub fn payment_lines(lines: &[OrderLine]) -> (Vec<LineItem>, Option<i64>) {
    let items: Vec<LineItem> = lines
        .iter()
        .map(|line| LineItem {
            sku: line.sku.clone(),
            quantity: line.quantity,
            expected_unit_price: line.expected_unit_price,
        })
        .collect();
    let amount = lines.iter().try_fold(0i64, |total, line| {
        line.expected_unit_price?
            .checked_mul(line.quantity)
            .and_then(|line_total| total.checked_add(line_total))
    });
    (items, amount)
}

commerce::spelled_enum! {
    "SCREAMING_SNAKE_CASE",
    /// Where an order stands.
    pub enum OrderStatus {
        Pending,
        Confirmed,
        Failed,
        /// Cancel requested: the refund (money and stock back) is under way.
        Cancelling,
        Cancelled,
    }
}

commerce::spelled_enum! {
    "snake_case",
    /// Why an order failed.
    pub enum FailureCause {
        PaymentDeclined,
        OutOfStock,
        PriceChanged,
    }
}

/// The end state a payment's answer puts an order in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Paid: the payment's id, the total charged and the lines at the prices charged.
    Confirmed {
        payment_id: uuid::Uuid,
        total: i64,
        lines: Vec<OrderLine>,
    },
    Failed(FailureCause),
    /// The payment is not final yet (or not in a state an open order can end on): the order
    /// stays `PENDING` and is driven again later.
    Undecided,
}

/// The outcome `payment` gives an order with `lines`. `Err` when a captured payment charged other
/// lines than the order's, or at other prices than it expected: payment-service broke the
/// contract, and the order must not be confirmed on it.
pub fn payment_outcome(lines: &[OrderLine], payment: &Payment) -> Result<PaymentOutcome, String> {
    Ok(match (payment.status, payment.failure_reason) {
        (PaymentStatus::Captured, _) => {
            let total = payment
                .amount
                .ok_or("a captured payment without an amount")?;
            let same_lines = payment.items.len() == lines.len()
                && payment.items.iter().all(|charged| {
                    lines.iter().any(|line| {
                        line.sku == charged.sku
                            && line.quantity == charged.quantity
                            && line
                                .expected_unit_price
                                .is_none_or(|p| p == charged.unit_price)
                    })
                });
            let sum = payment.items.iter().try_fold(0i64, |sum, l| {
                l.unit_price
                    .checked_mul(l.quantity)
                    .and_then(|t| sum.checked_add(t))
            });
            if !same_lines || sum != Some(total) {
                return Err("the captured payment does not match the order's lines".into());
            }
            PaymentOutcome::Confirmed {
                payment_id: payment.id,
                total,
                lines: lines
                    .iter()
                    .map(|line| OrderLine {
                        unit_price: payment
                            .items
                            .iter()
                            .find(|charged| charged.sku == line.sku)
                            .map(|charged| charged.unit_price),
                        ..line.clone()
                    })
                    .collect(),
            }
        }
        (PaymentStatus::Declined, _) | (PaymentStatus::Voided, Some(FailureReason::Declined)) => {
            PaymentOutcome::Failed(FailureCause::PaymentDeclined)
        }
        (PaymentStatus::Voided, Some(FailureReason::PriceChanged)) => {
            PaymentOutcome::Failed(FailureCause::PriceChanged)
        }
        (PaymentStatus::Voided, _) => PaymentOutcome::Failed(FailureCause::OutOfStock),
        (PaymentStatus::Authorized | PaymentStatus::Refunded, _) => PaymentOutcome::Undecided,
    })
}

/// What `POST /api/v1/orders/{id}/cancel` does to an order in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// `CONFIRMED`: move it to `CANCELLING`, then refund.
    Begin,
    /// `CANCELLING`: an earlier cancel did not finish; refund (again — it is keyed).
    Resume,
    /// `CANCELLED`: answer with it.
    Done,
    /// `PENDING` or `FAILED`: nothing was charged that could be given back.
    Refuse,
}

pub fn cancellation(status: OrderStatus) -> Cancellation {
    match status {
        OrderStatus::Confirmed => Cancellation::Begin,
        OrderStatus::Cancelling => Cancellation::Resume,
        OrderStatus::Cancelled => Cancellation::Done,
        OrderStatus::Pending | OrderStatus::Failed => Cancellation::Refuse,
    }
}

/// The customer-facing text of the notification for an order outcome.
pub fn notification_message(order_id: uuid::Uuid, outcome: &PaymentOutcome) -> String {
    match outcome {
        PaymentOutcome::Confirmed { .. } => format!("Order {order_id} is confirmed."),
        PaymentOutcome::Failed(FailureCause::PaymentDeclined) => {
            format!("Order {order_id} failed: the payment was declined.")
        }
        PaymentOutcome::Failed(FailureCause::OutOfStock) => {
            format!("Order {order_id} failed: an item is out of stock.")
        }
        PaymentOutcome::Failed(FailureCause::PriceChanged) => {
            format!(
                "Order {order_id} failed: a price is not the one expected; nothing was charged."
            )
        }
        PaymentOutcome::Undecided => format!("Order {order_id} is pending."),
    }
}

/// The text of the notification that an order was cancelled.
pub fn cancellation_message(order_id: uuid::Uuid) -> String {
    format!("Order {order_id} is cancelled: the payment was refunded.")
}

/// Longest `Idempotency-Key`, in bytes (characters: it is ASCII).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The bytes an `Idempotency-Key` is made of: visible ASCII, `!` to `~` (what
/// `u8::is_ascii_graphic` answers), as an inclusive range.
const IDEMPOTENCY_KEY_BYTES: (u8, u8) = (b'!', b'~');

/// A valid `Idempotency-Key`: 1–255 visible ASCII characters. The only way to get one is
/// [`IdempotencyKey::parse`], so the routes and the store never see another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &[u8]) -> Result<Self, &'static str> {
        let (first, last) = IDEMPOTENCY_KEY_BYTES;
        let visible = value.iter().all(|b| (first..=last).contains(b));
        if (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&value.len()) && visible {
            Ok(Self(String::from_utf8_lossy(value).into_owned()))
        } else {
            Err("must be 1-255 visible ASCII characters")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Idempotency-Key` header's schema: exactly what [`IdempotencyKey::parse`] accepts.
pub fn idempotency_key_schema() -> utoipa::openapi::schema::Object {
    let (first, last) = IDEMPOTENCY_KEY_BYTES;
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_IDEMPOTENCY_KEY_LEN))
        .pattern(Some(format!("^[{}-{}]+$", first as char, last as char)))
        .examples(["2f1c3b0e-8a5d-4c7e-9b61-0d2e4f6a8b1c"])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(items: Vec<(&str, i64, Option<i64>)>) -> CreateOrderRequest {
        CreateOrderRequest {
            customer_id: "c-1".into(),
            currency: "EUR".into(),
            items: items
                .into_iter()
                .map(|(sku, quantity, expected_unit_price)| LineItem {
                    sku: sku.into(),
                    quantity,
                    expected_unit_price,
                })
                .collect(),
            payment_method: None,
        }
    }

    fn fields(result: Result<NewOrder, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_order_keeps_its_expected_prices_and_charges_nothing_yet() {
        let order = NewOrder::parse(&request(vec![("A", 2, Some(1999)), ("B", 1, None)])).unwrap();
        assert_eq!(order.payment_method, PaymentMethod::Card);
        let lines = order.stored_lines();
        assert_eq!(lines[0].expected_unit_price, Some(1999));
        assert_eq!(lines[1].expected_unit_price, None);
        assert!(lines.iter().all(|l| l.unit_price.is_none()));
        let (items, amount) = payment_lines(&lines);
        assert_eq!(items[0].expected_unit_price, Some(1999));
        assert_eq!(amount, None, "no total unless every line says its price");
        let all =
            NewOrder::parse(&request(vec![("A", 2, Some(1999)), ("B", 1, Some(500))])).unwrap();
        assert_eq!(payment_lines(&all.stored_lines()).1, Some(4498));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut r = request(vec![("A", 0, Some(100)), ("bad sku", 1, Some(-5))]);
        r.currency = "XYZ".into();
        r.customer_id = " ".into();
        assert_eq!(
            fields(NewOrder::parse(&r)),
            [
                "customer_id",
                "currency",
                "items[0].quantity",
                "items[1].sku",
                "items[1].unit_price"
            ]
        );
    }

    #[test]
    fn customer_ids_refuse_control_characters_and_length() {
        for bad in ["a\0b", "a\nb", "\u{1b}x", "c\u{85}", &"c".repeat(65)] {
            let mut r = request(vec![("A", 1, None)]);
            r.customer_id = bad.into();
            assert_eq!(fields(NewOrder::parse(&r)), ["customer_id"], "{bad:?}");
        }
    }

    #[test]
    fn expected_totals_may_not_overflow_or_be_zero() {
        let huge = commerce::values::MAX_AMOUNT;
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 2, Some(huge))]))),
            ["items"]
        );
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 1, Some(i64::MAX))]))),
            ["items[0].unit_price"]
        );
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 1, Some(0))]))),
            ["items"]
        );
        assert_eq!(fields(NewOrder::parse(&request(vec![]))), ["items"]);
    }

    #[test]
    fn request_hashes_tell_bodies_apart() {
        let a = NewOrder::parse(&request(vec![("A", 1, Some(100))])).unwrap();
        let same = NewOrder::parse(&request(vec![("A", 1, Some(100))])).unwrap();
        let other = NewOrder::parse(&request(vec![("A", 2, Some(100))])).unwrap();
        let other_price = NewOrder::parse(&request(vec![("A", 1, Some(99))])).unwrap();
        let no_price = NewOrder::parse(&request(vec![("A", 1, None)])).unwrap();
        assert_eq!(a.request_hash(), same.request_hash());
        assert_ne!(a.request_hash(), other.request_hash());
        assert_ne!(a.request_hash(), other_price.request_hash());
        assert_ne!(a.request_hash(), no_price.request_hash());
    }

    fn payment(
        status: PaymentStatus,
        reason: Option<FailureReason>,
        charged: &[(&str, i64, i64)],
    ) -> Payment {
        let items: Vec<commerce::contracts::PricedLine> = charged
            .iter()
            .map(
                |(sku, quantity, unit_price)| commerce::contracts::PricedLine {
                    sku: sku.to_string(),
                    quantity: *quantity,
                    unit_price: *unit_price,
                },
            )
            .collect();
        Payment {
            id: uuid::Uuid::new_v4(),
            order_id: uuid::Uuid::new_v4(),
            status,
            failure_reason: reason,
            amount: Some(items.iter().map(|l| l.unit_price * l.quantity).sum()),
            currency: "EUR".into(),
            items,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_captured_payment_confirms_at_the_prices_it_charged() {
        let lines = NewOrder::parse(&request(vec![("A", 2, None), ("B", 1, Some(50))]))
            .unwrap()
            .stored_lines();
        let captured = payment(
            PaymentStatus::Captured,
            None,
            &[("A", 2, 700), ("B", 1, 50)],
        );
        match payment_outcome(&lines, &captured) {
            Ok(PaymentOutcome::Confirmed { total, lines, .. }) => {
                assert_eq!(total, 1450);
                assert_eq!(lines[0].unit_price, Some(700));
                assert_eq!(lines[1].unit_price, Some(50));
                assert_eq!(lines[1].expected_unit_price, Some(50));
            }
            other => panic!("{other:?}"),
        }
        for wrong in [
            payment(
                PaymentStatus::Captured,
                None,
                &[("A", 2, 700), ("B", 1, 49)],
            ),
            payment(
                PaymentStatus::Captured,
                None,
                &[("A", 3, 700), ("B", 1, 50)],
            ),
            payment(PaymentStatus::Captured, None, &[("A", 2, 700)]),
        ] {
            assert!(payment_outcome(&lines, &wrong).is_err(), "{wrong:?}");
        }
        let voided = payment(
            PaymentStatus::Voided,
            Some(FailureReason::PriceChanged),
            &[],
        );
        assert_eq!(
            payment_outcome(&lines, &voided),
            Ok(PaymentOutcome::Failed(FailureCause::PriceChanged))
        );
    }

    #[test]
    fn only_confirmed_orders_can_be_cancelled() {
        assert_eq!(cancellation(OrderStatus::Confirmed), Cancellation::Begin);
        assert_eq!(cancellation(OrderStatus::Cancelling), Cancellation::Resume);
        assert_eq!(cancellation(OrderStatus::Cancelled), Cancellation::Done);
        assert_eq!(cancellation(OrderStatus::Pending), Cancellation::Refuse);
        assert_eq!(cancellation(OrderStatus::Failed), Cancellation::Refuse);
        for status in <OrderStatus as strum::VariantArray>::VARIANTS {
            let spelled = serde_json::to_value(status).unwrap_or_default();
            assert_eq!(spelled, status.as_ref(), "serde and strum spell it alike");
            assert_eq!(status.as_ref().parse::<OrderStatus>().ok(), Some(*status));
        }
    }

    #[test]
    fn idempotency_key_bytes_are_the_visible_ascii() {
        for b in 0..=u8::MAX {
            let (first, last) = IDEMPOTENCY_KEY_BYTES;
            assert_eq!((first..=last).contains(&b), b.is_ascii_graphic(), "{b}");
        }
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!(
            IdempotencyKey::parse(b"order-123").map(|k| k.as_str().to_owned()),
            Ok("order-123".to_owned())
        );
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"has space").is_err());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
    }
}
