//! Domain values that parse: once constructed, each holds a valid value.

use std::fmt;

use serde::Serialize;

/// Most distinct SKUs one order or reservation may hold.
pub const MAX_LINE_ITEMS: usize = 50;
/// Most units of one SKU per order.
pub const MAX_QUANTITY: i64 = 1_000;
/// Largest amount accepted anywhere, in minor units (10 billion major units of a 2-decimal currency).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A stock-keeping unit: 1–64 characters of letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(value: &str) -> Result<Self, String> {
        let valid_chars = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if (1..=64).contains(&value.len()) && valid_chars {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be 1-64 letters, digits, '-', '_' or '.'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Units of one SKU: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(value: i64) -> Result<Self, String> {
        if (1..=MAX_QUANTITY).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be between 1 and {MAX_QUANTITY}"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A non-negative amount of money in minor units (cents), at most [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub fn parse(value: i64) -> Result<Self, String> {
        if (0..=MAX_AMOUNT).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be between 0 and {MAX_AMOUNT} minor units"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self × quantity`, or `None` past [`MAX_AMOUNT`].
    pub fn times(self, quantity: Quantity) -> Option<Amount> {
        self.0
            .checked_mul(quantity.get())
            .and_then(|v| Amount::parse(v).ok())
    }

    /// `self + other`, or `None` past [`MAX_AMOUNT`].
    pub fn plus(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_add(other.0)
            .and_then(|v| Amount::parse(v).ok())
    }
}

/// The ISO 4217 codes this platform settles in.
const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "JPY",
    "KRW", "MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR",
];

/// An ISO 4217 currency code this platform accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(&'static str);

impl Currency {
    pub fn parse(value: &str) -> Result<Self, String> {
        CURRENCIES
            .iter()
            .find(|code| **code == value)
            .map(|code| Self(code))
            .ok_or_else(|| format!("`{value}` is not a supported ISO 4217 currency code"))
    }

    pub fn code(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One validated line: a SKU and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Parses raw `(sku, quantity)` lines: 1 to [`MAX_LINE_ITEMS`] lines, each SKU at most once.
/// Errors are `(field path, message)` pairs, e.g. `("items[2].quantity", "…")`.
pub fn parse_stock_lines(raw: &[(String, i64)]) -> Result<Vec<StockLine>, Vec<(String, String)>> {
    let mut errors = Vec::new();
    if raw.is_empty() {
        errors.push(("items".into(), "must contain at least one item".into()));
    }
    if raw.len() > MAX_LINE_ITEMS {
        errors.push((
            "items".into(),
            format!("must contain at most {MAX_LINE_ITEMS} items"),
        ));
    }
    let mut lines: Vec<StockLine> = Vec::with_capacity(raw.len());
    for (i, (sku, quantity)) in raw.iter().enumerate() {
        let sku = Sku::parse(sku).map_err(|e| errors.push((format!("items[{i}].sku"), e)));
        let quantity = Quantity::parse(*quantity)
            .map_err(|e| errors.push((format!("items[{i}].quantity"), e)));
        if let (Ok(sku), Ok(quantity)) = (sku, quantity) {
            if lines.iter().any(|l| l.sku == sku) {
                errors.push((format!("items[{i}].sku"), format!("`{sku}` appears twice")));
            } else {
                lines.push(StockLine { sku, quantity });
            }
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert!(Sku::parse("SKU-001").is_ok());
        assert!(Sku::parse("a.b_c-9").is_ok());
        for bad in ["", "has space", "ü", &"x".repeat(65), "a/b"] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_and_amounts() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(MAX_QUANTITY + 1).is_err());
        assert!(Amount::parse(-1).is_err());
        assert!(Amount::parse(0).is_ok());
        assert!(Amount::parse(MAX_AMOUNT + 1).is_err());
        let big = Amount::parse(MAX_AMOUNT).unwrap();
        assert_eq!(big.times(Quantity::parse(2).unwrap()), None);
        assert_eq!(big.plus(Amount::parse(1).unwrap()), None);
        let price = Amount::parse(1999).unwrap();
        assert_eq!(
            price.times(Quantity::parse(3).unwrap()).map(Amount::get),
            Some(5997)
        );
    }

    #[test]
    fn currencies_are_an_allow_list() {
        assert_eq!(Currency::parse("EUR").map(Currency::code), Ok("EUR"));
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn stock_lines_report_every_problem() {
        let raw = vec![
            ("A".to_string(), 1),
            ("A".to_string(), 2),
            ("".to_string(), 0),
        ];
        let errors = parse_stock_lines(&raw).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["items[1].sku", "items[2].sku", "items[2].quantity"]
        );
        assert!(parse_stock_lines(&[]).is_err());
        let too_many: Vec<(String, i64)> = (0..51).map(|i| (format!("S{i}"), 1)).collect();
        assert!(parse_stock_lines(&too_many).is_err());
    }
}
