//! Trace-context propagation on every hop, as a crate of its own: W3C `traceparent`/`tracestate`,
//! `baggage`, and B3 in both its single (`b3`) and multi-header (`x-b3-*`) forms, so the services
//! continue the trace Envoy started whichever format the mesh uses; and the `x-request-id` that
//! travels with it. It reads and writes header maps and OpenTelemetry contexts only — no server,
//! no database — so the fuzz targets and the propagation benchmark build without the services'
//! stack; `platform` wires it into the server middleware and the HTTP client.
//!
//! Precedence when a request carries both formats: a valid W3C `traceparent` wins; B3 is the
//! fallback (single header before multi). Headers that are malformed, oversized, or repeated (even
//! with the same value) are ignored — the request is served as if they were absent — never an error;
//! except `tracestate` and `baggage`, whose repeated headers are one list (W3C). The W3C formats
//! are this crate's own, exactly by the specifications ([`w3c`]); B3 is OpenTelemetry's
//! (`b3`). `x-request-id` is forwarded byte for byte when it is sane, and generated when absent.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator},
};

mod b3;
pub mod w3c;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Largest value accepted per propagation header; anything longer is dropped unread.
fn max_len(header: &str) -> usize {
    match header {
        "traceparent" => 128,
        "tracestate" => 8192,
        "baggage" => 8192,
        "b3" => 256,
        _ => 64, // x-b3-traceid, x-b3-spanid, x-b3-parentspanid, x-b3-sampled, x-b3-flags
    }
}

/// Reads propagation headers from an incoming request, hiding any value that is not plain
/// visible ASCII, is over its size limit, or is repeated: a header that must carry one value
/// and carries two is invalid, whether or not the two agree. `tracestate` and `baggage` are
/// lists that may come in several headers: [`Extractor::get_all`] returns each of their values
/// that is ASCII and within the limit, in order.
pub(crate) struct GuardedExtractor<'a>(pub(crate) &'a HeaderMap);

/// Headers whose repetitions are one list.
fn is_list(header: &str) -> bool {
    matches!(header, "tracestate" | "baggage")
}

impl Extractor for GuardedExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let mut values = self.0.get_all(key).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let value = first.to_str().ok()?;
        (value.len() <= max_len(key)).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        if !is_list(key) {
            return self.get(key).map(|value| vec![value]);
        }
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.len() <= max_len(key))
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

/// Which formats to read and write, from `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `b3`,
/// `b3multi`, `none`). Unset means all of them, which is what the mesh needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropagatorSet {
    pub tracecontext: bool,
    pub baggage: bool,
    pub b3_single: bool,
    pub b3_multi: bool,
}

impl PropagatorSet {
    pub const ALL: Self = Self {
        tracecontext: true,
        baggage: true,
        b3_single: true,
        b3_multi: true,
    };

    /// Parses an `OTEL_PROPAGATORS` value; unknown names are reported, not ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = Self {
            tracecontext: false,
            baggage: false,
            b3_single: false,
            b3_multi: false,
        };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "tracecontext" => set.tracecontext = true,
                "baggage" => set.baggage = true,
                "b3" => set.b3_single = true,
                "b3multi" => set.b3_multi = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown propagator `{other}` (supported: tracecontext, baggage, b3, b3multi, none)"
                    ));
                }
            }
        }
        Ok(set)
    }

    /// The composite propagator. B3 comes first and W3C after it, so that when both are valid
    /// the W3C context — extracted last — is the one that stays.
    pub fn build(self) -> TextMapCompositePropagator {
        let mut parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
        if let Some(b3) = b3::propagator(self.b3_single, self.b3_multi) {
            parts.push(b3);
        }
        if self.tracecontext {
            parts.push(Box::new(w3c::TraceContextPropagator));
        }
        if self.baggage {
            parts.push(Box::new(w3c::BaggagePropagator));
        }
        TextMapCompositePropagator::new(parts)
    }
}

static PROPAGATOR: OnceLock<TextMapCompositePropagator> = OnceLock::new();

/// Sets the process-wide propagator once; later calls keep the first.
pub fn install(set: PropagatorSet) {
    let _ = PROPAGATOR.set(set.build());
}

fn propagator() -> &'static TextMapCompositePropagator {
    PROPAGATOR.get_or_init(|| PropagatorSet::ALL.build())
}

/// The remote parent context carried by `headers` (empty when there is none or it is invalid).
pub fn extract(headers: &HeaderMap) -> Context {
    propagator().extract(&GuardedExtractor(headers))
}

