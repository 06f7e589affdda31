//! Caller identity per route: each `/api` route answers only the mesh identities the call graph
//! ([`commerce::callgraph`]) names for it — the identities deploy/'s AuthorizationPolicies allow,
//! read from the same file — and refuses every other caller with 403 `caller-not-allowed`,
//! logged with the caller's SPIFFE id. Defence in depth under the policies, as [`crate::tenancy`]
//! is; it runs after the tenancy check, so the header is already known to be in Envoy's form.
//!
//! The caller is the last element of `x-forwarded-client-cert` ([`xfcc::immediate_caller`]: the
//! one the callee's own sidecar appended), in the mesh's trust domain (`MESH_TRUST_DOMAIN`,
//! default `cluster.local`); a caller of the tenant is its service account in `<tenant>-<role>`.
//!
//! A request without the header has no caller to check. With `REQUIRE_PEER_IDENTITY=true`
//! (deploy/ sets it for every service) it is refused on every route that names callers: in the
//! cluster every request arrives through the sidecar, so one without the header got past it —
//! order-service's public API included, whose one caller is the ingress gateway. Off (the
//! default: `make up`, docker-compose, no mesh) it is served. Operator routes (inventory's items
//! API) are for no mesh identity: any caller identity is refused, and a request without one —
//! made from inside the pod — is served either way.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use commerce::callgraph::{Access, Caller, Operation};

use crate::{
    headers,
    problem::Problem,
    tenancy::{TenantId, XFCC_HEADER},
    xfcc::{self, ParsedXfcc, SpiffeId},
};

/// Problem type slug of a caller the route is not for.
pub const CALLER_NOT_ALLOWED: &str = "caller-not-allowed";

/// The trust domain callers must be in unless `MESH_TRUST_DOMAIN` says otherwise: Istio's.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// How strictly callers are checked (`REQUIRE_PEER_IDENTITY`, `MESH_TRUST_DOMAIN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentitySettings {
    /// Refuse a request without `x-forwarded-client-cert` on routes that name callers.
    pub require: bool,
    /// The trust domain of every caller's SPIFFE id.
    pub trust_domain: String,
}

impl Default for PeerIdentitySettings {
    /// Off, in Istio's default trust domain: local development without a mesh.
    fn default() -> Self {
        Self {
            require: false,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
        }
    }
}

/// Who one route is for, resolved for this process's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteAccess {
    /// These identities, as (namespace, service account).
    Callers(Vec<(String, String)>),
    /// No mesh identity.
    Operator,
}

/// The caller table of one service, for one tenant: (method, route template) → who.
#[derive(Debug, Clone)]
pub struct CallerPolicy {
    routes: Arc<HashMap<(String, String), RouteAccess>>,
    settings: Arc<PeerIdentitySettings>,
}

/// A refused caller: who it was (none: no header) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub caller: Option<SpiffeId>,
    pub reason: String,
}

impl Refusal {
    /// The 403 answered for it.
    pub fn problem(&self) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            CALLER_NOT_ALLOWED,
            "Caller not allowed",
        )
        .detail(self.reason.clone())
    }
}

impl CallerPolicy {
    /// The table of the service whose operations are `operations`, for `tenant`.
    pub fn new(
        operations: &[Operation],
        tenant: &TenantId,
        settings: PeerIdentitySettings,
    ) -> Self {
        let routes = operations
            .iter()
            .map(|op| {
                let access = match &op.access {
                    Access::Operator => RouteAccess::Operator,
                    Access::Callers(callers) => RouteAccess::Callers(
                        callers.iter().map(|c| identity_of(c, tenant)).collect(),
                    ),
                };
                ((op.method.clone(), op.path.clone()), access)
            })
            .collect();
        Self {
            routes: Arc::new(routes),
            settings: Arc::new(settings),
        }
    }

