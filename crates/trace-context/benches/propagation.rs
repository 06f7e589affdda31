//! Micro-benchmarks of the trace-context work every request does in every service, before any
//! handler runs: extraction and injection (W3C and B3) and the `x-request-id` choice. Built with
//! this crate alone — no axum, no sqlx.
//!
//! Run with `make bench-platform` (or `cargo bench -p trace-context --bench propagation`). Sample
//! sizes and times are kept small so the set finishes in well under a minute on two cores; pass
//! criterion options after `--` for longer runs.

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const B3_SINGLE: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

/// What an incoming mesh request typically carries besides trace context.
const COMMON: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("x-tenant-id", "tenant-a"),
    ("x-request-id", "5d2c1f0e-7a4b-4c3d-9e8f-1a2b3c4d5e6f"),
    ("user-agent", "ordermesh-loadgen/0.1.0"),
    ("accept", "*/*"),
];

fn with_common(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut all: Vec<(&'static str, &'static str)> = COMMON.to_vec();
    all.extend_from_slice(extra);
    headers(&all)
}

fn propagation_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("propagation/extract");
    let cases = [
        ("none", with_common(&[])),
        ("w3c", with_common(&[("traceparent", TRACEPARENT)])),
        (
            "w3c+baggage",
            with_common(&[
                ("traceparent", TRACEPARENT),
                ("tracestate", "congo=t61rcWkgMzE"),
                (
                    "baggage",
                    "tenant=tenant-a,order_id=0192f0c1-7a4b-7c3d-9e8f-1a2b3c4d5e6f",
                ),
            ]),
        ),
        ("b3-single", with_common(&[("b3", B3_SINGLE)])),
        (
            "b3-multi",
            with_common(&[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-sampled", "1"),
            ]),
        ),
        (
            // What Envoy sends when the mesh uses B3 and the client sent W3C: all of it.
            "w3c+b3-both",
            with_common(&[
                ("traceparent", TRACEPARENT),
                ("b3", B3_SINGLE),
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ]),
        ),
    ];
    for (name, map) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| trace_context::extract(black_box(map)));
        });
    }
    group.finish();

    let span = SpanContext::new(
        TraceId::from_bytes([0x4b; 16]),
        SpanId::from_bytes([0x0f; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(span);
    let cx_baggage = trace_context::with_baggage_first(
        &cx,
        &[
            ("tenant", "tenant-a"),
            ("order_id", "0192f0c1-7a4b-7c3d-9e8f-1a2b3c4d5e6f"),
        ],
    );
    let mut group = c.benchmark_group("propagation/inject");
    group.bench_function("w3c+b3", |b| {
        b.iter(|| {
            let mut map = HeaderMap::with_capacity(8);
            trace_context::inject(black_box(&cx), &mut map);
            map
        });
    });
    group.bench_function("w3c+b3+baggage", |b| {
        b.iter(|| {
            let mut map = HeaderMap::with_capacity(8);
            trace_context::inject(black_box(&cx_baggage), &mut map);
            map
        });
    });
    group.finish();

    let mut group = c.benchmark_group("propagation/request_id");
    let forwarded = with_common(&[]);
    group.bench_function("forwarded", |b| {
        b.iter(|| trace_context::request_id(black_box(&forwarded)));
    });
    let absent = headers(&[("x-tenant-id", "tenant-a")]);
    group.bench_function("generated", |b| {
        b.iter(|| trace_context::request_id(black_box(&absent)));
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
}

criterion_group! {
    name = propagation;
    config = quick();
    targets = propagation_benches
}
criterion_main!(propagation);
