//! `x-forwarded-client-cert` (XFCC) parsed in exactly the form Envoy writes it, failing closed.
//!
//! Envoy (Istio's sidecar) writes one element per hop, elements separated by `,`; an element is
//! `Key=Value` pairs separated by `;` with the keys `By`, `Hash`, `Cert`, `Chain`, `Subject`,
//! `URI` and `DNS`, spelled exactly so, no spaces around `=` or `;`. A value is either bare
//! (visible ASCII without `"`, `,`, `;`, `=`, `\`) or double-quoted with `\"` and `\\` escapes.
//! `By` and `URI` are SPIFFE ids, `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`; `Hash`
//! is 64 lower-case hex digits. Each element names its peer with exactly one `URI` (Istio's
//! workload certificates carry one URI SAN).
//!
//! A value in any other form is not something the sidecar wrote: the caller must treat it as a
//! forgery (403), never as "no peer identity".
//!
//! **Which element is the caller.** Istio's sidecars forward the header with `APPEND_FORWARD`
//! (Istio's default for inbound traffic; deploy/ keeps it and check-deploy's
//! `identity.app-callers` proves it): the callee's own sidecar appends the element of the client
//! certificate it has just verified *after* whatever the request already carried. So the last
//! element is the immediate caller ([`immediate_caller`]); the elements before it were sent by
//! that caller and prove nothing about it.
//!
//! **Parsed once per request.** The outermost middleware ([`crate::observe`]) parses the header
//! for its access log and keeps the result in the request's extensions ([`ParsedXfcc`]); the
//! tenancy and caller checks take it from there rather than parsing the same bytes again.

use std::{borrow::Cow, fmt};

use http::HeaderValue;

