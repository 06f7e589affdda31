//! Payment rules, no I/O: what a valid payment request is, when a repeat conflicts, whether a
//! priced reservation is exactly what the payment asked for (and so what it captures), which
//! statuses are final, how a new payment starts, and what a refund may do.
//!
//! `routes` parses every request through here; `completion` asks it what a priced reservation
//! charges and what its status makes of the payment.

use commerce::{
    contracts::{
        LineItem, PricedLine,
        inventory::{Reservation, ReservationStatus},
        parse_line_items,
        payment::{CreatePayment, FailureReason, PaymentMethod, PaymentStatus},
    },
    values::{Amount, Currency, FieldError, ValidLineItem, expected_total},
};
use uuid::Uuid;

/// A validated payment request; its lines are sorted by SKU (the order they are stored and
/// compared in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub order_id: Uuid,
    /// The total the caller expects to pay, if it said (equal to Σ its expected line prices).
    pub requested_amount: Option<Amount>,
    pub currency: Currency,
    pub method: PaymentMethod,
    pub lines: Vec<ValidLineItem>,
}

impl PaymentRequest {
    /// The lines as stored and sent to inventory-service.
    pub fn items(&self) -> Vec<LineItem> {
        self.lines.iter().map(LineItem::from).collect()
    }

    /// The status a new payment starts in: the test method `card_declined` is refused outright;
    /// every other method is authorised, pending the stock and its price.
    pub fn initial_status(&self) -> (PaymentStatus, Option<FailureReason>) {
        match self.method {
            PaymentMethod::CardDeclined => (PaymentStatus::Declined, Some(FailureReason::Declined)),
            PaymentMethod::Card => (PaymentStatus::Authorized, None),
        }
    }
}

