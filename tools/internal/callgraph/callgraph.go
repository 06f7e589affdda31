// Package callgraph is ordermesh's call graph (DESIGN.md) for the Go tools: the only calls the
// AuthorizationPolicies may allow, per tenant. It reads callgraph.json (embedded), the one source
// of truth the services compile in too (crates/commerce/src/callgraph.rs), so the routes each app
// accepts callers on and the calls deploy/ allows come from the same data. check-deploy proves
// that the allowed set rendered from deploy/ equals exactly this graph: no edge more, no edge
// less.
//
// A new call between services is a change to DESIGN.md, the service code, the policies in
// deploy/ and callgraph.json, together.
package callgraph

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// Namespace roles inside a tenant: tenant <t> has "<t>-orders" and "<t>-payments".
const (
	Orders   = "orders"
	Payments = "payments"
)

//go:embed callgraph.json
var source []byte

// The graph, read from callgraph.json when the package loads.
var graph = mustParse(source)

// Gateway is the ingress gateway's identity (installed by `istioctl install` with the default
// profile in istio-system; not part of deploy/'s kustomizations).
var Gateway = graph.Gateway

// GatewayWorkload and GatewayLabels describe the ingress gateway's pods as istioctl installs them.
const GatewayWorkload = "istio-ingressgateway"

var GatewayLabels = map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}

// PublicOps is what end users (no mesh identity) may send to the ingress gateway: exactly the
// gateway → order-service edge.
func PublicOps() []Op {
	for _, e := range Edges {
		if e.From == "" {
			return e.Ops
		}
	}
	return nil
}

// Identity is a fixed (non-tenant) service account.
type Identity struct {
	Namespace      string
	ServiceAccount string
}

// Service is one tenant application: the Deployments/StatefulSets whose pods carry the label
// app=Name (payment-service has a stable and a canary Deployment) in the tenant namespace with
// suffix Role. All of an application's workloads run as ServiceAccount (databases: any
// dedicated one). OperatorOps are its routes that no mesh identity may call.
type Service struct {
	Name           string
	Role           string // Orders or Payments
	ServiceAccount string
	OperatorOps    []Op
}

// Services lists every workload a tenant runs; each must have its own ServiceAccount.
var Services = graph.Services

// Databases: one PostgreSQL StatefulSet named "postgres" per tenant namespace.
var Databases = graph.Databases

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
var Edges = graph.Edges

// DatabaseEdges: each service reaches only the PostgreSQL of its own namespace, TCP 5432.
var DatabaseEdges = graph.DatabaseEdges

// All returns the call-graph edges followed by the database edges.
func All() []Edge {
	return append(append([]Edge{}, Edges...), DatabaseEdges...)
}

// Graph is callgraph.json, read.
type Graph struct {
	Gateway       Identity
	Services      []Service
	Databases     []Service
	Edges         []Edge
	DatabaseEdges []Edge
}

// file is callgraph.json's shape (documented in its "about").
type file struct {
	About   []string `json:"about"`
	Gateway struct {
		Name           string `json:"name"`
		Namespace      string `json:"namespace"`
		ServiceAccount string `json:"serviceAccount"`
	} `json:"gateway"`
	Services []struct {
		Name           string   `json:"name"`
		Role           string   `json:"role"`
		ServiceAccount string   `json:"serviceAccount"`
		OperatorOps    []fileOp `json:"operatorOps"`
	} `json:"services"`
	Databases []struct {
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"databases"`
	Edges []struct {
		From string   `json:"from"`
		To   string   `json:"to"`
		Ops  []fileOp `json:"ops"`
	} `json:"edges"`
	DatabaseEdges []struct {
		From string `json:"from"`
		To   string `json:"to"`
		Port string `json:"port"`
	} `json:"databaseEdges"`
}

type fileOp struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

func mustParse(data []byte) *Graph {
	g, err := Parse(data)
	if err != nil {
		panic("tools/internal/callgraph/callgraph.json: " + err.Error())
	}
	return g
}

// Parse reads a call graph in callgraph.json's form strictly (unknown fields are errors) and
// checks that every edge joins known services of known roles.
func Parse(data []byte) (*Graph, error) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if f.Gateway.Name == "" || f.Gateway.Namespace == "" || f.Gateway.ServiceAccount == "" {
		return nil, fmt.Errorf("the gateway needs a name, a namespace and a service account")
	}
	g := &Graph{Gateway: Identity{Namespace: f.Gateway.Namespace, ServiceAccount: f.Gateway.ServiceAccount}}
	roleOf := map[string]string{}
	for _, s := range f.Services {
		if err := checkRole(s.Name, s.Role); err != nil {
			return nil, err
		}
		if s.ServiceAccount == "" || roleOf[s.Name] != "" || s.Name == f.Gateway.Name {
			return nil, fmt.Errorf("service %q: a unique name and a service account are required", s.Name)
		}
		roleOf[s.Name] = s.Role
		g.Services = append(g.Services, Service{Name: s.Name, Role: s.Role, ServiceAccount: s.ServiceAccount, OperatorOps: ops(s.OperatorOps)})
	}
	databaseRoles := map[string]bool{}
	for _, d := range f.Databases {
		if err := checkRole(d.Name, d.Role); err != nil {
			return nil, err
		}
		databaseRoles[d.Name+"/"+d.Role] = true
		g.Databases = append(g.Databases, Service{Name: d.Name, Role: d.Role})
	}
	for _, e := range f.Edges {
		edge := Edge{From: e.From, FromRole: roleOf[e.From], To: e.To, ToRole: roleOf[e.To], Ops: ops(e.Ops)}
		if e.From == f.Gateway.Name {
			edge.From = ""
		} else if edge.FromRole == "" {
			return nil, fmt.Errorf("edge %s → %s: %q is neither a service nor the gateway", e.From, e.To, e.From)
		}
		if edge.ToRole == "" || len(edge.Ops) == 0 {
			return nil, fmt.Errorf("edge %s → %s: the destination must be a service and the edge name operations", e.From, e.To)
		}
		g.Edges = append(g.Edges, edge)
	}
	for _, e := range f.DatabaseEdges {
		role := roleOf[e.From]
		if role == "" || !databaseRoles[e.To+"/"+role] || e.Port == "" {
			return nil, fmt.Errorf("database edge %s → %s: a service, a database in its namespace and a port are required", e.From, e.To)
		}
		g.DatabaseEdges = append(g.DatabaseEdges, Edge{From: e.From, FromRole: role, To: e.To, ToRole: role, Port: e.Port})
	}
	return g, nil
}

func checkRole(name, role string) error {
	if name == "" || (role != Orders && role != Payments) {
		return fmt.Errorf("%q: a name and the role %q or %q are required (got %q)", name, Orders, Payments, role)
	}
	return nil
}

func ops(in []fileOp) []Op {
	var out []Op
	for _, o := range in {
		out = append(out, Op{Method: o.Method, Path: o.Path})
	}
	return out
}
