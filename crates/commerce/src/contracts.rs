//! The JSON bodies exchanged on the three service-to-service edges. Requests reject unknown
//! fields and read their integers as JSON Schema does ([`crate::json_integer`]: `2.0` is 2);
//! responses are what the callee stores and replays. Each derives its OpenAPI schema, with the
//! rules of [`crate::values`] (SKU pattern, currency codes, quantities, amounts, text) written into
//! it by [`crate::schemas`] and an example; a test below keeps the schemas and the constants in
//! step.
//!
//! Every call is keyed by the order id, so repeating it (the mesh retries, and so do the saga and
//! the reconciler) is always safe.

use crate::{json_integer, schemas};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A line item as it travels on the wire (validated by the receiver, into a
/// [`ValidLineItem`](crate::values::ValidLineItem)): a SKU, a quantity, and the unit price the
/// sender expects to pay, if it says — minor units of the request's currency, sent as
/// `unit_price`. The price charged always comes from inventory-service's catalog; an
/// expectation that differs from it stops the order (`price_changed`) instead of charging
/// another price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "SKU-001", "quantity": 2, "unit_price": 1999}))]
pub struct LineItem {
    #[schema(schema_with = schemas::sku)]
    pub sku: String,
    #[serde(deserialize_with = "json_integer::integer")]
    #[schema(schema_with = schemas::quantity)]
    pub quantity: i64,
    #[serde(
        rename = "unit_price",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_integer::optional_integer"
    )]
    #[schema(schema_with = schemas::expected_unit_price)]
    pub expected_unit_price: Option<i64>,
}

/// A line as it was priced from the catalog when its stock was reserved: what is charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "SKU-001", "quantity": 2, "unit_price": 1999}))]
pub struct PricedLine {
    #[schema(schema_with = schemas::sku)]
    pub sku: String,
    #[schema(schema_with = schemas::quantity)]
    pub quantity: i64,
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub unit_price: i64,
}

/// Parses wire lines into valid ones (see [`crate::values::parse_lines`]).
pub fn parse_line_items(
    items: &[LineItem],
) -> Result<Vec<crate::values::ValidLineItem>, Vec<crate::values::FieldError>> {
    let raw: Vec<(String, i64, Option<i64>)> = items
        .iter()
        .map(|item| (item.sku.clone(), item.quantity, item.expected_unit_price))
        .collect();
    crate::values::parse_lines(&raw)
}

impl From<&crate::values::ValidLineItem> for LineItem {
    fn from(line: &crate::values::ValidLineItem) -> Self {
        Self {
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.get(),
            expected_unit_price: line.expected_unit_price.map(crate::values::Amount::get),
        }
    }
}

pub mod order {
    /// The service's name: its workload, ServiceAccount and Service in deploy/.
    pub const SERVICE: &str = "order-service";
}

pub mod payment {
    use super::*;

    /// The service's name: its workload, ServiceAccount and Service in deploy/, and the name its
    /// callers count and trace their calls under.
    pub const SERVICE: &str = "payment-service";

    crate::spelled_enum! {
        "snake_case",
        /// How the customer pays. `card_declined` is the documented test method that the payment
        /// service always declines.
        pub enum PaymentMethod {
            Card,
            CardDeclined,
        }
    }

