//! The call graph of `docs/DESIGN.md` as data: which identity may call which operation of which
//! service.
//!
//! It is `tools/internal/callgraph/callgraph.json`, compiled in: the same file the Go tools
//! embed, from which check-deploy proves that deploy/'s AuthorizationPolicies allow exactly these
//! calls. So the callers each service accepts on a route (`platform::callers` enforces
//! [`CallGraph::operations_of`] on every request) and the callers the mesh lets through are one
//! list. A caller is a service of the same tenant — its ServiceAccount in the namespace
//! `<tenant>-<role>` — or a fixed identity (the ingress gateway, for order-service's public API);
//! an operator operation (inventory's items API) is for no mesh identity at all.

use std::{collections::HashMap, fmt, sync::LazyLock};

use serde::{Deserialize, de::IgnoredAny};

/// The file, as compiled in.
pub const SOURCE: &str = include_str!("../../../tools/internal/callgraph/callgraph.json");

/// The namespace roles of a tenant: tenant `t` runs in `t-orders` and `t-payments`.
pub const ROLES: [&str; 2] = ["orders", "payments"];

/// Who may call an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A service of the callee's tenant: `service_account` in the namespace `<tenant>-<role>`.
    TenantService {
        role: String,
        service_account: String,
    },
    /// An identity outside every tenant (the ingress gateway).
    Fixed {
        namespace: String,
        service_account: String,
    },
}

/// Who an operation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Exactly these mesh identities.
    Callers(Vec<Caller>),
    /// No mesh identity: the operators' API, reached from inside the pod (as with `kubectl
    /// exec`), which no AuthorizationPolicy allows.
    Operator,
}

/// One operation of a service: the method and the route template (`{name}` is one segment,
/// spelled as the service's router spells it), and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub access: Access,
}

/// Why the call graph cannot be read, or does not know a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGraphError(pub String);

impl fmt::Display for CallGraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tools/internal/callgraph/callgraph.json: {}", self.0)
    }
}

impl std::error::Error for CallGraphError {}

/// The call graph, read and checked.
#[derive(Debug)]
pub struct CallGraph {
    file: File,
    role_of: HashMap<String, String>,
}

static COMPILED_IN: LazyLock<Result<CallGraph, CallGraphError>> =
    LazyLock::new(|| CallGraph::parse(SOURCE));

impl CallGraph {
    /// The compiled-in call graph (read once).
    pub fn compiled_in() -> Result<&'static CallGraph, CallGraphError> {
        COMPILED_IN.as_ref().map_err(Clone::clone)
    }

    /// Reads a call graph in the file's form, strictly: unknown fields, an unknown role, a
    /// caller or callee that is neither a service nor the gateway are errors.
    pub fn parse(json: &str) -> Result<CallGraph, CallGraphError> {
        let file: File = serde_json::from_str(json)
            .map_err(|e| CallGraphError(format!("does not parse: {e}")))?;
        let mut role_of = HashMap::new();
        for service in &file.services {
            if !ROLES.contains(&service.role.as_str()) || service.service_account.is_empty() {
                return Err(CallGraphError(format!(
                    "service `{}` needs a role ({}) and a service account",
                    service.name,
                    ROLES.join(" or ")
                )));
            }
            if role_of
                .insert(service.name.clone(), service.role.clone())
                .is_some()
            {
                return Err(CallGraphError(format!(
                    "service `{}` is listed twice",
                    service.name
                )));
            }
        }
        let graph = CallGraph { file, role_of };
        for edge in &graph.file.edges {
            graph.caller(&edge.from)?;
            if !graph.role_of.contains_key(&edge.to) {
                return Err(CallGraphError(format!(
                    "edge {} → {}: the callee is not a service",
                    edge.from, edge.to
                )));
            }
        }
        Ok(graph)
    }

    /// The names of the tenant services, in the file's order.
    pub fn services(&self) -> Vec<&str> {
        self.file.services.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every operation of `service` with who may call it: the call graph's edges into it, then
    /// its operator operations.
    pub fn operations_of(&self, service: &str) -> Result<Vec<Operation>, CallGraphError> {
        let own = self
            .file
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| CallGraphError(format!("no service `{service}`")))?;
        let mut by_route: Vec<Operation> = Vec::new();
        for edge in self.file.edges.iter().filter(|e| e.to == service) {
            let caller = self.caller(&edge.from)?;
            for op in &edge.ops {
                add_caller(&mut by_route, op, caller.clone());
            }
        }
        by_route.extend(own.operator_ops.iter().map(|op| Operation {
            method: op.method.clone(),
            path: op.path.clone(),
            access: Access::Operator,
        }));
        Ok(by_route)
    }

    /// The identity a caller's name in an edge stands for.
    fn caller(&self, name: &str) -> Result<Caller, CallGraphError> {
        if name == self.file.gateway.name {
            return Ok(Caller::Fixed {
                namespace: self.file.gateway.namespace.clone(),
                service_account: self.file.gateway.service_account.clone(),
            });
        }
        let service = self
            .file
            .services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                CallGraphError(format!("`{name}` is neither a service nor the gateway"))
            })?;
        Ok(Caller::TenantService {
            role: service.role.clone(),
            service_account: service.service_account.clone(),
        })
    }
}

