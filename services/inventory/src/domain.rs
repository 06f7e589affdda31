//! Inventory rules, no I/O: what a valid request is, how an order's reservation record answers a
//! repeat, how a reservation is priced from the catalog (or why it cannot be: stock short, or a
//! price or currency that is not the one expected), and which state transitions commit and
//! release allow.
//!
//! `routes` parses every request through here before `store` touches the database, and `store`
//! asks [`price_or_refuse`] whether the lines can be reserved, and at what price, while it holds
//! the item locks.

use std::collections::HashMap;
use strum::VariantArray;

use commerce::{
    contracts::{
        LineItem, PricedLine,
        inventory::{CreateReservation, ReservationStatus, SetItem},
        parse_line_items,
    },
    values::{Amount, Currency, FieldError, MAX_AMOUNT, MAX_STOCK, Sku, ValidLineItem},
};
use uuid::Uuid;

/// A SKU taken from a URL path.
pub fn parse_sku(raw: &str) -> Result<Sku, String> {
    Sku::parse(raw).map_err(|reason| format!("the SKU {reason}"))
}

/// A valid `PUT /items/{sku}`: units on hand and the catalog price of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemUpdate {
    pub available: i64,
    pub unit_price: Amount,
    pub currency: Currency,
}

pub fn parse_item(body: &SetItem) -> Result<ItemUpdate, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !(0..=MAX_STOCK).contains(&body.available) {
        errors.push(FieldError::new(
            "available",
            format!("must be between 0 and {MAX_STOCK}"),
        ));
    }
    let unit_price = Amount::parse(body.unit_price)
        .and_then(|price| {
            if price.get() > 0 {
                Ok(price)
            } else {
                Err(format!("must be between 1 and {MAX_AMOUNT} minor units"))
            }
        })
        .map_err(|e| errors.push(FieldError::new("unit_price", e)));
    let currency =
        Currency::parse(&body.currency).map_err(|e| errors.push(FieldError::new("currency", e)));
    match (unit_price, currency) {
        (Ok(unit_price), Ok(currency)) if errors.is_empty() => Ok(ItemUpdate {
            available: body.available,
            unit_price,
            currency,
        }),
        _ => Err(errors),
    }
}

/// A validated reservation request; its lines are sorted by SKU, the order in which their
/// stock rows are locked (so concurrent reservations cannot deadlock) and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub order_id: Uuid,
    pub currency: Currency,
    pub lines: Vec<ValidLineItem>,
    /// Sell the stock at once: the reservation is created (or moved) `COMMITTED`. Not one of
    /// the terms a repeat is compared on.
    pub commit: bool,
}

impl ReservationRequest {
    /// The lines as stored and compared on a repeat: sorted by SKU, expected prices included.
    pub fn items(&self) -> Vec<LineItem> {
        self.lines.iter().map(LineItem::from).collect()
    }

    /// The state a new reservation is created in and the bucket its units go to: sold at once
    /// with `commit`, held otherwise.
    pub fn placement(&self) -> (RecordState, Bucket) {
        if self.commit {
            (RecordState::Committed, Bucket::Committed)
        } else {
            (RecordState::Reserved, Bucket::Reserved)
        }
    }

    pub fn skus(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|line| line.sku.as_str().to_owned())
            .collect()
    }
}

pub fn parse_reservation(body: CreateReservation) -> Result<ReservationRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    if body.order_id.is_nil() {
        errors.push(FieldError::new("order_id", "must not be the nil UUID"));
    }
    let currency =
        Currency::parse(&body.currency).map_err(|e| errors.push(FieldError::new("currency", e)));
    let lines = parse_line_items(&body.items).map_err(|line_errors| {
        errors.extend(line_errors);
    });
    match (currency, lines) {
        (Ok(currency), Ok(mut lines)) if errors.is_empty() => {
            lines.sort_by(|a, b| a.sku.cmp(&b.sku));
            Ok(ReservationRequest {
                order_id: body.order_id,
                currency,
                lines,
                commit: body.commit,
            })
        }
        _ => Err(errors),
    }
}

commerce::spelled_enum! {
    "snake_case",
    /// Why a reservation was refused; remembered (as its spelling), so a repeat gets the same
    /// answer.
    pub enum Refusal {
        OutOfStock,
        PriceChanged,
    }
}

/// One catalog row as locked for a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub available: i64,
    pub unit_price: i64,
    pub currency: String,
}

/// The outcome of pricing a request against the locked catalog rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pricing {
    /// Every line can be reserved; these are its prices and their total.
    Priced { lines: Vec<PricedLine>, amount: i64 },
    /// The first line (in SKU order) that cannot be, and why.
    Refused { sku: String, refusal: Refusal },
}