    /// `POST /api/v1/payments` (order-service → payment-service): pay for an order and reserve
    /// its stock, at the catalog's prices. Idempotent per `order_id`.
    ///
    /// `items[].unit_price` and `amount` are what the caller expects to pay, both optional. When
    /// `amount` is given every line must carry its expected price and `amount` must be their
    /// total (422 otherwise, nothing reserved); an expected price that differs from the catalog
    /// voids the payment with `price_changed` and reserves nothing.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "amount": 3998,
        "currency": "EUR",
        "payment_method": "card",
        "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": 1999}]
    }))]
    pub struct CreatePayment {
        #[schema(schema_with = schemas::order_id)]
        pub order_id: Uuid,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "json_integer::optional_integer"
        )]
        #[schema(schema_with = schemas::expected_amount)]
        pub amount: Option<i64>,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
        pub payment_method: PaymentMethod,
        /// 1 to 50 lines, each SKU at most once; when every line expects a price, Σ unit_price ×
        /// quantity is at most 1000000000000 minor units.
        #[schema(min_items = 1, max_items = 50)]
        pub items: Vec<LineItem>,
    }

    crate::spelled_enum! {
        "SCREAMING_SNAKE_CASE",
        pub enum PaymentStatus {
            /// Authorised, stock not yet settled: an in-between state a retry completes.
            Authorized,
            /// Paid, and the stock is committed.
            Captured,
            /// Authorised, then released because the stock could not be reserved.
            Voided,
            /// Refused by the payment method; nothing was authorised.
            Declined,
            /// Captured, then paid back.
            Refunded,
        }
    }

    crate::spelled_enum! {
        "snake_case",
        /// Why a payment did not go through.
        pub enum FailureReason {
            Declined,
            OutOfStock,
            /// A price the caller expected is not the catalog's (nothing was reserved or charged).
            PriceChanged,
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({
        "id": "0190f3a2-6c8d-7e2f-9a31-4b5c6d7e8f90",
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "status": "CAPTURED",
        "failure_reason": null,
        "amount": 3998,
        "currency": "EUR",
        "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": 1999}],
        "created_at": "2026-12-02T10:15:30.123456Z",
        "updated_at": "2026-12-02T10:15:30.234567Z"
    }))]
    pub struct Payment {
        pub id: Uuid,
        pub order_id: Uuid,
        pub status: PaymentStatus,
        pub failure_reason: Option<FailureReason>,
        /// What is charged: the reservation's priced total, known once the stock is reserved
        /// (`null` for a payment that never got that far).
        #[schema(minimum = 0, maximum = 1000000000000_i64)]
        pub amount: Option<i64>,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
        /// The lines as priced from the catalog (empty until the stock is reserved).
        pub items: Vec<PricedLine>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// Problem type slug (409): the order already has a payment with other terms.
    pub const PAYMENT_CONFLICT: &str = "payment-conflict";
    /// Problem type slug (409): only a `CAPTURED` payment can be refunded.
    pub const NOT_REFUNDABLE: &str = "not-refundable";

    /// `GET /api/v1/payments?order_id=…`: the order's payment, if it has one.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct PaymentList {
        #[schema(max_items = 1)]
        pub items: Vec<Payment>,
    }
}

pub mod inventory {
    use super::*;

    /// The service's name: its workload, ServiceAccount and Service in deploy/, and the name its
    /// callers count and trace their calls under.
    pub const SERVICE: &str = "inventory-service";

