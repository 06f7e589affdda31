// Package promises proves the promises deploy/ makes on the rendered manifests, one file per
// subject (as Istio's analyzers are split by resource). (DESIGN.md's invariants, on the
// data, are checked in SQL by tests/src/invariants.rs, not here.)
//
//	mtls.go             each service's own ServiceAccount, sidecar injection, STRICT mTLS with
//	                    no override
//	appidentity.go      the apps' own caller check, as deploy/ configures it
//	authz.go            default deny, the allowed edges equal the call graph, tenant isolation
//	decide.go           Allows: the policies' decision for one request (the live tests compare)
//	routing.go          subsets, weights, retries and timeouts
//	telemetry.go        the mesh install, tracing providers, the tenants' tracing tags, metrics
//	circuitbreakers.go  outlier detection, bounded connection pools, LEAST_REQUEST
//	canary.go           a small weighted subset falls back to the others when ejected
//	callers.go          each caller sees its callee's routes; route timeouts above the caller's
//	egress.go           Sidecar egress scoped to the tenant, the mesh REGISTRY_ONLY
//	networkpolicy.go    NetworkPolicies isolate each tenant at L3/L4
//	gatewayhosts.go     the ingress Gateway grants each tenant its own host
//	sampling.go         the gateway's sampling decision, the apps' own roots
//	admission.go        the front door's admission window and its Retry-After
//	oneapi.go           one routing API per host and per public host; routes stay in the tenant
//	lookup.go           lookups several checks share
//
// Every check reports per scope: one line per tenant overlay, and "mesh" for mesh-wide objects.
// In the gateway-api variant the VirtualServices and Gateways Istio generates from the HTTPRoutes
// and the Gateway API Gateway are in the model too (their Ref names the Gateway API objects), so
// every routing promise holds for what Istio programs, whichever API deploy/ wrote.
package promises

import (
	"fmt"
	"sort"
	"strings"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// Check IDs (stable: tests and the JSON report use them), by the file that checks them.
const (
	// mtls.go
	IDIdentity    = "identity.service-accounts"
	IDInjection   = "mesh.sidecar-injection"
	IDStrictMesh  = "mtls.mesh-strict"
	IDStrict      = "mtls.strict"
	IDNoOverride  = "mtls.no-override"
	IDDestRuleTLS = "mtls.destinationrule-tls"
	// appidentity.go
	IDAppCallers = "identity.app-callers"
	// authz.go
	IDAllowNothing = "authz.allow-nothing"
	IDCallGraph    = "authz.call-graph"
	IDIsolation    = "authz.tenant-isolation"
	// routing.go
	IDSubsets      = "routing.subsets"
	IDWeights      = "routing.weights"
	IDRetryTimeout = "routing.retry-timeout"
	IDPostRetry    = "routing.post-no-5xx-retry"
	// telemetry.go
	IDMeshInstall     = "mesh.install"
	IDTraceProvider   = "telemetry.provider"
	IDTenantTracing   = "telemetry.tenant-tracing"
	IDNoOrderIDMetric = "telemetry.no-order-id-metric"
	IDAppMetrics      = "telemetry.app-metrics-scraped"
	// circuitbreakers.go
	IDCircuitBreaker = "routing.circuit-breakers"
	IDLeastRequest   = "routing.least-request"
	// canary.go
	IDCanaryFallback = "routing.canary-fallback"
	// callers.go
	IDVisibleToCaller = "routing.visible-to-callers"
	IDTimeoutVsCaller = "routing.timeout-vs-caller"
	// egress.go
	IDSidecarEgress = "mesh.sidecar-egress"
	// networkpolicy.go
	IDNetworkPolicy = "netpol.tenant-isolation"
	// gatewayhosts.go
	IDGatewayHosts = "gateway.tenant-hosts"
	// sampling.go
	IDGatewayTracing = "telemetry.gateway-sampling"
	IDAppSampling    = "telemetry.app-sampling"
	// admission.go
	IDAdmission = "gateway.admission"
	// oneapi.go
	IDOneAPI         = "routing.one-api"
	IDTenantBackends = "routing.tenant-backends"
)

// MeshScope is the scope of mesh-wide objects (outside every tenant namespace).
const MeshScope = "mesh"

// collector gathers findings per scope for one check id.
type collector struct {
	m        *model.Model
	findings map[string][]report.Finding
	details  map[string][]string
}

func newCollector(m *model.Model) *collector {
	return &collector{m: m, findings: map[string][]report.Finding{}, details: map[string][]string{}}
}

// scopeOf maps a namespace to its tenant overlay, or MeshScope.
func (c *collector) scopeOf(ns string) string {
	if t := c.m.TenantOf(ns); t != nil {
		return t.Overlay
	}
	return MeshScope
}

func (c *collector) add(scope string, obj, msg, fix string) {
	c.findings[scope] = append(c.findings[scope], report.Finding{Object: obj, Message: msg, Fix: fix})
}

func (c *collector) detail(scope, d string) { c.details[scope] = append(c.details[scope], d) }

// detailPerTenant adds one detail to every tenant's scope: the summary a check writes after
// walking m.Tenants.Namespaces().
func (c *collector) detailPerTenant(line func(t *model.Tenant) string) {
	for _, t := range c.m.Tenants {
		c.detail(t.Overlay, line(t))
	}
}

// emit produces one check per scope: every tenant, plus "mesh" when includeMesh or when a
// mesh-scoped finding exists.
func (c *collector) emit(r *report.Report, id, title string, includeMesh bool) {
	scopes := []string{}
	if includeMesh || len(c.findings[MeshScope]) > 0 {
		scopes = append(scopes, MeshScope)
	}
	for _, t := range c.m.Tenants {
		scopes = append(scopes, t.Overlay)
	}
	for _, s := range scopes {
		fs := c.findings[s]
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].Object < fs[j].Object })
		r.Add(report.Check{ID: id, Scope: s, Title: title, Findings: fs, Detail: strings.Join(c.details[s], "; ")})
	}
}

// Run proves every promise.
func Run(m *model.Model, r *report.Report) {
	checkIdentity(m, r)
	checkAppCallers(m, r)
	checkInjection(m, r)
	checkMTLS(m, r)
	checkAuthz(m, r)
	checkRouting(m, r)
	checkTelemetry(m, r)
	checkDestinationRules(m, r)
	checkCanaryFallback(m, r)
	checkCallers(m, r)
	checkSidecarEgress(m, r)
	checkNetworkPolicies(m, r)
	checkGatewayHosts(m, r)
	checkGatewayTracing(m, r)
	checkAppSampling(m, r)
	checkAdmission(m, r)
	checkOneAPI(m, r)
	checkTenantBackends(m, r)
}

func plural(n int, s string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, s)
	}
	return fmt.Sprintf("%d %ss", n, s)
}
