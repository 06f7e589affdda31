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

var (
	baseOnce   sync.Once
	baseBundle *manifest.Bundle
	baseReport *report.Report
	baseErr    error
)

func base(t *testing.T) (*manifest.Bundle, *report.Report) {
	t.Helper()
	baseOnce.Do(func() {
		baseBundle, baseErr = manifest.Load(deployDir, manifest.RoutingIstio)
		if baseErr == nil {
			baseReport = Check(baseBundle.Clone())
		}
	})
	if baseErr != nil {
		t.Fatalf("rendering %s: %v", deployDir, baseErr)
	}
	return baseBundle.Clone(), baseReport
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

// TestDeployPasses is the positive test: the real deploy/ passes every check.
func TestDeployPasses(t *testing.T) {
	_, r := base(t)
	if !r.OK {
		t.Fatalf("deploy/ fails check-deploy:\n%s", failuresText(r))
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