/// A workload identity from a SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    /// Parses `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, nothing else.
    pub fn parse(value: &str) -> Result<Self, XfccError> {
        let bad = || XfccError(format!("`{}` is not a SPIFFE workload id", shorten(value)));
        let rest = value.strip_prefix("spiffe://").ok_or_else(bad)?;
        let (trust_domain, path) = rest.split_once('/').ok_or_else(bad)?;
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["ns", namespace, "sa", account]
                if is_trust_domain(trust_domain)
                    && is_dns_label(namespace)
                    && is_dns_subdomain(account) =>
            {
                Ok(Self {
                    trust_domain: trust_domain.to_owned(),
                    namespace: (*namespace).to_owned(),
                    service_account: (*account).to_owned(),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// A SPIFFE trust domain as Istio spells one: 1-255 of `[a-z0-9._-]`.
pub fn is_trust_domain(value: &str) -> bool {
    (1..=255).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// A Kubernetes namespace name: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A Kubernetes object name (service accounts): dot-separated DNS labels, at most 253 bytes.
fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// Why a header is not in Envoy's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfccError(pub String);

impl fmt::Display for XfccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for XfccError {}

const KEYS: [&str; 7] = ["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS"];

/// The peers an XFCC value names, one per element (the `URI` of each), in order.
pub fn parse_peers(value: &str) -> Result<Vec<SpiffeId>, XfccError> {
    if value.is_empty() {
        return Err(XfccError("the header is empty".into()));
    }
    split_outside_quotes(value, b',')?
        .into_iter()
        .map(parse_element)
        .collect()
}

/// The immediate caller an XFCC value names: its last element (see the module's comment), once
/// the whole value is in Envoy's form.
pub fn immediate_caller(value: &str) -> Result<SpiffeId, XfccError> {
    caller_of(&parse_peers(value)?)
}

/// The immediate caller among `peers`, the peers of one XFCC value in order: the last.
pub fn caller_of(peers: &[SpiffeId]) -> Result<SpiffeId, XfccError> {
    peers
        .last()
        .cloned()
        .ok_or_else(|| XfccError("the header names no peer".into()))
}

/// The peers one XFCC header value names ([`parse_peers`]); a value that is not visible ASCII is
/// not in Envoy's form.
pub fn parse_header(value: &HeaderValue) -> Result<Vec<SpiffeId>, XfccError> {
    value
        .to_str()
        .map_err(|_| XfccError("the value is not visible ASCII".into()))
        .and_then(parse_peers)
}

/// One XFCC header value with its parse ([`parse_header`]), kept in a request's extensions by the
/// first middleware that reads the header, so that the later ones do not parse it again. It
/// answers only for the value it was parsed from: a reader that holds another value parses that.
#[derive(Debug, Clone)]
pub struct ParsedXfcc {
    value: HeaderValue,
    peers: Result<Vec<SpiffeId>, XfccError>,
}

impl ParsedXfcc {
    pub fn new(value: &HeaderValue) -> Self {
        Self {
            value: value.clone(),
            peers: parse_header(value),
        }
    }

    /// The peers of the value it was parsed from, or why that value is not in Envoy's form.
    pub fn peers(&self) -> Result<&[SpiffeId], &XfccError> {
        self.peers.as_deref()
    }

    /// The peers `value` names: `parsed`'s when it was parsed from `value`, else a new parse.
    pub fn peers_of<'a>(
        parsed: Option<&'a Self>,
        value: &HeaderValue,
    ) -> Cow<'a, Result<Vec<SpiffeId>, XfccError>> {
        match parsed {
            Some(parsed) if parsed.value == value => Cow::Borrowed(&parsed.peers),
            _ => Cow::Owned(parse_header(value)),
        }
    }
}

fn parse_element(element: &str) -> Result<SpiffeId, XfccError> {
    let mut peer = None;
    let mut seen: Vec<&str> = Vec::new();
    for pair in split_outside_quotes(element, b';')? {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| XfccError(format!("`{}` is not Key=Value", shorten(pair))))?;
        let key = KEYS
            .iter()
            .find(|known| **known == key)
            .ok_or_else(|| XfccError(format!("unknown key `{}`", shorten(key))))?;
        if *key != "DNS" && seen.contains(key) {
            return Err(XfccError(format!("`{key}` appears twice in one element")));
        }
        seen.push(key);
        let value = unquote(raw)?;
        match *key {
            "URI" => peer = Some(SpiffeId::parse(&value)?),
            "By" => {
                SpiffeId::parse(&value)?;
            }
            "Hash" => {
                let hex = value.len() == 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return Err(XfccError("Hash is not 64 lower-case hex digits".into()));
                }
            }
            _ => {}
        }
    }
    peer.ok_or_else(|| XfccError("an element names no peer (no URI)".into()))
}

/// Splits on `sep` outside double quotes; a backslash inside quotes escapes the next byte.
fn split_outside_quotes(value: &str, sep: u8) -> Result<Vec<&str>, XfccError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in value.bytes().enumerate() {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, _, b'"') => quoted = !quoted,
            (false, _, b) if b == sep => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(XfccError("unterminated quoted value".into()));
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// A bare or quoted value, unescaped.
fn unquote(raw: &str) -> Result<String, XfccError> {
    let bad = |why: &str| XfccError(format!("value `{}` {why}", shorten(raw)));
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| bad("has a stray quote"))?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().ok_or_else(|| bad("ends in a backslash"))?),
                '"' => return Err(bad("has an unescaped quote")),
                c if c.is_control() => return Err(bad("contains a control character")),
                c => out.push(c),
            }
        }
        Ok(out)
    } else if !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'=' | b'\\'))
    {
        Ok(raw.to_owned())
    } else {
        Err(bad("is neither a bare token nor a quoted string"))
    }
}

