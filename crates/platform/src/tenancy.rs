//! Tenant binding: each process serves exactly one tenant, and refuses requests for any other.
//!
//! Every `/api` request must carry `x-tenant-id` naming this process's tenant (400 when missing,
//! 403 when it names another). Inside the mesh the sidecar also forwards the caller's verified
//! identity in `x-forwarded-client-cert`; when present, the caller's namespace must belong to the
//! same tenant (or be explicitly trusted, like the ingress gateway's). That check is defence in
//! depth under Istio's AuthorizationPolicies, never a replacement for them.

use std::{fmt, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::problem::Problem;

pub const TENANT_HEADER: &str = "x-tenant-id";
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// A tenant name: lowercase letters, digits and inner hyphens, at most 32 characters, so it fits
/// in Kubernetes namespace names (`<tenant>-orders`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok_len = (1..=32).contains(&value.len());
        let ok_chars = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_edges = !value.starts_with('-') && !value.ends_with('-');
        if ok_len && ok_chars && ok_edges {
            Ok(Self(value.to_owned()))
        } else {
            Err("expected 1-32 lowercase letters, digits or inner hyphens, e.g. tenant-a".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a Kubernetes namespace belongs to this tenant (`<tenant>-orders`, `<tenant>-payments`).
    pub fn owns_namespace(&self, namespace: &str) -> bool {
        namespace
            .strip_prefix(self.0.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| matches!(suffix, "orders" | "payments"))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the tenancy middleware checks against.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    pub tenant: TenantId,
    pub trusted_peer_namespaces: Arc<[String]>,
}

impl TenantPolicy {
    pub fn new(tenant: TenantId, trusted_peer_namespaces: Vec<String>) -> Self {
        Self {
            tenant,
            trusted_peer_namespaces: trusted_peer_namespaces.into(),
        }
    }

    /// Checks one request's headers; `Err` is the problem to answer with.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let Some(claimed) = headers.get(TENANT_HEADER) else {
            return Err(
                Problem::new(StatusCode::BAD_REQUEST, "missing-tenant", "Missing tenant")
                    .detail(format!("the `{TENANT_HEADER}` header is required")),
            );
        };
        if claimed.as_bytes() != self.tenant.as_str().as_bytes() {
            return Err(wrong_tenant(format!(
                "this service serves tenant `{}` only",
                self.tenant
            )));
        }
        for value in headers.get_all(XFCC_HEADER) {
            let Ok(value) = value.to_str() else {
                return Err(wrong_tenant("the caller's identity is unreadable".into()));
            };
            for namespace in xfcc_peer_namespaces(value) {
                let trusted = self.tenant.owns_namespace(namespace)
                    || self.trusted_peer_namespaces.iter().any(|t| t == namespace);
                if !trusted {
                    return Err(wrong_tenant(format!(
                        "callers from namespace `{namespace}` may not call tenant `{}`",
                        self.tenant
                    )));
                }
            }
        }
        Ok(())
    }
}

fn wrong_tenant(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "wrong-tenant", "Wrong tenant").detail(detail)
}

/// The namespaces of the peer identities in an `x-forwarded-client-cert` value
/// (`By=…;Hash=…;URI=spiffe://cluster.local/ns/<ns>/sa/<sa>`, elements separated by commas).
/// Only the `URI` of each element names the peer; `By` is this workload itself.
pub fn xfcc_peer_namespaces(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("URI="))
        .map(|uri| uri.trim_matches('"'))
        .filter_map(|uri| {
            let path = uri.strip_prefix("spiffe://")?.split_once('/')?.1;
            let mut parts = path.split('/');
            match (parts.next(), parts.next()) {
                (Some("ns"), Some(ns)) if !ns.is_empty() => Some(ns),
                _ => None,
            }
        })
}

/// axum middleware applying [`TenantPolicy::check`] to every request it wraps.
pub async fn require_tenant(
    State(policy): State<TenantPolicy>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn policy() -> TenantPolicy {
        TenantPolicy::new(
            TenantId::parse("tenant-a").unwrap(),
            vec!["istio-system".into()],
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn status(result: Result<(), Problem>) -> u16 {
        result.err().map_or(200, |p| p.status)
    }

    #[test]
    fn tenant_ids_parse_strictly() {
        for good in ["tenant-a", "a", "t1", "acme-eu-1"] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Tenant", "a_b", "a b", &"x".repeat(33)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_must_be_present_and_match() {
        let p = policy();
        assert_eq!(status(p.check(&headers(&[]))), 400);
        assert_eq!(
            status(p.check(&headers(&[(TENANT_HEADER, "tenant-b")]))),
            403
        );
        assert_eq!(
            status(p.check(&headers(&[(TENANT_HEADER, "tenant-a ")]))),
            403
        );
        assert_eq!(
            status(p.check(&headers(&[(TENANT_HEADER, "tenant-a")]))),
            200
        );
    }

    #[test]
    fn mesh_peer_must_belong_to_the_tenant() {
        let p = policy();
        let same = "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash=ab;URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";
        let other = "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash=ab;URI=spiffe://cluster.local/ns/tenant-b-orders/sa/order-service";
        let gateway = "Hash=ab;URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway";
        let prefix_trick = "URI=spiffe://cluster.local/ns/tenant-a-orders-evil/sa/x";
        let ok = |xfcc| {
            status(p.check(&headers(&[
                (TENANT_HEADER, "tenant-a"),
                (XFCC_HEADER, xfcc),
            ])))
        };
        assert_eq!(ok(same), 200);
        assert_eq!(ok(gateway), 200);
        assert_eq!(ok(other), 403);
        assert_eq!(ok(prefix_trick), 403);
    }

    #[test]
    fn xfcc_parsing_reads_only_peer_uris() {
        let v = "By=spiffe://cluster.local/ns/me/sa/x;URI=spiffe://cluster.local/ns/peer/sa/y,URI=\"spiffe://cluster.local/ns/second/sa/z\"";
        assert_eq!(
            xfcc_peer_namespaces(v).collect::<Vec<_>>(),
            ["peer", "second"]
        );
        assert_eq!(xfcc_peer_namespaces("garbage;;URI=http://x").count(), 0);
    }
}
