//! W3C Trace Context and Baggage end to end: a request carrying another vendor's `tracestate`
//! (split over two headers, with a multi-tenant key) and `baggage` split over two headers crosses
//! all four services, and every hop — payment → inventory directly, order → notify through the
//! outbox — carries the same trace, the vendor's `tracestate` intact, the `random` flag, the
//! caller's baggage members intact, and this platform's `tenant` and `order_id`. An unsampled
//! parent with the `random` flag keeps it on every hop too, though no service records a span.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ordermesh_e2e::{Cluster, Options, SeenRequest, eventually, key, order_body};
use reqwest::StatusCode;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn header<'a>(seen: &'a SeenRequest, name: &str) -> Vec<&'a str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The hop carries this trace with the trace flags `flags`.
fn check_traceparent(seen: &SeenRequest, flags: &str) {
    let hop = format!("{} {}", seen.method, seen.path);
    let traceparent = header(seen, "traceparent");
    assert_eq!(traceparent.len(), 1, "{hop}: one traceparent");
    let parts: Vec<&str> = traceparent[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{hop}: {traceparent:?}");
    assert_eq!((parts[0], parts[1]), ("00", TRACE_ID), "{hop}: same trace");
    assert_eq!(parts[3], flags, "{hop}: the incoming flags propagated");
}

fn check_hop(seen: &SeenRequest, order_id: &str) {
    check_traceparent(seen, "03");
    let hop = format!("{} {}", seen.method, seen.path);
    assert_eq!(
        header(seen, "tracestate"),
        ["congo=t61rcWkgMzE,fw529a3039@dt=a b,rojo=00f067aa0ba902b7"],
        "{hop}: the vendor's tracestate, one list, intact"
    );
    let baggage = header(seen, "baggage");
    assert_eq!(baggage.len(), 1, "{hop}: {baggage:?}");
    assert_eq!(
        baggage[0],
        format!(
            "tenant=tenant-a,order_id={order_id},userId=alice,serverNode=DF%2028;region=eu,isProduction=false"
        ),
        "{hop}: the caller's members intact after ours"
    );
}

/// A cluster whose payment → inventory and order → notify calls pass through recording proxies,
/// with stock for one order.
async fn observed_cluster() -> Cluster {
    let cluster = Cluster::start_with(
        "tenant-a",
        Options {
            proxy_inventory: true,
            proxy_notify: true,
            ..Options::default()
        },
    )
    .await;
    cluster.seed_stock("SKU-1", 10).await;
    cluster
}

/// Places one order with `headers` (repeated names stay separate headers), expects it created,
/// and returns it with the requests payment sent to inventory and the outbox's deliveries to
/// notify (waited for).
async fn order_and_its_hops(
    cluster: &Cluster,
    headers: &[(&str, &str)],
) -> (serde_json::Value, Vec<SeenRequest>, Vec<SeenRequest>) {
    let (status, order) = cluster
        .place_order_with(&key(), &order_body(&[("SKU-1", 1, 100)]), headers)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let inventory = cluster.inventory_proxy.as_ref().unwrap().seen();
    assert!(
        !inventory.is_empty(),
        "payment called inventory through the proxy: {inventory:?}"
    );
    let notify = cluster.notify_proxy.as_ref().unwrap();
    let delivered = eventually(
        "the confirmation delivered to notify-service",
        Duration::from_secs(10),
        || {
            let seen = notify.seen();
            async move {
                let posts: Vec<SeenRequest> =
                    seen.into_iter().filter(|s| s.method == "POST").collect();
                (!posts.is_empty()).then_some(posts)
            }
        },
    )
    .await;
    (order, inventory, delivered)
}

#[tokio::test]
async fn another_vendors_tracestate_and_split_baggage_cross_all_four_services_intact() {
    let cluster = observed_cluster().await;
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-03");
    let (order, inventory, notify) = order_and_its_hops(
        &cluster,
        &[
            ("traceparent", &traceparent),
            ("tracestate", "congo=t61rcWkgMzE, fw529a3039@dt=a b"),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("baggage", "userId=alice"),
            (
                "baggage",
                "serverNode=DF%2028 ; region=eu, isProduction=false",
            ),
        ],
    )
    .await;
    assert_eq!(order["trace_id"], TRACE_ID);
    let order_id = order["id"].as_str().unwrap();
    for seen in inventory.iter().chain(&notify) {
        check_hop(seen, order_id);
    }
}

/// W3C Trace Context Level 2, §3.2.2.5.2: "If the flag is set in the incoming traceparent header,
/// it MUST also be set in all outgoing traceparent headers which use the same trace-id." With
/// `sampled` unset the services' parent-based sampler drops their own spans, and the flag must
/// survive that too: payment → inventory directly, order → notify through the outbox.
#[tokio::test]
async fn an_unsampled_parent_keeps_its_random_flag_on_every_hop() {
    let cluster = observed_cluster().await;
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-02");
    let (_, inventory, notify) =
        order_and_its_hops(&cluster, &[("traceparent", &traceparent)]).await;
    for seen in inventory.iter().chain(&notify) {
        check_traceparent(seen, "02");
    }
}