/// `cx` with `first` as the first members of its baggage (replacing members of the same keys):
/// this service's own members, which survive every limit.
pub fn with_baggage_first(cx: &Context, first: &[(&str, &str)]) -> Context {
    let first = first
        .iter()
        .filter_map(|(k, v)| w3c::BaggageMember::new(k, v))
        .collect();
    cx.with_value(w3c::baggage_of(cx).with_first(first))
}

/// Writes `cx` into `headers` in every enabled format.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    propagator().inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
}

/// A trace context (and request id) as header name → value pairs, stored beside work that another
/// task finishes later (an outbox entry, an order the reconciler may settle).
pub type StoredContext = std::collections::BTreeMap<String, String>;

/// The trace context `cx` (and the request's `request_id`) to store, so the work finished later
/// continues the same trace and the same request. (`platform::telemetry::capture_current` passes
/// the current span's context and request id.)
pub fn capture(cx: &Context, request_id: Option<HeaderValue>) -> StoredContext {
    let mut headers = HeaderMap::new();
    inject(cx, &mut headers);
    if let Some(id) = request_id {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// The context stored by [`capture`] (empty when nothing usable was stored).
pub fn extract_stored(stored: &StoredContext) -> Context {
    let mut headers = HeaderMap::new();
    for (name, value) in stored {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    extract(&headers)
}

/// The `x-request-id` stored by [`capture`], if it is a valid one.
pub fn stored_request_id(stored: &StoredContext) -> Option<HeaderValue> {
    let value = HeaderValue::from_str(stored.get(REQUEST_ID_HEADER)?).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(REQUEST_ID_HEADER, value.clone());
    (request_id(&headers) == value).then_some(value)
}

/// The request id to use for a request: the incoming one if it is 1–200 visible ASCII
/// characters, otherwise a new UUID.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(REQUEST_ID_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None)
            if (1..=200).contains(&value.len())
                && value.as_bytes().iter().all(|b| b.is_ascii_graphic()) =>
        {
            value.clone()
        }
        _ => new_request_id(),
    }
}

pub fn new_request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};

    const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

    #[test]
    fn a_stored_request_id_is_returned_only_when_valid() {
        let stored = |id: &str| {
            std::collections::BTreeMap::from([(REQUEST_ID_HEADER.to_owned(), id.to_owned())])
        };
        assert_eq!(
            stored_request_id(&stored("req-1/A.b_c")),
            Some(HeaderValue::from_static("req-1/A.b_c"))
        );
        assert_eq!(stored_request_id(&stored("has spaces")), None);
        assert_eq!(stored_request_id(&stored(&"x".repeat(201))), None);
        assert_eq!(stored_request_id(&Default::default()), None);
    }

    /// A header map of `pairs`, repeats kept (also the W3C conformance tests' builder).
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// (trace id, sampled) of the extracted remote parent, if any.
    fn parent(h: &HeaderMap) -> Option<(String, bool)> {
        let cx = extract(h);
        let sc = cx.span().span_context().clone();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.is_sampled()))
    }

    #[test]
    fn extraction_table() {
        let traceparent = |flags: &str| format!("00-{W3C_TRACE}-00f067aa0ba902b7-{flags}");
        let b3_single = |sampled: &str| format!("{B3_TRACE}-e457b5a2e4d86bd1-{sampled}");
        type Case<'a> = (&'a str, Vec<(&'a str, String)>, Option<(&'a str, bool)>);
        let cases: Vec<Case> = vec![
            (
                "w3c sampled",
                vec![("traceparent", traceparent("01"))],
                Some((W3C_TRACE, true)),
            ),
            (
                "w3c not sampled",
                vec![("traceparent", traceparent("00"))],
                Some((W3C_TRACE, false)),
            ),
            (
                "b3 single sampled",
                vec![("b3", b3_single("1"))],
                Some((B3_TRACE, true)),
            ),
            (
                "b3 single not sampled",
                vec![("b3", b3_single("0"))],
                Some((B3_TRACE, false)),
            ),
            (
                "b3 multi",
                vec![
                    ("x-b3-traceid", B3_TRACE.into()),
                    ("x-b3-spanid", "e457b5a2e4d86bd1".into()),
                    ("x-b3-sampled", "1".into()),
                ],
                Some((B3_TRACE, true)),
            ),
            (
                "b3 multi 64-bit trace id",
                vec![
                    ("x-b3-traceid", "a3ce929d0e0e4736".into()),
                    ("x-b3-spanid", "e457b5a2e4d86bd1".into()),
                    ("x-b3-sampled", "0".into()),
                ],
                Some(("0000000000000000a3ce929d0e0e4736", false)),
            ),
            (
                "both formats: w3c wins",
                vec![("b3", b3_single("1")), ("traceparent", traceparent("00"))],
                Some((W3C_TRACE, false)),
            ),
            (
                "invalid w3c falls back to b3",
                vec![("traceparent", "00-xyz".into()), ("b3", b3_single("1"))],
                Some((B3_TRACE, true)),
            ),
            (
                "unknown w3c version ff",
                vec![("traceparent", format!("ff-{W3C_TRACE}-00f067aa0ba902b7-01"))],
                None,
            ),
            (
                "w3c all-zero trace id",
                vec![(
                    "traceparent",
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
                )],
                None,
            ),
            (
                "w3c wrong length",
                vec![(
                    "traceparent",
                    format!("00-{W3C_TRACE}a-00f067aa0ba902b7-01"),
                )],
                None,
            ),
            (
                "w3c upper-case hex",
                vec![(
                    "traceparent",
                    format!("00-{}-00f067aa0ba902b7-01", W3C_TRACE.to_uppercase()),
                )],
                None,
            ),
            (
                "b3 bad characters",
                vec![("b3", "zzzz-e457b5a2e4d86bd1-1".into())],
                None,
            ),
            (
                "oversized traceparent",
                vec![(
                    "traceparent",
                    format!("{}{}", traceparent("01"), "-".repeat(200)),
                )],
                None,
            ),
            ("no headers", vec![], None),
        ];
        for (name, pairs, want) in cases {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = parent(&headers(&pairs));
            let want = want.map(|(t, s)| (t.to_string(), s));
            assert_eq!(got, want, "case: {name}");
        }
    }

    #[test]
    fn repeated_traceparent_is_ignored_even_when_both_values_agree() {
        let h = headers(&[
            (
                "traceparent",
                &format!("00-{W3C_TRACE}-00f067aa0ba902b7-01"),
            ),
            ("traceparent", &format!("00-{B3_TRACE}-00f067aa0ba902b7-01")),
        ]);
        assert_eq!(parent(&h), None);
        let same = format!("00-{W3C_TRACE}-00f067aa0ba902b7-01");
        let h = headers(&[("traceparent", &same), ("traceparent", &same)]);
        assert_eq!(parent(&h), None);
    }

    #[test]
    fn injection_writes_every_format_with_the_sampled_flag() {
        for sampled in [true, false] {
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let sc = SpanContext::new(
                TraceId::from_hex(W3C_TRACE).unwrap(),
                opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                true,
                TraceState::default(),
            );
            let cx = with_baggage_first(
                &Context::new().with_remote_span_context(sc),
                &[("tenant", "tenant-a")],
            );
            let mut h = HeaderMap::new();
            inject(&cx, &mut h);
            let bit = if sampled { "1" } else { "0" };
            assert_eq!(
                h["traceparent"],
                format!("00-{W3C_TRACE}-00f067aa0ba902b7-0{bit}").as_str()
            );
            assert_eq!(
                h["b3"],
                format!("{W3C_TRACE}-00f067aa0ba902b7-{bit}").as_str()
            );
            assert_eq!(h["x-b3-traceid"], W3C_TRACE);
            assert_eq!(h["x-b3-spanid"], "00f067aa0ba902b7");
            assert_eq!(h["x-b3-sampled"], bit);
            assert_eq!(h["baggage"], "tenant=tenant-a");
            // What we inject, we extract again unchanged.
            assert_eq!(parent(&h), Some((W3C_TRACE.to_string(), sampled)));
        }
    }

    #[test]
    fn request_id_is_forwarded_byte_for_byte_or_generated() {
        let odd = "req-42/ÄBC".replace('Ä', "A"); // visible ASCII with punctuation
        assert_eq!(
            request_id(&headers(&[("x-request-id", &odd)])),
            odd.as_str()
        );
        let generated = request_id(&headers(&[]));
        assert!(uuid::Uuid::parse_str(generated.to_str().unwrap()).is_ok());
        let too_long = "a".repeat(201);
        assert_ne!(
            request_id(&headers(&[("x-request-id", &too_long)])),
            too_long.as_str()
        );
        assert_ne!(
            request_id(&headers(&[("x-request-id", "has space")])),
            "has space"
        );
    }

    #[test]
    fn propagator_list_parses() {
        assert_eq!(
            PropagatorSet::parse("tracecontext,baggage,b3multi"),
            Ok(PropagatorSet {
                tracecontext: true,
                baggage: true,
                b3_single: false,
                b3_multi: true
            })
        );
        assert!(PropagatorSet::parse("xray").is_err());
    }
}
