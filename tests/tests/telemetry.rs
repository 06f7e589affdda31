//! Telemetry end to end: the four real services export to a real Jaeger, and one order placed
//! with an incoming B3 context is ONE trace with the right shape and tags; an unsampled context
//! exports nothing; `/metrics` parses as Prometheus text and moves by the expected amounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, time::Duration};

use ordermesh_e2e::{Cluster, Jaeger, Options, Svc, eventually, json, key, order_body, poll};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn traced_cluster(jaeger: &Jaeger) -> Cluster {
    let cluster = Cluster::start_with(
        "tenant-a",
        Options {
            env: jaeger.exporter_env(),
            ..Options::default()
        },
    )
    .await;
    cluster.seed_stock("SKU-1", 100).await;
    cluster
}

fn random_hex(len: usize) -> String {
    let mut hex = String::new();
    while hex.len() < len {
        hex.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    hex.truncate(len);
    hex
}

/// Places an order carrying a B3 multi-header context with the given sampled flag.
async fn order_with_b3(cluster: &Cluster, trace_id: &str, sampled: &str) -> Value {
    let span_id = random_hex(16);
    let b3 = [
        ("x-b3-traceid", trace_id),
        ("x-b3-spanid", span_id.as_str()),
        ("x-b3-sampled", sampled),
    ];
    let (status, order) = cluster
        .place_order_with(&key(), &order_body(&[("SKU-1", 1, 100)]), &b3)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order
}

struct Span {
    service: String,
    operation: String,
    parent: Option<String>,
    tags: HashMap<String, String>,
}

fn spans(trace: &Value) -> HashMap<String, Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tags = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_owned(),
                        t["value"].to_string().trim_matches('"').to_owned(),
                    )
                })
                .collect();
            let parent = s["references"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                .map(|r| r["spanID"].as_str().unwrap().to_owned());
            let span = Span {
                service: processes[s["processID"].as_str().unwrap()]["serviceName"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                operation: s["operationName"].as_str().unwrap().to_owned(),
                parent,
                tags,
            };
            (s["spanID"].as_str().unwrap().to_owned(), span)
        })
        .collect()
}

/// The service of the nearest ancestor span that belongs to another service.
fn calling_service<'a>(spans: &'a HashMap<String, Span>, span: &Span) -> Option<&'a str> {
    let mut parent = span.parent.as_ref();
    while let Some(id) = parent {
        let p = spans.get(id)?;
        if p.service != span.service {
            return Some(&p.service);
        }
        parent = p.parent.as_ref();
    }
    None
}

