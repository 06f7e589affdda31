package checkdeploy

// The positive test (deploy/ passes) and the negative tests: each renders the real deploy/,
// breaks one thing in the rendered objects and asserts that the right check fails, on the right
// tenant, with the right message, while the same check passes on the unmodified render.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

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
		baseBundle, baseErr = manifest.Load(deployDir)
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

// expectFailure runs the check on a mutated bundle and asserts that check id fails in scope
// with a finding containing every substring of want, and that it passed before the mutation.
func expectFailure(t *testing.T, b *manifest.Bundle, id, scope string, want ...string) *report.Report {
	t.Helper()
	return expectFailureIn(t, func() *report.Report { return Check(b) }, id, scope, want...)
}

// expectFailureIn is expectFailure for a report made some other way (e.g. from edited sources).
func expectFailureIn(t *testing.T, check func() *report.Report, id, scope string, want ...string) *report.Report {
	t.Helper()
	_, baseline := base(t)
	for _, c := range baseline.Find(id) {
		if c.Scope == scope && c.Status != report.Pass {
			t.Fatalf("baseline: %s [%s] already fails on the unmodified deploy/:\n%s", id, scope, failuresText(baseline))
		}
	}
	if len(baseline.Find(id)) == 0 {
		t.Fatalf("baseline: check %s never runs", id)
	}
	r := check()
	if r.OK {
		t.Fatalf("mutation not caught: every check passes")
	}
	for _, c := range r.Find(id) {
		if c.Scope != scope || c.Status == report.Pass {
			continue
		}
		for _, f := range c.Findings {
			text := f.Object + ": " + f.Message
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				if f.Fix == "" && id != IDRender {
					t.Errorf("finding has no fix: %s", text)
				}
				return r
			}
		}
	}
	t.Fatalf("expected %s [%s] to fail with %q; failures were:\n%s", id, scope, want, failuresText(r))
	return r
}

// edit is one change to a kustomize source file under deploy/: Old must occur exactly once.
type edit struct{ file, old, new string }

// sourceCase copies deploy/ to a temporary directory, applies the edits to the kustomize
// sources (overlays, components, bases), renders and checks it there.
func sourceCase(t *testing.T, edits ...edit) func() *report.Report {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.CopyFS(dir, os.DirFS(deployDir)); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		path := filepath.Join(dir, filepath.FromSlash(e.file))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), e.old); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want 1 (the source changed: update the case)", e.file, e.old, n)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), e.old, e.new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func() *report.Report {
		r, err := Run(dir)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// ---- helpers to find and edit rendered objects ----

