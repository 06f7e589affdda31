package callgraph

// callgraph.json read as the tools see it, and the reader refusing what it must not guess.

import (
	"strings"
	"testing"
)

func TestTheFileReadsAsDesignMdsGraph(t *testing.T) {
	if Gateway != (Identity{Namespace: "istio-system", ServiceAccount: "istio-ingressgateway-service-account"}) {
		t.Errorf("gateway identity %+v", Gateway)
	}
	var got []string
	for _, e := range Edges {
		got = append(got, e.From+"/"+e.FromRole+" → "+e.To+"/"+e.ToRole)
	}
	want := []string{
		"/ → order-service/orders",
		"order-service/orders → payment-service/payments",
		"payment-service/payments → inventory-service/orders",
		"order-service/orders → notify-service/orders",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("edges %q, want %q", got, want)
	}
	if len(PublicOps()) != 4 || PublicOps()[0] != (Op{"POST", "/api/v1/orders"}) {
		t.Errorf("public operations %v", PublicOps())
	}
	for _, s := range Services {
		if s.ServiceAccount != s.Name {
			t.Errorf("%s runs as %s: the mesh tests assume every service runs as the account of its name", s.Name, s.ServiceAccount)
		}
	}
	for _, e := range DatabaseEdges {
		if e.FromRole != e.ToRole || e.Port != "5432" {
			t.Errorf("database edge %+v leaves its namespace or port 5432", e)
		}
	}
}

func TestParseRefusesWhatItCannotPlace(t *testing.T) {
	good := string(source)
	for name, c := range map[string]struct{ old, new, want string }{
		"unknown field":          {`"edges": [`, `"edge": [], "edges": [`, `unknown field "edge"`},
		"unknown caller":         {`"from": "order-service", "to": "notify-service"`, `"from": "order-svc", "to": "notify-service"`, `"order-svc" is neither a service nor the gateway`},
		"unknown destination":    {`"to": "notify-service"`, `"to": "notify"`, "the destination must be a service"},
		"unknown role":           {`"role": "payments", "serviceAccount"`, `"role": "billing", "serviceAccount"`, `role "orders" or "payments"`},
		"service account absent": {`"serviceAccount": "notify-service"`, `"serviceAccount": ""`, "a service account are required"},
		"database elsewhere":     {`{"from": "payment-service", "to": "postgres"`, `{"from": "payment-service", "to": "redis"`, "a database in its namespace"},
	} {
		if strings.Count(good, c.old) != 1 {
			t.Fatalf("%s: %q is not in callgraph.json once (update the case)", name, c.old)
		}
		_, err := Parse([]byte(strings.Replace(good, c.old, c.new, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}
