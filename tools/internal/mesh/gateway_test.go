package mesh

import (
	"os"
	"path/filepath"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"ordermesh.local/tools/internal/manifest"
)

// The gateway-api variant's ingress is what Istio's automated deployment makes of deploy/'s
// Gateway, and its routes name per-version Services where the istio variant names subsets.
func TestGatewayAPIVariantGatewayAndClusters(t *testing.T) {
	ld, err := LoadRouting(deployDir(t), "", DefaultNetwork, manifest.RoutingGatewayAPI)
	if err != nil {
		t.Fatal(err)
	}
	var gws []*Pod
	for _, p := range ld.Topology.Pods {
		if p.Role == RoleGateway {
			gws = append(gws, p)
		}
	}
	if len(gws) != 2 {
		t.Fatalf("%d gateway pods, want 2 (the options' horizontalPodAutoscaler minReplicas)", len(gws))
	}
	gw := gws[0]
	want := map[string]string{
		"gateway.networking.k8s.io/gateway-name": "ordermesh-gateway",
		"istio":                                  "ingressgateway",
		"service.istio.io/canonical-name":        "ordermesh-gateway-istio",
	}
	for k, v := range want {
		if gw.Labels[k] != v {
			t.Errorf("gateway pod label %s = %q, want %q", k, gw.Labels[k], v)
		}
	}
	if gw.Name != "ordermesh-gateway-istio-0" || gw.ServiceAccount != "istio-ingressgateway-service-account" || ld.Topology.GatewayPort() != 80 {
		t.Errorf("gateway pod %s as %s on port %d; want ordermesh-gateway-istio-0 as istio-ingressgateway-service-account on 80",
			gw.Name, gw.ServiceAccount, ld.Topology.GatewayPort())
	}
	if s := ld.service("istio-system", "ordermesh-gateway-istio"); s == nil || len(ld.Topology.podsBehind(s)) != 2 {
		t.Errorf("Service istio-system/ordermesh-gateway-istio missing or not selecting both gateway pods")
	}
	if got := TenantHosts(ld)["tenant-a"]; got != "tenant-a.ordermesh.local" {
		t.Errorf("tenant-a's host on the Gateway = %q", got)
	}
	for _, c := range []struct{ ns, name, subset, want string }{
		{"tenant-a-payments", "payment-service", "canary", "outbound|8080||payment-service-canary.tenant-a-payments.svc.cluster.local"},
		{"tenant-a-orders", "inventory-service", "stable", "outbound|8080||inventory-service.tenant-a-orders.svc.cluster.local"},
	} {
		if got := ld.RouteCluster(c.ns, c.name, c.subset, 8080); got != c.want {
			t.Errorf("RouteCluster(%s/%s, %s) = %s, want %s", c.ns, c.name, c.subset, got, c.want)
		}
	}
	if w, err := ld.CanaryWeight("tenant-a-payments"); err != nil || w != 10 {
		t.Errorf("canary weight %d, %v; want 10", w, err)
	}
}

// The Gateway API objects reach istiod as a cluster's API server stores them: deploy/'s
// HTTPRoute matches name a method and leave the path out, and the CRD schema's default
// (PathPrefix "/") is filled in — istiod's conversion reads it without a fallback.
func TestGatewayAPIObjectsAreStoredWithTheirSchemaDefaults(t *testing.T) {
	ld, err := LoadRouting(deployDir(t), "", DefaultNetwork, manifest.RoutingGatewayAPI)
	if err != nil {
		t.Fatal(err)
	}
	matches := 0
	for _, o := range ld.GatewayAPI {
		r, ok := o.(*gatewayv1.HTTPRoute)
		if !ok {
			continue
		}
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				matches++
				if m.Path == nil || m.Path.Type == nil || m.Path.Value == nil {
					t.Errorf("HTTPRoute %s/%s: a match without its path default", r.Namespace, r.Name)
				}
			}
		}
	}
	if matches == 0 {
		t.Fatal("no HTTPRoute match loaded in the gateway-api variant")
	}
}

// The canary demo's and test's live change — deploy/'s HTTPRoute with other weights, marshalled
// from its Go object (so with an empty status) into the extra directory — loads as an API
// server would take it: the status is ignored, the weights apply.
func TestGatewayAPICanaryChangeLoadsAsAnExtra(t *testing.T) {
	ld, err := LoadRouting(deployDir(t), "", DefaultNetwork, manifest.RoutingGatewayAPI)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "tenant-a-payments"
	y, err := ld.WithCanaryWeight(ns, 50)
	if err != nil {
		t.Fatal(err)
	}
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "canary.yaml"), y, 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := LoadRouting(deployDir(t), extra, DefaultNetwork, manifest.RoutingGatewayAPI)
	if err != nil {
		t.Fatalf("the canary change does not load: %v", err)
	}
	if w, err := changed.CanaryWeight(ns); err != nil || w != 50 {
		t.Fatalf("canary weight after the change: %d (%v), want 50", w, err)
	}
}