func overlay(t *testing.T, b *manifest.Bundle, name string) *manifest.Unit {
	t.Helper()
	if name == "mesh" {
		return b.Mesh
	}
	for _, u := range b.Overlays {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no overlay %s", name)
	return nil
}

func find(t *testing.T, b *manifest.Bundle, kind, ns, name string) *manifest.Object {
	t.Helper()
	for _, o := range b.Objects() {
		if o.Kind() == kind && o.Namespace() == ns && o.Name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s in the render of deploy/", kind, ns, name)
	return nil
}

func findAll(b *manifest.Bundle, kind, ns string) []*manifest.Object {
	var out []*manifest.Object
	for _, o := range b.Objects() {
		if o.Kind() == kind && (ns == "" || o.Namespace() == ns) {
			out = append(out, o)
		}
	}
	return out
}

func remove(t *testing.T, b *manifest.Bundle, target *manifest.Object) {
	t.Helper()
	for _, u := range b.Units() {
		for i, o := range u.Objects {
			if o == target {
				u.Objects = append(u.Objects[:i], u.Objects[i+1:]...)
				return
			}
		}
	}
	t.Fatalf("object %s not in bundle", target.Ref())
}

func addYAML(t *testing.T, b *manifest.Bundle, unit, y string) {
	t.Helper()
	u := overlay(t, b, unit)
	objs, err := manifest.ParseDocs([]byte(y), u.Dir)
	if err != nil {
		t.Fatal(err)
	}
	u.Objects = append(u.Objects, objs...)
}

// path walks "spec.http[1].retries" style paths.
func walk(t *testing.T, obj map[string]any, path string, create bool) (parent any, key string) {
	t.Helper()
	var cur any = obj
	parts := strings.Split(path, ".")
	for i, p := range parts {
		name, idx := p, -1
		if j := strings.Index(p, "["); j >= 0 {
			name = p[:j]
			n, err := strconv.Atoi(strings.TrimSuffix(p[j+1:], "]"))
			if err != nil {
				t.Fatalf("bad path %s", path)
			}
			idx = n
		}
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("path %s: %s is not a map", path, name)
		}
		last := i == len(parts)-1
		if last && idx < 0 {
			return m, name
		}
		next, ok := m[name]
		if !ok {
			if !create || idx >= 0 {
				t.Fatalf("path %s: no %s", path, name)
			}
			next = map[string]any{}
			m[name] = next
		}
		if idx >= 0 {
			s, ok := next.([]any)
			if !ok || idx >= len(s) {
				t.Fatalf("path %s: %s[%d] out of range", path, name, idx)
			}
			if last {
				return s, strconv.Itoa(idx)
			}
			next = s[idx]
		}
		cur = next
	}
	return nil, ""
}

func get(t *testing.T, o *manifest.Object, path string) any {
	t.Helper()
	p, k := walk(t, o.Obj, path, false)
	switch pp := p.(type) {
	case map[string]any:
		return pp[k]
	case []any:
		i, _ := strconv.Atoi(k)
		return pp[i]
	}
	return nil
}

func set(t *testing.T, o *manifest.Object, path string, v any) {
	t.Helper()
	p, k := walk(t, o.Obj, path, true)
	switch pp := p.(type) {
	case map[string]any:
		pp[k] = v
	case []any:
		i, _ := strconv.Atoi(k)
		pp[i] = v
	}
}

func del(t *testing.T, o *manifest.Object, path string) {
	t.Helper()
	p, k := walk(t, o.Obj, path, false)
	m, ok := p.(map[string]any)
	if !ok {
		t.Fatalf("del %s: parent is not a map", path)
	}
	if _, ok := m[k]; !ok {
		t.Fatalf("del %s: no such field", path)
	}
	delete(m, k)
}

// httpRoute finds the index of the HTTP route of a VirtualService matching method (exact).
func httpRoute(t *testing.T, vs *manifest.Object, method string) int {
	t.Helper()
	routes, _ := get(t, vs, "spec.http").([]any)
	for i, r := range routes {
		for _, m := range asSlice(r.(map[string]any)["match"]) {
			if mm, ok := m.(map[string]any)["method"].(map[string]any); ok && mm["exact"] == method {
				return i
			}
		}
	}
	t.Fatalf("%s has no %s route", vs.Ref(), method)
	return -1
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// negativeCases: each breaks one thing — in the rendered objects, or in the kustomize sources
// (sourceCase) — and asserts that the right check fails, on the right scope, with the right
// message, while the same check passes on the unmodified deploy/.
var negativeCases = []struct {
	name string
	run  func(t *testing.T)
}{
	// ---- mTLS ----
	{"PermissiveWorkloadOverride", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-a", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: payment-permissive, namespace: tenant-a-payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  mtls: {mode: PERMISSIVE}
`)
		expectFailure(t, b, promises.IDNoOverride, "tenant-a", "PeerAuthentication tenant-a-payments/payment-permissive", "workload-level mtls.mode PERMISSIVE")
	}},
	{"PortLevelDisable", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-b", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: order-port-plaintext, namespace: tenant-b-orders}
spec:
  selector: {matchLabels: {app: order-service}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
`)
		expectFailure(t, b, promises.IDNoOverride, "tenant-b", "portLevelMtls[8080] mode DISABLE")
	}},
	{"NamespacePermissive", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "PeerAuthentication", "tenant-a-orders", "default"), "spec.mtls.mode", "PERMISSIVE")
		expectFailure(t, b, promises.IDStrict, "tenant-a", "tenant-a-orders", "no namespace-wide STRICT")
		expectFailure(t, b, promises.IDNoOverride, "tenant-a", "namespace-level mtls.mode PERMISSIVE")
	}},
	{"MeshWideStrictMissing", func(t *testing.T) {
		b, _ := base(t)
		for _, pa := range findAll(b, "PeerAuthentication", "istio-system") {
			remove(t, b, pa)
		}
		expectFailure(t, b, promises.IDStrictMesh, "mesh", "no mesh-wide STRICT PeerAuthentication")
	}},
	{"DestinationRuleTLS", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "DestinationRule", "tenant-a-payments", "payment-service"), "spec.trafficPolicy.tls", map[string]any{"mode": "SIMPLE"})
		expectFailure(t, b, promises.IDDestRuleTLS, "tenant-a", "DestinationRule tenant-a-payments/payment-service", "trafficPolicy.tls.mode SIMPLE")
	}},
	{"InjectionOptOut", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-b-orders", "notify-service")
		meta := get(t, d, "spec.template.metadata").(map[string]any)
		ann, _ := meta["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
			meta["annotations"] = ann
		}
		ann["sidecar.istio.io/inject"] = "false"
		expectFailure(t, b, promises.IDInjection, "tenant-b", "notify-service", "disables sidecar injection")
	}},
	// ---- authorization ----
	{"CrossTenantAllow", func(t *testing.T) {
		b, _ := base(t)
		ap := find(t, b, "AuthorizationPolicy", "tenant-b-payments", "allow-order-service-to-payment-service")
		sas := get(t, ap, "spec.rules[0].from[0].source.serviceAccounts").([]any)
		set(t, ap, "spec.rules[0].from[0].source.serviceAccounts", append(sas, "tenant-a-orders/order-service"))
		expectFailure(t, b, promises.IDIsolation, "tenant-b", "allow-order-service-to-payment-service", "admits tenant-a-orders/order-service", "belongs to tenant tenant-a")
		expectFailure(t, b, promises.IDCallGraph, "tenant-b", "allows tenant-a-orders/order-service → tenant-b-payments/payment-service", "not in the call graph")
	}},
	{"CrossTenantPrincipalPolicy", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-a", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: let-b-in, namespace: tenant-a-orders}
spec:
  selector: {matchLabels: {app: notify-service}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/tenant-b-orders/sa/order-service"]}}]
      to: [{operation: {methods: ["GET"], paths: ["/api/v1/notifications"]}}]
`)
		expectFailure(t, b, promises.IDIsolation, "tenant-a", "let-b-in", "belongs to tenant tenant-b")
	}},
	{"WildcardPrincipal", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-a", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: anyone, namespace: tenant-a-orders}
spec:
  selector: {matchLabels: {app: inventory-service}}
  rules:
    - from: [{source: {principals: ["*"]}}]
      to: [{operation: {methods: ["GET"], paths: ["/api/v1/reservations/{*}"]}}]
`)
		expectFailure(t, b, promises.IDIsolation, "tenant-a", "anyone", "admits *", "wildcard")
	}},
	{"EmptyFrom", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-b", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-from, namespace: tenant-b-payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
    - to: [{operation: {methods: ["GET"], paths: ["/api/v1/payments"]}}]
`)
		expectFailure(t, b, promises.IDIsolation, "tenant-b", "no-from", "has no `from`")
		expectFailure(t, b, promises.IDCallGraph, "tenant-b", "allows * → tenant-b-payments/payment-service: GET /api/v1/payments")
	}},
	{"MissingAllowNothing", func(t *testing.T) {
		b, _ := base(t)
		remove(t, b, find(t, b, "AuthorizationPolicy", "tenant-a-payments", "allow-nothing"))
		expectFailure(t, b, promises.IDAllowNothing, "tenant-a", "tenant-a-payments", "no allow-nothing")
	}},
	{"PrefixPath", func(t *testing.T) {
		b, _ := base(t)
		ap := find(t, b, "AuthorizationPolicy", "tenant-a-payments", "allow-order-service-to-payment-service")
		for _, to := range asSlice(get(t, ap, "spec.rules[0].to")) {
			op := to.(map[string]any)["operation"].(map[string]any)
			for i, p := range asSlice(op["paths"]) {
				if p == "/api/v1/payments/{*}" {
					op["paths"].([]any)[i] = "/api/v1/payments/*"
				}
			}
		}
		expectFailure(t, b, promises.IDCallGraph, "tenant-a", "GET /api/v1/payments/*", "not in the call graph")
		expectFailure(t, b, promises.IDCallGraph, "tenant-a", "edge not allowed", "GET /api/v1/payments/{*}")
	}},
	{"MissingEdge", func(t *testing.T) {
		b, _ := base(t)
		remove(t, b, find(t, b, "AuthorizationPolicy", "tenant-b-orders", "allow-order-service-to-notify-service"))
		expectFailure(t, b, promises.IDCallGraph, "tenant-b", "edge not allowed: tenant-b-orders/order-service → tenant-b-orders/notify-service: POST /api/v1/notifications")
	}},
	{"ExtraMethod", func(t *testing.T) {
		b, _ := base(t)
		ap := find(t, b, "AuthorizationPolicy", "tenant-a-orders", "allow-order-service-to-notify-service")
		for _, to := range asSlice(get(t, ap, "spec.rules[0].to")) {
			op := to.(map[string]any)["operation"].(map[string]any)
			op["methods"] = append(asSlice(op["methods"]), "DELETE")
		}
		expectFailure(t, b, promises.IDCallGraph, "tenant-a", "DELETE /api/v1/notifications", "not in the call graph")
	}},
	{"PublicGatewayWidened", func(t *testing.T) {
		b, _ := base(t)
		ap := find(t, b, "AuthorizationPolicy", "istio-system", "allow-public-order-api")
		set(t, ap, "spec.rules[0].to", []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}, "paths": []any{"/api/*"}}}})
		expectFailure(t, b, promises.IDCallGraph, "mesh", "allows * → istio-system/istio-ingressgateway: GET /api/*")
	}},
	// ---- routing ----
	{"MissingSubset", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-a-payments", "payment-service")
		i := httpRoute(t, vs, "GET")
		route := asSlice(get(t, vs, "spec.http["+strconv.Itoa(i)+"].route"))
		for _, d := range route {
			dest := d.(map[string]any)["destination"].(map[string]any)
			if dest["subset"] == "canary" {
				dest["subset"] = "canery"
			}
		}
		expectFailure(t, b, promises.IDSubsets, "tenant-a", "VirtualService tenant-a-payments/payment-service", `subset "canery"`, "no DestinationRule defines")
	}},
	{"SubsetSelectsNothing", func(t *testing.T) {
		b, _ := base(t)
		dr := find(t, b, "DestinationRule", "tenant-b-payments", "payment-service")
		for _, s := range asSlice(get(t, dr, "spec.subsets")) {
			sm := s.(map[string]any)
			if sm["name"] == "canary" {
				sm["labels"] = map[string]any{"version": "cannary"}
			}
		}
		expectFailure(t, b, promises.IDSubsets, "tenant-b", "DestinationRule tenant-b-payments/payment-service", `subset "canary"`, "select no workload")
	}},
	{"SubsetNotExportedToCaller", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "DestinationRule", "tenant-a-payments", "payment-service"), "spec.exportTo", []any{"."})
		expectFailure(t, b, promises.IDSubsets, "tenant-a", "VirtualService tenant-a-payments/payment-service",
			"no DestinationRule defining it is exported to tenant-a-orders")
	}},
	{"WeightsNot100", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-a-payments", "payment-service")
		i := httpRoute(t, vs, "POST")
		set(t, vs, "spec.http["+strconv.Itoa(i)+"].route[1].weight", int64(20))
		expectFailure(t, b, promises.IDWeights, "tenant-a", "weights sum to 110, not 100")
	}},
	{"RetryWithoutTimeout", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-b-orders", "inventory-service")
		i := httpRoute(t, vs, "GET")
		del(t, vs, "spec.http["+strconv.Itoa(i)+"].timeout")
		expectFailure(t, b, promises.IDRetryTimeout, "tenant-b", "VirtualService tenant-b-orders/inventory-service", "has no route timeout")
	}},
	{"RetryingPOST", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-a-payments", "payment-service")
		i := httpRoute(t, vs, "POST")
		set(t, vs, "spec.http["+strconv.Itoa(i)+"].retries.retryOn", "5xx,connect-failure")
		expectFailure(t, b, promises.IDPostRetry, "tenant-a", "VirtualService tenant-a-payments/payment-service", "matches POST and retries on 5xx")
	}},
	{"POSTWithDefaultRetries", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-b-orders", "inventory-service")
		i := httpRoute(t, vs, "POST")
		del(t, vs, "spec.http["+strconv.Itoa(i)+"].retries")
		expectFailure(t, b, promises.IDPostRetry, "tenant-b", "retries on retriable-status-codes", "Istio's default retry policy")
	}},
	{"MatchAllRouteRetriesGatewayError", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-a-orders", "inventory-service")
		i := httpRoute(t, vs, "GET")
		del(t, vs, "spec.http["+strconv.Itoa(i)+"].match")
		expectFailure(t, b, promises.IDPostRetry, "tenant-a", "matches every method and retries on gateway-error")
	}},
	// ---- strict decoding and Istio validation ----
	{"TypoKubernetesField", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-a-orders", "order-service")
		set(t, d, "spec.replica", get(t, d, "spec.replicas"))
		expectFailure(t, b, IDDecode, "tenant-a", "Deployment tenant-a-orders/order-service", `unknown field "spec.replica"`)
	}},
	{"WrongTypeKubernetesField", func(t *testing.T) {
		b, _ := base(t)
		svc := find(t, b, "Service", "tenant-b-payments", "payment-service")
		set(t, svc, "spec.ports[0].port", "eighty")
		expectFailure(t, b, IDDecode, "tenant-b", "Service tenant-b-payments/payment-service", "cannot unmarshal string")
	}},
	{"TypoIstioField", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-a-payments", "payment-service")
		i := httpRoute(t, vs, "GET")
		set(t, vs, "spec.http["+strconv.Itoa(i)+"].retries.atempts", int64(3))
		expectFailure(t, b, IDValidate, "tenant-a", "VirtualService tenant-a-payments/payment-service", "unknown fields", "retries.atempts")
	}},
	{"IstioSemanticError", func(t *testing.T) {
		b, _ := base(t)
		dr := find(t, b, "DestinationRule", "tenant-a-orders", "inventory-service")
		set(t, dr, "spec.trafficPolicy.outlierDetection.maxEjectionPercent", int64(150))
		expectFailure(t, b, IDValidate, "tenant-a", "DestinationRule tenant-a-orders/inventory-service", "percentage 150 is not in range 0..100")
	}},
	{"AnalyzerUnknownHost", func(t *testing.T) {
		b, _ := base(t)
		vs := find(t, b, "VirtualService", "tenant-b-orders", "notify-service")
		set(t, vs, "spec.http[0].route[0].destination.host", "notify-servce.tenant-b-orders.svc.cluster.local")
		expectFailure(t, b, IDAnalyze, "tenant-b", "VirtualService tenant-b-orders/notify-service", "IST0101", "Referenced host not found")
	}},
	{"RenderFailure", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "overlays", "tenant-x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "overlays", "tenant-x", "kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Run(dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK {
			t.Fatal("render failure not reported")
		}
		found := false
		for _, c := range r.Find(IDRender) {
			if c.Scope == "tenant-x" && c.Status == report.Fail && strings.Contains(c.Findings[0].Message, "missing.yaml") {
				found = true
			}
		}
		if !found {
			t.Fatalf("render [tenant-x] should fail naming missing.yaml:\n%s", failuresText(r))
		}
	}},
	{"TracingProviderNotInstalled", func(t *testing.T) {
		b, _ := base(t)
		for _, tel := range findAll(b, "Telemetry", "tenant-a-payments") {
			for _, tr := range asSlice(tel.Obj["spec"].(map[string]any)["tracing"]) {
				tr.(map[string]any)["providers"] = []any{map[string]any{"name": "jaeger"}}
			}
		}
		expectFailure(t, b, promises.IDTraceProvider, "tenant-a", `tracing provider "jaeger" is not in the mesh install's extensionProviders`)
	}},
	{"MeshInstallLacksProvider", func(t *testing.T) {
		b, _ := base(t)
		operatorEdit(t, b, func(spec map[string]any) {
			delete(spec["meshConfig"].(map[string]any), "extensionProviders")
		})
		expectFailure(t, b, promises.IDTraceProvider, "mesh", "default tracing provider", "is not in extensionProviders")
	}},
	{"OperatorTypo", func(t *testing.T) {
		b, _ := base(t)
		operatorEdit(t, b, func(spec map[string]any) {
			mc := spec["meshConfig"].(map[string]any)
			mc["accessLogFlie"] = mc["accessLogFile"]
			delete(mc, "accessLogFile")
		})
		expectFailure(t, b, promises.IDMeshInstall, "mesh", "accessLogFlie")
	}},
	{"PathNormalizationOff", func(t *testing.T) {
		b, _ := base(t)
		operatorEdit(t, b, func(spec map[string]any) {
			spec["meshConfig"].(map[string]any)["pathNormalization"] = map[string]any{"normalization": "NONE"}
		})
		expectFailure(t, b, promises.IDMeshInstall, "mesh", "pathNormalization is NONE")
	}},
	{"Sampling", func(t *testing.T) {
		b, _ := base(t)
		for _, tel := range findAll(b, "Telemetry", "tenant-b-orders") {
			for _, tr := range asSlice(tel.Obj["spec"].(map[string]any)["tracing"]) {
				tr.(map[string]any)["randomSamplingPercentage"] = 100.0
			}
		}
		expectFailure(t, b, promises.IDTenantTracing, "tenant-b", "order-service", "trace sampling is 100%, want 10%")
	}},
	{"WrongTenantTag", func(t *testing.T) {
		b, _ := base(t)
		for _, tel := range findAll(b, "Telemetry", "tenant-a-payments") {
			for _, tr := range asSlice(tel.Obj["spec"].(map[string]any)["tracing"]) {
				if tags, ok := tr.(map[string]any)["customTags"].(map[string]any); ok && tags["tenant"] != nil {
					tags["tenant"] = map[string]any{"literal": map[string]any{"value": "tenant-b"}}
				}
			}
		}
		expectFailure(t, b, promises.IDTenantTracing, "tenant-a", "payment-service", `custom tag "tenant" must be the literal "tenant-a" (got literal "tenant-b")`)
	}},
	{"OrderIDMetricLabel", func(t *testing.T) {
		b, _ := base(t)
		addYAML(t, b, "tenant-b", `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: order-metrics, namespace: tenant-b-orders}
spec:
  selector: {matchLabels: {app: order-service}}
  metrics:
    - providers: [{name: prometheus}]
      overrides:
        - match: {metric: REQUEST_COUNT}
          tagOverrides:
            order_id: {value: "request.headers['x-order-id']"}
`)
		expectFailure(t, b, promises.IDNoOrderIDMetric, "tenant-b", "Telemetry tenant-b-orders/order-metrics", `adds metric label "order_id"`)
	}},
	{"AppMetricsNotScraped", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-b-payments", "payment-service")
		annotations := d.Obj["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
		delete(annotations, "prometheus.io/scrape")
		expectFailure(t, b, promises.IDAppMetrics, "tenant-b", "Deployment tenant-b-payments/payment-service", "the app's own metrics are never scraped")
	}},
	{"AppMetricsWrongPort", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-a-orders", "order-service")
		annotations := d.Obj["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
		annotations["prometheus.io/port"] = "9090"
		expectFailure(t, b, promises.IDAppMetrics, "tenant-a", "order-service", `prometheus.io/port is "9090", not a container port`)
	}},
	{"SharedServiceAccount", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-a-orders", "notify-service")
		set(t, d, "spec.template.spec.serviceAccountName", "order-service")
		expectFailure(t, b, promises.IDIdentity, "tenant-a", "ServiceAccount tenant-a-orders/order-service", "shared by")
	}},

	// ---- circuit breakers, load balancing, the canary ----
	{"CanarySubsetConnectionPoolUnbounded", func(t *testing.T) {
		b, _ := base(t)
		// A subset's connectionPool replaces the host's as a whole: here without tcp limits.
		set(t, find(t, b, "DestinationRule", "tenant-a-payments", "payment-service"), "spec.subsets[1].trafficPolicy.connectionPool",
			map[string]any{"http": map[string]any{"http2MaxRequests": int64(10)}})
		expectFailure(t, b, promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-payments/payment-service", `subset "canary": connectionPool.tcp.maxConnections unset`)
	}},
	// ---- admission at the front door ----
	{"AdmissionWindowTooWide", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "DestinationRule", "tenant-a-orders", "order-service"), "spec.trafficPolicy.connectionPool.http.http2MaxRequests", int64(256))
		expectFailure(t, b, promises.IDAdmission, "tenant-a", "DestinationRule tenant-a-orders/order-service", "admits 256 orders in flight per gateway")
	}},
	{"AdmissionOverHTTP1", func(t *testing.T) {
		b, _ := base(t)
		del(t, find(t, b, "DestinationRule", "tenant-b-orders", "order-service"), "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy")
		expectFailure(t, b, promises.IDAdmission, "tenant-b", "DestinationRule tenant-b-orders/order-service", "speaks HTTP/1.1 to order-service")
	}},
	{"AdmissionLimitRemoved", func(t *testing.T) {
		b, _ := base(t)
		del(t, find(t, b, "DestinationRule", "tenant-a-orders", "order-service"), "spec.trafficPolicy.connectionPool.http.http2MaxRequests")
		expectFailure(t, b, promises.IDAdmission, "tenant-a", "DestinationRule tenant-a-orders/order-service", "no admission window")
		expectFailure(t, b, promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-orders/order-service", "connectionPool.http.http2MaxRequests unset")
	}},
	{"RefusalWithoutRetryAfter", func(t *testing.T) {
		b, _ := base(t)
		remove(t, b, find(t, b, "EnvoyFilter", "istio-system", "gateway-admission"))
		expectFailure(t, b, promises.IDAdmission, "mesh", "carry no Retry-After")
	}},
	{"OutlierDetectionRemoved", func(t *testing.T) {
		b, _ := base(t)
		del(t, find(t, b, "DestinationRule", "tenant-b-orders", "inventory-service"), "spec.trafficPolicy.outlierDetection")
		expectFailure(t, b, promises.IDCircuitBreaker, "tenant-b", "DestinationRule tenant-b-orders/inventory-service", "trafficPolicy: no outlierDetection")
	}},
	{"MaxEjectionPercentUnset", func(t *testing.T) {
		b, _ := base(t)
		del(t, find(t, b, "DestinationRule", "tenant-a-orders", "notify-service"), "spec.trafficPolicy.outlierDetection.maxEjectionPercent")
		expectFailure(t, b, promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-orders/notify-service", "maxEjectionPercent 0")
	}},
	{"RoundRobin", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "DestinationRule", "tenant-a-orders", "order-service"), "spec.trafficPolicy.loadBalancer.simple", "ROUND_ROBIN")
		expectFailure(t, b, promises.IDLeastRequest, "tenant-a", "DestinationRule tenant-a-orders/order-service", "trafficPolicy: loadBalancer ROUND_ROBIN")
	}},
	{"CanaryLoadBalancerWithoutLeastRequest", func(t *testing.T) {
		b, _ := base(t)
		del(t, find(t, b, "DestinationRule", "tenant-b-payments", "payment-service"), "spec.subsets[1].trafficPolicy.loadBalancer.simple")
		expectFailure(t, b, promises.IDLeastRequest, "tenant-b", "DestinationRule tenant-b-payments/payment-service", `subset "canary": loadBalancer`, "want simple LEAST_REQUEST")
	}},
	{"CanaryWithoutFallback", func(t *testing.T) {
		b, _ := base(t)
		dr := find(t, b, "DestinationRule", "tenant-a-payments", "payment-service")
		set(t, dr, "spec.subsets[1].labels", map[string]any{"version": "canary"})
		del(t, dr, "spec.subsets[1].trafficPolicy")
		expectFailure(t, b, promises.IDCanaryFallback, "tenant-a", "VirtualService tenant-a-payments/payment-service", `subset "canary"`, "1 replica(s) and has no failoverPriority")
	}},
	{"CanaryFailoverLabelFromCaller", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "DestinationRule", "tenant-a-payments", "payment-service"), "spec.subsets[1].trafficPolicy.loadBalancer.localityLbSetting.failoverPriority", []any{"version"})
		expectFailure(t, b, promises.IDCanaryFallback, "tenant-a", `failoverPriority "version" takes its value from each caller's labels`)
	}},

	// ---- visibility to callers and timeouts ----
	{"VirtualServiceHiddenFromCaller", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "VirtualService", "tenant-a-payments", "payment-service"), "spec.exportTo", []any{"."})
		expectFailure(t, b, promises.IDVisibleToCaller, "tenant-a", "payment-service.tenant-a-payments.svc.cluster.local",
			"no VirtualService for it is visible to order-service (tenant-a-orders)", "retriable-status-codes 503")
	}},
	{"RouteTimeoutShorterThanCaller", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "VirtualService", "tenant-b-payments", "payment-service"), "spec.http[0].timeout", "8s")
		expectFailure(t, b, promises.IDTimeoutVsCaller, "tenant-b", "VirtualService tenant-b-payments/payment-service",
			`http[0] "write" timeout 8s is not longer than Deployment tenant-b-orders/order-service's UPSTREAM_TIMEOUT_MS 9000`)
	}},
	{"CallerTimeoutRaised", func(t *testing.T) {
		b, _ := base(t)
		for _, e := range asSlice(get(t, find(t, b, "Deployment", "tenant-a-payments", "payment-service"), "spec.template.spec.containers[0].env")) {
			if e.(map[string]any)["name"] == "UPSTREAM_TIMEOUT_MS" {
				e.(map[string]any)["value"] = "5500"
			}
		}
		expectFailure(t, b, promises.IDTimeoutVsCaller, "tenant-a", "VirtualService tenant-a-orders/inventory-service", `http[0] "write" timeout 5s`, "UPSTREAM_TIMEOUT_MS 5500")
	}},

	// ---- Sidecar egress, NetworkPolicies, the gateway ----
	{"SidecarEgressWildcard", func(t *testing.T) {
		b, _ := base(t)
		sc := find(t, b, "Sidecar", "tenant-b-payments", "default")
		hosts := get(t, sc, "spec.egress[0].hosts").([]any)
		set(t, sc, "spec.egress[0].hosts", append(hosts, "*/*"))
		expectFailure(t, b, promises.IDSidecarEgress, "tenant-b", "Sidecar tenant-b-payments/default", `host "*/*" lets the proxy reach every namespace`)
	}},
	{"SidecarEgressOtherTenant", func(t *testing.T) {
		b, _ := base(t)
		sc := find(t, b, "Sidecar", "tenant-b-orders", "default")
		hosts := get(t, sc, "spec.egress[0].hosts").([]any)
		set(t, sc, "spec.egress[0].hosts", append(hosts, "tenant-a-orders/*"))
		expectFailure(t, b, promises.IDSidecarEgress, "tenant-b", "names namespace tenant-a-orders, outside tenant tenant-b")
	}},
	{"SidecarEgressMissesCallee", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "Sidecar", "tenant-a-orders", "default"), "spec.egress[0].hosts", []any{"./*", "istio-system/*"})
		expectFailure(t, b, promises.IDSidecarEgress, "tenant-a", "egress does not include tenant-a-payments, where order-service calls payment-service")
	}},
	{"NetworkPolicyIPBlock", func(t *testing.T) {
		b, _ := base(t)
		np := find(t, b, "NetworkPolicy", "tenant-a-orders", "tenant-isolation")
		egress := get(t, np, "spec.egress").([]any)
		set(t, np, "spec.egress", append(egress, map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0"}}}}))
		expectFailure(t, b, promises.IDNetworkPolicy, "tenant-a", "NetworkPolicy tenant-a-orders/tenant-isolation", "egress[2].to[0] is an ipBlock 0.0.0.0/0")
	}},
	{"NetworkPolicyMissing", func(t *testing.T) {
		b, _ := base(t)
		remove(t, b, find(t, b, "NetworkPolicy", "tenant-b-payments", "tenant-isolation"))
		expectFailure(t, b, promises.IDNetworkPolicy, "tenant-b", "namespace tenant-b-payments", "no NetworkPolicy with podSelector {}")
	}},
	{"NetworkPolicyOtherTenantsLabel", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "NetworkPolicy", "tenant-b-orders", "tenant-isolation"), "spec.ingress[0].from[0].namespaceSelector.matchLabels.tenant", "tenant-a")
		expectFailure(t, b, promises.IDNetworkPolicy, "tenant-b", "ingress[0].from[0] selects namespaces labelled tenant=tenant-a, not this tenant's tenant-b")
	}},
	{"GatewayWildcardHost", func(t *testing.T) {
		b, _ := base(t)
		gw := find(t, b, "Gateway", "istio-system", "ordermesh-gateway")
		hosts := get(t, gw, "spec.servers[0].hosts").([]any)
		set(t, gw, "spec.servers[0].hosts", append(hosts, "*/*.ordermesh.local"))
		expectFailure(t, b, promises.IDGatewayHosts, "mesh", `host "*/*.ordermesh.local" is not bound to one namespace`)
	}},
	{"GatewayHostOfOtherTenant", func(t *testing.T) {
		b, _ := base(t)
		gw := find(t, b, "Gateway", "istio-system", "ordermesh-gateway")
		hosts := get(t, gw, "spec.servers[0].hosts").([]any)
		set(t, gw, "spec.servers[0].hosts", append(hosts, "tenant-b-orders/tenant-a.ordermesh.local"))
		expectFailure(t, b, promises.IDGatewayHosts, "tenant-b", `host "tenant-b-orders/tenant-a.ordermesh.local"`, "not tenant-b.*")
	}},

	// ---- tracing decisions ----
	{"GatewaySamplesEverything", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "Telemetry", "istio-system", "ingress-gateway"), "spec.tracing[0].randomSamplingPercentage", 100.0)
		expectFailure(t, b, promises.IDGatewayTracing, "mesh", "the gateway samples 100%, want 10%")
	}},
	{"GatewayTelemetryRemoved", func(t *testing.T) {
		b, _ := base(t)
		remove(t, b, find(t, b, "Telemetry", "istio-system", "ingress-gateway"))
		expectFailure(t, b, promises.IDGatewayTracing, "mesh", "the gateway samples 1%, want 10%")
	}},
	{"AppSamplesItsRootsAlways", func(t *testing.T) {
		b, _ := base(t)
		for _, e := range asSlice(get(t, find(t, b, "Deployment", "tenant-a-orders", "order-service"), "spec.template.spec.containers[0].env")) {
			if e.(map[string]any)["name"] == "OTEL_TRACES_SAMPLER" {
				e.(map[string]any)["value"] = "parentbased_always_on"
			}
		}
		expectFailure(t, b, promises.IDAppSampling, "tenant-a", "Deployment tenant-a-orders/order-service", `OTEL_TRACES_SAMPLER "parentbased_always_on"`)
	}},
	{"AppExportThroughSidecar", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-b-payments", "payment-service-canary")
		delete(d.Obj["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any), "traffic.sidecar.istio.io/excludeOutboundPorts")
		expectFailure(t, b, promises.IDAppSampling, "tenant-b", "Deployment tenant-b-payments/payment-service-canary", "goes through the sidecar")
	}},

	// ---- the apps' own caller check ----
	{"SourceAppWithoutPeerIdentity", func(t *testing.T) {
		// A copy of deploy/ whose notify-service does not fail closed.
		check := sourceCase(t, edit{"base/notify-service/deployment.yaml",
			"            - name: REQUIRE_PEER_IDENTITY\n              value: \"true\"\n", ""})
		r := expectFailureIn(t, check, promises.IDAppCallers, "tenant-a", "Deployment tenant-a-orders/notify-service", `REQUIRE_PEER_IDENTITY is ""`, "past its sidecar")
		if !failsIn(r, promises.IDAppCallers, "tenant-b") {
			t.Errorf("the base serves every tenant: %s [tenant-b] should fail too", promises.IDAppCallers)
		}
	}},
	{"PeerIdentityNotRequired", func(t *testing.T) {
		b, _ := base(t)
		setEnv(t, find(t, b, "Deployment", "tenant-b-payments", "payment-service-canary"), "REQUIRE_PEER_IDENTITY", "false")
		expectFailure(t, b, promises.IDAppCallers, "tenant-b", "Deployment tenant-b-payments/payment-service-canary", `REQUIRE_PEER_IDENTITY is "false"`)
	}},
	{"AppTrustDomainNotTheMeshs", func(t *testing.T) {
		b, _ := base(t)
		addEnv(t, find(t, b, "Deployment", "tenant-a-orders", "inventory-service"), "MESH_TRUST_DOMAIN", "evil.example")
		expectFailure(t, b, promises.IDAppCallers, "tenant-a", "Deployment tenant-a-orders/inventory-service", `trust domain "evil.example", the mesh's is "cluster.local"`)
	}},
	{"AppTenantNotTheNamespaces", func(t *testing.T) {
		b, _ := base(t)
		setEnv(t, find(t, b, "Deployment", "tenant-a-payments", "payment-service"), "TENANT_ID", "tenant-b")
		expectFailure(t, b, promises.IDAppCallers, "tenant-a", "Deployment tenant-a-payments/payment-service", "expects its callers in tenant-b-orders", "tenant-a-orders")
	}},
	{"SidecarsForwardTheCallersXFCC", func(t *testing.T) {
		b, _ := base(t)
		operatorEdit(t, b, func(spec map[string]any) {
			mc := spec["meshConfig"].(map[string]any)
			dc, _ := mc["defaultConfig"].(map[string]any)
			if dc == nil {
				dc = map[string]any{}
				mc["defaultConfig"] = dc
			}
			dc["proxyHeaders"] = map[string]any{"forwardedClientCert": "FORWARD_ONLY"}
		})
		expectFailure(t, b, promises.IDAppCallers, "mesh", "forwardedClientCert FORWARD_ONLY", "do not append the caller")
	}},
	{"PodOverridesXFCCForwarding", func(t *testing.T) {
		b, _ := base(t)
		d := find(t, b, "Deployment", "tenant-b-orders", "notify-service")
		annotations := get(t, d, "spec.template.metadata.annotations").(map[string]any)
		annotations["proxy.istio.io/config"] = "proxyHeaders:\n  forwardedClientCert: ALWAYS_FORWARD_ONLY\n"
		expectFailure(t, b, promises.IDAppCallers, "tenant-b", "Deployment tenant-b-orders/notify-service", "forwardedClientCert ALWAYS_FORWARD_ONLY")
	}},
	{"ServiceAccountNotTheCallGraphs", func(t *testing.T) {
		b, _ := base(t)
		set(t, find(t, b, "Deployment", "tenant-a-orders", "inventory-service"), "spec.template.spec.serviceAccountName", "inventory")
		expectFailure(t, b, promises.IDIdentity, "tenant-a", "Deployment tenant-a-orders/inventory-service", "runs as ServiceAccount inventory, but the call graph names inventory-service")
	}},

	// ---- the kustomize sources, not rendered objects ----
	{"SourceOverlayWidensSidecar", func(t *testing.T) {
		check := sourceCase(t, edit{"overlays/tenant-b/kustomization.yaml", "components:\n",
			"patches:\n  - target: {kind: Sidecar, name: default}\n    patch: |-\n      - op: add\n        path: /spec/egress/0/hosts/-\n        value: \"*/*\"\ncomponents:\n"})
		expectFailureIn(t, check, promises.IDSidecarEgress, "tenant-b", "Sidecar tenant-b-orders/default", `host "*/*"`)
	}},
	{"SourceOverlayNamesOtherTenant", func(t *testing.T) {
		// A copy-pasted overlay: tenant-b's ConfigMap still says tenant-a's payments namespace.
		check := sourceCase(t, edit{"overlays/tenant-b/kustomization.yaml", "- paymentsNamespace=tenant-b-payments", "- paymentsNamespace=tenant-a-payments"})
		expectFailureIn(t, check, promises.IDVisibleToCaller, "tenant-b", "payment-service.tenant-b-payments.svc.cluster.local", "no VirtualService for it is visible to order-service (tenant-b-orders)")
	}},
	{"SourceTenantParamsNetworkPolicyNotReplaced", func(t *testing.T) {
		check := sourceCase(t, edit{"components/tenant-params/kustomization.yaml",
			"      - select: {kind: NetworkPolicy}\n        fieldPaths:\n          - spec.ingress.0.from.0.namespaceSelector.matchLabels.tenant\n          - spec.egress.0.to.0.namespaceSelector.matchLabels.tenant\n", ""})
		expectFailureIn(t, check, promises.IDNetworkPolicy, "tenant-a", "NetworkPolicy tenant-a-orders/tenant-isolation", "selects namespaces labelled tenant=TENANT, not this tenant's tenant-a")
	}},
	{"SourceTenantParamsExportToNotReplaced", func(t *testing.T) {
		check := sourceCase(t, edit{"components/tenant-params/kustomization.yaml",
			"      - select: {kind: DestinationRule, name: payment-service}\n        fieldPaths: [spec.exportTo.1]\n        options: {delimiter: \"-\", index: 0}\n", ""})
		expectFailureIn(t, check, promises.IDVisibleToCaller, "tenant-a", "payment-service.tenant-a-payments.svc.cluster.local", "no DestinationRule for it is visible to order-service (tenant-a-orders)")
	}},
	{"SourceInjectionLabelRemoved", func(t *testing.T) {
		check := sourceCase(t, edit{"base/namespaces/namespaces.yaml",
			"    istio-injection: enabled\n    app.kubernetes.io/part-of: ordermesh\n    ordermesh.io/role: payments\n",
			"    app.kubernetes.io/part-of: ordermesh\n    ordermesh.io/role: payments\n"})
		expectFailureIn(t, check, promises.IDInjection, "tenant-b", "Namespace tenant-b-payments", "not labelled for sidecar injection")
	}},
	{"SourceGatewayLosesTenantHost", func(t *testing.T) {
		check := sourceCase(t, edit{"mesh/gateway.yaml", "        - tenant-b-orders/tenant-b.ordermesh.local\n", ""})
		expectFailureIn(t, check, promises.IDGatewayHosts, "tenant-b", "VirtualService tenant-b-orders/order-service-ingress", `host "tenant-b.ordermesh.local" is not granted`)
	}},
}

