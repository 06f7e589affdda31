//! Caller identity per route, end to end on the four real binaries (issue 20): the three one-curl
//! attacks on the internal APIs — refunding a confirmed order's payment, releasing its stock,
//! paying for an order that does not exist — are refused with 403 `caller-not-allowed` when they
//! come past the sidecar (no `x-forwarded-client-cert`, with the cluster's
//! `REQUIRE_PEER_IDENTITY`), with the identity of a service the call graph does not name for the
//! route, or with the right service account of another trust domain; the refusal is logged with
//! the caller's SPIFFE id; and the saga's own calls, which carry the identities the call graph
//! names, still go through. The invariants of DESIGN.md are checked in SQL afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ordermesh_e2e::{
    Cluster, GATEWAY_ID, Options, Svc, assert_invariants, json, key, order_body_unpriced, poll,
    spiffe_id, xfcc_from,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TENANT: &str = "tenant-a";
const CALLER_NOT_ALLOWED: &str = "https://ordermesh.dev/problems/caller-not-allowed";

/// One attack: a request straight to a service's port, as a caller past its sidecar would send it.
struct Attack {
    svc: Svc,
    path: String,
    body: Value,
}

/// The three attacks of issue 20 against `order` (a CONFIRMED order).
fn attacks(order: &Value) -> [Attack; 3] {
    let order_id = order["id"].as_str().unwrap();
    let payment_id = order["payment_id"].as_str().unwrap();
    [
        Attack {
            svc: Svc::Payment,
            path: format!("/api/v1/payments/{payment_id}/refund"),
            body: json!({}),
        },
        Attack {
            svc: Svc::Inventory,
            path: format!("/api/v1/reservations/{order_id}/release"),
            body: json!({}),
        },
        Attack {
            svc: Svc::Payment,
            path: "/api/v1/payments".into(),
            body: json!({
                "order_id": uuid::Uuid::new_v4(),
                "currency": "EUR",
                "payment_method": "card",
                "items": [{"sku": "SKU-1", "quantity": 1}],
            }),
        },
    ]
}

/// Sends `attack` with `xfcc` (none: no header) and returns the answer.
async fn send(cluster: &Cluster, attack: &Attack, xfcc: Option<&str>) -> (StatusCode, Value) {
    let mut request = cluster
        .request(attack.svc, Method::POST, &attack.path)
        .json(&attack.body);
    if let Some(xfcc) = xfcc {
        request = request.header("x-forwarded-client-cert", xfcc);
    }
    json(request.send().await.unwrap()).await
}

/// The identities that must be refused on every attacked route: notify-service (a service of the
/// tenant the call graph names for none of them) and order-service's account in another trust
/// domain, each as the attacked service's sidecar would write it.
fn wrong_identities(svc: Svc) -> [String; 2] {
    let callee = spiffe_id(TENANT, svc);
    let evil = spiffe_id(TENANT, Svc::Order).replace("cluster.local", "evil.example");
    [
        xfcc_from(&spiffe_id(TENANT, Svc::Notify), &callee),
        xfcc_from(&evil, &callee),
    ]
}

fn assert_refused(answer: &(StatusCode, Value), what: &str) {
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{what}: {}", answer.1);
    assert_eq!(answer.1["type"], CALLER_NOT_ALLOWED, "{what}: {}", answer.1);
}

/// The `caller not allowed` lines `svc` has logged, as (caller, route).
fn refusals_logged(cluster: &Cluster, svc: Svc) -> Vec<(String, String)> {
    cluster
        .log(svc)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "caller not allowed")
        .map(|line| {
            let field = |k: &str| line[k].as_str().unwrap_or_default().to_owned();
            (field("caller"), field("route"))
        })
        .collect()
}

