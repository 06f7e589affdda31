//! Payment rules, no I/O: what a valid payment request is, when a repeat conflicts, which
//! statuses are final, how a new payment starts, and what a refund may do.
//!
//! `routes` parses every request through here; `settlement` and `store` use the status and
//! reason spellings defined here.

use commerce::{
    contracts::{
        LineItem, parse_line_items,
        payment::{CreatePayment, FailureReason, PaymentMethod, PaymentStatus},
    },
    values::{Amount, Currency, StockLine},
};
use platform::FieldError;
use uuid::Uuid;

/// A validated payment request; its lines are sorted by SKU (the order they are stored and
/// compared in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub order_id: Uuid,
    pub amount: Amount,
    pub currency: Currency,
    pub method: PaymentMethod,
    pub lines: Vec<StockLine>,
}

impl PaymentRequest {
    /// The lines as stored and sent to inventory-service.
    pub fn items(&self) -> Vec<LineItem> {
        self.lines.iter().map(LineItem::from).collect()
    }

    /// The status a new payment starts in: the test method `card_declined` is refused outright;
    /// every other method is authorised, pending the stock.
    pub fn initial_status(&self) -> (PaymentStatus, Option<FailureReason>) {
        match self.method {
            PaymentMethod::CardDeclined => (PaymentStatus::Declined, Some(FailureReason::Declined)),
            PaymentMethod::Card => (PaymentStatus::Authorized, None),
        }
    }
}

pub fn parse_payment(body: CreatePayment) -> Result<PaymentRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    if body.order_id.is_nil() {
        errors.push(FieldError::new("order_id", "must not be the nil UUID"));
    }
    let amount = Amount::parse(body.amount)
        .and_then(|amount| {
            if amount.get() > 0 {
                Ok(amount)
            } else {
                Err("must be greater than 0".into())
            }
        })
        .map_err(|message| errors.push(FieldError::new("amount", message)));
    let currency = Currency::parse(&body.currency)
        .map_err(|message| errors.push(FieldError::new("currency", message)));
    let lines = parse_line_items(&body.items).map_err(|line_errors| {
        errors.extend(line_errors.into_iter().map(FieldError::from));
    });
    match (amount, currency, lines) {
        (Ok(amount), Ok(currency), Ok(mut lines)) if errors.is_empty() => {
            lines.sort_by(|a, b| a.sku.cmp(&b.sku));
            Ok(PaymentRequest {
                order_id: body.order_id,
                amount,
                currency,
                method: body.payment_method,
                lines,
            })
        }
        _ => Err(errors),
    }
}

/// What a stored payment was asked for; a repeat must ask for exactly the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub items: Vec<LineItem>,
}

impl PaymentRequest {
    pub fn terms(&self) -> Terms {
        Terms {
            amount: self.amount.get(),
            currency: self.currency.code().to_owned(),
            method: method_str(self.method).to_owned(),
            items: self.items(),
        }
    }
}

/// Every status but `AUTHORIZED` is final: a repeat replays it without calling anyone.
pub fn is_final(status: PaymentStatus) -> bool {
    status != PaymentStatus::Authorized
}

/// What a refund does to a payment in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    Apply,
    AlreadyRefunded,
    NotRefundable,
}

/// Only a captured payment is refunded (the money goes back; the stock stays sold).
pub fn refund(status: PaymentStatus) -> Refund {
    match status {
        PaymentStatus::Captured => Refund::Apply,
        PaymentStatus::Refunded => Refund::AlreadyRefunded,
        _ => Refund::NotRefundable,
    }
}

const STATUSES: [PaymentStatus; 5] = [
    PaymentStatus::Authorized,
    PaymentStatus::Captured,
    PaymentStatus::Voided,
    PaymentStatus::Declined,
    PaymentStatus::Refunded,
];

/// The database (and wire) spelling of a status.
pub fn status_str(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Authorized => "AUTHORIZED",
        PaymentStatus::Captured => "CAPTURED",
        PaymentStatus::Voided => "VOIDED",
        PaymentStatus::Declined => "DECLINED",
        PaymentStatus::Refunded => "REFUNDED",
    }
}

pub fn parse_status(value: &str) -> Option<PaymentStatus> {
    STATUSES.into_iter().find(|s| status_str(*s) == value)
}

pub fn reason_str(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::Declined => "declined",
        FailureReason::OutOfStock => "out_of_stock",
    }
}

