//! The order-management domain's shared vocabulary.
//!
//! [`values`] holds the types that parse raw input into values that cannot be invalid (a
//! [`values::Sku`], a [`values::Quantity`], an [`values::Amount`] of minor units in a
//! [`values::Currency`]); every service validates its own input with them. [`contracts`] holds
//! the JSON bodies of the three calls between services (order→payment, payment→inventory,
//! order→notify), so that caller and callee cannot drift apart. No I/O here.

pub mod contracts;
pub mod values;

/// Declares a fieldless enum with one spelling, given as a serde/strum case name
/// (`"snake_case"`, `"SCREAMING_SNAKE_CASE"`): the wire's (serde), and the database's and logs'
/// (strum's `Display`, `FromStr`, `AsRef<str>`, `&'static str`), with every variant listed
/// (`VariantArray`). The crate using it depends on `serde` and `strum`.
#[macro_export]
macro_rules! spelled_enum {
    ($case:literal, $(#[$meta:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
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
        )]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        $vis enum $name { $($body)* }
    };
}
