//! Order rules, with no I/O: what a valid order request is, its total, the request fingerprint
//! that makes idempotency keys safe, and how a payment's answer settles an order.

use commerce::{
    contracts::payment::{FailureReason, Payment, PaymentMethod, PaymentStatus},
    values::{Amount, Currency, StockLine, parse_stock_lines},
};
use platform::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `POST /api/v1/orders` as the client sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<OrderItemRequest>,
    /// Defaults to `card`; `card_declined` is the test method payment-service always declines.
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
    pub sku: String,
    pub quantity: i64,
    /// Price of one unit, in minor units of the order's currency.
    pub unit_price: i64,
}

/// One line of a valid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
}

/// An order request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub total: Amount,
    pub payment_method: PaymentMethod,
}

impl NewOrder {
    /// Validates a request, reporting every invalid field at once.
    pub fn parse(request: &CreateOrderRequest) -> Result<NewOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        let customer_id = request.customer_id.trim();
        if customer_id.is_empty()
            || customer_id.len() > 64
            || customer_id.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                "customer_id",
                "must be 1-64 printable characters",
            ));
        }
        let currency = Currency::parse(&request.currency)
            .map_err(|e| errors.push(FieldError::new("currency", e)))
            .ok();
        let raw: Vec<(String, i64)> = request
            .items
            .iter()
            .map(|item| (item.sku.clone(), item.quantity))
            .collect();
        let stock_lines = parse_stock_lines(&raw)
            .map_err(|e| errors.extend(e.into_iter().map(|(f, m)| FieldError::new(f, m))))
            .ok();
        let prices: Vec<Option<Amount>> = request
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Amount::parse(item.unit_price)
                    .map_err(|e| errors.push(FieldError::new(format!("items[{i}].unit_price"), e)))
                    .ok()
            })
            .collect();
        let (Some(currency), Some(stock_lines)) = (currency, stock_lines) else {
            return Err(errors);
        };
        let Some(prices) = prices.into_iter().collect::<Option<Vec<Amount>>>() else {
            return Err(errors);
        };
        let total = order_total(&stock_lines, &prices);
        match total {
            Some(total) if total.get() > 0 && errors.is_empty() => Ok(NewOrder {
                customer_id: customer_id.to_owned(),
                currency,
                lines: stock_lines
                    .iter()
                    .zip(&prices)
                    .map(|(line, price)| OrderLine {
                        sku: line.sku.to_string(),
                        quantity: line.quantity.get(),
                        unit_price: price.get(),
                    })
                    .collect(),
                total,
                payment_method: request.payment_method.unwrap_or(PaymentMethod::Card),
            }),
            Some(_) if !errors.is_empty() => Err(errors),
            Some(_) => Err(vec![FieldError::new(
                "items",
                "the order total must be greater than 0",
            )]),
            None => {
                errors.push(FieldError::new(
                    "items",
                    format!(
                        "the order total exceeds {} minor units",
                        commerce::values::MAX_AMOUNT
                    ),
                ));
                Err(errors)
            }
        }
    }

    /// A fingerprint of the validated order: the same key with the same fingerprint is a replay,
    /// with another it is a conflict.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!({
            "customer_id": self.customer_id,
            "currency": self.currency.code(),
            "lines": self.lines,
            "payment_method": self.payment_method,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Σ unit price × quantity, or `None` on overflow past the maximum amount.
fn order_total(lines: &[StockLine], prices: &[Amount]) -> Option<Amount> {
    lines
        .iter()
        .zip(prices)
        .try_fold(Amount::parse(0).ok()?, |total, (line, price)| {
            total.plus(price.times(line.quantity)?)
        })
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// Why an order failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    PaymentDeclined,
    OutOfStock,
}

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentDeclined => "payment_declined",
            Self::OutOfStock => "out_of_stock",
        }
    }
}