pub fn parse_reason(value: &str) -> Option<FailureReason> {
    [FailureReason::Declined, FailureReason::OutOfStock]
        .into_iter()
        .find(|r| reason_str(*r) == value)
}

pub fn method_str(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card => "card",
        PaymentMethod::CardDeclined => "card_declined",
    }
}

/// The bounded `outcome` label of `payments_total` for a payment answered in `status`.
pub fn outcome_label(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Captured => "captured",
        PaymentStatus::Voided => "voided",
        PaymentStatus::Declined => "declined",
        PaymentStatus::Refunded => "refunded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(amount: i64, currency: &str, items: Vec<(&str, i64)>) -> CreatePayment {
        CreatePayment {
            order_id: Uuid::new_v4(),
            amount,
            currency: currency.into(),
            payment_method: PaymentMethod::Card,
            items: items
                .into_iter()
                .map(|(sku, quantity)| LineItem {
                    sku: sku.into(),
                    quantity,
                })
                .collect(),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_request_is_normalised() {
        let request = parse_payment(body(1999, "EUR", vec![("B", 1), ("A", 2)])).unwrap();
        assert_eq!(request.amount.get(), 1999);
        assert_eq!(request.currency.code(), "EUR");
        let skus: Vec<String> = request.items().into_iter().map(|i| i.sku).collect();
        assert_eq!(skus, ["A", "B"]);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = parse_payment(body(0, "eur", vec![("A", 0)])).unwrap_err();
        assert_eq!(fields(errors), ["amount", "currency", "items[0].quantity"]);
        let errors = parse_payment(body(-5, "XXX", vec![])).unwrap_err();
        assert_eq!(fields(errors), ["amount", "currency", "items"]);
        let too_much = commerce::values::MAX_AMOUNT + 1;
        assert!(parse_payment(body(too_much, "EUR", vec![("A", 1)])).is_err());
    }

    #[test]
    fn the_declining_test_method_starts_declined() {
        let mut request = parse_payment(body(100, "USD", vec![("A", 1)])).unwrap();
        assert_eq!(request.initial_status(), (PaymentStatus::Authorized, None));
        request.method = PaymentMethod::CardDeclined;
        assert_eq!(
            request.initial_status(),
            (PaymentStatus::Declined, Some(FailureReason::Declined))
        );
    }

    #[test]
    fn terms_differ_when_anything_asked_for_differs() {
        let a = parse_payment(body(100, "USD", vec![("A", 1), ("B", 1)])).unwrap();
        let reordered = parse_payment(body(100, "USD", vec![("B", 1), ("A", 1)])).unwrap();
        assert_eq!(a.terms(), reordered.terms());
        let other_amount = parse_payment(body(101, "USD", vec![("A", 1), ("B", 1)])).unwrap();
        assert_ne!(a.terms(), other_amount.terms());
        let other_items = parse_payment(body(100, "USD", vec![("A", 2), ("B", 1)])).unwrap();
        assert_ne!(a.terms(), other_items.terms());
    }

    #[test]
    fn only_authorized_is_not_final() {
        for status in STATUSES {
            assert_eq!(is_final(status), status != PaymentStatus::Authorized);
        }
    }

    #[test]
    fn only_captured_payments_are_refunded() {
        assert_eq!(refund(PaymentStatus::Captured), Refund::Apply);
        assert_eq!(refund(PaymentStatus::Refunded), Refund::AlreadyRefunded);
        for status in [
            PaymentStatus::Authorized,
            PaymentStatus::Voided,
            PaymentStatus::Declined,
        ] {
            assert_eq!(refund(status), Refund::NotRefundable);
        }
    }

    #[test]
    fn spellings_round_trip() {
        for status in STATUSES {
            assert_eq!(parse_status(status_str(status)), Some(status));
            let wire = serde_json::to_value(status).unwrap();
            assert_eq!(
                wire,
                status_str(status),
                "database and wire spellings agree"
            );
        }
        for reason in [FailureReason::Declined, FailureReason::OutOfStock] {
            assert_eq!(parse_reason(reason_str(reason)), Some(reason));
            assert_eq!(serde_json::to_value(reason).unwrap(), reason_str(reason));
        }
        for method in [PaymentMethod::Card, PaymentMethod::CardDeclined] {
            assert_eq!(serde_json::to_value(method).unwrap(), method_str(method));
        }
    }
}
