//! Tenant binding: each process serves exactly one tenant, and refuses requests for any other.
//!
//! Every `/api` request must carry exactly one `x-tenant-id` naming this process's tenant (400
//! when missing or repeated, 403 when it names another). Inside the mesh the sidecar also forwards
//! the caller's verified identity in `x-forwarded-client-cert`; when present, it must be one header
//! in exactly Envoy's form (400 when repeated, 403 otherwise — see [`crate::xfcc`]) and every peer
//! it names must come from a namespace of the same tenant (or one explicitly trusted, like the
//! ingress gateway's). That check is defence in depth under Istio's AuthorizationPolicies, never a
//! replacement for them; which identity may call which route is [`crate::callers`]'s check, made
//! after this one.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{headers, problem::Problem, xfcc::ParsedXfcc};

pub const TENANT_HEADER: &str = "x-tenant-id";
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

pub use commerce::values::TenantId;

/// Whether a Kubernetes namespace belongs to `tenant` (`<tenant>-orders`, `<tenant>-payments`).
fn owns_namespace(tenant: &TenantId, namespace: &str) -> bool {
    namespace
        .strip_prefix(tenant.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| matches!(suffix, "orders" | "payments"))
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
        self.check_parsed(headers, None)
    }

    /// [`Self::check`], with the request's `x-forwarded-client-cert` as already parsed (from its
    /// extensions), if it was.
    pub fn check_parsed(
        &self,
        headers: &HeaderMap,
        parsed: Option<&ParsedXfcc>,
    ) -> Result<(), Problem> {
        let claimed = headers::single(headers, TENANT_HEADER)?;
        let xfcc = headers::single(headers, XFCC_HEADER)?;
        let Some(claimed) = claimed else {
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
        let Some(xfcc) = xfcc else {
            return Ok(());
        };
        let parsed = ParsedXfcc::peers_of(parsed, xfcc);
        let peers = match &*parsed {
            Ok(peers) => peers,
            Err(e) => {
                return Err(wrong_tenant(format!(
                    "`{XFCC_HEADER}` is not in Envoy's form: {e}"
                )));
            }
        };
        for peer in peers {
            let namespace = peer.namespace.as_str();
            let trusted = owns_namespace(&self.tenant, namespace)
                || self.trusted_peer_namespaces.iter().any(|t| t == namespace);
            if !trusted {
                return Err(wrong_tenant(format!(
                    "callers from namespace `{namespace}` may not call tenant `{}`",
                    self.tenant
                )));
            }
        }
        Ok(())
    }
}

fn wrong_tenant(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "wrong-tenant", "Wrong tenant").detail(detail)
}

/// axum middleware applying [`TenantPolicy::check`] to every request it wraps.
pub async fn require_tenant(
    State(policy): State<TenantPolicy>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check_parsed(request.headers(), request.extensions().get::<ParsedXfcc>()) {
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
    fn repeated_tenant_or_xfcc_headers_are_400() {
        let p = policy();
        let xfcc = "URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";
        assert_eq!(
            status(p.check(&headers(&[
                (TENANT_HEADER, "tenant-a"),
                (TENANT_HEADER, "tenant-a")
            ]))),
            400
        );
        assert_eq!(
            status(p.check(&headers(&[
                (TENANT_HEADER, "tenant-a"),
                (XFCC_HEADER, xfcc),
                (XFCC_HEADER, xfcc)
            ]))),
            400
        );
    }

    #[test]
    fn mesh_peer_must_belong_to_the_tenant() {
        let p = policy();
        let same = "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";
        let other = "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;URI=spiffe://cluster.local/ns/tenant-b-orders/sa/order-service";
        let gateway =
            "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
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
    fn an_xfcc_header_not_in_envoys_form_fails_closed() {
        let p = policy();
        for forged in [
            "uri=spiffe://cluster.local/ns/tenant-b-orders/sa/x",
            "URI = spiffe://cluster.local/ns/tenant-b-orders/sa/x",
            "URI=SPIFFE://cluster.local/ns/tenant-b-orders/sa/x",
            "URI=//ns/tenant-b-orders/sa/x",
            "garbage",
        ] {
            let h = headers(&[(TENANT_HEADER, "tenant-a"), (XFCC_HEADER, forged)]);
            assert_eq!(status(p.check(&h)), 403, "{forged}");
        }
        let mut h = headers(&[(TENANT_HEADER, "tenant-a")]);
        h.append(
            XFCC_HEADER,
            HeaderValue::from_bytes(b"URI=spiffe://cluster.local/ns/tenant-a-orders/sa/\xff")
                .unwrap(),
        );
        assert_eq!(status(p.check(&h)), 403, "non-ASCII");
    }
}
