package checkdeploy

// The positive test: the real deploy/ passes every check. The negative tests, each breaking one
// thing, are the table in negative_test.go.

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/promises"
	"ordermesh.local/tools/internal/report"
)

// deployDir is the repository's deploy/ (tools/internal/checkdeploy → ../../../deploy).
var deployDir = filepath.Join("..", "..", "..", "deploy")

// baseline is one routing variant of the real deploy/, rendered and checked once.
type baseline struct {
	once   sync.Once
	bundle *manifest.Bundle
	report *report.Report
	err    error
}

var baselines = map[manifest.Routing]*baseline{manifest.RoutingIstio: {}, manifest.RoutingGatewayAPI: {}}

// base is the Istio variant (the default); baseFor any variant.
func base(t *testing.T) (*manifest.Bundle, *report.Report) { return baseFor(t, manifest.RoutingIstio) }

func baseFor(t *testing.T, routing manifest.Routing) (*manifest.Bundle, *report.Report) {
	t.Helper()
	bl := baselines[routing]
	if bl == nil {
		t.Fatalf("unknown routing variant %q", routing)
	}
	bl.once.Do(func() {
		bl.bundle, bl.err = manifest.Load(deployDir, routing)
		if bl.err == nil {
			bl.report = Check(bl.bundle.Clone())
		}
	})
	if bl.err != nil {
		t.Fatalf("rendering %s (%s): %v", deployDir, routing, bl.err)
	}
	return bl.bundle.Clone(), bl.report
}

func failuresText(r *report.Report) string {
	var b strings.Builder
	for _, c := range r.Failures() {
		b.WriteString("✗ " + c.ID + " [" + c.Scope + "]\n")
		for _, f := range c.Findings {
			b.WriteString("    " + f.Object + ": " + f.Message + "\n")
		}
	}
	return b.String()
}

// TestDeployPasses is the positive test: the real deploy/ passes every check, in both
// routing variants.
func TestDeployPasses(t *testing.T) {
	_, r := base(t)
	if !r.OK {
		t.Fatalf("deploy/ fails check-deploy:\n%s", failuresText(r))
	}
	for _, id := range []string{promises.IDOneAPI, promises.IDTenantBackends} {
		if len(r.Find(id)) == 0 {
			t.Errorf("check %s did not run", id)
		}
	}
	// Every stage and promise ran, for the mesh and for each tenant overlay.
	for _, id := range []string{IDRender, IDDecode, IDValidate, IDAnalyze, promises.IDMeshInstall, promises.IDStrictMesh,
		promises.IDStrict, promises.IDNoOverride, promises.IDDestRuleTLS, promises.IDAllowNothing, promises.IDCallGraph,
		promises.IDIsolation, promises.IDSubsets, promises.IDWeights, promises.IDRetryTimeout, promises.IDPostRetry,
		promises.IDTraceProvider, promises.IDTenantTracing, promises.IDNoOrderIDMetric, promises.IDAppMetrics, promises.IDIdentity, promises.IDInjection,
		promises.IDCircuitBreaker, promises.IDLeastRequest, promises.IDCanaryFallback, promises.IDVisibleToCaller, promises.IDTimeoutVsCaller,
		promises.IDSidecarEgress, promises.IDNetworkPolicy, promises.IDGatewayHosts, promises.IDGatewayTracing, promises.IDAppSampling, promises.IDAppCallers} {
		if len(r.Find(id)) == 0 {
			t.Errorf("check %s did not run", id)
		}
	}
	tenants := map[string]bool{}
	for _, c := range r.Find(promises.IDCallGraph) {
		tenants[c.Scope] = true
	}
	for _, want := range []string{"mesh", "tenant-a", "tenant-b"} {
		if !tenants[want] {
			t.Errorf("authz.call-graph has no [%s] line (scopes %v)", want, tenants)
		}
	}
}

// TestGatewayAPIVariantPasses: the gateway-api variant passes every check too, its lines scoped
// gateway-api/<scope>, with Istio's conversion and the Gateway API schema checks among them and
// the promises running on what Istio generated from the HTTPRoutes.
func TestGatewayAPIVariantPasses(t *testing.T) {
	_, r := baseFor(t, manifest.RoutingGatewayAPI)
	if !r.OK {
		t.Fatalf("deploy/ (gateway-api) fails check-deploy:\n%s", failuresText(r))
	}
	for _, c := range r.Checks {
		if !strings.HasPrefix(c.Scope, "gateway-api/") {
			t.Errorf("%s has scope %q, want gateway-api/…", c.ID, c.Scope)
		}
	}
	for _, id := range []string{IDGatewayAPIValidate, IDGatewayAPIIstio, promises.IDOneAPI, promises.IDWeights, promises.IDCanaryFallback,
		promises.IDRetryTimeout, promises.IDPostRetry, promises.IDVisibleToCaller, promises.IDGatewayHosts, promises.IDGatewayTracing} {
		scopes := map[string]bool{}
		for _, c := range r.Find(id) {
			scopes[c.Scope] = true
		}
		if !scopes["gateway-api/tenant-a"] && !scopes["gateway-api/mesh"] {
			t.Errorf("check %s has no gateway-api/tenant-a or gateway-api/mesh line (scopes %v)", id, scopes)
		}
	}
	// The canary split is checked on the per-version Services Istio routes to.
	for _, c := range r.Find(promises.IDCanaryFallback) {
		if c.Scope == "gateway-api/tenant-a" && !strings.Contains(c.Detail, "payment-service-canary.tenant-a-payments.svc.cluster.local") {
			t.Errorf("canary-fallback did not look at payment-service-canary: %q", c.Detail)
		}
	}
}

// Run checks both variants in one report: the Istio variant's lines bare, the other's prefixed.
func TestRunChecksBothVariants(t *testing.T) {
	r, err := Run(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	scopes := map[string]bool{}
	for _, c := range r.Find(promises.IDWeights) {
		scopes[c.Scope] = true
	}
	for _, want := range []string{"tenant-a", "gateway-api/tenant-a", "tenant-b", "gateway-api/tenant-b"} {
		if !scopes[want] {
			t.Errorf("routing.weights has no [%s] line (scopes %v)", want, scopes)
		}
	}
	if !r.OK {
		t.Errorf("deploy/ fails:\n%s", failuresText(r))
	}
}

// The report is written in both forms and the JSON form carries the failures.
func TestReportForms(t *testing.T) {
	b, _ := base(t)
	applyPatches(t, b, remove("AuthorizationPolicy tenant-a-orders/allow-nothing"))
	r := Check(b)
	var text, js strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "✗ FAIL  authz.allow-nothing") || !strings.Contains(text.String(), "fix: add AuthorizationPolicy `allow-nothing`") {
		t.Errorf("text report lacks the failure line and fix:\n%s", text.String())
	}
	if !strings.Contains(js.String(), `"id": "authz.allow-nothing"`) || !strings.Contains(js.String(), `"ok": false`) {
		t.Errorf("JSON report lacks the failure")
	}
}
