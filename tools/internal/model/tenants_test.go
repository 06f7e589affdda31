package model

import (
	"slices"
	"testing"
)

func TestTenantsNamespaces(t *testing.T) {
	a := &Tenant{Overlay: "tenant-a", ID: "tenant-a", Namespaces: []string{"tenant-a-orders", "tenant-a-payments"}}
	b := &Tenant{Overlay: "tenant-b", ID: "b", Namespaces: []string{"tenant-b-orders"}}
	ts := Tenants{a, b}

	var got []string
	for tn, ns := range ts.Namespaces() {
		got = append(got, tn.Overlay+" "+ns)
	}
	want := []string{"tenant-a tenant-a-orders", "tenant-a tenant-a-payments", "tenant-b tenant-b-orders"}
	if !slices.Equal(got, want) {
		t.Errorf("Namespaces() yielded %q, want %q", got, want)
	}

	for range ts.Namespaces() {
		break // a loop that stops early must not be yielded to again
	}

	if ts.ByID("b") != b || ts.ByID("tenant-b") != nil || ts.ByID("tenant-a") != a {
		t.Errorf("ByID finds tenants by their tenant label, not their overlay")
	}
}