/// Prices `request` from `catalog` (SKU → locked row), or names the first line that stops it:
/// an unknown SKU or short stock is out of stock; an item priced in another currency, or at a
/// price other than the one the line expects, is a changed price.
pub fn price_or_refuse(
    request: &ReservationRequest,
    catalog: &HashMap<String, CatalogEntry>,
) -> Pricing {
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut amount = Amount::parse(0).ok();
    for line in &request.lines {
        let refuse = |refusal| Pricing::Refused {
            sku: line.sku.as_str().to_owned(),
            refusal,
        };
        let Some(entry) = catalog.get(line.sku.as_str()) else {
            return refuse(Refusal::OutOfStock);
        };
        let expected_differs = line
            .expected_unit_price
            .is_some_and(|expected| expected.get() != entry.unit_price);
        if entry.currency != request.currency.code() || expected_differs {
            return refuse(Refusal::PriceChanged);
        }
        if entry.available < line.quantity.get() {
            return refuse(Refusal::OutOfStock);
        }
        amount = Amount::parse(entry.unit_price)
            .ok()
            .and_then(|price| price.times(line.quantity))
            .zip(amount)
            .and_then(|(line_total, total)| total.plus(line_total));
        lines.push(PricedLine {
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.get(),
            unit_price: entry.unit_price,
        });
    }
    match amount {
        Some(amount) => Pricing::Priced {
            lines,
            amount: amount.get(),
        },
        // Past the largest amount anyone may be charged: the order cannot be priced.
        None => Pricing::Refused {
            sku: request
                .lines
                .last()
                .map(|line| line.sku.as_str().to_owned())
                .unwrap_or_default(),
            refusal: Refusal::PriceChanged,
        },
    }
}

commerce::spelled_enum! {
    "SCREAMING_SNAKE_CASE",
    /// An order's reservation record as stored: the four states of the contract, plus `Rejected`,
    /// the remembered refusal (out of stock, price changed) that holds no stock and is never shown
    /// as a reservation.
    pub enum RecordState {
        Reserved,
        Committed,
        Released,
        Returned,
        Rejected,
    }
}

impl RecordState {
    /// The contract status, or `None` for a rejected request (no reservation exists).
    pub fn visible(self) -> Option<ReservationStatus> {
        match self {
            RecordState::Reserved => Some(ReservationStatus::Reserved),
            RecordState::Committed => Some(ReservationStatus::Committed),
            RecordState::Released => Some(ReservationStatus::Released),
            RecordState::Returned => Some(ReservationStatus::Returned),
            RecordState::Rejected => None,
        }
    }
}

/// How a repeated `CreateReservation` is answered, given the order's stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Same request: the stored reservation, whatever its state.
    Replay,
    /// Same request asking to commit, and the stored reservation is still held: commit it, then
    /// answer with it.
    Commit,
    /// Same request, and the first one was refused: the same answer again.
    Refused { sku: String, refusal: Refusal },
    /// Different items, prices or currency under the same order id.
    Conflict,
}

pub fn judge_repeat(
    stored_items: &[LineItem],
    stored_currency: &str,
    state: RecordState,
    refused: Option<(&str, Refusal)>,
    requested: &ReservationRequest,
) -> Repeat {
    if stored_items != requested.items().as_slice() || stored_currency != requested.currency.code()
    {
        return Repeat::Conflict;
    }
    match (state, refused) {
        (RecordState::Rejected, Some((sku, refusal))) => Repeat::Refused {
            sku: sku.to_owned(),
            refusal,
        },
        (RecordState::Rejected, None) => Repeat::Refused {
            sku: String::new(),
            refusal: Refusal::OutOfStock,
        },
        (RecordState::Reserved, _) if requested.commit => Repeat::Commit,
        _ => Repeat::Replay,
    }
}

commerce::spelled_enum! {
    "snake_case",
    /// What payment-service asks of a held reservation: commit it (the stock is sold) or release
    /// it (the stock goes back to available: a held reservation is released, a sold one returned).
    pub enum ReservationAction {
        Commit,
        Release,
    }
}

/// Where an order's units sit in the item row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Available,
    Reserved,
    Committed,
}

/// What committing or releasing a reservation in `state` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move the units from one bucket to another and the reservation to `to`.
    Apply {
        from: Bucket,
        into: Bucket,
        to: RecordState,
    },
    /// Already committed or released this way: answer with it, change nothing.
    Unchanged,
    /// The reservation went the other way; it cannot come back.
    Refuse(RecordState),
    /// No reservation holds stock for this order.
    Missing,
}

