//! W3C Trace Context (Level 1, and Level 2's random flag) and W3C Baggage, parsed and written
//! exactly as the specifications say — stricter and more complete than OpenTelemetry's own
//! propagators, which drop every flag but `sampled`, send an empty `tracestate`, accept extra
//! fields after a version-00 `traceparent` and read only the first of several `tracestate` or
//! `baggage` headers.
//!
//! - `traceparent`: `version-traceid-parentid-flags`, exactly 2/32/16/2 lowercase hex digits;
//!   version `ff`, an all-zero trace id or parent id, or anything after a version-00 value is
//!   invalid; a higher version is read by its first four fields (what follows must start with
//!   `-`). The `sampled` and `random` flags are kept and propagated — `random` exactly as received
//!   for the received trace, also from this service's own spans, whichever way its sampler
//!   decides; reserved bits are cleared.
//!   More than one `traceparent` is invalid (the crate's guarded extractor).
//! - `tracestate`: several headers are one list, in order; empty members are skipped; at most 32
//!   members, keys and values by the spec's grammar (`tenant@system` keys included), no duplicate
//!   key — anything else discards the whole `tracestate` but never the `traceparent`. An empty
//!   `tracestate` is never written.
//! - `baggage`: several headers are one list; a member that does not parse is dropped alone; at
//!   most [`BAGGAGE_MAX_MEMBERS`] members and [`BAGGAGE_MAX_BYTES`] bytes are propagated — the
//!   members beyond either limit are dropped whole, never cut. This service's own members
//!   (`tenant`, `order_id`) come first, so they survive every hop.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const BAGGAGE: &str = "baggage";

/// The `sampled` flag (Level 1).
pub const SAMPLED_FLAG: u8 = 0x01;
/// The `random` trace-id flag (Level 2).
pub const RANDOM_FLAG: u8 = 0x02;
/// The flags this implementation knows: `sampled` (Level 1) and `random` (Level 2).
pub const KNOWN_FLAGS: u8 = SAMPLED_FLAG | RANDOM_FLAG;
/// Most members in a `tracestate`.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// Most members propagated in `baggage` (W3C Baggage: at least 64 must be propagated).
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// Most bytes of `baggage` propagated (W3C Baggage: at least 8192 must be propagated).
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub version: u8,
    pub trace_id: u128,
    pub parent_id: u64,
    /// The flags as received (unknown bits included); [`Self::header`] writes the known ones.
    pub flags: u8,
}

fn lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn hex_u128(bytes: &[u8]) -> Option<u128> {
    lower_hex(bytes)
        .then(|| u128::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok())
        .flatten()
}

impl TraceParent {
    /// Parses one `traceparent` value; `None` when it is not valid (a new trace starts).
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = u8::try_from(hex_u128(&b[0..2])?).ok()?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = hex_u128(&b[3..35])?;
        let parent_id = u64::try_from(hex_u128(&b[36..52])?).ok()?;
        let flags = u8::try_from(hex_u128(&b[53..55])?).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The value this service sends: version 00, the known flags only.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.parent_id,
            self.flags & KNOWN_FLAGS
        )
    }
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// A `tracestate` key, by the grammar of Trace Context Level 1, §3.3.1.3.1 Key:
///
/// ```text
/// key = simple-key / multi-tenant-key
/// simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// multi-tenant-key = tenant-id "@" system-id
/// tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// ```
///
/// — a simple key of 1–256 characters, or a tenant id of 1–241 and a system id of 1–14 around
/// one `@`. Level 2 words the key more loosely (`( lcalpha / DIGIT ) 0*255( keychar )`, `@` one
/// of the `keychar`s), which allows every key above and more; but the official test suite at
/// strictness 2 discards keys only that wording allows (`test_tracestate_key_illegal_vendor_format`:
/// `foo@`, `@foo`, `foo@@bar`, `foo@bar@baz`; `test_tracestate_key_length_limit`: a 242-character
/// tenant id, a 15-character system id), so Level 1's grammar is the one followed — which also
/// refuses the digit-first simple keys and system ids that the suite does not test.
pub fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            (1..=256).contains(&b.len())
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&t.len())
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && (1..=14).contains(&s.len())
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
}

/// A `tracestate` value: 1–256 printable ASCII characters but `,` and `=`, not ending in a space.
pub fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=256).contains(&b.len())
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b.last() != Some(&b' ')
}

