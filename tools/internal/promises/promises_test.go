package promises

import (
	"reflect"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"ordermesh.local/tools/internal/callgraph"
)

func TestPolicyPattern(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/payments":                        "/api/v1/payments",
		"/api/v1/payments/{id}":                   "/api/v1/payments/{*}",
		"/api/v1/reservations/{order_id}/release": "/api/v1/reservations/{*}/release",
		"/api/v1/x/{*}":                           "/api/v1/x/{*}",
	} {
		if got := policyPattern(in); got != want {
			t.Errorf("policyPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrincipalToSource(t *testing.T) {
	for in, want := range map[string]string{
		"cluster.local/ns/tenant-a-orders/sa/order-service":          "tenant-a-orders/order-service",
		"spiffe://cluster.local/ns/tenant-a-orders/sa/order-service": "tenant-a-orders/order-service",
		"*":                                     "*",
		"cluster.local/ns/tenant-a-orders/sa/*": "principal:cluster.local/ns/tenant-a-orders/sa/*",
		"other.td/ns/a/sa/b":                    "principal:other.td/ns/a/sa/b",
	} {
		if got := principalToSource(in, "cluster.local"); got != want {
			t.Errorf("principalToSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSourcesAndOps(t *testing.T) {
	rule := &security.Rule{
		From: []*security.Rule_From{
			{Source: &security.Source{ServiceAccounts: []string{"ns/a"}}},
			{Source: &security.Source{Namespaces: []string{"ns2"}}},
			{Source: &security.Source{NotPrincipals: []string{"x"}}},
		},
		To: []*security.Rule_To{
			{Operation: &security.Operation{Methods: []string{"GET"}, Paths: []string{"/a", "/b"}, Ports: []string{"8080"}}},
			{Operation: &security.Operation{Ports: []string{"5432"}}},
		},
	}
	if got, want := sourcesOf(rule, "cluster.local"), []string{"ns/a", "ns2/*", "*"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sourcesOf = %v, want %v", got, want)
	}
	want := []op{{"GET", "/a", "*"}, {"GET", "/b", "*"}, {"*", "*", "5432"}}
	if got := opsOf(rule); !reflect.DeepEqual(got, want) {
		t.Errorf("opsOf = %v, want %v", got, want)
	}
	if got := sourcesOf(&security.Rule{}, "cluster.local"); !reflect.DeepEqual(got, []string{"*"}) {
		t.Errorf("no from must mean anyone, got %v", got)
	}
	if got := opsOf(&security.Rule{}); !reflect.DeepEqual(got, []op{{"*", "*", "*"}}) {
		t.Errorf("no to must mean any request, got %v", got)
	}
}

func TestMatchesMethod(t *testing.T) {
	m := func(sm *networking.StringMatch) *networking.HTTPMatchRequest {
		return &networking.HTTPMatchRequest{Method: sm}
	}
	exact := func(s string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
	}
	regex := func(s string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: s}}
	}
	cases := []struct {
		name  string
		route *networking.HTTPRoute
		post  bool
	}{
		{"no match: every method", &networking.HTTPRoute{}, true},
		{"GET only", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{m(exact("GET"))}}, false},
		{"POST", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{m(exact("POST"))}}, true},
		{"uri-only match: every method", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{{Name: "x"}}}, true},
		{"GET or uri-only", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{m(exact("GET")), {Name: "x"}}}, true},
		{"regex GET|POST", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{m(regex("GET|POST"))}}, true},
		{"regex G.*", &networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{m(regex("G.*"))}}, false},
	}
	for _, c := range cases {
		if got := matchesMethod(c.route, "POST"); got != c.post {
			t.Errorf("%s: matchesMethod(POST) = %v", c.name, got)
		}
	}
}

// The call graph data must be self-consistent: every edge joins known services.
func TestCallGraphConsistent(t *testing.T) {
	known := map[string]string{}
	for _, s := range append(append([]callgraph.Service{}, callgraph.Services...), callgraph.Databases...) {
		known[s.Name+"/"+s.Role] = s.Name
	}
	for _, e := range callgraph.All() {
		if e.From != "" && known[e.From+"/"+e.FromRole] == "" {
			t.Errorf("edge source %s/%s is not a service", e.From, e.FromRole)
		}
		if known[e.To+"/"+e.ToRole] == "" {
			t.Errorf("edge destination %s/%s is not a service", e.To, e.ToRole)
		}
		if (len(e.Ops) == 0) == (e.Port == "") {
			t.Errorf("edge %s→%s must have either HTTP operations or a TCP port", e.From, e.To)
		}
	}
	if len(callgraph.Edges) != 4 || callgraph.Edges[0].From != "" {
		t.Errorf("DESIGN.md has the gateway edge plus three service edges; got %d edges", len(callgraph.Edges))
	}
}

func TestPathMatchesIstioSemantics(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/api/v1/payments", "/api/v1/payments", true},
		{"/api/v1/payments", "/api/v1/payments/", false},
		{"/api/v1/payments/*", "/api/v1/payments", false},
		{"/api/v1/payments/*", "/api/v1/payments/x/y", true},
		{"*/refund", "/api/v1/payments/x/refund", true},
		{"/api/v1/payments/{*}", "/api/v1/payments/x", true},
		{"/api/v1/payments/{*}", "/api/v1/payments/x/refund", false},
		{"/api/v1/payments/{*}", "/api/v1/payments/", false},
		{"/api/v1/payments/{*}/refund", "/api/v1/payments/x/refund", true},
		{"/api/v1/{**}", "/api/v1/a/b", true},
	}
	for _, c := range cases {
		if got := PathMatches(c.pattern, c.path); got != c.want {
			t.Errorf("PathMatches(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