#[tokio::test]
async fn one_order_with_an_incoming_b3_context_is_one_trace_across_the_four_services() {
    let jaeger = Jaeger::start().await;
    let cluster = traced_cluster(&jaeger).await;
    let trace_id = random_hex(32);
    let order = order_with_b3(&cluster, &trace_id, "1").await;
    assert_eq!(
        order["trace_id"],
        trace_id.as_str(),
        "the incoming trace id is the one stored"
    );
    let order_id = order["id"].as_str().unwrap().to_owned();

    // Every span the order must produce: the four services' server spans, the saga steps and
    // one span per database transaction. Waiting for all of them (not just some) keeps the
    // assertions below from racing the services' batch exporters.
    let expected: &[(&str, &str)] = &[
        ("order-service", "POST /api/v1/orders"),
        ("order-service", "saga.pay"),
        ("order-service", "db.insert_order"),
        ("order-service", "db.record_outcome"),
        ("order-service", "outbox.deliver"),
        ("payment-service", "POST /api/v1/payments"),
        ("payment-service", "db.insert_payment"),
        ("payment-service", "db.finish_payment"),
        ("inventory-service", "POST /api/v1/reservations"),
        ("inventory-service", "db.reserve_stock"),
        ("notify-service", "POST /api/v1/notifications"),
        ("notify-service", "db.record_notification"),
    ];
    let trace = eventually(
        &format!("every expected span in Jaeger: {expected:?}"),
        Duration::from_secs(20),
        || {
            let jaeger = &jaeger;
            let trace_id = trace_id.clone();
            async move {
                let trace = jaeger.trace(&trace_id).await?;
                let spans = spans(&trace);
                expected
                    .iter()
                    .all(|(svc, op)| {
                        spans
                            .values()
                            .any(|s| s.service == *svc && s.operation == *op)
                    })
                    .then_some(trace)
            }
        },
    )
    .await;
    let spans = spans(&trace);
    let server = |svc: &str, op: &str| {
        spans
            .values()
            .find(|s| s.service == svc && s.operation == op)
            .unwrap_or_else(|| panic!("no {svc} span {op}"))
    };
    // The shape: order → payment → inventory, order → notify.
    assert_eq!(
        calling_service(&spans, server("payment-service", "POST /api/v1/payments")),
        Some("order-service")
    );
    assert_eq!(
        calling_service(
            &spans,
            server("inventory-service", "POST /api/v1/reservations")
        ),
        Some("payment-service")
    );
    assert_eq!(
        calling_service(
            &spans,
            server("notify-service", "POST /api/v1/notifications")
        ),
        Some("order-service")
    );
    let root = server("order-service", "POST /api/v1/orders");
    assert!(
        root.parent.is_some(),
        "order-service continued the caller's B3 span instead of starting a trace"
    );
    for span in spans.values() {
        assert_eq!(
            span.tags.get("tenant").map(String::as_str),
            Some("tenant-a"),
            "{} {}",
            span.service,
            span.operation
        );
        assert_eq!(
            span.tags.get("service_type").map(String::as_str),
            Some(span.service.trim_end_matches("-service")),
            "{} {}",
            span.service,
            span.operation
        );
        assert_eq!(
            span.tags.get("order_id"),
            Some(&order_id),
            "{} {}",
            span.service,
            span.operation
        );
    }
}

#[tokio::test]
async fn an_unsampled_incoming_context_exports_no_span() {
    let jaeger = Jaeger::start().await;
    let cluster = traced_cluster(&jaeger).await;
    let unsampled = random_hex(32);
    let order = order_with_b3(&cluster, &unsampled, "0").await;
    assert_eq!(
        order["trace_id"],
        unsampled.as_str(),
        "the trace is still continued, only not recorded"
    );
    // A sampled order placed afterwards is the barrier: once its spans from every service have
    // arrived, anything the unsampled one had exported would have arrived too.
    let sampled = random_hex(32);
    order_with_b3(&cluster, &sampled, "1").await;
    eventually(
        "the sampled order's trace from every service",
        Duration::from_secs(20),
        || {
            let jaeger = &jaeger;
            let sampled = sampled.clone();
            async move {
                let trace = jaeger.trace(&sampled).await?;
                let services: std::collections::HashSet<String> =
                    spans(&trace).values().map(|s| s.service.clone()).collect();
                (services.len() == 4).then_some(())
            }
        },
    )
    .await;
    assert!(
        jaeger.trace(&unsampled).await.is_none(),
        "no span of the unsampled trace was exported"
    );
}