/// At most 80 characters of `value`, for messages.
fn shorten(value: &str) -> String {
    value
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

    #[test]
    fn a_parse_answers_only_for_its_own_value() {
        let a = HeaderValue::from_static("URI=spiffe://cluster.local/ns/tenant-a-orders/sa/a");
        let b = HeaderValue::from_static("URI=spiffe://cluster.local/ns/tenant-a-orders/sa/b");
        let parsed = ParsedXfcc::new(&a);
        assert_eq!(*ParsedXfcc::peers_of(Some(&parsed), &a), parse_header(&a));
        assert_eq!(*ParsedXfcc::peers_of(Some(&parsed), &b), parse_header(&b));
        assert_eq!(*ParsedXfcc::peers_of(None, &b), parse_header(&b));
        let not_ascii = HeaderValue::from_bytes(b"URI=\xff").unwrap();
        assert_eq!(
            ParsedXfcc::new(&not_ascii).peers(),
            Err(&XfccError("the value is not visible ASCII".into()))
        );
    }

    fn namespaces(value: &str) -> Result<Vec<String>, XfccError> {
        parse_peers(value).map(|peers| peers.into_iter().map(|p| p.namespace).collect())
    }

    #[test]
    fn what_istio_writes_parses() {
        let sidecar = format!(
            "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash={HASH};Subject=\"\";URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service"
        );
        assert_eq!(namespaces(&sidecar).unwrap(), ["tenant-a-orders"]);
        let two_hops = format!(
            "Hash={HASH};URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account,By=spiffe://td/ns/b/sa/c;URI=\"spiffe://td/ns/second/sa/z\";DNS=a.b;DNS=c.d"
        );
        assert_eq!(namespaces(&two_hops).unwrap(), ["istio-system", "second"]);
        let subject = "Subject=\"/C=US/CN=a\\\"b; c,d\";URI=spiffe://cluster.local/ns/n/sa/s";
        assert_eq!(namespaces(subject).unwrap(), ["n"]);
    }

    #[test]
    fn the_immediate_caller_is_the_element_the_callees_sidecar_appended_last() {
        // order-service sent a header claiming to be the gateway; payment-service's sidecar
        // (APPEND_FORWARD) appended the certificate it verified: order-service's.
        let forwarded = format!(
            "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account,\
             By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash={HASH};\
             URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service"
        );
        let caller = immediate_caller(&forwarded).unwrap();
        assert_eq!(
            caller.to_string(),
            "spiffe://cluster.local/ns/tenant-a-orders/sa/order-service"
        );
        let one = "URI=spiffe://evil.example/ns/tenant-a-orders/sa/order-service";
        assert_eq!(immediate_caller(one).unwrap().trust_domain, "evil.example");
        // A malformed element anywhere makes the whole header a forgery, never a caller.
        assert!(immediate_caller(&format!("garbage,{one}")).is_err());
        assert!(immediate_caller("").is_err());
    }

    #[test]
    fn trust_domains_are_istios_spelling() {
        for good in ["cluster.local", "td", "a-b_c.example"] {
            assert!(is_trust_domain(good), "{good}");
        }
        for bad in ["", "Cluster.local", "a/b", "a b", &"x".repeat(256)] {
            assert!(!is_trust_domain(bad), "{bad}");
        }
    }

    #[test]
    fn every_other_form_is_refused() {
        let good = "spiffe://cluster.local/ns/tenant-b-orders/sa/order-service";
        for bad in [
            String::new(),
            format!("uri={good}"),
            format!("URI = {good}"),
            format!("URI ={good}"),
            format!("URI= {good}"),
            format!(" URI={good}"),
            format!("URI={good};"),
            format!("URI={good},"),
            "URI=SPIFFE://cluster.local/ns/tenant-b-orders/sa/x".into(),
            "URI=//ns/tenant-b-orders/sa/x".into(),
            "URI=spiffe://cluster.local//ns/tenant-b-orders/sa/x".into(),
            "URI=spiffe://cluster.local/ns/tenant-b-orders".into(),
            "URI=spiffe://cluster.local/ns/Tenant-B/sa/x".into(),
            "URI=spiffe://cluster.local/ns/tenant-b-orders/sa/x/extra".into(),
            "URI=spiffe:///ns/tenant-b-orders/sa/x".into(),
            "URI=http://cluster.local/ns/tenant-b-orders/sa/x".into(),
            format!("URI=\"{good}"),
            format!("URI={good};URI={good}"),
            format!("Hash=ABC;URI={good}"),
            format!("By=nobody;URI={good}"),
            format!("Hash={HASH}"),
            "garbage".into(),
            format!("URI=\"{good}\\\""),
        ] {
            assert!(parse_peers(&bad).is_err(), "{bad:?} parsed");
        }
    }
}
