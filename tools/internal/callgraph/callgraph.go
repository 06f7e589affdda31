// Package callgraph is the single Go encoding of ordermesh's call graph (DESIGN.md): the only
// calls the AuthorizationPolicies may allow, per tenant. check-deploy proves that the allowed
// set rendered from deploy/ equals exactly this graph: no edge more, no edge less.
//
// A new call between services is a change to DESIGN.md, the service code, the policies in
// deploy/ and this file, together.
package callgraph

// Namespace roles inside a tenant: tenant <t> has "<t>-orders" and "<t>-payments".
const (
	Orders   = "orders"
	Payments = "payments"
)

// Gateway is the ingress gateway's identity (installed by `istioctl install` with the default
// profile in istio-system; not part of deploy/'s kustomizations).
var Gateway = Identity{Namespace: "istio-system", ServiceAccount: "istio-ingressgateway-service-account"}

// GatewayWorkload and GatewayLabels describe the ingress gateway's pods as istioctl installs them.
const GatewayWorkload = "istio-ingressgateway"

var GatewayLabels = map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}

// PublicOps is what end users (no mesh identity) may send to the ingress gateway: exactly the
// gateway → order-service edge.
func PublicOps() []Op { return Edges[0].Ops }

// Identity is a fixed (non-tenant) service account.
type Identity struct {
	Namespace      string
	ServiceAccount string
}

// Service is one tenant application: the Deployments/StatefulSets whose pods carry the label
// app=Name (payment-service has a stable and a canary Deployment) in the tenant namespace with
// suffix Role. All of an application's workloads share one ServiceAccount.
type Service struct {
	Name string
	Role string // Orders or Payments
}

// Services lists every workload a tenant runs; each must have its own ServiceAccount.
var Services = []Service{
	{Name: "order-service", Role: Orders},
	{Name: "inventory-service", Role: Orders},
	{Name: "notify-service", Role: Orders},
	{Name: "payment-service", Role: Payments},
}

// Databases: one PostgreSQL StatefulSet named "postgres" per tenant namespace.
var Databases = []Service{
	{Name: "postgres", Role: Orders},
	{Name: "postgres", Role: Payments},
}

// Op is one allowed HTTP operation. Path uses DESIGN.md's templates ({id}); in an
// AuthorizationPolicy each template segment must be written as Istio's one-segment `{*}`.
type Op struct {
	Method string
	Path   string
}

// Edge is an allowed call from a source to a destination workload of the same tenant.
// From is a Service name, or "" for the ingress gateway (Gateway identity).
// An edge with Port set and no Ops is a TCP edge (any bytes to that port).
type Edge struct {
	From     string
	FromRole string // role of the source's namespace ("" for the gateway)
	To       string
	ToRole   string
	Ops      []Op
	Port     string
}

// Edges is the call graph of DESIGN.md plus the ingress gateway edge.
var Edges = []Edge{
	{From: "", To: "order-service", ToRole: Orders, Ops: []Op{
		{"POST", "/api/v1/orders"},
		{"POST", "/api/v1/orders/{id}/cancel"},
		{"GET", "/api/v1/orders"},
		{"GET", "/api/v1/orders/{id}"},
	}},
	{From: "order-service", FromRole: Orders, To: "payment-service", ToRole: Payments, Ops: []Op{
		{"POST", "/api/v1/payments"},
		{"GET", "/api/v1/payments"},
		{"GET", "/api/v1/payments/{id}"},
		{"POST", "/api/v1/payments/{id}/refund"},
	}},
	{From: "payment-service", FromRole: Payments, To: "inventory-service", ToRole: Orders, Ops: []Op{
		{"POST", "/api/v1/reservations"},
		{"GET", "/api/v1/reservations/{order_id}"},
		{"POST", "/api/v1/reservations/{order_id}/commit"},
		{"POST", "/api/v1/reservations/{order_id}/release"},
	}},
	{From: "order-service", FromRole: Orders, To: "notify-service", ToRole: Orders, Ops: []Op{
		{"POST", "/api/v1/notifications"},
		{"GET", "/api/v1/notifications"},
	}},
}

// DatabaseEdges: each service reaches only the PostgreSQL of its own namespace, TCP 5432.
var DatabaseEdges = []Edge{
	{From: "order-service", FromRole: Orders, To: "postgres", ToRole: Orders, Port: "5432"},
	{From: "inventory-service", FromRole: Orders, To: "postgres", ToRole: Orders, Port: "5432"},
	{From: "notify-service", FromRole: Orders, To: "postgres", ToRole: Orders, Port: "5432"},
	{From: "payment-service", FromRole: Payments, To: "postgres", ToRole: Payments, Port: "5432"},
}

// All returns the call-graph edges followed by the database edges.
func All() []Edge {
	return append(append([]Edge{}, Edges...), DatabaseEdges...)
}