/// The members of the `tracestate` headers `values` (one list, in order), or `None` when the
/// list is invalid and must be discarded whole.
pub fn parse_tracestate(values: &[&str]) -> Option<Vec<(String, String)>> {
    let mut members: Vec<(String, String)> = Vec::new();
    for value in values {
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
                return None;
            }
            // A repeated key makes the list invalid — Level 1, §3.3.1.4: "Only one entry per key
            // is allowed because the entry represents that last position in the trace" — and an
            // invalid list is discarded whole (§4.3: "If the tracestate header cannot be parsed
            // the vendor MAY discard the entire header"), which the official test suite requires
            // at strictness 2 (`test_tracestate_duplicated_keys`: `foo=1,foo=1` or `foo=1,foo=2`,
            // in one header or two, leave no `foo`). So is a list of 33 members (§3.3.1.2:
            // `list = list-member 0*31( OWS "," OWS list-member )`).
            if members.iter().any(|(k, _)| k == key) || members.len() == TRACESTATE_MAX_MEMBERS {
                return None;
            }
            members.push((key.to_owned(), value.to_owned()));
        }
    }
    Some(members)
}

/// The W3C Trace Context propagator (`traceparent` + `tracestate`).
#[derive(Debug, Default)]
pub struct TraceContextPropagator;

/// What the incoming headers said about the trace this service continues, kept in the context
/// beside it, because OpenTelemetry's span context cannot carry it through this service's own
/// spans: the SDK writes `00` as the flags of a span its sampler drops, losing `random`, and its
/// `TraceState` key check refuses valid 14-character system ids.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReceivedTrace {
    trace_id: TraceId,
    /// The incoming `random` flag: [`RANDOM_FLAG`] or 0.
    random: u8,
    /// The `tracestate` to send on; `None` when it was absent, empty or invalid.
    tracestate: Option<String>,
}

impl ReceivedTrace {
    /// What `cx` received about the trace `trace_id`, if it received that trace.
    fn of(cx: &Context, trace_id: TraceId) -> Option<&Self> {
        cx.get::<Self>()
            .filter(|received| received.trace_id == trace_id)
    }
}

/// The flags to send for `sc`: this service's own `sampled` decision, and for a received trace
/// the `random` flag exactly as received — Trace Context Level 2, §3.2.2.5.2: "If the flag is set
/// in the incoming traceparent header, it MUST also be set in all outgoing traceparent headers
/// which use the same trace-id", and unset when it was unset.
fn outgoing_flags(sc: &SpanContext, received: Option<&ReceivedTrace>) -> u8 {
    let own = sc.trace_flags().to_u8();
    match received {
        Some(received) => (own & !RANDOM_FLAG) | received.random,
        None => own,
    }
}

impl TraceContextPropagator {
    /// The remote span context the headers carry, if `traceparent` is valid, with the
    /// `tracestate` header to send on (`None` when absent, empty or invalid).
    pub fn parse(extractor: &dyn Extractor) -> Option<(SpanContext, Option<String>)> {
        let parent = TraceParent::parse(extractor.get(TRACEPARENT)?)?;
        let states = extractor.get_all(TRACESTATE).unwrap_or_default();
        let state = parse_tracestate(&states)
            .filter(|members| !members.is_empty())
            .map(|members| {
                members
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let sc = SpanContext::new(
            TraceId::from(parent.trace_id),
            SpanId::from(parent.parent_id),
            TraceFlags::new(parent.flags & KNOWN_FLAGS),
            true,
            TraceState::default(),
        );
        Some((sc, state))
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let received = ReceivedTrace::of(cx, sc.trace_id());
        let parent = TraceParent {
            version: 0,
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            parent_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            flags: outgoing_flags(sc, received),
        };
        injector.set(TRACEPARENT, parent.header());
        let state = received
            .and_then(|received| received.tracestate.clone())
            .unwrap_or_else(|| sc.trace_state().header());
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some((sc, tracestate)) = Self::parse(extractor) else {
            return cx.clone();
        };
        let received = ReceivedTrace {
            trace_id: sc.trace_id(),
            random: sc.trace_flags().to_u8() & RANDOM_FLAG,
            tracestate,
        };
        cx.with_remote_span_context(sc).with_value(received)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(trace_fields())
    }
}

fn trace_fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()])
}

