//! The OpenAPI schemas of the values in [`crate::values`], written from the same constants their
//! parsers check, so that a published document allows exactly what the services accept. A wire
//! type's field names its schema here (`#[schema(schema_with = schemas::quantity)]`) instead of
//! repeating the limits as literals.
//!
//! Integers are JSON Schema integers: `2.0` is the integer 2, and the services accept it as such
//! (see [`crate::json_integer`]).

use serde_json::{Value, json};
use utoipa::openapi::{
    KnownFormat, RefOr,
    extensions::Extensions,
    schema::{ArrayBuilder, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type},
};

use crate::values::{
    CONTROL_CHARACTERS, CURRENCIES, MAX_AMOUNT, MAX_LINE_ITEMS, MAX_QUANTITY, MAX_STOCK, Sku,
    WHITE_SPACE,
};

/// A SKU: `[A-Z0-9][A-Z0-9-]{0,63}`.
pub fn sku() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(sku_pattern()))
        .build()
}

/// The pattern of [`sku`] (also of the `{sku}` path parameter).
pub fn sku_pattern() -> String {
    format!("^[A-Z0-9][A-Z0-9-]{{0,{}}}$", Sku::MAX_LEN - 1)
}

/// Units of one SKU in an order or reservation: 1 to [`MAX_QUANTITY`].
pub fn quantity() -> Object {
    integer(1, MAX_QUANTITY).build()
}

/// Units on hand of one SKU: 0 to [`MAX_STOCK`].
pub fn stock() -> Object {
    integer(0, MAX_STOCK).build()
}

/// The unit price a sender expects (optional): 0 to [`MAX_AMOUNT`] minor units; 0 is a price
/// (a free item), though an order whose every price is 0 is refused.
pub fn expected_unit_price() -> Object {
    let mut schema = nullable_integer(0, MAX_AMOUNT).build();
    schema.description = Some(
        "The price of one unit the sender expects to pay, in minor units of the currency \
         (optional; 0 is a price, but lines that all expect 0 are refused). The catalog's price \
         is charged; when it differs from this one the request fails with `price_changed` and \
         nothing is charged or reserved."
            .into(),
    );
    schema
}

/// A catalog price of one unit: 1 to [`MAX_AMOUNT`] minor units (nothing is given away).
pub fn catalog_unit_price() -> Object {
    integer(1, MAX_AMOUNT).build()
}

/// The total a caller expects to pay (optional): 1 to [`MAX_AMOUNT`] minor units.
pub fn expected_amount() -> Object {
    nullable_integer(1, MAX_AMOUNT).build()
}

/// A currency: one of [`CURRENCIES`].
pub fn currency() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(CURRENCIES.iter().copied()))
        .description(Some(
            "An ISO 4217 code this platform settles in, e.g. `EUR`.",
        ))
        .build()
}

/// The order a request is about: a UUID, never the nil UUID (`00000000-…`), which names no order
/// (the services refuse it with 422).
pub fn order_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some("The order's id: a UUID other than the nil UUID."))
        .extensions(Some(keyword(
            "not",
            json!({ "const": uuid::Uuid::nil().to_string() }),
        )))
        .build()
}

/// The `items` of a request: 1 to [`MAX_LINE_ITEMS`] lines, each of the schema `line` (written
/// inline: a field's `schema_with` does not register the components it refers to).
pub fn lines(line: RefOr<Schema>) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(line)
        .min_items(Some(1))
        .max_items(Some(MAX_LINE_ITEMS))
}

/// The keyword that refuses lines which all expect the price 0 (an order's expected total must
/// be more than 0): `not` every line has a `unit_price` of 0 (`null` is no expectation). Lines
/// number at least one, so "every line" is never vacuous.
pub fn not_every_price_zero() -> Extensions {
    keyword(
        "not",
        json!({
            "items": {
                "required": ["unit_price"],
                "properties": { "unit_price": { "const": 0 } }
            }
        }),
    )
}

/// A JSON Schema keyword utoipa's schema types have no field for (`not`). An extension's entries
/// are written as members of the schema object they belong to (utoipa flattens them), which is
/// where JSON Schema reads a keyword.
fn keyword(name: &str, value: Value) -> Extensions {
    Extensions::from_iter([(name, value)])
}

/// Free text a client sends that must say something: 1 to `max_chars` characters (Unicode code
/// points, as JSON Schema counts them), not only white space, and no control character.
pub fn required_text(max_chars: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(required_text_pattern()))
        .description(Some(format!(
            "1 to {max_chars} characters, not only white space, without control characters \
             ({}).",
            CONTROL_CHARACTERS
                .iter()
                .map(|(first, last)| format!("U+{:04X}–U+{:04X}", *first as u32, *last as u32))
                .collect::<Vec<_>>()
                .join(", ")
        )))
}

/// `^` any non-control characters, one that is neither control nor white space, any non-control
/// characters `$` (ECMA-262, `\uXXXX` escapes).
pub fn required_text_pattern() -> String {
    let controls = class(&CONTROL_CHARACTERS);
    let mut blank = CONTROL_CHARACTERS.to_vec();
    blank.extend(WHITE_SPACE);
    let blank = class(&blank);
    format!("^[^{controls}]*[^{blank}][^{controls}]*$")
}

/// The inside of a character class holding `ranges`.
fn class(ranges: &[(char, char)]) -> String {
    ranges
        .iter()
        .map(|(first, last)| {
            if first == last {
                escape(*first)
            } else {
                format!("{}-{}", escape(*first), escape(*last))
            }
        })
        .collect()
}

fn escape(c: char) -> String {
    format!("\\u{:04X}", c as u32)
}

fn integer(minimum: i64, maximum: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(minimum))
        .maximum(Some(maximum))
}

/// An optional integer field: `null` is read as absent.
fn nullable_integer(minimum: i64, maximum: i64) -> ObjectBuilder {
    integer(minimum, maximum).schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
}
