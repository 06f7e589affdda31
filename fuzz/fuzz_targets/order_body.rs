//! Fuzzes `POST /api/v1/orders` bodies through the real JSON extractor and order-service's domain
//! parsing. Property: a parsed order re-serialises to an equal order (the request, and the
//! request rebuilt from the validated order, both parse to it, with the same request hash).
#![no_main]

use commerce::contracts::LineItem;
use libfuzzer_sys::fuzz_target;
use order_service::domain::{CreateOrderRequest, NewOrder};

fn extract(body: Vec<u8>) -> Option<CreateOrderRequest> {
    use axum::extract::FromRequest;
    let request = http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .ok()?;
    futures::executor::block_on(platform::Json::<CreateOrderRequest>::from_request(
        request,
        &(),
    ))
    .ok()
    .map(|platform::Json(r)| r)
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = extract(data.to_vec()) else {
        return;
    };
    let Ok(order) = NewOrder::parse(&request) else {
        return;
    };
    let again = extract(serde_json::to_vec(&request).expect("serialises")).expect("extracts");
    assert_eq!(NewOrder::parse(&again).as_ref(), Ok(&order));
    let rebuilt = CreateOrderRequest {
        customer_id: order.customer_id.clone(),
        currency: order.currency.code().to_owned(),
        items: order
            .stored_lines()
            .into_iter()
            .map(|l| LineItem {
                sku: l.sku,
                quantity: l.quantity,
                expected_unit_price: l.expected_unit_price,
            })
            .collect(),
        payment_method: Some(order.payment_method),
    };
    let rebuilt = extract(serde_json::to_vec(&rebuilt).expect("serialises")).expect("extracts");
    let reparsed = NewOrder::parse(&rebuilt).expect("a validated order stays valid");
    assert_eq!(reparsed, order);
    assert_eq!(reparsed.request_hash(), order.request_hash());
});
