//! The schemas `commerce::schemas` publishes, validated by the same JSON Schema implementation
//! the contract tests use, against the parsers they describe: for every character, every
//! three-letter code, the integer spellings, order ids and lines' expected prices, the schema
//! allows a value exactly when the service's rule accepts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use commerce::{
    schemas,
    values::{Currency, check_text},
};
use serde_json::{Value, json};

fn validator(schema: utoipa::openapi::schema::Object) -> jsonschema::Validator {
    let mut schema = serde_json::to_value(schema).unwrap();
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap()
}

/// What the services check on a required text field: `check_text`, then not blank once trimmed.
fn text_accepted(value: &str, max_chars: usize) -> bool {
    check_text(value, max_chars).is_ok() && !value.trim().is_empty()
}

#[test]
fn the_text_pattern_refuses_exactly_the_characters_the_services_refuse() {
    let text = validator(schemas::required_text(64).build());
    let mut refused = 0;
    for c in (0..=0x10_ffff).filter_map(char::from_u32) {
        for value in [c.to_string(), format!("a{c}"), format!("{c}b")] {
            assert_eq!(
                text.is_valid(&json!(value)),
                text_accepted(&value, 64),
                "{value:?}"
            );
        }
        refused += usize::from(!text.is_valid(&json!(c.to_string())));
    }
    // 65 control characters and 25 white-space ones (6 of them also controls).
    assert_eq!(refused, 65 + 19);
}

#[test]
fn the_text_schema_counts_characters_as_the_services_do() {
    let text = validator(schemas::required_text(64).build());
    for value in [
        "é".repeat(64),
        "😀".repeat(64),
        format!(" {}", "x".repeat(63)),
    ] {
        assert!(text_accepted(&value, 64) && text.is_valid(&json!(value)));
    }
    for value in [
        "é".repeat(65),
        "😀".repeat(65),
        String::new(),
        " \u{3000} ".into(),
    ] {
        assert!(
            !text_accepted(&value, 64) && !text.is_valid(&json!(value)),
            "{value:?}"
        );
    }
    for value in ["a\u{0}b", "a\nb", "\t", "\u{7f}", "a\u{85}b", "a\u{9f}"] {
        assert!(!text.is_valid(&json!(value)), "{value:?}");
    }
    assert!(
        text.is_valid(&json!("\u{feff}")),
        "U+FEFF is neither control nor white space"
    );
}

#[test]
fn the_currency_enum_is_exactly_the_accepted_codes() {
    let currency = validator(schemas::currency());
    for a in 'A'..='Z' {
        for b in 'A'..='Z' {
            for c in 'A'..='Z' {
                let code = format!("{a}{b}{c}");
                assert_eq!(
                    currency.is_valid(&json!(code)),
                    Currency::parse(&code).is_ok(),
                    "{code}"
                );
            }
        }
    }
    for bad in ["AAA", "XXX", "eur", "EURO", "", "E\u{0}R"] {
        assert!(!currency.is_valid(&json!(bad)), "{bad:?}");
    }
}

#[test]
fn amounts_document_where_zero_is_refused() {
    let valid = |schema, value: Value| validator(schema).is_valid(&value);
    assert!(!valid(schemas::expected_amount(), json!(0)));
    assert!(valid(schemas::expected_amount(), json!(1)));
    assert!(valid(schemas::expected_amount(), json!(null)));
    assert!(!valid(schemas::catalog_unit_price(), json!(0)));
    assert!(valid(schemas::catalog_unit_price(), json!(1)));
    assert!(valid(schemas::expected_unit_price(), json!(0)));
    assert!(!valid(schemas::expected_unit_price(), json!(-1)));
    assert!(!valid(schemas::quantity(), json!(0)));
    assert!(valid(schemas::stock(), json!(0)));
}

/// JSON Schema counts `2.0` as an integer; so do the services (`commerce::json_integer`).
#[test]
fn a_whole_number_with_a_fraction_part_is_an_integer_to_the_schema() {
    let quantity = validator(schemas::quantity());
    let number = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert!(quantity.is_valid(&number("2.0")));
    assert!(quantity.is_valid(&number("2e0")));
    assert!(!quantity.is_valid(&number("2.5")));
}

/// `order_id` in a request: any UUID but the nil one, which every service refuses.
#[test]
fn the_order_id_schema_refuses_only_the_nil_uuid() {
    let order_id = validator(schemas::order_id());
    assert!(!order_id.is_valid(&json!(uuid::Uuid::nil())));
    assert!(order_id.is_valid(&json!(uuid::Uuid::new_v4())));
    assert!(order_id.is_valid(&json!(uuid::Uuid::max())));
}

/// The lines keyword refuses exactly the lines whose expected total is 0 (order-service's rule),
/// however the prices are written, and allows a 0 beside any other expectation or none.
#[test]
fn lines_whose_expected_total_is_zero_are_refused() {
    let line = serde_json::to_value(schemas::expected_unit_price()).unwrap();
    let item = json!({
        "type": "object",
        "properties": { "sku": { "type": "string" }, "quantity": { "type": "integer" }, "unit_price": line },
        "required": ["sku", "quantity"],
    });
    let mut lines = serde_json::to_value(
        schemas::lines(utoipa::openapi::RefOr::T(
            serde_json::from_value(item).unwrap(),
        ))
        .extensions(Some(schemas::not_every_price_zero()))
        .build(),
    )
    .unwrap();
    lines["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    let lines = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&lines)
        .unwrap();
    for prices in [
        vec![json!(0)],
        vec![json!(0.0), json!(0)],
        vec![json!(0), json!(null)],
        vec![json!(0), json!(1)],
        vec![json!(null)],
        vec![json!(5), json!(7)],
    ] {
        let body: Vec<Value> = prices
            .iter()
            .enumerate()
            .map(|(i, price)| json!({"sku": format!("S{i}"), "quantity": 2, "unit_price": price}))
            .collect();
        let raw: Vec<(String, i64, Option<i64>)> = prices
            .iter()
            .enumerate()
            .map(|(i, price)| (format!("S{i}"), 2, price.as_f64().map(|p| p as i64)))
            .collect();
        let parsed = commerce::values::parse_lines(&raw).unwrap();
        let total_is_zero = commerce::values::expected_total(&parsed)
            .unwrap()
            .is_some_and(|total| total.get() == 0);
        assert_eq!(lines.is_valid(&json!(body)), !total_is_zero, "{prices:?}");
    }
}
