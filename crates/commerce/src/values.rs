//! Domain values that parse: once constructed, each holds a valid value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One invalid field in a request, as every service reports it (listed under a 422 problem's
/// `errors` member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"field": "items[0].quantity", "message": "must be between 1 and 1000"}))]
pub struct FieldError {
    /// JSON pointer-like path of the field, e.g. `items[0].quantity`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A tenant name: lowercase letters, digits and inner hyphens, at most 32 characters, so it fits
/// in Kubernetes namespace names (`<tenant>-orders`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok_len = (1..=32).contains(&value.len());
        let ok_chars = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_edges = !value.starts_with('-') && !value.ends_with('-');
        if ok_len && ok_chars && ok_edges {
            Ok(Self(value.to_owned()))
        } else {
            Err("expected 1-32 lowercase letters, digits or inner hyphens, e.g. tenant-a".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Most distinct SKUs one order or reservation may hold.
pub const MAX_LINE_ITEMS: usize = 50;
/// Most units of one SKU per order.
pub const MAX_QUANTITY: i64 = 1_000;
/// Most units of one SKU inventory-service holds (`PUT /api/v1/items/{sku}`).
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Largest amount accepted anywhere, in minor units (10 billion major units of a 2-decimal currency).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A stock-keeping unit: `[A-Z0-9][A-Z0-9-]{0,63}` — an upper-case letter or digit, then up to
/// 63 more upper-case letters, digits or hyphens. No dots, so `..` and `.` can never be a SKU (or
/// a path segment that means something else); no lower case, so `sku-1` and `SKU-1` cannot be two
/// items.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(value: &str) -> Result<Self, String> {
        let bytes = value.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= Self::MAX_LEN {
            Ok(Self(value.to_owned()))
        } else {
            Err("must match [A-Z0-9][A-Z0-9-]{0,63}".into())
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

/// The control characters free text may not hold (Unicode's `Cc`: C0, DEL and C1, exactly
/// what `char::is_control` answers), as inclusive ranges; the OpenAPI `pattern` of every text
/// field is written from these (`crate::schemas`).
pub const CONTROL_CHARACTERS: [(char, char); 2] = [('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')];

/// The characters `str::trim` removes (Unicode's `White_Space`, what `char::is_whitespace`
/// answers), as inclusive ranges: a text field that must not be blank needs one character
/// outside these (and outside [`CONTROL_CHARACTERS`]).
pub const WHITE_SPACE: [(char, char); 10] = [
    ('\u{9}', '\u{d}'),
    ('\u{20}', '\u{20}'),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    ranges
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
}

/// Checks one free-text field from a client: at most `max_chars` characters and no control
/// character at all (NUL, tab, newline, DEL, the C1 range): PostgreSQL cannot store NUL in
/// `text`, and line breaks would forge log lines. The message never repeats the value.
pub fn check_text(value: &str, max_chars: usize) -> Result<(), String> {
    if value.chars().any(|c| in_ranges(c, &CONTROL_CHARACTERS)) {
        Err("must not contain control characters".into())
    } else if value.chars().count() > max_chars {
        Err(format!("must be at most {max_chars} characters"))
    } else {
        Ok(())
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

/// The ISO 4217 codes this platform settles in (the `enum` of every `currency` in the OpenAPI
/// documents).
pub const CURRENCIES: &[&str] = &[
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
            .ok_or_else(|| match check_text(value, 3) {
                Ok(()) => format!("`{value}` is not a supported ISO 4217 currency code"),
                Err(_) => "must be a supported ISO 4217 currency code, e.g. EUR".into(),
            })
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

/// One validated line: a SKU, how many, and the unit price the sender expects, if it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidLineItem {
    pub sku: Sku,
    pub quantity: Quantity,
    pub expected_unit_price: Option<Amount>,
}

/// Σ expected price × quantity when every line carries an expected price; `Ok(None)` when one
/// does not (wherever it is: no total, so none too large); `Err` past [`MAX_AMOUNT`].
pub fn expected_total(lines: &[ValidLineItem]) -> Result<Option<Amount>, String> {
    let Some(priced) = lines
        .iter()
        .map(|line| line.expected_unit_price.map(|price| (price, line.quantity)))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let mut total = Amount(0);
    for (price, quantity) in priced {
        total = price
            .times(quantity)
            .and_then(|line_total| total.plus(line_total))
            .ok_or_else(|| format!("the total exceeds {MAX_AMOUNT} minor units"))?;
    }
    Ok(Some(total))
}

/// Parses raw `(sku, quantity, expected unit price)` lines: 1 to [`MAX_LINE_ITEMS`] lines, each
/// SKU at most once. Every invalid field is reported, e.g. `items[2].quantity`.
pub fn parse_lines(
    raw: &[(String, i64, Option<i64>)],
) -> Result<Vec<ValidLineItem>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if raw.is_empty() {
        errors.push(FieldError::new("items", "must contain at least one item"));
    }
    if raw.len() > MAX_LINE_ITEMS {
        errors.push(FieldError::new(
            "items",
            format!("must contain at most {MAX_LINE_ITEMS} items"),
        ));
    }
    let mut lines: Vec<ValidLineItem> = Vec::with_capacity(raw.len());
    for (i, (sku, quantity, price)) in raw.iter().enumerate() {
        let sku =
            Sku::parse(sku).map_err(|e| errors.push(FieldError::new(format!("items[{i}].sku"), e)));
        let quantity = Quantity::parse(*quantity)
            .map_err(|e| errors.push(FieldError::new(format!("items[{i}].quantity"), e)));
        let price = price
            .map(Amount::parse)
            .transpose()
            .map_err(|e| errors.push(FieldError::new(format!("items[{i}].unit_price"), e)));
        if let (Ok(sku), Ok(quantity), Ok(expected_unit_price)) = (sku, quantity, price) {
            if lines.iter().any(|l| l.sku == sku) {
                errors.push(FieldError::new(
                    format!("items[{i}].sku"),
                    format!("`{sku}` appears twice"),
                ));
            } else {
                lines.push(ValidLineItem {
                    sku,
                    quantity,
                    expected_unit_price,
                });
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
        for good in ["SKU-001", "A", "9", "A-", "X--1", &"X".repeat(64)] {
            assert!(Sku::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "has space",
            "ü",
            &"X".repeat(65),
            "A/B",
            "..",
            ".",
            "-A",
            "sku-1",
            "A_B",
            "A.B",
            "A\0",
            "A\n",
            "A\u{7f}",
        ] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_refuses_control_characters_and_length() {
        assert!(check_text("Zoë's shop, #1", 64).is_ok());
        for bad in ["a\0b", "a\nb", "\t", "\u{7f}", "\u{85}"] {
            assert!(check_text(bad, 64).is_err(), "{bad:?}");
        }
        assert!(check_text(&"é".repeat(64), 64).is_ok());
        assert!(check_text(&"é".repeat(65), 64).is_err());
        assert!(!Currency::parse("E\0R").unwrap_err().contains('\0'));
    }

    #[test]
    fn the_character_ranges_are_the_standard_librarys() {
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            assert_eq!(in_ranges(c, &CONTROL_CHARACTERS), c.is_control(), "{c:?}");
            assert_eq!(in_ranges(c, &WHITE_SPACE), c.is_whitespace(), "{c:?}");
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
            ("A".to_string(), 1, None),
            ("A".to_string(), 2, None),
            ("".to_string(), 0, Some(-1)),
        ];
        let errors = parse_lines(&raw).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[1].sku",
                "items[2].sku",
                "items[2].quantity",
                "items[2].unit_price"
            ]
        );
        assert!(parse_lines(&[]).is_err());
        let too_many: Vec<(String, i64, Option<i64>)> =
            (0..51).map(|i| (format!("S{i}"), 1, None)).collect();
        assert!(parse_lines(&too_many).is_err());
    }

    #[test]
    fn the_expected_total_needs_every_price() {
        let lines = |prices: [Option<i64>; 2]| {
            let raw = vec![
                ("A".to_string(), 2, prices[0]),
                ("B".to_string(), 3, prices[1]),
            ];
            parse_lines(&raw).unwrap()
        };
        assert_eq!(
            expected_total(&lines([Some(100), Some(10)])).map(|t| t.map(Amount::get)),
            Ok(Some(230))
        );
        assert_eq!(expected_total(&lines([Some(100), None])), Ok(None));
        assert!(expected_total(&lines([Some(MAX_AMOUNT), Some(1)])).is_err());
    }

    /// Without a price on every line there is no total, so none can be too large, whichever
    /// line lacks it (schemathesis found an order refused because its first lines' prices
    /// already added up past the limit before the line without one was reached).
    #[test]
    fn no_total_is_formed_when_a_line_has_no_price_wherever_it_is() {
        let big = Some(MAX_AMOUNT);
        for prices in [[big, big, None], [big, None, big], [None, big, big]] {
            let raw: Vec<(String, i64, Option<i64>)> = prices
                .iter()
                .enumerate()
                .map(|(i, price)| (format!("S{i}"), 2, *price))
                .collect();
            let lines = parse_lines(&raw).unwrap();
            assert_eq!(expected_total(&lines), Ok(None), "{prices:?}");
        }
    }
}
