//! Fuzzes every propagation header together — `traceparent`, several `tracestate` and `baggage`,
//! B3 single and multi — through the real extractor and injector. Input: lines, the first byte of
//! each choosing the header. Properties: what is sent on parses again to itself; `tracestate` is
//! never sent empty and never without a valid `traceparent`; `baggage` stays within the W3C limits
//! and always carries this service's members first.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use trace_context::w3c::{
    BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, Baggage, TraceParent, parse_tracestate,
};

const NAMES: [&str; 9] = [
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-b3-parentspanid",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(pick) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let cx = trace_context::extract(&headers);
    let cx = trace_context::with_baggage_first(&cx, &[("tenant", "tenant-a"), ("order_id", "o-1")]);
    let mut out = HeaderMap::new();
    trace_context::inject(&cx, &mut out);
    let sent = |name: &str| out.get(name).and_then(|v| v.to_str().ok());

    if let Some(tp) = sent("traceparent") {
        let parsed = TraceParent::parse(tp).expect("what we send parses");
        assert_eq!(parsed.header(), tp);
    }
    if let Some(ts) = sent("tracestate") {
        assert!(!ts.is_empty(), "an empty tracestate is never sent");
        assert!(sent("traceparent").is_some(), "never a tracestate alone");
        let members = parse_tracestate(&[ts]).expect("what we send parses");
        let again: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(again.join(","), ts);
    }
    let baggage = sent("baggage").expect("our members are always sent");
    assert!(baggage.len() <= BAGGAGE_MAX_BYTES);
    assert!(baggage.starts_with("tenant=tenant-a,order_id=o-1"));
    let parsed = Baggage::parse(&[baggage]);
    assert!(parsed.members().len() <= BAGGAGE_MAX_MEMBERS);
    assert_eq!(parsed.header(), baggage, "what we send parses to itself");
});