/// Adds `caller` to the operation `op` (one entry per method and route).
fn add_caller(operations: &mut Vec<Operation>, op: &FileOp, caller: Caller) {
    let existing = operations
        .iter_mut()
        .find(|o| o.method == op.method && o.path == op.path);
    match existing {
        Some(Operation {
            access: Access::Callers(callers),
            ..
        }) => callers.push(caller),
        _ => operations.push(Operation {
            method: op.method.clone(),
            path: op.path.clone(),
            access: Access::Callers(vec![caller]),
        }),
    }
}

// The file's shape (its "about" says what each part means). Only what the services read is
// kept; the rest must still be there, in form, so the Go tools and this reader agree on it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Documentation for people.
    #[serde(rename = "about")]
    _about: Vec<String>,
    gateway: Gateway,
    services: Vec<Service>,
    /// The databases and the TCP edges to them: the mesh's business, not the apps'.
    #[serde(rename = "databases")]
    _databases: IgnoredAny,
    edges: Vec<Edge>,
    #[serde(rename = "databaseEdges")]
    _database_edges: IgnoredAny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Gateway {
    name: String,
    namespace: String,
    service_account: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Service {
    name: String,
    role: String,
    service_account: String,
    #[serde(default)]
    operator_ops: Vec<FileOp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edge {
    from: String,
    to: String,
    ops: Vec<FileOp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOp {
    method: String,
    path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_service(role: &str, account: &str) -> Caller {
        Caller::TenantService {
            role: role.into(),
            service_account: account.into(),
        }
    }

    fn access(operations: &[Operation], method: &str, path: &str) -> Access {
        operations
            .iter()
            .find(|o| o.method == method && o.path == path)
            .map(|o| o.access.clone())
            .unwrap_or_else(|| panic!("no operation {method} {path}"))
    }

    #[test]
    fn the_compiled_in_file_is_designs_graph() {
        let graph = CallGraph::compiled_in().unwrap();
        let payment = graph.operations_of("payment-service").unwrap();
        let order_service = Access::Callers(vec![tenant_service("orders", "order-service")]);
        assert_eq!(payment.len(), 4);
        for (method, path) in [
            ("POST", "/api/v1/payments"),
            ("GET", "/api/v1/payments"),
            ("GET", "/api/v1/payments/{id}"),
            ("POST", "/api/v1/payments/{id}/refund"),
        ] {
            assert_eq!(
                access(&payment, method, path),
                order_service,
                "{method} {path}"
            );
        }
        let inventory = graph.operations_of("inventory-service").unwrap();
        assert_eq!(
            access(
                &inventory,
                "POST",
                "/api/v1/reservations/{order_id}/release"
            ),
            Access::Callers(vec![tenant_service("payments", "payment-service")])
        );
        assert_eq!(
            access(&inventory, "PUT", "/api/v1/items/{sku}"),
            Access::Operator
        );
        let order = graph.operations_of("order-service").unwrap();
        assert_eq!(
            access(&order, "POST", "/api/v1/orders/{id}/cancel"),
            Access::Callers(vec![Caller::Fixed {
                namespace: "istio-system".into(),
                service_account: "istio-ingressgateway-service-account".into(),
            }])
        );
        let notify = graph.operations_of("notify-service").unwrap();
        assert_eq!(notify.len(), 2);
    }

    #[test]
    fn the_services_are_the_four() {
        let graph = CallGraph::compiled_in().unwrap();
        assert_eq!(
            graph.services(),
            [
                "order-service",
                "inventory-service",
                "notify-service",
                "payment-service"
            ]
        );
    }

    #[test]
    fn an_unknown_service_is_an_error_not_an_empty_list() {
        let graph = CallGraph::compiled_in().unwrap();
        assert!(graph.operations_of("billing-service").is_err());
    }

    #[test]
    fn the_reader_refuses_what_it_cannot_place() {
        for (old, new, why) in [
            (
                r#""edges": ["#,
                r#""edge": [], "edges": ["#,
                "unknown field",
            ),
            (
                r#""from": "order-service", "to": "notify-service""#,
                r#""from": "order-svc", "to": "notify-service""#,
                "neither a service nor the gateway",
            ),
            (
                r#""to": "notify-service""#,
                r#""to": "notify""#,
                "the callee is not a service",
            ),
            (
                r#""role": "payments", "serviceAccount""#,
                r#""role": "billing", "serviceAccount""#,
                "needs a role",
            ),
        ] {
            assert_eq!(SOURCE.matches(old).count(), 1, "{old} (update the case)");
            let error = CallGraph::parse(&SOURCE.replacen(old, new, 1)).unwrap_err();
            assert!(error.0.contains(why), "{why}: {error}");
        }
    }
}
