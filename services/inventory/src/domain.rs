//! Inventory rules, no I/O: what a valid request is, how an order's reservation record answers a
//! repeat, which lines are short, and which state transitions commit and release allow.
//!
//! `routes` parses every request through here before `store` touches the database, and `store`
//! asks [`first_shortage`] which line (if any) cannot be reserved while it holds the item locks.

use std::collections::HashMap;

use commerce::{
    contracts::{
        LineItem,
        inventory::{CreateReservation, ReservationStatus},
        parse_line_items,
    },
    values::{Sku, StockLine},
};
use platform::FieldError;
use uuid::Uuid;

/// Most units of one SKU that can be on hand (`PUT /items/{sku}`).
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A SKU taken from a URL path.
pub fn parse_sku(raw: &str) -> Result<Sku, String> {
    Sku::parse(raw).map_err(|reason| format!("SKU `{raw}` {reason}"))
}

/// The new number of available units for a SKU.
pub fn parse_available(available: i64) -> Result<i64, Vec<FieldError>> {
    if (0..=MAX_STOCK).contains(&available) {
        Ok(available)
    } else {
        Err(vec![FieldError::new(
            "available",
            format!("must be between 0 and {MAX_STOCK}"),
        )])
    }
}

/// A validated reservation request; its lines are sorted by SKU, the order in which their
/// stock rows are locked (so concurrent reservations cannot deadlock) and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub order_id: Uuid,
    pub lines: Vec<StockLine>,
}

impl ReservationRequest {
    /// The lines as stored and returned: sorted by SKU.
    pub fn items(&self) -> Vec<LineItem> {
        self.lines.iter().map(LineItem::from).collect()
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
    let lines = parse_line_items(&body.items).map_err(|line_errors| {
        errors.extend(line_errors.into_iter().map(FieldError::from));
    });
    match lines {
        Ok(mut lines) if errors.is_empty() => {
            lines.sort_by(|a, b| a.sku.cmp(&b.sku));
            Ok(ReservationRequest {
                order_id: body.order_id,
                lines,
            })
        }
        _ => Err(errors),
    }
}

/// An order's reservation record as stored: the three states of the contract, plus `Rejected`,
/// the remembered out-of-stock decision that holds no stock and is never shown as a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Reserved,
    Committed,
    Released,
    Rejected,
}

impl State {
    const ALL: [State; 4] = [
        State::Reserved,
        State::Committed,
        State::Released,
        State::Rejected,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Reserved => "RESERVED",
            State::Committed => "COMMITTED",
            State::Released => "RELEASED",
            State::Rejected => "REJECTED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }

    /// The contract status, or `None` for a rejected request (no reservation exists).
    pub fn visible(self) -> Option<ReservationStatus> {
        match self {
            State::Reserved => Some(ReservationStatus::Reserved),
            State::Committed => Some(ReservationStatus::Committed),
            State::Released => Some(ReservationStatus::Released),
            State::Rejected => None,
        }
    }
}

/// How a repeated `CreateReservation` is answered, given the order's stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Same items: the stored reservation, whatever its state.
    Replay,
    /// Same items, and the first request found the stock short: the same answer again.
    OutOfStock { sku: String },
    /// Different items under the same order id.
    Conflict,
}

pub fn judge_repeat(
    stored_items: &[LineItem],
    state: State,
    rejected_sku: Option<&str>,
    requested: &ReservationRequest,
) -> Repeat {
    if stored_items != requested.items().as_slice() {
        return Repeat::Conflict;
    }
    match state {
        State::Rejected => Repeat::OutOfStock {
            sku: rejected_sku.unwrap_or_default().to_owned(),
        },
        _ => Repeat::Replay,
    }
}

/// The first line, in SKU order, whose SKU is unknown or has fewer units available than asked.
/// `available` maps each known SKU to its available units.
pub fn first_shortage<'a>(
    lines: &'a [StockLine],
    available: &HashMap<String, i64>,
) -> Option<&'a Sku> {
    lines
        .iter()
        .find(|line| {
            available
                .get(line.sku.as_str())
                .is_none_or(|units| *units < line.quantity.get())
        })
        .map(|line| &line.sku)
}

/// Commit (stock is sold) or release (stock goes back to available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Commit,
    Release,
}