#[tokio::test]
async fn in_the_cluster_the_three_attacks_are_refused_and_the_saga_still_runs() {
    let cluster = Cluster::start_with(
        TENANT,
        Options {
            as_in_the_cluster: true,
            ..Options::default()
        },
    )
    .await;
    cluster.seed_stock("SKU-1", 10).await;
    // The saga's calls cross the edges with the identities the call graph names.
    let (status, order) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-1", 2)]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(cluster.stock("SKU-1").await, (8, 0, 2));

    for attack in attacks(&order) {
        let what = format!("{:?} POST {}", attack.svc, attack.path);
        let past_the_sidecar = send(&cluster, &attack, None).await;
        assert_refused(&past_the_sidecar, &format!("{what} without an identity"));
        for xfcc in wrong_identities(attack.svc) {
            assert_refused(&send(&cluster, &attack, Some(&xfcc)).await, &xfcc);
        }
    }
    // Nothing moved: the payment is still captured, the stock still sold, no payment was made
    // for the invented order.
    assert_eq!(cluster.stock("SKU-1").await, (8, 0, 2));
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&cluster.db(Svc::Payment).await)
        .await
        .unwrap();
    assert_eq!(payments, 1, "only the order's own payment exists");
    // Each refusal is logged with the caller's SPIFFE id ("none" past the sidecar). The log
    // reaches its file after the answer (a loaded machine once read it first): wait for the
    // lines, and name what is missing if they never come.
    let notify = spiffe_id(TENANT, Svc::Notify);
    let expected: Vec<(String, String)> = [
        ("none", "/api/v1/payments/{id}/refund"),
        (notify.as_str(), "/api/v1/payments/{id}/refund"),
        (notify.as_str(), "/api/v1/payments"),
    ]
    .into_iter()
    .map(|(caller, route)| (caller.to_owned(), route.to_owned()))
    .collect();
    let all_logged = || async {
        let logged = refusals_logged(&cluster, Svc::Payment);
        let missing: Vec<_> = expected.iter().filter(|e| !logged.contains(e)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {missing:?} in {logged:?}"))
        }
    };
    if let Err(missing) = poll(std::time::Duration::from_secs(10), all_logged).await {
        panic!("payment-service did not log its refusals: {missing}");
    }

    // order-service's public API is the gateway's: no identity, or another one, is refused.
    let orders = cluster.url(Svc::Order, "/api/v1/orders");
    let direct = |xfcc: Option<String>| {
        let mut request = cluster
            .client
            .get(orders.clone())
            .header("x-tenant-id", TENANT);
        if let Some(xfcc) = xfcc {
            request = request.header("x-forwarded-client-cert", xfcc);
        }
        request.send()
    };
    let order_id = spiffe_id(TENANT, Svc::Order);
    assert_refused(
        &json(direct(None).await.unwrap()).await,
        "GET /api/v1/orders, no identity",
    );
    let as_payment = xfcc_from(&spiffe_id(TENANT, Svc::Payment), &order_id);
    assert_refused(
        &json(direct(Some(as_payment)).await.unwrap()).await,
        "GET /api/v1/orders as payment-service",
    );
    let (status, list) = json(
        direct(Some(xfcc_from(GATEWAY_ID, &order_id)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the gateway's identity: {list}");

    // The compensating branch uses the refund and release routes with the right identities.
    let (status, cancelled) = cluster.cancel_order(order["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(cluster.stock("SKU-1").await, (10, 0, 0));
    assert_invariants(&cluster, &[("SKU-1", 10)]).await;
}

#[tokio::test]
async fn a_wrong_identity_is_refused_without_the_cluster_setting_too() {
    // `make up` and docker-compose: no mesh, REQUIRE_PEER_IDENTITY off.
    let cluster = Cluster::start(TENANT).await;
    cluster.seed_stock("SKU-1", 10).await;
    let (_, order) = cluster
        .place_order(&key(), &order_body_unpriced(&[("SKU-1", 2)]))
        .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    for attack in attacks(&order) {
        for xfcc in wrong_identities(attack.svc) {
            assert_refused(&send(&cluster, &attack, Some(&xfcc)).await, &xfcc);
        }
    }
    assert_eq!(cluster.stock("SKU-1").await, (8, 0, 2));
    // The identity the call graph names is served, and so — without the setting, where there is
    // no mesh to vouch for anyone — is a request with none.
    let payment = spiffe_id(TENANT, Svc::Payment);
    let path = format!(
        "/api/v1/payments?order_id={}",
        order["id"].as_str().unwrap()
    );
    for xfcc in [
        Some(xfcc_from(&spiffe_id(TENANT, Svc::Order), &payment)),
        None,
    ] {
        let mut request = cluster.request(Svc::Payment, Method::GET, &path);
        if let Some(xfcc) = &xfcc {
            request = request.header("x-forwarded-client-cert", xfcc);
        }
        let (status, list) = json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{xfcc:?}: {list}");
        assert_eq!(list["items"][0]["status"], "CAPTURED", "{list}");
    }
    assert_invariants(&cluster, &[("SKU-1", 10)]).await;
}
