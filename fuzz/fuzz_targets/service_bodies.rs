//! Fuzzes the bodies of the other endpoints that take one — payment-service's payments,
//! inventory-service's reservations and items, notify-service's notifications — through the real
//! JSON extractor and each service's domain parsing (the first byte picks the endpoint).
//! Property: an accepted body re-serialises to one that is accepted again and re-serialises to
//! the same bytes.
#![no_main]

use commerce::contracts::{
    inventory::{CreateReservation, SetItem},
    notify::CreateNotification,
    payment::CreatePayment,
};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn extract<T: DeserializeOwned>(body: Vec<u8>) -> Option<T> {
    use axum::extract::FromRequest;
    let request = http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .ok()?;
    futures::executor::block_on(platform::Json::<T>::from_request(request, &()))
        .ok()
        .map(|platform::Json(r)| r)
}

fn round_trip<T: DeserializeOwned + Serialize + Clone>(body: &[u8], accepts: impl Fn(T) -> bool) {
    let Some(value) = extract::<T>(body.to_vec()) else {
        return;
    };
    if !accepts(value.clone()) {
        return;
    }
    let bytes = serde_json::to_vec(&value).expect("serialises");
    let again = extract::<T>(bytes.clone()).expect("extracts");
    assert!(accepts(again.clone()), "an accepted body stays accepted");
    assert_eq!(serde_json::to_vec(&again).expect("serialises"), bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            round_trip::<CreatePayment>(body, |b| payment_service::domain::parse_payment(b).is_ok())
        }
        1 => round_trip::<CreateReservation>(body, |b| {
            inventory_service::domain::parse_reservation(b).is_ok()
        }),
        2 => round_trip::<SetItem>(body, |b| inventory_service::domain::parse_item(&b).is_ok()),
        _ => {
            round_trip::<CreateNotification>(body, |b| notify_service::domain::validate(&b).is_ok())
        }
    }
});