    /// `POST /api/v1/reservations` (payment-service → inventory-service): reserve stock for an
    /// order, all lines or none, and price it from the catalog in the same transaction.
    /// Idempotent per `order_id`. A line whose item is priced in another currency, or whose
    /// expected `unit_price` is not the catalog's, refuses the whole reservation (409
    /// [`PRICE_CHANGED`]). With `commit`, the stock is sold in that same transaction: the
    /// reservation is created `COMMITTED`, as if `POST …/commit` had followed (payment-service
    /// captures at once, so it asks for both in one call); a repeat with `commit` commits a
    /// reservation an earlier request left `RESERVED`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "currency": "EUR",
        "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": 1999}],
        "commit": true
    }))]
    pub struct CreateReservation {
        #[schema(schema_with = schemas::order_id)]
        pub order_id: Uuid,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
        /// 1 to 50 lines, each SKU at most once.
        #[schema(min_items = 1, max_items = 50)]
        pub items: Vec<LineItem>,
        /// Sell the stock at once (`COMMITTED`) instead of holding it (`RESERVED`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[schema(default = false)]
        pub commit: bool,
    }

    crate::spelled_enum! {
        "SCREAMING_SNAKE_CASE",
        pub enum ReservationStatus {
            /// Stock taken from `available`, not yet final.
            Reserved,
            /// Final: the stock is sold.
            Committed,
            /// Given back to `available` before it was sold.
            Released,
            /// Sold, then given back to `available` (the order was cancelled).
            Returned,
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "status": "COMMITTED",
        "currency": "EUR",
        "items": [{"sku": "SKU-001", "quantity": 2, "unit_price": 1999}],
        "amount": 3998,
        "created_at": "2026-12-02T10:15:30.123456Z",
        "updated_at": "2026-12-02T10:15:30.234567Z"
    }))]
    pub struct Reservation {
        pub order_id: Uuid,
        pub status: ReservationStatus,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
        /// The lines with the catalog prices of the moment they were reserved.
        pub items: Vec<PricedLine>,
        /// Σ unit_price × quantity: what the order is charged.
        #[schema(minimum = 0, maximum = 1000000000000_i64)]
        pub amount: i64,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// Problem type slug inventory-service answers (409) when stock is short or a SKU unknown;
    /// the problem's `sku` member names the first line that could not be reserved.
    pub const OUT_OF_STOCK: &str = "out-of-stock";
    /// Problem type slug (409) for a line whose expected price or currency is not the
    /// catalog's; the `sku` member names it. Nothing is reserved.
    pub const PRICE_CHANGED: &str = "price-changed";
    /// Problem type slug (409) for a repeated `order_id` with other items or currency.
    pub const RESERVATION_CONFLICT: &str = "reservation-conflict";
    /// Problem type slug (409) for committing a reservation that was released: nothing is held
    /// for the order (payment-service voids the payment on it).
    pub const RESERVATION_RELEASED: &str = "reservation-released";
    /// Problem type slug (409) for a commit or release that the reservation's committed state
    /// refuses.
    pub const RESERVATION_COMMITTED: &str = "reservation-committed";

    /// `PUT /api/v1/items/{sku}` (operators and seeding only; no service calls it): the stock on
    /// hand and the catalog price of one unit.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"available": 100, "unit_price": 1999, "currency": "EUR"}))]
    pub struct SetItem {
        #[serde(deserialize_with = "json_integer::integer")]
        #[schema(schema_with = schemas::stock)]
        pub available: i64,
        #[serde(deserialize_with = "json_integer::integer")]
        #[schema(schema_with = schemas::catalog_unit_price)]
        pub unit_price: i64,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
    }

    /// One SKU's stock (units available, held by reservations, sold) and catalog price.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({
        "sku": "SKU-001", "available": 98, "reserved": 0, "committed": 2,
        "unit_price": 1999, "currency": "EUR"
    }))]
    pub struct Item {
        #[schema(schema_with = schemas::sku)]
        pub sku: String,
        #[schema(minimum = 0)]
        pub available: i64,
        #[schema(minimum = 0)]
        pub reserved: i64,
        #[schema(minimum = 0)]
        pub committed: i64,
        #[schema(minimum = 0, maximum = 1000000000000_i64)]
        pub unit_price: i64,
        #[schema(schema_with = schemas::currency)]
        pub currency: String,
    }
}

pub mod notify {
    use super::*;

    /// The service's name: its workload, ServiceAccount and Service in deploy/, and the name its
    /// callers count and trace their calls under.
    pub const SERVICE: &str = "notify-service";

    crate::spelled_enum! {
        "snake_case",
        pub enum NotificationKind {
            OrderConfirmed,
            OrderFailed,
            OrderCancelled,
        }
    }

    /// Longest notification message, in characters.
    pub const MAX_MESSAGE_CHARS: usize = 1_000;

