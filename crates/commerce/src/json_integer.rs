//! Integer fields read as JSON Schema defines an integer: any JSON number without a fractional
//! part. `2`, `2.0` and `2e0` are the same integer to the published documents (OpenAPI 3.1 is JSON
//! Schema 2020-12), so they are to the services too; serde alone would refuse `2.0` for an `i64`.
//! A number with a fraction (`2.5`) is still refused, and so is one written with a fraction or
//! exponent beyond ±2^53, where a JSON number no longer names one integer exactly (every limit
//! the services check is far below it).
//!
//! Used on request fields: `#[serde(deserialize_with = "json_integer::integer")]`, or
//! `optional_integer` (with `#[serde(default)]`) for an `Option<i64>` that may be `null`.

use std::fmt;

use serde::{Deserializer, de};

/// The largest magnitude below which every whole `f64` is exactly one integer (2^53).
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Reads an `i64` from any JSON number without a fractional part.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// Reads an `Option<i64>`: `null` is `None`, else as [`integer`].
pub fn optional_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(OptionalWholeNumber)
}

struct WholeNumber;

impl de::Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
        if value.fract() == 0.0 && value.abs() < EXACT_LIMIT {
            // Whole and within ±2^53: the conversion is exact.
            Ok(value as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(value), &self))
        }
    }
}

struct OptionalWholeNumber;

impl<'de> de::Visitor<'de> for OptionalWholeNumber {
    type Value = Option<i64>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<i64>, D::Error> {
        integer(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(deserialize_with = "super::integer")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional_integer")]
        m: Option<i64>,
    }

    fn read(json: &str) -> Result<(i64, Option<i64>), String> {
        serde_json::from_str::<Body>(json)
            .map(|b| (b.n, b.m))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_number_is_an_integer_however_it_is_written() {
        assert_eq!(read(r#"{"n": 2}"#), Ok((2, None)));
        assert_eq!(read(r#"{"n": 2.0, "m": 3.0}"#), Ok((2, Some(3))));
        assert_eq!(read(r#"{"n": 2e0, "m": null}"#), Ok((2, None)));
        assert_eq!(read(r#"{"n": -0.0}"#), Ok((0, None)));
        assert_eq!(read(r#"{"n": -7}"#), Ok((-7, None)));
        assert_eq!(read(r#"{"n": 1e12}"#), Ok((1_000_000_000_000, None)));
    }

    #[test]
    fn fractions_other_types_and_inexact_numbers_are_refused() {
        for bad in [
            r#"{"n": 2.5}"#,
            r#"{"n": 1e-1}"#,
            r#"{"n": "2"}"#,
            r#"{"n": null}"#,
            r#"{"n": true}"#,
            r#"{"n": 1, "m": 0.5}"#,
            r#"{"n": 1, "m": "1"}"#,
            r#"{"n": 9007199254740992.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 9223372036854775808}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let message = read(r#"{"n": 2.5}"#).unwrap_err();
        assert!(message.contains("expected an integer"), "{message}");
    }
}