/// The end state a payment's answer puts an order in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Confirmed {
        payment_id: uuid::Uuid,
    },
    Failed(FailureCause),
    /// The payment is not final yet (or not in a state an open order can settle on): the order
    /// stays `PENDING` and is driven again later.
    Undecided,
}

pub fn settlement(payment: &Payment) -> Settlement {
    match (payment.status, payment.failure_reason) {
        (PaymentStatus::Captured, _) => Settlement::Confirmed {
            payment_id: payment.id,
        },
        (PaymentStatus::Declined, _) | (PaymentStatus::Voided, Some(FailureReason::Declined)) => {
            Settlement::Failed(FailureCause::PaymentDeclined)
        }
        (PaymentStatus::Voided, _) => Settlement::Failed(FailureCause::OutOfStock),
        (PaymentStatus::Authorized | PaymentStatus::Refunded, _) => Settlement::Undecided,
    }
}

/// The customer-facing text of the notification for an order outcome.
pub fn notification_message(order_id: uuid::Uuid, outcome: &Settlement) -> String {
    match outcome {
        Settlement::Confirmed { .. } => format!("Order {order_id} is confirmed."),
        Settlement::Failed(FailureCause::PaymentDeclined) => {
            format!("Order {order_id} failed: the payment was declined.")
        }
        Settlement::Failed(FailureCause::OutOfStock) => {
            format!("Order {order_id} failed: an item is out of stock.")
        }
        Settlement::Undecided => format!("Order {order_id} is pending."),
    }
}

/// A valid `Idempotency-Key`: 1–255 visible ASCII characters.
pub fn parse_idempotency_key(value: &[u8]) -> Result<String, &'static str> {
    if (1..=255).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic) {
        Ok(String::from_utf8_lossy(value).into_owned())
    } else {
        Err("must be 1-255 visible ASCII characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(items: Vec<(&str, i64, i64)>) -> CreateOrderRequest {
        CreateOrderRequest {
            customer_id: "c-1".into(),
            currency: "EUR".into(),
            items: items
                .into_iter()
                .map(|(sku, quantity, unit_price)| OrderItemRequest {
                    sku: sku.into(),
                    quantity,
                    unit_price,
                })
                .collect(),
            payment_method: None,
        }
    }

    fn fields(result: Result<NewOrder, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_order_has_its_total() {
        let order = NewOrder::parse(&request(vec![("A", 2, 1999), ("B", 1, 500)])).unwrap();
        assert_eq!(order.total.get(), 4498);
        assert_eq!(order.payment_method, PaymentMethod::Card);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut r = request(vec![("A", 0, 100), ("bad sku", 1, -5)]);
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
    fn totals_may_not_overflow_or_be_zero() {
        let huge = commerce::values::MAX_AMOUNT;
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 2, huge)]))),
            ["items"]
        );
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 1, i64::MAX)]))),
            ["items[0].unit_price"]
        );
        assert_eq!(
            fields(NewOrder::parse(&request(vec![("A", 1, 0)]))),
            ["items"]
        );
        assert_eq!(fields(NewOrder::parse(&request(vec![]))), ["items"]);
    }

    #[test]
    fn fingerprints_tell_bodies_apart() {
        let a = NewOrder::parse(&request(vec![("A", 1, 100)])).unwrap();
        let same = NewOrder::parse(&request(vec![("A", 1, 100)])).unwrap();
        let other = NewOrder::parse(&request(vec![("A", 2, 100)])).unwrap();
        assert_eq!(a.fingerprint(), same.fingerprint());
        assert_ne!(a.fingerprint(), other.fingerprint());
    }

    #[test]
    fn idempotency_keys() {
        assert!(parse_idempotency_key(b"order-123").is_ok());
        assert!(parse_idempotency_key(b"").is_err());
        assert!(parse_idempotency_key(b"has space").is_err());
        assert!(parse_idempotency_key(&[b'k'; 256]).is_err());
    }
}