/// Checks a payment request. An `amount` must come with every line's expected `unit_price` and
/// be their total: a payment never asks for a sum its own lines do not add up to.
pub fn parse_payment(body: CreatePayment) -> Result<PaymentRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    if body.order_id.is_nil() {
        errors.push(FieldError::new("order_id", "must not be the nil UUID"));
    }
    let amount = body
        .amount
        .map(|amount| {
            Amount::parse(amount).and_then(|amount| {
                if amount.get() > 0 {
                    Ok(amount)
                } else {
                    Err("must be greater than 0".into())
                }
            })
        })
        .transpose()
        .map_err(|message| errors.push(FieldError::new("amount", message)));
    let currency = Currency::parse(&body.currency)
        .map_err(|message| errors.push(FieldError::new("currency", message)));
    let lines = parse_line_items(&body.items).map_err(|line_errors| {
        errors.extend(line_errors);
    });
    if let (Ok(Some(amount)), Ok(lines)) = (&amount, &lines) {
        match expected_total(lines) {
            Ok(Some(total)) if total == *amount => {}
            Ok(Some(total)) => errors.push(FieldError::new(
                "amount",
                format!(
                    "must equal Σ items[].unit_price × quantity ({}), not {}",
                    total.get(),
                    amount.get()
                ),
            )),
            Ok(None) => errors.push(FieldError::new(
                "amount",
                "an amount needs every item's expected unit_price",
            )),
            Err(message) => errors.push(FieldError::new("items", message)),
        }
    }
    match (amount, currency, lines) {
        (Ok(requested_amount), Ok(currency), Ok(mut lines)) if errors.is_empty() => {
            lines.sort_by(|a, b| a.sku.cmp(&b.sku));
            Ok(PaymentRequest {
                order_id: body.order_id,
                requested_amount,
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
    pub requested_amount: Option<i64>,
    pub currency: String,
    pub method: PaymentMethod,
    pub items: Vec<LineItem>,
}

impl PaymentRequest {
    pub fn terms(&self) -> Terms {
        Terms {
            requested_amount: self.requested_amount.map(Amount::get),
            currency: self.currency.code().to_owned(),
            method: self.method,
            items: self.items(),
        }
    }
}

/// The amount and lines to capture from the order's priced reservation — only when it holds
/// exactly the payment's lines in its currency, at the prices (and total) it expected if it
/// said. `Err` says what disagrees: inventory-service broke its contract.
pub fn charge(terms: &Terms, reservation: &Reservation) -> Result<(i64, Vec<PricedLine>), String> {
    if reservation.currency != terms.currency {
        return Err(format!(
            "the reservation is in {}, the payment in {}",
            reservation.currency, terms.currency
        ));
    }
    let same_lines = reservation.items.len() == terms.items.len()
        && reservation
            .items
            .iter()
            .zip(&terms.items)
            .all(|(priced, asked)| {
                priced.sku == asked.sku
                    && priced.quantity == asked.quantity
                    && asked
                        .expected_unit_price
                        .is_none_or(|p| p == priced.unit_price)
            });
    if !same_lines {
        return Err("the reservation's lines are not the payment's".into());
    }
    let total = reservation.items.iter().try_fold(0i64, |total, line| {
        line.unit_price
            .checked_mul(line.quantity)
            .and_then(|line_total| total.checked_add(line_total))
    });
    if total != Some(reservation.amount) || reservation.amount <= 0 {
        return Err("the reservation's amount is not the sum of its lines".into());
    }
    if terms
        .requested_amount
        .is_some_and(|asked| asked != reservation.amount)
    {
        return Err("the reservation's amount is not the one the payment expected".into());
    }
    Ok((reservation.amount, reservation.items.clone()))
}

/// What the order's reservation, asked to commit, makes of an authorised payment: captured when
/// its stock is sold to the order; voided (out of stock) when it was given back before it could
/// be (an operator released it). `Err` for one still held: a reservation asked to commit never
/// is, so inventory-service broke its contract.
pub fn settle(status: ReservationStatus) -> Result<(PaymentStatus, Option<FailureReason>), String> {
    match status {
        ReservationStatus::Committed => Ok((PaymentStatus::Captured, None)),
        ReservationStatus::Released | ReservationStatus::Returned => {
            Ok((PaymentStatus::Voided, Some(FailureReason::OutOfStock)))
        }
        ReservationStatus::Reserved => Err("a reservation asked to commit is still held".into()),
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

/// Only a captured payment is refunded (the money goes back, and so does the stock).
pub fn refund(status: PaymentStatus) -> Refund {
    match status {
        PaymentStatus::Captured => Refund::Apply,
        PaymentStatus::Refunded => Refund::AlreadyRefunded,
        _ => Refund::NotRefundable,
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

    fn body(
        amount: Option<i64>,
        currency: &str,
        items: Vec<(&str, i64, Option<i64>)>,
    ) -> CreatePayment {
        CreatePayment {
            order_id: Uuid::new_v4(),
            amount,
            currency: currency.into(),
            payment_method: PaymentMethod::Card,
            items: items
                .into_iter()
                .map(|(sku, quantity, expected_unit_price)| LineItem {
                    sku: sku.into(),
                    quantity,
                    expected_unit_price,
                })
                .collect(),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_request_is_normalised() {
        let request = parse_payment(body(
            Some(2100),
            "EUR",
            vec![("B", 1, Some(100)), ("A", 2, Some(1000))],
        ))
        .unwrap();
        assert_eq!(request.requested_amount.map(Amount::get), Some(2100));
        assert_eq!(request.currency.code(), "EUR");
        let skus: Vec<String> = request.items().into_iter().map(|i| i.sku).collect();
        assert_eq!(skus, ["A", "B"]);
        let unpriced = parse_payment(body(None, "EUR", vec![("A", 2, None)])).unwrap();
        assert_eq!(unpriced.requested_amount, None);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = parse_payment(body(Some(0), "eur", vec![("A", 0, None)])).unwrap_err();
        assert_eq!(fields(errors), ["amount", "currency", "items[0].quantity"]);
        let errors = parse_payment(body(Some(-5), "XXX", vec![])).unwrap_err();
        assert_eq!(fields(errors), ["amount", "currency", "items"]);
        let too_much = commerce::values::MAX_AMOUNT + 1;
        assert!(parse_payment(body(Some(too_much), "EUR", vec![("A", 1, None)])).is_err());
    }

    #[test]
    fn an_amount_must_be_the_total_of_the_expected_prices() {
        // The hole of issue 9: amount 1 for 1,000 units.
        let errors =
            parse_payment(body(Some(1), "EUR", vec![("SKU-005", 1000, None)])).unwrap_err();
        assert_eq!(fields(errors), ["amount"]);
        let errors =
            parse_payment(body(Some(1), "EUR", vec![("SKU-005", 1000, Some(1))])).unwrap_err();
        assert_eq!(fields(errors), ["amount"]);
        assert!(parse_payment(body(Some(1000), "EUR", vec![("SKU-005", 1000, Some(1))])).is_ok());
    }

    fn reservation(currency: &str, items: Vec<(&str, i64, i64)>, amount: i64) -> Reservation {
        Reservation {
            order_id: Uuid::new_v4(),
            status: commerce::contracts::inventory::ReservationStatus::Reserved,
            currency: currency.into(),
            items: items
                .into_iter()
                .map(|(sku, quantity, unit_price)| PricedLine {
                    sku: sku.into(),
                    quantity,
                    unit_price,
                })
                .collect(),
            amount,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_charge_is_exactly_the_reservations_priced_amount() {
        let terms = parse_payment(body(None, "EUR", vec![("A", 2, None), ("B", 1, Some(50))]))
            .unwrap()
            .terms();
        let good = reservation("EUR", vec![("A", 2, 100), ("B", 1, 50)], 250);
        assert_eq!(charge(&terms, &good).map(|(amount, _)| amount), Ok(250));
        for bad in [
            reservation("USD", vec![("A", 2, 100), ("B", 1, 50)], 250),
            reservation("EUR", vec![("A", 3, 100), ("B", 1, 50)], 350),
            reservation("EUR", vec![("A", 2, 100)], 200),
            reservation("EUR", vec![("A", 2, 100), ("B", 1, 49)], 249),
            reservation("EUR", vec![("A", 2, 100), ("B", 1, 50)], 1),
        ] {
            assert!(charge(&terms, &bad).is_err(), "{bad:?}");
        }
        let expecting = parse_payment(body(
            Some(250),
            "EUR",
            vec![("A", 2, Some(100)), ("B", 1, Some(50))],
        ))
        .unwrap()
        .terms();
        assert!(charge(&expecting, &good).is_ok());
    }

    #[test]
    fn only_a_sold_reservation_captures() {
        assert_eq!(
            settle(ReservationStatus::Committed),
            Ok((PaymentStatus::Captured, None))
        );
        for given_back in [ReservationStatus::Released, ReservationStatus::Returned] {
            assert_eq!(
                settle(given_back),
                Ok((PaymentStatus::Voided, Some(FailureReason::OutOfStock)))
            );
        }
        assert!(settle(ReservationStatus::Reserved).is_err());
    }

    #[test]
    fn the_declining_test_method_starts_declined() {
        let mut request = parse_payment(body(None, "USD", vec![("A", 1, None)])).unwrap();
        assert_eq!(request.initial_status(), (PaymentStatus::Authorized, None));
        request.method = PaymentMethod::CardDeclined;
        assert_eq!(
            request.initial_status(),
            (PaymentStatus::Declined, Some(FailureReason::Declined))
        );
    }

    #[test]
    fn terms_differ_when_anything_asked_for_differs() {
        let terms = |amount, items| parse_payment(body(amount, "USD", items)).unwrap().terms();
        let a = terms(Some(200), vec![("A", 1, Some(100)), ("B", 1, Some(100))]);
        let reordered = terms(Some(200), vec![("B", 1, Some(100)), ("A", 1, Some(100))]);
        assert_eq!(a, reordered);
        let other_amount = terms(Some(300), vec![("A", 1, Some(200)), ("B", 1, Some(100))]);
        assert_ne!(a, other_amount);
        let other_items = terms(Some(300), vec![("A", 2, Some(100)), ("B", 1, Some(100))]);
        assert_ne!(a, other_items);
        let unpriced = terms(None, vec![("A", 1, None), ("B", 1, None)]);
        assert_ne!(a, unpriced);
    }

    #[test]
    fn only_authorized_is_not_final() {
        for &status in <PaymentStatus as strum::VariantArray>::VARIANTS {
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
}
