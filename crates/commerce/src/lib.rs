//! The order-management domain's shared vocabulary.
//!
//! [`values`] holds the types that parse raw input into values that cannot be invalid (a
//! [`values::Sku`], a [`values::Quantity`], an [`values::Amount`] of minor units in a
//! [`values::Currency`]); every service validates its own input with them. [`contracts`] holds
//! the JSON bodies of the three calls between services (order→payment, payment→inventory,
//! order→notify), so that caller and callee cannot drift apart. No I/O here.

pub mod contracts;
pub mod values;
