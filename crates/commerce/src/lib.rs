//! The order-management domain's shared vocabulary.
//!
//! [`values`] holds the types that parse raw input into values that cannot be invalid (a
//! [`values::Sku`], a [`values::Quantity`], an [`values::Amount`] of minor units in a
//! [`values::Currency`]); every service validates its own input with them. [`contracts`] holds
//! the JSON bodies of the three calls between services (order→payment, payment→inventory,
//! order→notify), so that caller and callee cannot drift apart. Every wire type also derives its
//! OpenAPI schema (`utoipa::ToSchema`), so the document each service publishes at
//! `/openapi.json` is generated from these same types; [`schemas`] writes the values' limits into
//! those schemas from the constants the parsers check, and [`json_integer`] reads integers as
//! those schemas define them. [`callgraph`] is who may call which operation of which service,
//! compiled in from the file the mesh's tooling reads too. No I/O here.
//!
//! An order line has one name per stage, in every service:
//!
//! | name | what it is |
//! |---|---|
//! | [`contracts::LineItem`] | a line as sent: SKU, quantity, the unit price the sender expects (`expected_unit_price`, `unit_price` on the wire) |
//! | [`values::ValidLineItem`] | a `LineItem` that passed every rule ([`contracts::parse_line_items`]) |
//! | [`contracts::PricedLine`] | a line as charged, at the catalog's unit price |
//! | `OrderLine` (order-service) | a line as the order keeps and shows it: both prices |
//!
//! inventory-service's catalog entry is an [`contracts::inventory::Item`], the resource of
//! `/api/v1/items`; each service's name is the `SERVICE` constant of its contract module.

pub mod callgraph;
pub mod contracts;
pub mod json_integer;
pub mod schemas;
pub mod values;

/// Declares a fieldless enum with one spelling, given as a serde/strum case name
/// (`"snake_case"`, `"SCREAMING_SNAKE_CASE"`): the wire's (serde), and the database's and logs'
/// (strum's `Display`, `FromStr`, `AsRef<str>`, `&'static str`), with every variant listed
/// (`VariantArray`), and the OpenAPI schema (`utoipa::ToSchema`, an enum of the wire spellings;
/// `$case` is a `tt` so that the derives see a plain literal, not a macro fragment).
/// The crate using it depends on `serde`, `strum` and `utoipa`.
#[macro_export]
macro_rules! spelled_enum {
    ($case:tt, $(#[$meta:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::strum::Display,
            ::strum::EnumString,
            ::strum::AsRefStr,
            ::strum::IntoStaticStr,
            ::strum::VariantArray,
            ::utoipa::ToSchema,
        )]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        $vis enum $name { $($body)* }
    };
}