    /// `POST /api/v1/notifications` (order-service's outbox → notify-service). Idempotent per
    /// `(order_id, kind)`: the first delivery is kept, repeats answer 200 with it. The message
    /// is 1 to [`MAX_MESSAGE_CHARS`] characters without control characters.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "kind": "order_confirmed",
        "message": "Order 0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f is confirmed: 3998 EUR."
    }))]
    pub struct CreateNotification {
        #[schema(schema_with = schemas::order_id)]
        pub order_id: Uuid,
        pub kind: NotificationKind,
        #[schema(schema_with = message_schema)]
        pub message: String,
    }

    /// The message: free text that must say something (see [`crate::schemas::required_text`]).
    fn message_schema() -> utoipa::openapi::schema::Object {
        crate::schemas::required_text(MAX_MESSAGE_CHARS).build()
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({
        "id": "0190f3a2-7d9e-7f30-ab42-5c6d7e8f9012",
        "order_id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
        "kind": "order_confirmed",
        "message": "Order 0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f is confirmed: 3998 EUR.",
        "delivered_at": "2026-12-02T10:15:31.5Z"
    }))]
    pub struct Notification {
        pub id: Uuid,
        pub order_id: Uuid,
        pub kind: NotificationKind,
        pub message: String,
        pub delivered_at: DateTime<Utc>,
    }

    /// `GET /api/v1/notifications?order_id=…`
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct NotificationList {
        pub items: Vec<Notification>,
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use strum::VariantArray;

    use super::{inventory::ReservationStatus, notify::NotificationKind, payment::*};

    /// The wire spelling (serde) and the database and log spelling (strum) are one.
    fn spelled_alike<T>()
    where
        T: VariantArray + Serialize + AsRef<str> + std::str::FromStr + PartialEq + std::fmt::Debug,
    {
        for variant in T::VARIANTS {
            let wire = serde_json::to_value(variant).unwrap_or_default();
            assert_eq!(wire, variant.as_ref(), "{variant:?}");
            assert_eq!(variant.as_ref().parse::<T>().ok().as_ref(), Some(variant));
        }
    }

    fn schema_of<T: utoipa::PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap_or_default()
    }

    fn number(v: &serde_json::Value) -> f64 {
        v.as_f64().unwrap_or(f64::NAN)
    }

    /// `(minimum, maximum)` of an integer property.
    fn bounds(property: &serde_json::Value) -> (f64, f64) {
        (number(&property["minimum"]), number(&property["maximum"]))
    }

    /// The limits written into the schemas are the ones the values enforce: every SKU pattern,
    /// quantity, amount (0 allowed exactly where the parser allows it), currency list and text
    /// rule.
    #[test]
    fn the_schemas_limits_are_the_values_limits() {
        use super::inventory::{CreateReservation, Item, Reservation, SetItem};
        use super::notify::{CreateNotification, MAX_MESSAGE_CHARS};
        use crate::values::{CURRENCIES, MAX_AMOUNT, MAX_LINE_ITEMS, MAX_QUANTITY, MAX_STOCK};
        let amount = MAX_AMOUNT as f64;
        let sku_pattern = "^[A-Z0-9][A-Z0-9-]{0,63}$";
        for line in [
            schema_of::<super::LineItem>(),
            schema_of::<super::PricedLine>(),
        ] {
            let p = &line["properties"];
            assert_eq!(bounds(&p["quantity"]), (1.0, MAX_QUANTITY as f64));
            assert_eq!(bounds(&p["unit_price"]), (0.0, amount));
            assert_eq!(p["sku"]["pattern"], sku_pattern);
        }
        assert_eq!(
            schema_of::<Item>()["properties"]["sku"]["pattern"],
            sku_pattern
        );
        let payment = schema_of::<CreatePayment>();
        assert_eq!(
            number(&payment["properties"]["items"]["maxItems"]),
            MAX_LINE_ITEMS as f64
        );
        assert_eq!(bounds(&payment["properties"]["amount"]), (1.0, amount));
        let item = schema_of::<SetItem>();
        assert_eq!(
            bounds(&item["properties"]["available"]),
            (0.0, MAX_STOCK as f64)
        );
        assert_eq!(bounds(&item["properties"]["unit_price"]), (1.0, amount));
        for schema in [
            payment.clone(),
            schema_of::<Payment>(),
            schema_of::<CreateReservation>(),
            schema_of::<Reservation>(),
            item,
            schema_of::<Item>(),
        ] {
            assert_eq!(
                schema["properties"]["currency"]["enum"],
                serde_json::json!(CURRENCIES)
            );
        }
        let message = &schema_of::<CreateNotification>()["properties"]["message"];
        assert_eq!(number(&message["maxLength"]), MAX_MESSAGE_CHARS as f64);
        assert_eq!(number(&message["minLength"]), 1.0);
        assert_eq!(
            message["pattern"],
            crate::schemas::required_text_pattern().as_str()
        );
    }

    #[test]
    fn every_enum_has_one_spelling() {
        spelled_alike::<PaymentMethod>();
        spelled_alike::<PaymentStatus>();
        spelled_alike::<FailureReason>();
        spelled_alike::<ReservationStatus>();
        spelled_alike::<NotificationKind>();
        assert_eq!(PaymentMethod::CardDeclined.as_ref(), "card_declined");
        assert_eq!(PaymentStatus::Authorized.as_ref(), "AUTHORIZED");
    }
}
