//! Micro-benchmarks of the work every request does in every service, before any handler runs:
//! the tenant check (`platform::tenancy::TenantPolicy::check`) and turning a `Problem` into a
//! problem+json answer. Trace-context extraction and injection are benchmarked in their own crate
//! (`crates/trace-context/benches/propagation.rs`).
//!
//! Run with `make bench-platform` (or `cargo bench -p platform --bench hot_paths`). Sample sizes
//! and times are kept small so the whole set finishes in well under two minutes on two cores;
//! pass criterion options after `--` for longer runs.

use std::{hint::black_box, time::Duration};

use axum::{http::StatusCode, response::IntoResponse};
use commerce::values::FieldError;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use platform::{
    Problem,
    tenancy::{TENANT_HEADER, TenantId, TenantPolicy, XFCC_HEADER},
};

const XFCC: &str = "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;\
Hash=4f2b1d0e9c8a7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d;\
URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";

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

fn tenant(name: &str) -> TenantId {
    match TenantId::parse(name) {
        Ok(tenant) => tenant,
        Err(e) => panic!("bench tenant `{name}`: {e}"),
    }
}

fn tenancy_benches(c: &mut Criterion) {
    let policy = TenantPolicy::new(tenant("tenant-a"), vec!["istio-system".into()]);
    let mut group = c.benchmark_group("tenancy/check");
    let cases = [
        ("header-only", headers(&[(TENANT_HEADER, "tenant-a")])),
        (
            "with-xfcc",
            headers(&[(TENANT_HEADER, "tenant-a"), (XFCC_HEADER, XFCC)]),
        ),
        ("wrong-tenant-403", headers(&[(TENANT_HEADER, "tenant-b")])),
        ("missing-400", headers(&[])),
    ];
    for (name, map) in &cases {
        group.bench_function(*name, |b| b.iter(|| policy.check(black_box(map))));
    }
    group.finish();
}

fn problem_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("problem");
    let forbidden = Problem::new(StatusCode::FORBIDDEN, "wrong-tenant", "Wrong tenant")
        .detail("this service serves tenant `tenant-a` only");
    let invalid = Problem::invalid_fields(vec![
        FieldError::new("items[0].quantity", "must be between 1 and 1000"),
        FieldError::new(
            "currency",
            "`EURO` is not a supported ISO 4217 currency code",
        ),
    ]);
    group.bench_function("to_json/403", |b| {
        b.iter(|| serde_json::to_vec(black_box(&forbidden)))
    });
    group.bench_function("to_json/422-fields", |b| {
        b.iter(|| serde_json::to_vec(black_box(&invalid)))
    });
    group.bench_function("into_response/403", |b| {
        b.iter(|| black_box(forbidden.clone()).into_response())
    });
    group.bench_function("into_response/503-retry-after", |b| {
        b.iter(|| {
            Problem::unavailable(black_box("payment-service is unavailable"), 1).into_response()
        })
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
    name = hot_paths;
    config = quick();
    targets = tenancy_benches, problem_benches
}
criterion_main!(hot_paths);