/// The states `action` moves a reservation out of (in the order worth trying: a held
/// reservation is the common case).
pub fn sources(action: ReservationAction) -> impl Iterator<Item = RecordState> {
    RecordState::VARIANTS
        .iter()
        .copied()
        .filter(move |&state| matches!(transition(action, state), Transition::Apply { .. }))
}

pub fn transition(action: ReservationAction, state: RecordState) -> Transition {
    use {Bucket::*, ReservationAction::*};
    match (state, action) {
        (RecordState::Rejected, _) => Transition::Missing,
        (RecordState::Reserved, Commit) => Transition::Apply {
            from: Reserved,
            into: Committed,
            to: RecordState::Committed,
        },
        (RecordState::Reserved, Release) => Transition::Apply {
            from: Reserved,
            into: Available,
            to: RecordState::Released,
        },
        (RecordState::Committed, Release) => Transition::Apply {
            from: Committed,
            into: Available,
            to: RecordState::Returned,
        },
        (RecordState::Committed, Commit)
        | (RecordState::Released | RecordState::Returned, Release) => Transition::Unchanged,
        (current @ (RecordState::Released | RecordState::Returned), Commit) => {
            Transition::Refuse(current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> LineItem {
        LineItem {
            sku: sku.into(),
            quantity,
            expected_unit_price: None,
        }
    }

    fn priced(sku: &str, quantity: i64, unit_price: i64) -> LineItem {
        LineItem {
            expected_unit_price: Some(unit_price),
            ..line(sku, quantity)
        }
    }

    fn request(items: Vec<LineItem>) -> ReservationRequest {
        parse_reservation(CreateReservation {
            order_id: Uuid::new_v4(),
            currency: "EUR".into(),
            items,
            commit: false,
        })
        .unwrap()
    }

    fn catalog(entries: &[(&str, i64, i64, &str)]) -> HashMap<String, CatalogEntry> {
        entries
            .iter()
            .map(|(sku, available, unit_price, currency)| {
                (
                    sku.to_string(),
                    CatalogEntry {
                        available: *available,
                        unit_price: *unit_price,
                        currency: currency.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn reservation_lines_are_sorted_by_sku() {
        let r = request(vec![line("B", 1), priced("A", 2, 5)]);
        assert_eq!(r.items(), [priced("A", 2, 5), line("B", 1)]);
    }

    #[test]
    fn invalid_reservations_name_every_field() {
        let errors = parse_reservation(CreateReservation {
            order_id: Uuid::nil(),
            currency: "eur".into(),
            items: vec![line("A", 0), line("A", 1), priced("B", 1, -1)],
            commit: true,
        })
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "order_id",
                "currency",
                "items[0].quantity",
                "items[2].unit_price"
            ]
        );
    }

    #[test]
    fn item_updates_are_bounded() {
        let body = |available, unit_price, currency: &str| SetItem {
            available,
            unit_price,
            currency: currency.into(),
        };
        assert!(parse_item(&body(0, 1, "EUR")).is_ok());
        assert!(parse_item(&body(MAX_STOCK, MAX_AMOUNT, "EUR")).is_ok());
        let fields = |b| {
            parse_item(&b)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(body(-1, 0, "E\0R")),
            ["available", "unit_price", "currency"]
        );
        assert_eq!(fields(body(MAX_STOCK + 1, 1, "EUR")), ["available"]);
        assert_eq!(fields(body(1, MAX_AMOUNT + 1, "EUR")), ["unit_price"]);
    }

    #[test]
    fn repeats_replay_conflict_or_stay_refused() {
        let r = request(vec![line("A", 1)]);
        let same = [line("A", 1)];
        assert_eq!(
            judge_repeat(&same, "EUR", RecordState::Committed, None, &r),
            Repeat::Replay
        );
        assert_eq!(
            judge_repeat(&[line("A", 2)], "EUR", RecordState::Reserved, None, &r),
            Repeat::Conflict
        );
        assert_eq!(
            judge_repeat(&[priced("A", 1, 5)], "EUR", RecordState::Reserved, None, &r),
            Repeat::Conflict
        );
        assert_eq!(
            judge_repeat(&same, "USD", RecordState::Reserved, None, &r),
            Repeat::Conflict
        );
        assert_eq!(
            judge_repeat(
                &same,
                "EUR",
                RecordState::Rejected,
                Some(("A", Refusal::PriceChanged)),
                &r
            ),
            Repeat::Refused {
                sku: "A".into(),
                refusal: Refusal::PriceChanged
            }
        );
        let committing = ReservationRequest { commit: true, ..r };
        assert_eq!(
            judge_repeat(&same, "EUR", RecordState::Reserved, None, &committing),
            Repeat::Commit,
            "a held reservation is committed by a repeat that commits"
        );
        for settled in [
            RecordState::Committed,
            RecordState::Released,
            RecordState::Returned,
        ] {
            assert_eq!(
                judge_repeat(&same, "EUR", settled, None, &committing),
                Repeat::Replay,
                "{settled:?} is final for a commit: replayed as it is"
            );
        }
        assert_eq!(
            judge_repeat(&same, "USD", RecordState::Reserved, None, &committing),
            Repeat::Conflict
        );
    }

    #[test]
    fn pricing_takes_the_catalog_price_or_names_the_first_problem() {
        let stock = catalog(&[
            ("A", 1, 500, "EUR"),
            ("B", 1, 200, "EUR"),
            ("C", 9, 100, "EUR"),
        ]);
        let r = request(vec![line("C", 5), line("A", 1)]);
        assert_eq!(
            price_or_refuse(&r, &stock),
            Pricing::Priced {
                lines: vec![
                    PricedLine {
                        sku: "A".into(),
                        quantity: 1,
                        unit_price: 500
                    },
                    PricedLine {
                        sku: "C".into(),
                        quantity: 5,
                        unit_price: 100
                    },
                ],
                amount: 1000
            }
        );
        let refused = |r: &ReservationRequest, stock| match price_or_refuse(r, stock) {
            Pricing::Refused { sku, refusal } => Some((sku, refusal)),
            Pricing::Priced { .. } => None,
        };
        let short = request(vec![line("C", 5), line("A", 1), line("B", 2)]);
        assert_eq!(
            refused(&short, &stock),
            Some(("B".into(), Refusal::OutOfStock))
        );
        let unknown = request(vec![line("Z", 1)]);
        assert_eq!(
            refused(&unknown, &stock),
            Some(("Z".into(), Refusal::OutOfStock))
        );
        let lower = request(vec![priced("A", 1, 1)]);
        assert_eq!(
            refused(&lower, &stock),
            Some(("A".into(), Refusal::PriceChanged))
        );
        let higher = request(vec![priced("A", 1, 501)]);
        assert_eq!(
            refused(&higher, &stock),
            Some(("A".into(), Refusal::PriceChanged))
        );
        let exact = request(vec![priced("A", 1, 500)]);
        assert_eq!(refused(&exact, &stock), None);
        let dollars = catalog(&[("A", 1, 500, "USD")]);
        assert_eq!(
            refused(&request(vec![line("A", 1)]), &dollars),
            Some(("A".into(), Refusal::PriceChanged))
        );
    }

    #[test]
    fn commit_and_release_are_one_way_and_release_returns_sold_stock() {
        use ReservationAction::*;
        assert!(matches!(
            transition(Commit, RecordState::Reserved),
            Transition::Apply {
                to: RecordState::Committed,
                ..
            }
        ));
        assert_eq!(sources(Commit).collect::<Vec<_>>(), [RecordState::Reserved]);
        assert_eq!(
            sources(Release).collect::<Vec<_>>(),
            [RecordState::Reserved, RecordState::Committed]
        );
        assert_eq!(
            transition(Commit, RecordState::Committed),
            Transition::Unchanged
        );
        assert_eq!(
            transition(Commit, RecordState::Released),
            Transition::Refuse(RecordState::Released)
        );
        assert_eq!(
            transition(Commit, RecordState::Returned),
            Transition::Refuse(RecordState::Returned)
        );
        assert!(matches!(
            transition(Release, RecordState::Reserved),
            Transition::Apply {
                from: Bucket::Reserved,
                into: Bucket::Available,
                to: RecordState::Released
            }
        ));
        assert!(matches!(
            transition(Release, RecordState::Committed),
            Transition::Apply {
                from: Bucket::Committed,
                into: Bucket::Available,
                to: RecordState::Returned
            }
        ));
        assert_eq!(
            transition(Release, RecordState::Released),
            Transition::Unchanged
        );
        assert_eq!(
            transition(Release, RecordState::Returned),
            Transition::Unchanged
        );
        assert_eq!(
            transition(Commit, RecordState::Rejected),
            Transition::Missing
        );
        assert_eq!(
            transition(Release, RecordState::Rejected),
            Transition::Missing
        );
    }

    #[test]
    fn states_round_trip_through_their_database_spelling() {
        use strum::VariantArray;
        for state in RecordState::VARIANTS {
            assert_eq!(state.as_ref().parse::<RecordState>().ok(), Some(*state));
        }
        assert!("reserved".parse::<RecordState>().is_err());
        assert_eq!(RecordState::Rejected.visible(), None);
        for refusal in Refusal::VARIANTS {
            assert_eq!(refusal.as_ref().parse::<Refusal>().ok(), Some(*refusal));
        }
        assert_eq!(Refusal::PriceChanged.as_ref(), "price_changed");
    }
}