    /// Whether this table covers exactly the routes a service serves, given as (method, route
    /// template): `Err` names the routes served without an entry and the entries nothing serves.
    pub fn covers_exactly(&self, served: &[(String, String)]) -> Result<(), String> {
        let served: BTreeSet<&(String, String)> = served.iter().collect();
        let listed: BTreeSet<&(String, String)> = self.routes.keys().collect();
        let describe = |routes: Vec<&&(String, String)>| {
            routes
                .iter()
                .map(|(method, path)| format!("{method} {path}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unlisted = describe(served.difference(&listed).collect());
        let unserved = describe(listed.difference(&served).collect());
        match (unlisted.is_empty(), unserved.is_empty()) {
            (true, true) => Ok(()),
            _ => Err(format!(
                "served but not in the call graph: [{unlisted}]; in the call graph but not served: [{unserved}]"
            )),
        }
    }

    /// The table, one line per route and caller: `METHOD route namespace/service-account`, or
    /// `METHOD route -` for a route no mesh identity may call; sorted.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .routes
            .iter()
            .flat_map(|((method, path), access)| match access {
                RouteAccess::Operator => vec![format!("{method} {path} -")],
                RouteAccess::Callers(callers) => callers
                    .iter()
                    .map(|(ns, sa)| format!("{method} {path} {ns}/{sa}"))
                    .collect(),
            })
            .collect();
        lines.sort();
        lines
    }

    /// Checks the caller of `method route` (the route's template) from the request's headers.
    pub fn check(&self, method: &str, route: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_parsed(method, route, headers, None)
    }

    /// [`Self::check`], with the request's `x-forwarded-client-cert` as already parsed (from its
    /// extensions), if it was.
    pub fn check_parsed(
        &self,
        method: &str,
        route: &str,
        headers: &HeaderMap,
        parsed: Option<&ParsedXfcc>,
    ) -> Result<(), Refusal> {
        let access = self.routes.get(&(method.to_owned(), route.to_owned()));
        let Some(caller) = immediate_caller(headers, parsed)? else {
            return match access {
                Some(RouteAccess::Operator) => Ok(()),
                _ if !self.settings.require => Ok(()),
                _ => Err(Refusal {
                    caller: None,
                    reason: format!(
                        "no `{XFCC_HEADER}`: this service requires its caller's mesh identity \
                         (REQUIRE_PEER_IDENTITY), and the request did not come through its sidecar"
                    ),
                }),
            };
        };
        let refuse = |reason: String| {
            Err(Refusal {
                caller: Some(caller.clone()),
                reason,
            })
        };
        if caller.trust_domain != self.settings.trust_domain {
            return refuse(format!(
                "`{caller}` is not of the mesh's trust domain `{}`",
                self.settings.trust_domain
            ));
        }
        let allowed = match access {
            Some(RouteAccess::Callers(callers)) => callers
                .iter()
                .any(|(ns, sa)| *ns == caller.namespace && *sa == caller.service_account),
            Some(RouteAccess::Operator) | None => false,
        };
        if allowed {
            Ok(())
        } else {
            refuse(format!("`{caller}` may not call {method} {route}"))
        }
    }
}

/// The immediate caller, `None` without the header; a header not in Envoy's form (which the
/// tenancy check refuses first) is a refusal, never "no caller".
fn immediate_caller(
    headers: &HeaderMap,
    parsed: Option<&ParsedXfcc>,
) -> Result<Option<SpiffeId>, Refusal> {
    let refusal = |reason: String| Refusal {
        caller: None,
        reason,
    };
    let value = headers::single(headers, XFCC_HEADER)
        .map_err(|_| refusal(format!("`{XFCC_HEADER}` appears more than once")))?;
    let Some(value) = value else {
        return Ok(None);
    };
    if value.to_str().is_err() {
        return Err(refusal(format!("`{XFCC_HEADER}` is not visible ASCII")));
    }
    let parsed = ParsedXfcc::peers_of(parsed, value);
    match &*parsed {
        Ok(peers) => xfcc::caller_of(peers)
            .map(Some)
            .map_err(|e| refusal(e.to_string())),
        Err(e) => Err(refusal(e.to_string())),
    }
}

/// A call-graph caller as (namespace, service account) for `tenant`.
fn identity_of(caller: &Caller, tenant: &TenantId) -> (String, String) {
    match caller {
        Caller::TenantService {
            role,
            service_account,
        } => (format!("{tenant}-{role}"), service_account.clone()),
        Caller::Fixed {
            namespace,
            service_account,
        } => (namespace.clone(), service_account.clone()),
    }
}

/// axum route middleware applying [`CallerPolicy::check`] to the matched route; a refusal is
/// logged with the caller's SPIFFE id.
pub async fn require_caller(
    State(policy): State<CallerPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = request.method().as_str();
    match policy.check_parsed(
        method,
        route,
        request.headers(),
        request.extensions().get::<ParsedXfcc>(),
    ) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let caller = refusal
                .caller
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string);
            tracing::warn!(caller, method, route, reason = %refusal.reason, "caller not allowed");
            refusal.problem().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use commerce::callgraph::CallGraph;

    const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

    fn policy(service: &str, require: bool) -> CallerPolicy {
        let operations = CallGraph::compiled_in()
            .unwrap()
            .operations_of(service)
            .unwrap();
        CallerPolicy::new(
            &operations,
            &TenantId::parse("tenant-a").unwrap(),
            PeerIdentitySettings {
                require,
                ..PeerIdentitySettings::default()
            },
        )
    }

    /// The header a sidecar of `payment-service` in tenant-a writes for a caller `uri`.
    fn xfcc(uri: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!(
            "By=spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service;Hash={HASH};Subject=\"\";URI={uri}"
        );
        headers.insert(XFCC_HEADER, HeaderValue::from_str(&value).unwrap());
        headers
    }

    fn refused(result: Result<(), Refusal>) -> Option<String> {
        result.err().map(|r| r.reason)
    }

    const ORDER: &str = "spiffe://cluster.local/ns/tenant-a-orders/sa/order-service";
    const NOTIFY: &str = "spiffe://cluster.local/ns/tenant-a-orders/sa/notify-service";
    const GATEWAY: &str =
        "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
    const REFUND: &str = "/api/v1/payments/{id}/refund";

    #[test]
    fn a_route_answers_the_callers_the_call_graph_names_and_no_other() {
        let payment = policy("payment-service", true);
        assert_eq!(refused(payment.check("POST", REFUND, &xfcc(ORDER))), None);
        for other in [
            NOTIFY,
            GATEWAY,
            "spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service",
            "spiffe://cluster.local/ns/tenant-b-orders/sa/order-service",
            "spiffe://cluster.local/ns/tenant-a-orders/sa/order-service-canary",
        ] {
            let reason = refused(payment.check("POST", REFUND, &xfcc(other)));
            assert!(
                reason
                    .as_deref()
                    .is_some_and(|r| r.contains(other) && r.contains(REFUND)),
                "{other}: {reason:?}"
            );
        }
    }

    #[test]
    fn the_trust_domain_is_pinned() {
        let payment = policy("payment-service", true);
        let evil = "spiffe://evil.example/ns/tenant-a-orders/sa/order-service";
        let reason = refused(payment.check("POST", "/api/v1/payments", &xfcc(evil))).unwrap();
        assert!(reason.contains("trust domain `cluster.local`"), "{reason}");
        let elsewhere = CallerPolicy::new(
            &CallGraph::compiled_in()
                .unwrap()
                .operations_of("payment-service")
                .unwrap(),
            &TenantId::parse("tenant-a").unwrap(),
            PeerIdentitySettings {
                require: true,
                trust_domain: "prod.example".into(),
            },
        );
        assert!(refused(elsewhere.check("POST", "/api/v1/payments", &xfcc(ORDER))).is_some());
        let prod = "spiffe://prod.example/ns/tenant-a-orders/sa/order-service";
        assert_eq!(
            refused(elsewhere.check("POST", "/api/v1/payments", &xfcc(prod))),
            None
        );
    }

    #[test]
    fn the_caller_is_the_last_element_not_what_the_caller_claimed_before_it() {
        let payment = policy("payment-service", true);
        let mut claimed = HeaderMap::new();
        claimed.insert(
            XFCC_HEADER,
            HeaderValue::from_str(&format!("URI={ORDER},URI={NOTIFY}")).unwrap(),
        );
        assert!(refused(payment.check("POST", REFUND, &claimed)).is_some());
        claimed.insert(
            XFCC_HEADER,
            HeaderValue::from_str(&format!("URI={NOTIFY},URI={ORDER}")).unwrap(),
        );
        assert_eq!(refused(payment.check("POST", REFUND, &claimed)), None);
    }

    #[test]
    fn without_a_peer_identity_only_the_cluster_setting_refuses() {
        let none = HeaderMap::new();
        let reason = refused(policy("payment-service", true).check("POST", REFUND, &none));
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("REQUIRE_PEER_IDENTITY")),
            "{reason:?}"
        );
        assert_eq!(
            refused(policy("payment-service", false).check("POST", REFUND, &none)),
            None
        );
        // order-service's public API: its one caller is the gateway, so no header is refused too.
        let order = policy("order-service", true);
        assert!(refused(order.check("POST", "/api/v1/orders", &none)).is_some());
        assert_eq!(
            refused(order.check("POST", "/api/v1/orders", &xfcc(GATEWAY))),
            None
        );
        assert!(refused(order.check("POST", "/api/v1/orders", &xfcc(ORDER))).is_some());
    }

    #[test]
    fn operator_routes_are_for_no_mesh_identity() {
        let inventory = policy("inventory-service", true);
        let items = "/api/v1/items/{sku}";
        assert_eq!(
            refused(inventory.check("PUT", items, &HeaderMap::new())),
            None
        );
        let payment = "spiffe://cluster.local/ns/tenant-a-payments/sa/payment-service";
        for caller in [payment, ORDER, GATEWAY] {
            assert!(
                refused(inventory.check("PUT", items, &xfcc(caller))).is_some(),
                "{caller}"
            );
        }
        let release = "/api/v1/reservations/{order_id}/release";
        assert_eq!(
            refused(inventory.check("POST", release, &xfcc(payment))),
            None
        );
    }

    #[test]
    fn a_route_the_table_does_not_know_answers_no_caller() {
        let payment = policy("payment-service", false);
        assert!(refused(payment.check("DELETE", "/api/v1/payments/{id}", &xfcc(ORDER))).is_some());
        assert!(refused(payment.check("GET", "unmatched", &xfcc(ORDER))).is_some());
    }

    #[test]
    fn a_repeated_or_malformed_header_is_never_no_caller() {
        let payment = policy("payment-service", false);
        let mut twice = xfcc(ORDER);
        twice.append(XFCC_HEADER, HeaderValue::from_static("URI=x"));
        assert!(refused(payment.check("POST", REFUND, &twice)).is_some());
        let mut garbage = HeaderMap::new();
        garbage.insert(XFCC_HEADER, HeaderValue::from_static("garbage"));
        assert!(refused(payment.check("POST", REFUND, &garbage)).is_some());
    }

    #[test]
    fn the_table_must_cover_exactly_the_routes_served() {
        let payment = policy("payment-service", true);
        let route = |m: &str, p: &str| (m.to_owned(), p.to_owned());
        let mut served = vec![
            route("POST", "/api/v1/payments"),
            route("GET", "/api/v1/payments"),
            route("GET", "/api/v1/payments/{id}"),
            route("POST", REFUND),
        ];
        assert_eq!(payment.covers_exactly(&served), Ok(()));
        served.push(route("DELETE", "/api/v1/payments/{id}"));
        served.retain(|r| r.1 != REFUND);
        let error = payment.covers_exactly(&served).unwrap_err();
        assert!(
            error.contains("not in the call graph: [DELETE /api/v1/payments/{id}]")
                && error.contains("not served: [POST /api/v1/payments/{id}/refund]"),
            "{error}"
        );
    }

    /// `tools/internal/callgraph/testdata/app-callers-tenant-a.txt` is what these tables say for
    /// tenant-a; check-deploy's tests prove deploy/'s policies admit exactly that, request by
    /// request (tools/internal/promises, TestPoliciesAdmitExactlyTheAppsCallers).
    #[test]
    fn the_tables_resolved_for_tenant_a_are_what_the_policies_are_tested_against() {
        let golden =
            include_str!("../../../tools/internal/callgraph/testdata/app-callers-tenant-a.txt");
        let graph = CallGraph::compiled_in().unwrap();
        let mut resolved: Vec<String> = Vec::new();
        for service in graph.services() {
            let table = policy(service, true).describe();
            resolved.extend(table.iter().map(|line| format!("{service} {line}")));
        }
        let listed: Vec<&str> = golden
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(
            listed,
            resolved,
            "the apps' tables changed; the file's lines should read:\n{}",
            resolved.join("\n")
        );
    }

    #[test]
    fn settings_default_to_off_in_clusters_trust_domain() {
        assert_eq!(
            PeerIdentitySettings::default(),
            PeerIdentitySettings {
                require: false,
                trust_domain: "cluster.local".into()
            }
        );
    }
}