impl Settle {
    pub fn target(self) -> State {
        match self {
            Settle::Commit => State::Committed,
            Settle::Release => State::Released,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Settle::Commit => "commit",
            Settle::Release => "release",
        }
    }
}

/// What settling a reservation in `state` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move the stock and the state.
    Apply,
    /// Already in the target state: answer with it, change nothing.
    Unchanged,
    /// The reservation went the other way; it cannot come back.
    Refuse(State),
    /// No reservation holds stock for this order.
    Missing,
}

pub fn transition(settle: Settle, state: State) -> Transition {
    match (state, settle.target()) {
        (State::Rejected, _) => Transition::Missing,
        (State::Reserved, _) => Transition::Apply,
        (current, target) if current == target => Transition::Unchanged,
        (current, _) => Transition::Refuse(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> LineItem {
        LineItem {
            sku: sku.into(),
            quantity,
        }
    }

    fn request(items: Vec<LineItem>) -> ReservationRequest {
        parse_reservation(CreateReservation {
            order_id: Uuid::new_v4(),
            items,
        })
        .unwrap()
    }

    #[test]
    fn reservation_lines_are_sorted_by_sku() {
        let r = request(vec![line("B", 1), line("A", 2)]);
        assert_eq!(r.items(), [line("A", 2), line("B", 1)]);
    }

    #[test]
    fn invalid_reservations_name_every_field() {
        let errors = parse_reservation(CreateReservation {
            order_id: Uuid::nil(),
            items: vec![line("A", 0), line("A", 1)],
        })
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["order_id", "items[0].quantity"]);
    }

    #[test]
    fn available_stock_is_bounded() {
        assert!(parse_available(0).is_ok());
        assert!(parse_available(MAX_STOCK).is_ok());
        assert!(parse_available(-1).is_err());
        assert!(parse_available(MAX_STOCK + 1).is_err());
    }

    #[test]
    fn repeats_replay_conflict_or_stay_out_of_stock() {
        let r = request(vec![line("A", 1)]);
        let same = [line("A", 1)];
        assert_eq!(
            judge_repeat(&same, State::Committed, None, &r),
            Repeat::Replay
        );
        assert_eq!(
            judge_repeat(&[line("A", 2)], State::Reserved, None, &r),
            Repeat::Conflict
        );
        assert_eq!(
            judge_repeat(&same, State::Rejected, Some("A"), &r),
            Repeat::OutOfStock { sku: "A".into() }
        );
    }

    #[test]
    fn shortage_is_the_first_short_or_unknown_sku() {
        let r = request(vec![line("C", 5), line("A", 1), line("B", 2)]);
        let stock = HashMap::from([
            ("A".to_string(), 1),
            ("B".to_string(), 1),
            ("C".to_string(), 9),
        ]);
        assert_eq!(first_shortage(&r.lines, &stock).map(Sku::as_str), Some("B"));
        let unknown = HashMap::from([("A".to_string(), 1), ("B".to_string(), 2)]);
        assert_eq!(
            first_shortage(&r.lines, &unknown).map(Sku::as_str),
            Some("C")
        );
        let plenty = HashMap::from([
            ("A".to_string(), 1),
            ("B".to_string(), 2),
            ("C".to_string(), 5),
        ]);
        assert_eq!(first_shortage(&r.lines, &plenty), None);
    }

    #[test]
    fn commit_and_release_are_one_way() {
        use Settle::*;
        assert_eq!(transition(Commit, State::Reserved), Transition::Apply);
        assert_eq!(transition(Commit, State::Committed), Transition::Unchanged);
        assert_eq!(
            transition(Commit, State::Released),
            Transition::Refuse(State::Released)
        );
        assert_eq!(transition(Release, State::Reserved), Transition::Apply);
        assert_eq!(transition(Release, State::Released), Transition::Unchanged);
        assert_eq!(
            transition(Release, State::Committed),
            Transition::Refuse(State::Committed)
        );
        assert_eq!(transition(Commit, State::Rejected), Transition::Missing);
        assert_eq!(transition(Release, State::Rejected), Transition::Missing);
    }

    #[test]
    fn states_round_trip_through_their_database_spelling() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("reserved"), None);
        assert_eq!(State::Rejected.visible(), None);
    }
}