/// One sample's value, by metric name and labels.
fn sample(metrics: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Scrapes until `ready` holds for what the service reports, for at most 10 s; fails the test
/// otherwise.
async fn scrape_until(
    cluster: &Cluster,
    svc: Svc,
    ready: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let scraped = poll(Duration::from_secs(10), || async {
        let metrics = scrape(cluster, svc).await;
        if ready(&metrics) {
            Ok(metrics)
        } else {
            Err(())
        }
    })
    .await;
    scraped
        .unwrap_or_else(|()| panic!("the condition on {svc:?}'s /metrics did not hold within 10 s"))
}

async fn scrape(cluster: &Cluster, svc: Svc) -> prometheus_parse::Scrape {
    let text = cluster.api(svc).metrics_text().await;
    assert!(
        !text.contains("order_id="),
        "no metric is labelled by order id"
    );
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text")
}

/// `service_info{version, tenant} 1` is set while the router is built, before any request:
/// the metrics recorder must be installed by then, or the gauge goes nowhere (the dashboards'
/// tenant list read it and found nothing on the local mesh's fresh processes).
#[tokio::test]
async fn every_service_publishes_service_info_from_its_first_scrape() {
    let cluster = Cluster::start("tenant-a").await;
    for svc in Svc::ALL {
        let metrics = scrape(&cluster, svc).await;
        assert_eq!(
            sample(&metrics, "service_info", &[("tenant", "tenant-a")]),
            1.0,
            "{svc:?}: no service_info{{tenant=\"tenant-a\"}} 1 in its first scrape"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_calls_and_saga_outcomes() {
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 3).await;
    let before = scrape(&cluster, Svc::Order).await;
    let created = [
        ("method", "POST"),
        ("route", "/api/v1/orders"),
        ("status", "201"),
        ("tenant", "tenant-a"),
    ];
    // Three confirmed, then one out of stock, then one client mistake.
    for _ in 0..4 {
        let (status, _) = cluster
            .place_order(&key(), &order_body(&[("SKU-1", 1, 100)]))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = cluster
        .place_order("k", &order_body(&[("SKU-1", 0, 100)]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    cluster.wait_until_settled().await;
    // The outbox backlog gauge is refreshed once per poll interval (order's outbox.rs), so a
    // scrape right after the orders settle may still show the pass before the last delivery
    // (it read 1 once on a loaded machine): wait for the refresh that shows it empty.
    let after = scrape_until(&cluster, Svc::Order, |s| {
        sample(s, "order_outbox_pending", &[]) == 0.0
    })
    .await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(moved("http_server_requests_total", &created), 4.0);
    assert_eq!(
        moved(
            "http_server_requests_total",
            &[("route", "/api/v1/orders"), ("status", "422")]
        ),
        1.0
    );
    assert_eq!(
        moved("orders_settled_total", &[("outcome", "confirmed")]),
        3.0
    );
    assert_eq!(
        moved(
            "orders_settled_total",
            &[("outcome", "failed"), ("reason", "out_of_stock")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "http_client_requests_total",
            &[("target", "payment-service"), ("outcome", "2xx")]
        ),
        4.0
    );
    assert_eq!(
        moved(
            "http_client_requests_total",
            &[("target", "notify-service"), ("outcome", "2xx")]
        ),
        4.0
    );
    assert_eq!(
        moved("http_server_request_duration_seconds_count", &created),
        4.0
    );
    assert_eq!(
        sample(&after, "db_pool_max_connections", &[]),
        10.0,
        "the pool's ceiling (DATABASE_MAX_CONNECTIONS' default), what saturation is measured against"
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "db_pool_connections" && s.labels.get("state") == Some("idle"))
    );
    let inventory = scrape(&cluster, Svc::Inventory).await;
    assert!(
        sample(
            &inventory,
            "http_server_requests_total",
            &[("route", "/api/v1/reservations"), ("method", "POST")]
        ) >= 4.0,
        "inventory counts the reservations it served"
    );
}

#[tokio::test]
async fn x_request_id_is_forwarded_byte_for_byte_on_every_hop() {
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 5).await;
    let request_id = format!("req-{}/A.b_c", uuid::Uuid::new_v4().simple());
    let response = cluster
        .request(Svc::Order, Method::POST, "/api/v1/orders")
        .header("idempotency-key", key())
        .header("x-request-id", &request_id)
        .json(&order_body(&[("SKU-1", 1, 100)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());
    // Each service logs its requests' ids; payment and inventory were called with ours, and so
    // was notify, by the outbox delivery that finishes this request later (in the mesh the id
    // carries Envoy's sampling decision: a new one would drop the delivery from the trace).
    for svc in [Svc::Payment, Svc::Inventory, Svc::Notify] {
        let logged = eventually(
            "the request id in the callee's log",
            Duration::from_secs(10),
            || {
                let log = cluster.log(svc);
                let request_id = request_id.clone();
                async move {
                    log.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                        .any(|l| l["request_id"] == request_id.as_str())
                        .then_some(())
                }
            },
        )
        .await;
        assert_eq!(logged, ());
    }
}

#[tokio::test]
async fn malformed_oversized_or_conflicting_trace_headers_are_ignored() {
    let cluster = Cluster::start("tenant-a").await;
    cluster.seed_stock("SKU-1", 50).await;
    let long = "f".repeat(10_000);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("traceparent", "00-zzzz-yyyy-01".into())],
        vec![("traceparent", format!("00-{long}-00f067aa0ba902b7-01"))],
        vec![
            ("b3", "not-a-b3-header".into()),
            ("x-b3-traceid", "xyz".into()),
            ("x-b3-sampled", "maybe".into()),
        ],
        vec![
            ("tracestate", long.clone()),
            ("baggage", format!("k={long}")),
        ],
        vec![
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
            (
                "traceparent",
                "00-80f198ee56343ba864fe8b2a57d3eff7-00f067aa0ba902b7-01".into(),
            ),
        ],
        vec![("x-request-id", "has spaces and ünïcode".into())],
    ];
    for headers in cases {
        let sent: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, order) = cluster
            .place_order_with(&key(), &order_body(&[("SKU-1", 1, 100)]), &sent)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{headers:?}: {order}");
        assert_eq!(order["status"], "CONFIRMED");
        let trace_id = order["trace_id"].as_str().unwrap();
        assert_eq!(trace_id.len(), 32, "a fresh trace was started instead");
        assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace_id, "80f198ee56343ba864fe8b2a57d3eff7");
    }
}

#[tokio::test]
async fn a_reconciled_order_is_a_new_trace_linked_to_the_request_that_created_it() {
    let jaeger = Jaeger::start().await;
    let mut cluster = traced_cluster(&jaeger).await;
    cluster.stop_service(Svc::Payment).await;
    let trace_id = random_hex(32);
    let (status, problem) = json(
        cluster
            .request(Svc::Order, Method::POST, "/api/v1/orders")
            .header("idempotency-key", key())
            .header(
                "traceparent",
                format!("00-{trace_id}-{}-01", random_hex(16)),
            )
            .json(&order_body(&[("SKU-1", 1, 100)]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    let order_id = problem["order_id"].as_str().unwrap().to_owned();
    cluster.start_service(Svc::Payment).await;

    // The reconciler confirms the order in a trace of its own whose root links to ours.
    let linked = eventually(
        "a reconcile.order span linked to the creating request",
        Duration::from_secs(30),
        || {
            let jaeger = &jaeger;
            let trace_id = trace_id.clone();
            let order_id = order_id.clone();
            async move {
                jaeger
                    .traces_with("order-service", "reconcile.order")
                    .await
                    .into_iter()
                    .flat_map(|trace| trace["spans"].as_array().cloned().unwrap_or_default())
                    .find(|span| {
                        span["operationName"] == "reconcile.order"
                            && span["tags"].as_array().is_some_and(|tags| {
                                tags.iter().any(|t| {
                                    t["key"] == "order_id" && t["value"] == order_id.as_str()
                                })
                            })
                            && span["references"].as_array().is_some_and(|refs| {
                                refs.iter().any(|r| r["traceID"] == trace_id.as_str())
                            })
                    })
            }
        },
    )
    .await;
    assert_ne!(
        linked["traceID"],
        trace_id.as_str(),
        "the reconciliation is a trace of its own"
    );
    let (_, order) = cluster
        .get_json(Svc::Order, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(order["status"], "CONFIRMED");
}