// containerEnv is the first container's env list of a workload.
func containerEnv(t *testing.T, o *manifest.Object) []any {
	t.Helper()
	return asSlice(get(t, o, "spec.template.spec.containers[0].env"))
}

// setEnv changes the value of an existing variable of a workload's first container.
func setEnv(t *testing.T, o *manifest.Object, name, value string) {
	t.Helper()
	for _, e := range containerEnv(t, o) {
		if e.(map[string]any)["name"] == name {
			e.(map[string]any)["value"] = value
			return
		}
	}
	t.Fatalf("%s has no env %s", o.Ref(), name)
}

// addEnv adds a variable to a workload's first container.
func addEnv(t *testing.T, o *manifest.Object, name, value string) {
	t.Helper()
	set(t, o, "spec.template.spec.containers[0].env", append(containerEnv(t, o), map[string]any{"name": name, "value": value}))
}

// failsIn reports whether check id fails in scope.
func failsIn(r *report.Report, id, scope string) bool {
	for _, c := range r.Find(id) {
		if c.Scope == scope && c.Status != report.Pass {
			return true
		}
	}
	return false
}

// TestNegative runs the table, one subtest per case.
func TestNegative(t *testing.T) {
	for _, c := range negativeCases {
		t.Run(c.name, c.run)
	}
}

// ---- telemetry and the mesh install ----
func operatorEdit(t *testing.T, b *manifest.Bundle, edit func(spec map[string]any)) {
	t.Helper()
	var op map[string]any
	if err := yaml.Unmarshal(b.Operator, &op); err != nil {
		t.Fatal(err)
	}
	edit(op["spec"].(map[string]any))
	out, err := yaml.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	b.Operator = out
}

// The report is written in both forms and the JSON form carries the failures.
func TestReportForms(t *testing.T) {
	b, _ := base(t)
	remove(t, b, find(t, b, "AuthorizationPolicy", "tenant-a-orders", "allow-nothing"))
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