fn baggage_fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<[String; 1]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| [BAGGAGE.to_owned()])
}

/// An RFC 7230 `token` character.
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `baggage-octet`: printable ASCII but space, `"`, `,`, `;` and `\`.
fn baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(token_char)
}

fn valid_value(value: &str) -> bool {
    value.bytes().all(baggage_octet)
}

/// `key OWS = OWS value` with OWS removed, or `None` when it is not one.
fn key_value(text: &str, need_value: bool) -> Option<(String, Option<String>)> {
    let text = text.trim_matches([' ', '\t']);
    match text.split_once('=') {
        Some((k, v)) => {
            let (k, v) = (
                k.trim_end_matches([' ', '\t']),
                v.trim_start_matches([' ', '\t']),
            );
            (valid_key(k) && valid_value(v)).then(|| (k.to_owned(), Some(v.to_owned())))
        }
        None => (!need_value && valid_key(text)).then(|| (text.to_owned(), None)),
    }
}

/// One `baggage` list-member, normalised (no optional whitespace), its value still
/// percent-encoded as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageMember {
    pub key: String,
    /// `value` followed by its `;property` parts, as written on the wire.
    pub encoded: String,
}

impl BaggageMember {
    /// Parses one list-member; `None` when it does not follow the grammar.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let (key, value) = key_value(parts.next()?, true)?;
        let mut encoded = value.unwrap_or_default();
        for property in parts {
            let (k, v) = key_value(property, false)?;
            encoded.push(';');
            encoded.push_str(&k);
            if let Some(v) = v {
                encoded.push('=');
                encoded.push_str(&v);
            }
        }
        Some(Self { key, encoded })
    }

    /// A member with a plain value, percent-encoded as the spec requires.
    pub fn new(key: &str, value: &str) -> Option<Self> {
        use std::fmt::Write;
        if !valid_key(key) {
            return None;
        }
        let mut encoded = String::with_capacity(value.len());
        for b in value.bytes() {
            if baggage_octet(b) && b != b'%' {
                encoded.push(char::from(b));
            } else {
                let _ = write!(encoded, "%{b:02X}");
            }
        }
        Some(Self {
            key: key.to_owned(),
            encoded,
        })
    }

    /// The value, percent-decoded (properties left out); `None` when it is not valid UTF-8.
    pub fn value(&self) -> Option<String> {
        let raw = self
            .encoded
            .split(';')
            .next()
            .unwrap_or_default()
            .as_bytes();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let decoded = (raw[i] == b'%')
                .then(|| raw.get(i + 1..i + 3))
                .flatten()
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match decoded {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(raw[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }

    fn wire_len(&self) -> usize {
        self.key.len() + 1 + self.encoded.len()
    }
}

/// The W3C baggage of a request: its members in order, within the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<BaggageMember>,
}

impl Baggage {
    /// The members of the `baggage` headers `values` (one list, in order): members that do not
    /// parse are dropped, a repeated key keeps its first value, and members beyond the limits are
    /// dropped whole.
    pub fn parse(values: &[&str]) -> Self {
        let members = values
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(BaggageMember::parse);
        Self::default().with(members)
    }

    /// This baggage with `first` before its own members (a member of `first` replaces one of the
    /// same key), cut to the limits.
    pub fn with_first(&self, first: Vec<BaggageMember>) -> Self {
        let rest: Vec<BaggageMember> = self
            .members
            .iter()
            .filter(|m| !first.iter().any(|f| f.key == m.key))
            .cloned()
            .collect();
        Self::default().with(first.into_iter().chain(rest))
    }

    fn with(mut self, members: impl Iterator<Item = BaggageMember>) -> Self {
        let mut bytes = self.header_len();
        for member in members {
            if self.members.len() == BAGGAGE_MAX_MEMBERS {
                break;
            }
            if self.members.iter().any(|m| m.key == member.key) {
                continue;
            }
            let added = member.wire_len() + usize::from(!self.members.is_empty());
            if bytes + added > BAGGAGE_MAX_BYTES {
                continue;
            }
            bytes += added;
            self.members.push(member);
        }
        self
    }

    pub fn members(&self) -> &[BaggageMember] {
        &self.members
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.members.iter().find(|m| m.key == key)?.value()
    }

    /// The `baggage` header value (empty when there is no member).
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(self.header_len());
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&m.key);
            out.push('=');
            out.push_str(&m.encoded);
        }
        out
    }

    fn header_len(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.wire_len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    }
}

/// The baggage a context carries.
pub fn baggage_of(cx: &Context) -> Baggage {
    cx.get::<Baggage>().cloned().unwrap_or_default()
}

/// The W3C Baggage propagator: keeps the request's baggage (in order) in the context.
#[derive(Debug, Default)]
pub struct BaggagePropagator;

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let header = baggage_of(cx).header();
        if !header.is_empty() {
            injector.set(BAGGAGE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let values = extractor.get_all(BAGGAGE).unwrap_or_default();
        let baggage = Baggage::parse(&values);
        if baggage.members().is_empty() {
            cx.clone()
        } else {
            cx.with_value(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(baggage_fields())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderMap;

    use crate as propagation;
    use crate::{GuardedExtractor, tests::headers};

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const P: &str = "00f067aa0ba902b7";

    /// What this service continues and sends on, for incoming headers `pairs`.
    fn hop(pairs: &[(&str, &str)]) -> HeaderMap {
        let cx = propagation::extract(&headers(pairs));
        let mut out = HeaderMap::new();
        propagation::inject(&cx, &mut out);
        out
    }

    fn sent<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn traceparent_table() {
        let tp = |v: &str, t: &str, p: &str, f: &str| format!("{v}-{t}-{p}-{f}");
        // (case, value, what is sent on: None = a new trace starts)
        let cases: Vec<(&str, String, Option<String>)> = vec![
            (
                "valid sampled",
                tp("00", T, P, "01"),
                Some(tp("00", T, P, "01")),
            ),
            (
                "valid not sampled",
                tp("00", T, P, "00"),
                Some(tp("00", T, P, "00")),
            ),
            (
                "random flag kept",
                tp("00", T, P, "03"),
                Some(tp("00", T, P, "03")),
            ),
            (
                "random, not sampled",
                tp("00", T, P, "02"),
                Some(tp("00", T, P, "02")),
            ),
            (
                "reserved flag bits cleared",
                tp("00", T, P, "ff"),
                Some(tp("00", T, P, "03")),
            ),
            ("version ff invalid", tp("ff", T, P, "01"), None),
            (
                "higher version read",
                tp("cc", T, P, "01"),
                Some(tp("00", T, P, "01")),
            ),
            (
                "higher version, extra fields ignored",
                format!("{}-what-the-future-holds", tp("cc", T, P, "01")),
                Some(tp("00", T, P, "01")),
            ),
            (
                "higher version, no dash after flags",
                format!("{}x", tp("cc", T, P, "01")),
                None,
            ),
            (
                "version 00 with extra field",
                format!("{}-00", tp("00", T, P, "01")),
                None,
            ),
            (
                "version 00 trailing dash",
                format!("{}-", tp("00", T, P, "01")),
                None,
            ),
            (
                "all-zero trace id",
                tp("00", &"0".repeat(32), P, "01"),
                None,
            ),
            (
                "all-zero parent id",
                tp("00", T, &"0".repeat(16), "01"),
                None,
            ),
            (
                "upper-case trace id",
                tp("00", &T.to_uppercase(), P, "01"),
                None,
            ),
            ("upper-case version", tp("0A", T, P, "01"), None),
            ("upper-case flags", tp("00", T, P, "0A"), None),
            ("short trace id", tp("00", &T[1..], P, "01"), None),
            ("long parent id", tp("00", T, &format!("{P}0"), "01"), None),
            ("one-digit flags", format!("00-{T}-{P}-1"), None),
            ("three-digit version", tp("000", T, P, "01"), None),
            (
                "non-hex trace id",
                tp("00", &format!("{}g", &T[1..]), P, "01"),
                None,
            ),
            ("wrong separator", format!("00_{T}-{P}-01"), None),
            ("leading space", format!(" {}", tp("00", T, P, "01")), None),
            ("trailing space", format!("{} ", tp("00", T, P, "01")), None),
            ("empty", String::new(), None),
        ];
        for (case, value, want) in cases {
            let out = hop(&[("traceparent", &value), ("tracestate", "a=1")]);
            assert_eq!(
                sent(&out, TRACEPARENT).map(str::to_owned),
                want,
                "case: {case}"
            );
            if want.is_none() {
                assert_eq!(
                    sent(&out, TRACESTATE),
                    None,
                    "case: {case}: no tracestate without parent"
                );
            }
        }
    }

    #[test]
    fn more_than_one_traceparent_starts_a_new_trace() {
        let v = format!("00-{T}-{P}-01");
        let out = hop(&[("traceparent", &v), ("traceparent", &v)]);
        assert_eq!(sent(&out, TRACEPARENT), None);
    }

    #[test]
    fn an_accepted_version_00_traceparent_reserialises_to_the_same_bytes() {
        for flags in ["00", "01", "02", "03"] {
            let v = format!("00-{T}-{P}-{flags}");
            assert_eq!(TraceParent::parse(&v).unwrap().header(), v);
        }
    }

    /// What this service sends on from inside a span of its own that continues the incoming
    /// headers `pairs`: the span is started by the OpenTelemetry SDK with the sampler every
    /// service runs by default (`parentbased_always_on`), the way `tracing-opentelemetry` starts
    /// a request's server span (`parent.with_span(span)`).
    fn hop_through_own_span(pairs: &[(&str, &str)]) -> HeaderMap {
        use opentelemetry::trace::{Tracer, TracerProvider};
        use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .build();
        let parent = propagation::extract(&headers(pairs));
        let span = provider.tracer("w3c").start_with_context("own", &parent);
        let mut out = HeaderMap::new();
        propagation::inject(&parent.with_span(span), &mut out);
        out
    }

    /// Trace Context Level 2, §3.2.2.5.2 Random Trace ID Flag: "If the flag is set in the
    /// incoming traceparent header, it MUST also be set in all outgoing traceparent headers which
    /// use the same trace-id." — and, for the opposite case, "If the flag is unset in the
    /// incoming traceparent header, it MUST also be unset in any outgoing traceparent headers
    /// which use the same trace-id." The sampler's decision changes `sampled` only.
    #[test]
    fn the_random_flag_is_sent_on_from_this_services_own_span_sampled_or_not() {
        for flags in ["00", "01", "02", "03"] {
            let out = hop_through_own_span(&[("traceparent", &format!("00-{T}-{P}-{flags}"))]);
            let sent = sent(&out, TRACEPARENT).unwrap();
            let fields: Vec<&str> = sent.split('-').collect();
            assert_eq!(fields[1], T, "incoming {flags}: same trace");
            assert_ne!(fields[2], P, "incoming {flags}: our own span is the parent");
            assert_eq!(fields[3], flags, "incoming {flags}: sent {sent}");
        }
    }

    /// The same clause limits the flag to "outgoing traceparent headers which use the same
    /// trace-id": a span of another trace in a context that received the flag does not get it.
    #[test]
    fn the_random_flag_is_never_lent_to_another_trace() {
        let received =
            propagation::extract(&headers(&[("traceparent", &format!("00-{T}-{P}-02"))]));
        let other = SpanContext::new(
            TraceId::from(0x1234_u128),
            SpanId::from(0x5678_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let mut out = HeaderMap::new();
        propagation::inject(&received.with_remote_span_context(other), &mut out);
        assert_eq!(
            sent(&out, TRACEPARENT),
            Some("00-00000000000000000000000000001234-0000000000005678-00")
        );
    }

    #[test]
    fn tracestate_table() {
        let parent = format!("00-{T}-{P}-01");
        let max_key = format!("a{}", "b".repeat(255));
        let max_tenant = format!("{}@{}", "t".repeat(241), "s".repeat(14));
        let value_256 = "v".repeat(256);
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        // (case, tracestate headers, what is sent on)
        let cases: Vec<(&str, Vec<String>, Option<String>)> = vec![
            (
                "one member",
                vec!["vendor=value".into()],
                Some("vendor=value".into()),
            ),
            ("order kept", vec!["b=2,a=1".into()], Some("b=2,a=1".into())),
            (
                "several headers are one list, in order",
                vec!["congo=t61rcWkgMzE".into(), "rojo=00f067aa0ba902b7".into()],
                Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into()),
            ),
            (
                "optional whitespace and empty members",
                vec![" a=1 ,\t, b=2 ,".into()],
                Some("a=1,b=2".into()),
            ),
            (
                "multi-tenant key",
                vec!["fw529a3039@dt=abc".into()],
                Some("fw529a3039@dt=abc".into()),
            ),
            (
                "tenant may start with a digit",
                vec!["1tenant@sys=x".into()],
                Some("1tenant@sys=x".into()),
            ),
            (
                "longest keys",
                vec![format!("{max_key}=1,{max_tenant}=2")],
                Some(format!("{max_key}=1,{max_tenant}=2")),
            ),
            (
                "256-character value",
                vec![format!("a={value_256}")],
                Some(format!("a={value_256}")),
            ),
            (
                "inner spaces in a value",
                vec!["a=x y".into()],
                Some("a=x y".into()),
            ),
            ("32 members", vec![members(32)], Some(members(32))),
            (
                "32 members over two headers",
                vec![
                    members(16),
                    (16..32)
                        .map(|i| format!("k{i}=v{i}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ],
                Some(members(32)),
            ),
            ("33 members: discarded", vec![members(33)], None),
            ("duplicate key: discarded", vec!["a=1,b=2,a=3".into()], None),
            (
                "identical duplicate: discarded too",
                vec!["foo=1,foo=1".into()],
                None,
            ),
            (
                "duplicate key across headers: discarded",
                vec!["a=1".into(), "a=2".into()],
                None,
            ),
            ("257-character value", vec![format!("a={value_256}v")], None),
            (
                "trailing whitespace is OWS, never sent",
                vec!["a=x  ".into()],
                Some("a=x".into()),
            ),
            ("upper-case key", vec!["Vendor=1".into()], None),
            ("key starting with a digit", vec!["1vendor=1".into()], None),
            ("key too long", vec![format!("{max_key}b=1")], None),
            // The key grammar's limits (`valid_tracestate_key`), one member of two headers.
            (
                "256-character key beside another header",
                vec!["foo=1".into(), format!("{}=1", "z".repeat(256))],
                Some(format!("foo=1,{}=1", "z".repeat(256))),
            ),
            (
                "tenant id too long",
                vec!["foo=1".into(), format!("{}@s=1", "t".repeat(242))],
                None,
            ),
            ("empty system id", vec!["foo@=1,bar=2".into()], None),
            ("empty tenant id", vec!["@foo=1,bar=2".into()], None),
            ("@ twice in a row", vec!["foo@@bar=1,bar=2".into()], None),
            (
                "system id too long",
                vec![format!("t@{}=1", "s".repeat(15))],
                None,
            ),
            (
                "system id starting with a digit",
                vec!["t@1sys=1".into()],
                None,
            ),
            ("two @", vec!["a@b@c=1".into()], None),
            ("empty value", vec!["a=".into()], None),
            ("no =", vec!["a".into()], None),
            ("= in value", vec!["a=b=c".into()], None),
            ("non-printable value", vec!["a=\u{7f}x".into()], None),
            ("only empty members", vec![", ,".into()], None),
            ("empty header", vec![String::new()], None),
        ];
        for (case, states, want) in cases {
            let mut pairs = vec![("traceparent", parent.as_str())];
            pairs.extend(states.iter().map(|s| ("tracestate", s.as_str())));
            let Ok(out) = std::panic::catch_unwind(|| hop(&pairs)) else {
                // A value the HTTP layer itself refuses never arrives.
                assert_eq!(want, None, "case: {case}");
                continue;
            };
            assert_eq!(
                sent(&out, TRACEPARENT),
                Some(parent.as_str()),
                "case: {case}: an invalid tracestate never invalidates traceparent"
            );
            assert_eq!(
                sent(&out, TRACESTATE).map(str::to_owned),
                want,
                "case: {case}"
            );
        }
    }

    #[test]
    fn tracestate_values_never_end_in_a_space() {
        assert!(valid_tracestate_value("x y"));
        assert!(!valid_tracestate_value("x "));
        assert!(!valid_tracestate_value(" "));
    }

    #[test]
    fn an_empty_tracestate_is_never_sent() {
        let out = hop(&[("traceparent", &format!("00-{T}-{P}-01"))]);
        assert!(out.contains_key(TRACEPARENT));
        assert!(!out.contains_key(TRACESTATE));
    }

    fn baggage_sent(values: &[&str], first: &[(&str, &str)]) -> Option<String> {
        let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("baggage", *v)).collect();
        let cx = propagation::with_baggage_first(&propagation::extract(&headers(&pairs)), first);
        let mut out = HeaderMap::new();
        propagation::inject(&cx, &mut out);
        sent(&out, BAGGAGE).map(str::to_owned)
    }

    #[test]
    fn baggage_table() {
        let members = |from: usize, to: usize| {
            (from..to)
                .map(|i| format!("k{i}=v{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let ours: &[(&str, &str)] = &[("tenant", "tenant-a"), ("order_id", "o-1")];
        // (case, baggage headers, what is sent on with this service's members first)
        let cases: Vec<(&str, Vec<String>, String)> = vec![
            ("none", vec![], "tenant=tenant-a,order_id=o-1".into()),
            (
                "kept in order",
                vec!["b=2,a=1".into()],
                "tenant=tenant-a,order_id=o-1,b=2,a=1".into(),
            ),
            (
                "several headers are one list",
                vec![
                    "userId=alice".into(),
                    "serverNode=DF%2028,isProduction=false".into(),
                ],
                "tenant=tenant-a,order_id=o-1,userId=alice,serverNode=DF%2028,isProduction=false"
                    .into(),
            ),
            (
                "properties kept",
                vec!["a=1;p1;p2=x".into()],
                "tenant=tenant-a,order_id=o-1,a=1;p1;p2=x".into(),
            ),
            (
                "optional whitespace removed",
                vec![" a = 1 ; p = 2 , b=2".into()],
                "tenant=tenant-a,order_id=o-1,a=1;p=2,b=2".into(),
            ),
            (
                "empty value",
                vec!["a=".into()],
                "tenant=tenant-a,order_id=o-1,a=".into(),
            ),
            (
                "our members replace the caller's",
                vec!["tenant=tenant-b,x=1,order_id=forged".into()],
                "tenant=tenant-a,order_id=o-1,x=1".into(),
            ),
            (
                "an invalid member is dropped alone",
                vec!["a=1,b c=2,d=\"q\",e=5,=6,f".into()],
                "tenant=tenant-a,order_id=o-1,a=1,e=5".into(),
            ),
            (
                "repeated key keeps the first",
                vec!["a=1,a=2".into()],
                "tenant=tenant-a,order_id=o-1,a=1".into(),
            ),
            (
                "64 members in all",
                vec![members(0, 62)],
                format!("tenant=tenant-a,order_id=o-1,{}", members(0, 62)),
            ),
            (
                "members beyond 64 dropped",
                vec![members(0, 40), members(40, 100)],
                format!("tenant=tenant-a,order_id=o-1,{}", members(0, 62)),
            ),
        ];
        for (case, values, want) in cases {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            assert_eq!(baggage_sent(&values, ours), Some(want), "case: {case}");
        }
    }

    #[test]
    fn baggage_beyond_8192_bytes_drops_whole_members_and_keeps_ours() {
        let big = |i: usize| format!("k{i}={}", "v".repeat(2500));
        let values = [big(1), big(2), big(3), big(4), "small=1".into(), big(5)];
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let out = baggage_sent(&values, &[("tenant", "tenant-a")]).unwrap();
        assert!(out.len() <= BAGGAGE_MAX_BYTES, "{} bytes", out.len());
        assert!(out.starts_with("tenant=tenant-a,"));
        let keys: Vec<&str> = out
            .split(',')
            .map(|m| m.split('=').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["tenant", "k1", "k2", "k3", "small"],
            "k4 does not fit whole, small does"
        );
        for member in out.split(',').skip(1).take(3) {
            assert_eq!(member.len(), 2503, "never a cut member");
        }
    }

    #[test]
    fn baggage_values_are_percent_encoded_and_decoded() {
        let member = BaggageMember::new("k", "a b,c;d%é").unwrap();
        assert_eq!(member.encoded, "a%20b%2Cc%3Bd%25%C3%A9");
        assert_eq!(member.value().as_deref(), Some("a b,c;d%é"));
        let parsed = Baggage::parse(&["k=a%20b;prop"]);
        assert_eq!(parsed.get("k").as_deref(), Some("a b"));
    }

    #[test]
    fn oversized_list_headers_are_each_ignored_alone() {
        let long = format!("a={}", "x".repeat(9000));
        let h = headers(&[("baggage", &long), ("baggage", "b=1")]);
        assert_eq!(GuardedExtractor(&h).get_all(BAGGAGE), Some(vec!["b=1"]));
    }
}
