package checkdeploy

// The negative tests: one table, a row per way of breaking deploy/, in the style of Istio's
// testGrid tables. A row breaks the render of deploy/ (objects added, patches) or the kustomize
// sources of a copy of deploy/ (source edits), checks the result once, and names the findings
// that must show the break: each check must fail in its scope with a finding holding every
// string given, and must pass there on the unmodified deploy/.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/promises"
	"ordermesh.local/tools/internal/report"
)

type negativeCase struct {
	name    string
	routing manifest.Routing // the variant the row breaks ("" is istio; source rows check both)
	add     added            // objects added to the render of one unit
	patches []patch          // changes to rendered objects and to the IstioOperator (patch_test.go)
	source  []edit           // or: edits to the kustomize sources of a copy of deploy/, rendered again
	want    []finding        // every one must be produced
}

// added is YAML objects added to the render of one unit: an overlay, or "mesh".
type added struct{ unit, yaml string }

// edit is one change to a file under deploy/: old must occur exactly once; an empty old creates
// the file (which must not exist) with new.
type edit struct{ file, old, new string }

// finding is one expected failure: check id fails in scope with a finding whose text ("object:
// message") holds every string of text.
type finding struct {
	id, scope string
	text      []string
}

func fails(id, scope string, text ...string) finding { return finding{id, scope, text} }

// The Deployments' first container's env, and their pod annotations.
const (
	envOf       = "spec.template.spec.containers[0].env"
	annotations = "spec.template.metadata.annotations"
)

var negativeCases = []negativeCase{
	// ---- mTLS ----
	{name: "PermissiveWorkloadOverride",
		add: added{"tenant-a", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: payment-permissive, namespace: tenant-a-payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  mtls: {mode: PERMISSIVE}
`},
		want: []finding{fails(promises.IDNoOverride, "tenant-a", "PeerAuthentication tenant-a-payments/payment-permissive", "workload-level mtls.mode PERMISSIVE")}},
	{name: "PortLevelDisable",
		add: added{"tenant-b", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: order-port-plaintext, namespace: tenant-b-orders}
spec:
  selector: {matchLabels: {app: order-service}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
`},
		want: []finding{fails(promises.IDNoOverride, "tenant-b", "portLevelMtls[8080] mode DISABLE")}},
	{name: "NamespacePermissive",
		patches: []patch{set("PeerAuthentication tenant-a-orders/default", "spec.mtls.mode", "PERMISSIVE")},
		want: []finding{
			fails(promises.IDStrict, "tenant-a", "tenant-a-orders", "no namespace-wide STRICT"),
			fails(promises.IDNoOverride, "tenant-a", "namespace-level mtls.mode PERMISSIVE"),
		}},
	{name: "MeshWideStrictMissing",
		patches: []patch{remove("PeerAuthentication istio-system/*")},
		want:    []finding{fails(promises.IDStrictMesh, "mesh", "no mesh-wide STRICT PeerAuthentication")}},
	{name: "DestinationRuleTLS",
		patches: []patch{set("DestinationRule tenant-a-payments/payment-service", "spec.trafficPolicy.tls", map[string]any{"mode": "SIMPLE"})},
		want:    []finding{fails(promises.IDDestRuleTLS, "tenant-a", "DestinationRule tenant-a-payments/payment-service", "trafficPolicy.tls.mode SIMPLE")}},
	{name: "InjectionOptOut",
		patches: []patch{set("Deployment tenant-b-orders/notify-service", annotations+`["sidecar.istio.io/inject"]`, "false")},
		want:    []finding{fails(promises.IDInjection, "tenant-b", "notify-service", "disables sidecar injection")}},

	// ---- authorization ----
	{name: "CrossTenantAllow",
		patches: []patch{appendTo("AuthorizationPolicy tenant-b-payments/allow-order-service-to-payment-service",
			"spec.rules[0].from[0].source.serviceAccounts", "tenant-a-orders/order-service")},
		want: []finding{
			fails(promises.IDIsolation, "tenant-b", "allow-order-service-to-payment-service", "admits tenant-a-orders/order-service", "belongs to tenant tenant-a"),
			fails(promises.IDCallGraph, "tenant-b", "allows tenant-a-orders/order-service → tenant-b-payments/payment-service", "not in the call graph"),
		}},
	{name: "CrossTenantPrincipalPolicy",
		add: added{"tenant-a", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: let-b-in, namespace: tenant-a-orders}
spec:
  selector: {matchLabels: {app: notify-service}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/tenant-b-orders/sa/order-service"]}}]
      to: [{operation: {methods: ["GET"], paths: ["/api/v1/notifications"]}}]
`},
		want: []finding{fails(promises.IDIsolation, "tenant-a", "let-b-in", "belongs to tenant tenant-b")}},
	{name: "WildcardPrincipal",
		add: added{"tenant-a", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: anyone, namespace: tenant-a-orders}
spec:
  selector: {matchLabels: {app: inventory-service}}
  rules:
    - from: [{source: {principals: ["*"]}}]
      to: [{operation: {methods: ["GET"], paths: ["/api/v1/reservations/{*}"]}}]
`},
		want: []finding{fails(promises.IDIsolation, "tenant-a", "anyone", "admits *", "wildcard")}},
	{name: "EmptyFrom",
		add: added{"tenant-b", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-from, namespace: tenant-b-payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
    - to: [{operation: {methods: ["GET"], paths: ["/api/v1/payments"]}}]
`},
		want: []finding{
			fails(promises.IDIsolation, "tenant-b", "no-from", "has no `from`"),
			fails(promises.IDCallGraph, "tenant-b", "allows * → tenant-b-payments/payment-service: GET /api/v1/payments"),
		}},
	{name: "MissingAllowNothing",
		patches: []patch{remove("AuthorizationPolicy tenant-a-payments/allow-nothing")},
		want:    []finding{fails(promises.IDAllowNothing, "tenant-a", "tenant-a-payments", "no allow-nothing")}},
	{name: "PrefixPath",
		patches: []patch{replace("AuthorizationPolicy tenant-a-payments/allow-order-service-to-payment-service",
			"spec.rules[0].to[*].operation.paths", "/api/v1/payments/{*}", "/api/v1/payments/*")},
		want: []finding{
			fails(promises.IDCallGraph, "tenant-a", "GET /api/v1/payments/*", "not in the call graph"),
			fails(promises.IDCallGraph, "tenant-a", "edge not allowed", "GET /api/v1/payments/{*}"),
		}},
	{name: "MissingEdge",
		patches: []patch{remove("AuthorizationPolicy tenant-b-orders/allow-order-service-to-notify-service")},
		want:    []finding{fails(promises.IDCallGraph, "tenant-b", "edge not allowed: tenant-b-orders/order-service → tenant-b-orders/notify-service: POST /api/v1/notifications")}},
	{name: "ExtraMethod",
		patches: []patch{appendTo("AuthorizationPolicy tenant-a-orders/allow-order-service-to-notify-service", "spec.rules[0].to[*].operation.methods", "DELETE")},
		want:    []finding{fails(promises.IDCallGraph, "tenant-a", "DELETE /api/v1/notifications", "not in the call graph")}},
	{name: "PublicGatewayWidened",
		patches: []patch{set("AuthorizationPolicy istio-system/allow-public-order-api", "spec.rules[0].to",
			[]any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}, "paths": []any{"/api/*"}}}})},
		want: []finding{fails(promises.IDCallGraph, "mesh", "allows * → istio-system/istio-ingressgateway: GET /api/*")}},

	// ---- routing (the VirtualServices' routes are named: "write" takes POST, "read" GET) ----
	{name: "MissingSubset",
		patches: []patch{replace("VirtualService tenant-a-payments/payment-service", "spec.http[name=read].route[*].destination.subset", "canary", "canery")},
		want:    []finding{fails(promises.IDSubsets, "tenant-a", "VirtualService tenant-a-payments/payment-service", `subset "canery"`, "no DestinationRule defines")}},
	{name: "SubsetSelectsNothing",
		patches: []patch{set("DestinationRule tenant-b-payments/payment-service", "spec.subsets[name=canary].labels", map[string]any{"version": "cannary"})},
		want:    []finding{fails(promises.IDSubsets, "tenant-b", "DestinationRule tenant-b-payments/payment-service", `subset "canary"`, "select no workload")}},
	{name: "SubsetNotExportedToCaller",
		patches: []patch{set("DestinationRule tenant-a-payments/payment-service", "spec.exportTo", []any{"."})},
		want: []finding{fails(promises.IDSubsets, "tenant-a", "VirtualService tenant-a-payments/payment-service",
			"no DestinationRule defining it is exported to tenant-a-orders")}},
	{name: "WeightsNot100",
		patches: []patch{set("VirtualService tenant-a-payments/payment-service", "spec.http[name=write].route[1].weight", int64(20))},
		want:    []finding{fails(promises.IDWeights, "tenant-a", "weights sum to 110, not 100")}},
	{name: "RetryWithoutTimeout",
		patches: []patch{del("VirtualService tenant-b-orders/inventory-service", "spec.http[name=read].timeout")},
		want:    []finding{fails(promises.IDRetryTimeout, "tenant-b", "VirtualService tenant-b-orders/inventory-service", "has no route timeout")}},
	{name: "RetryingPOST",
		patches: []patch{set("VirtualService tenant-a-payments/payment-service", "spec.http[name=write].retries.retryOn", "5xx,connect-failure")},
		want:    []finding{fails(promises.IDPostRetry, "tenant-a", "VirtualService tenant-a-payments/payment-service", "matches POST and retries on 5xx")}},
	{name: "POSTWithDefaultRetries",
		patches: []patch{del("VirtualService tenant-b-orders/inventory-service", "spec.http[name=write].retries")},
		want:    []finding{fails(promises.IDPostRetry, "tenant-b", "retries on retriable-status-codes", "Istio's default retry policy")}},
	{name: "MatchAllRouteRetriesGatewayError",
		patches: []patch{del("VirtualService tenant-a-orders/inventory-service", "spec.http[name=read].match")},
		want:    []finding{fails(promises.IDPostRetry, "tenant-a", "matches every method and retries on gateway-error")}},

	// ---- strict decoding and Istio validation ----
	{name: "TypoKubernetesField",
		patches: []patch{set("Deployment tenant-a-orders/order-service", "spec.replica", int64(2))},
		want:    []finding{fails(IDDecode, "tenant-a", "Deployment tenant-a-orders/order-service", `unknown field "spec.replica"`)}},
	{name: "WrongTypeKubernetesField",
		patches: []patch{set("Service tenant-b-payments/payment-service", "spec.ports[0].port", "eighty")},
		want:    []finding{fails(IDDecode, "tenant-b", "Service tenant-b-payments/payment-service", "cannot unmarshal string")}},
	{name: "TypoIstioField",
		patches: []patch{set("VirtualService tenant-a-payments/payment-service", "spec.http[name=read].retries.atempts", int64(3))},
		want:    []finding{fails(IDValidate, "tenant-a", "VirtualService tenant-a-payments/payment-service", "unknown fields", "retries.atempts")}},
	{name: "IstioSemanticError",
		patches: []patch{set("DestinationRule tenant-a-orders/inventory-service", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", int64(150))},
		want:    []finding{fails(IDValidate, "tenant-a", "DestinationRule tenant-a-orders/inventory-service", "percentage 150 is not in range 0..100")}},
	{name: "AnalyzerUnknownHost",
		patches: []patch{set("VirtualService tenant-b-orders/notify-service", "spec.http[0].route[0].destination.host", "notify-servce.tenant-b-orders.svc.cluster.local")},
		want:    []finding{fails(IDAnalyze, "tenant-b", "VirtualService tenant-b-orders/notify-service", "IST0101", "Referenced host not found")}},
	{name: "RenderFailure", // an overlay naming a file that does not exist: a failed check, not an error
		source: []edit{{"overlays/tenant-x/kustomization.yaml", "", "resources: [missing.yaml]\n"}},
		want:   []finding{fails(IDRender, "tenant-x", "missing.yaml")}},

	// ---- telemetry and the mesh install ----
	{name: "TracingProviderNotInstalled",
		patches: []patch{set("Telemetry tenant-a-payments/*", "spec.tracing[*].providers", []any{map[string]any{"name": "jaeger"}})},
		want:    []finding{fails(promises.IDTraceProvider, "tenant-a", `tracing provider "jaeger" is not in the mesh install's extensionProviders`)}},
	{name: "MeshInstallLacksProvider",
		patches: []patch{del(istioOperator, "spec.meshConfig.extensionProviders")},
		want:    []finding{fails(promises.IDTraceProvider, "mesh", "default tracing provider", "is not in extensionProviders")}},
	{name: "OperatorTypo",
		patches: []patch{rename(istioOperator, "spec.meshConfig.accessLogFile", "accessLogFlie")},
		want:    []finding{fails(promises.IDMeshInstall, "mesh", "accessLogFlie")}},
	{name: "PathNormalizationOff",
		patches: []patch{set(istioOperator, "spec.meshConfig.pathNormalization", map[string]any{"normalization": "NONE"})},
		want:    []finding{fails(promises.IDMeshInstall, "mesh", "pathNormalization is NONE")}},
	{name: "Sampling",
		patches: []patch{set("Telemetry tenant-b-orders/*", "spec.tracing[*].randomSamplingPercentage", 100.0)},
		want:    []finding{fails(promises.IDTenantTracing, "tenant-b", "order-service", "trace sampling is 100%, want 10%")}},
	{name: "WrongTenantTag",
		patches: []patch{set("Telemetry tenant-a-payments/*", "spec.tracing[*].customTags.tenant", map[string]any{"literal": map[string]any{"value": "tenant-b"}})},
		want:    []finding{fails(promises.IDTenantTracing, "tenant-a", "payment-service", `custom tag "tenant" must be the literal "tenant-a" (got literal "tenant-b")`)}},
	{name: "OrderIDMetricLabel",
		add: added{"tenant-b", `
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
`},
		want: []finding{fails(promises.IDNoOrderIDMetric, "tenant-b", "Telemetry tenant-b-orders/order-metrics", `adds metric label "order_id"`)}},
	{name: "AppMetricsNotScraped",
		patches: []patch{del("Deployment tenant-b-payments/payment-service", annotations+`["prometheus.io/scrape"]`)},
		want:    []finding{fails(promises.IDAppMetrics, "tenant-b", "Deployment tenant-b-payments/payment-service", "the app's own metrics are never scraped")}},
	{name: "AppMetricsWrongPort",
		patches: []patch{set("Deployment tenant-a-orders/order-service", annotations+`["prometheus.io/port"]`, "9090")},
		want:    []finding{fails(promises.IDAppMetrics, "tenant-a", "order-service", `prometheus.io/port is "9090", not a container port`)}},
	{name: "SharedServiceAccount",
		patches: []patch{set("Deployment tenant-a-orders/notify-service", "spec.template.spec.serviceAccountName", "order-service")},
		want:    []finding{fails(promises.IDIdentity, "tenant-a", "ServiceAccount tenant-a-orders/order-service", "shared by")}},

	// ---- circuit breakers, load balancing, the canary ----
	{name: "CanarySubsetConnectionPoolUnbounded",
		// A subset's connectionPool replaces the host's as a whole: here without tcp limits.
		patches: []patch{set("DestinationRule tenant-a-payments/payment-service", "spec.subsets[1].trafficPolicy.connectionPool",
			map[string]any{"http": map[string]any{"http2MaxRequests": int64(10)}})},
		want: []finding{fails(promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-payments/payment-service", `subset "canary": connectionPool.tcp.maxConnections unset`)}},
	{name: "OutlierDetectionRemoved",
		patches: []patch{del("DestinationRule tenant-b-orders/inventory-service", "spec.trafficPolicy.outlierDetection")},
		want:    []finding{fails(promises.IDCircuitBreaker, "tenant-b", "DestinationRule tenant-b-orders/inventory-service", "trafficPolicy: no outlierDetection")}},
	{name: "MaxEjectionPercentUnset",
		patches: []patch{del("DestinationRule tenant-a-orders/notify-service", "spec.trafficPolicy.outlierDetection.maxEjectionPercent")},
		want:    []finding{fails(promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-orders/notify-service", "maxEjectionPercent 0")}},
	{name: "RoundRobin",
		patches: []patch{set("DestinationRule tenant-a-orders/order-service", "spec.trafficPolicy.loadBalancer.simple", "ROUND_ROBIN")},
		want:    []finding{fails(promises.IDLeastRequest, "tenant-a", "DestinationRule tenant-a-orders/order-service", "trafficPolicy: loadBalancer ROUND_ROBIN")}},
	{name: "CanaryLoadBalancerWithoutLeastRequest",
		patches: []patch{del("DestinationRule tenant-b-payments/payment-service", "spec.subsets[1].trafficPolicy.loadBalancer.simple")},
		want:    []finding{fails(promises.IDLeastRequest, "tenant-b", "DestinationRule tenant-b-payments/payment-service", `subset "canary": loadBalancer`, "want simple LEAST_REQUEST")}},
	{name: "CanaryWithoutFallback",
		patches: []patch{
			set("DestinationRule tenant-a-payments/payment-service", "spec.subsets[1].labels", map[string]any{"version": "canary"}),
			del("DestinationRule tenant-a-payments/payment-service", "spec.subsets[1].trafficPolicy"),
		},
		want: []finding{fails(promises.IDCanaryFallback, "tenant-a", "VirtualService tenant-a-payments/payment-service", `subset "canary"`, "1 replica(s) and has no failoverPriority")}},
	{name: "CanaryFailoverLabelFromCaller",
		patches: []patch{set("DestinationRule tenant-a-payments/payment-service", "spec.subsets[1].trafficPolicy.loadBalancer.localityLbSetting.failoverPriority", []any{"version"})},
		want:    []finding{fails(promises.IDCanaryFallback, "tenant-a", `failoverPriority "version" takes its value from each caller's labels`)}},

	// ---- admission at the front door ----
	{name: "AdmissionWindowTooWide",
		patches: []patch{set("DestinationRule tenant-a-orders/order-service", "spec.trafficPolicy.connectionPool.http.http2MaxRequests", int64(256))},
		want:    []finding{fails(promises.IDAdmission, "tenant-a", "DestinationRule tenant-a-orders/order-service", "admits 256 orders in flight per gateway")}},
	{name: "AdmissionOverHTTP1",
		patches: []patch{del("DestinationRule tenant-b-orders/order-service", "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy")},
		want:    []finding{fails(promises.IDAdmission, "tenant-b", "DestinationRule tenant-b-orders/order-service", "speaks HTTP/1.1 to order-service")}},
	{name: "AdmissionLimitRemoved",
		patches: []patch{del("DestinationRule tenant-a-orders/order-service", "spec.trafficPolicy.connectionPool.http.http2MaxRequests")},
		want: []finding{
			fails(promises.IDAdmission, "tenant-a", "DestinationRule tenant-a-orders/order-service", "no admission window"),
			fails(promises.IDCircuitBreaker, "tenant-a", "DestinationRule tenant-a-orders/order-service", "connectionPool.http.http2MaxRequests unset"),
		}},
	{name: "RefusalWithoutRetryAfter",
		patches: []patch{remove("EnvoyFilter istio-system/gateway-admission")},
		want:    []finding{fails(promises.IDAdmission, "mesh", "carry no Retry-After")}},

	// ---- visibility to callers and timeouts ----
	{name: "VirtualServiceHiddenFromCaller",
		patches: []patch{set("VirtualService tenant-a-payments/payment-service", "spec.exportTo", []any{"."})},
		want: []finding{fails(promises.IDVisibleToCaller, "tenant-a", "payment-service.tenant-a-payments.svc.cluster.local",
			"no VirtualService for it is visible to order-service (tenant-a-orders)", "retriable-status-codes 503")}},
	{name: "RouteTimeoutShorterThanCaller",
		patches: []patch{set("VirtualService tenant-b-payments/payment-service", "spec.http[0].timeout", "8s")},
		want: []finding{fails(promises.IDTimeoutVsCaller, "tenant-b", "VirtualService tenant-b-payments/payment-service",
			`http[0] "write" timeout 8s is not longer than Deployment tenant-b-orders/order-service's UPSTREAM_TIMEOUT_MS 9000`)}},
	{name: "CallerTimeoutRaised",
		patches: []patch{set("Deployment tenant-a-payments/payment-service", envOf+"[name=UPSTREAM_TIMEOUT_MS].value", "5500")},
		want:    []finding{fails(promises.IDTimeoutVsCaller, "tenant-a", "VirtualService tenant-a-orders/inventory-service", `http[0] "write" timeout 5s`, "UPSTREAM_TIMEOUT_MS 5500")}},

	// ---- Sidecar egress, NetworkPolicies, the gateway ----
	{name: "SidecarEgressWildcard",
		patches: []patch{appendTo("Sidecar tenant-b-payments/default", "spec.egress[0].hosts", "*/*")},
		want:    []finding{fails(promises.IDSidecarEgress, "tenant-b", "Sidecar tenant-b-payments/default", `host "*/*" lets the proxy reach every namespace`)}},
	{name: "SidecarEgressOtherTenant",
		patches: []patch{appendTo("Sidecar tenant-b-orders/default", "spec.egress[0].hosts", "tenant-a-orders/*")},
		want:    []finding{fails(promises.IDSidecarEgress, "tenant-b", "names namespace tenant-a-orders, outside tenant tenant-b")}},
	{name: "SidecarEgressMissesCallee",
		patches: []patch{set("Sidecar tenant-a-orders/default", "spec.egress[0].hosts", []any{"./*", "istio-system/*"})},
		want:    []finding{fails(promises.IDSidecarEgress, "tenant-a", "egress does not include tenant-a-payments, where order-service calls payment-service")}},
	{name: "NetworkPolicyIPBlock",
		patches: []patch{appendTo("NetworkPolicy tenant-a-orders/tenant-isolation", "spec.egress",
			map[string]any{"to": []any{map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0"}}}})},
		want: []finding{fails(promises.IDNetworkPolicy, "tenant-a", "NetworkPolicy tenant-a-orders/tenant-isolation", "egress[2].to[0] is an ipBlock 0.0.0.0/0")}},
	{name: "NetworkPolicyMissing",
		patches: []patch{remove("NetworkPolicy tenant-b-payments/tenant-isolation")},
		want:    []finding{fails(promises.IDNetworkPolicy, "tenant-b", "namespace tenant-b-payments", "no NetworkPolicy with podSelector {}")}},
	{name: "NetworkPolicyOtherTenantsLabel",
		patches: []patch{set("NetworkPolicy tenant-b-orders/tenant-isolation", "spec.ingress[0].from[0].namespaceSelector.matchLabels.tenant", "tenant-a")},
		want:    []finding{fails(promises.IDNetworkPolicy, "tenant-b", "ingress[0].from[0] selects namespaces labelled tenant=tenant-a, not this tenant's tenant-b")}},
	{name: "GatewayWildcardHost",
		patches: []patch{appendTo("Gateway istio-system/ordermesh-gateway", "spec.servers[0].hosts", "*/*.ordermesh.local")},
		want:    []finding{fails(promises.IDGatewayHosts, "mesh", `host "*/*.ordermesh.local" is not bound to one namespace`)}},
	{name: "GatewayHostOfOtherTenant",
		patches: []patch{appendTo("Gateway istio-system/ordermesh-gateway", "spec.servers[0].hosts", "tenant-b-orders/tenant-a.ordermesh.local")},
		want:    []finding{fails(promises.IDGatewayHosts, "tenant-b", `host "tenant-b-orders/tenant-a.ordermesh.local"`, "not tenant-b.*")}},

	// ---- tracing decisions ----
	{name: "GatewaySamplesEverything",
		patches: []patch{set("Telemetry istio-system/ingress-gateway", "spec.tracing[0].randomSamplingPercentage", 100.0)},
		want:    []finding{fails(promises.IDGatewayTracing, "mesh", "the gateway samples 100%, want 10%")}},
	{name: "GatewayTelemetryRemoved",
		patches: []patch{remove("Telemetry istio-system/ingress-gateway")},
		want:    []finding{fails(promises.IDGatewayTracing, "mesh", "the gateway samples 1%, want 10%")}},
	{name: "AppSamplesItsRootsAlways",
		patches: []patch{set("Deployment tenant-a-orders/order-service", envOf+"[name=OTEL_TRACES_SAMPLER].value", "parentbased_always_on")},
		want:    []finding{fails(promises.IDAppSampling, "tenant-a", "Deployment tenant-a-orders/order-service", `OTEL_TRACES_SAMPLER "parentbased_always_on"`)}},
	{name: "AppExportThroughSidecar",
		patches: []patch{del("Deployment tenant-b-payments/payment-service-canary", annotations+`["traffic.sidecar.istio.io/excludeOutboundPorts"]`)},
		want:    []finding{fails(promises.IDAppSampling, "tenant-b", "Deployment tenant-b-payments/payment-service-canary", "goes through the sidecar")}},

	// ---- the apps' own caller check ----
	{name: "SourceAppWithoutPeerIdentity",
		// A copy of deploy/ whose notify-service does not fail closed; the base serves every
		// tenant, so both fail.
		source: []edit{{"base/notify-service/deployment.yaml",
			"            - name: REQUIRE_PEER_IDENTITY\n              value: \"true\"\n", ""}},
		want: []finding{
			fails(promises.IDAppCallers, "tenant-a", "Deployment tenant-a-orders/notify-service", `REQUIRE_PEER_IDENTITY is ""`, "past its sidecar"),
			fails(promises.IDAppCallers, "tenant-b"),
		}},
	{name: "PeerIdentityNotRequired",
		patches: []patch{set("Deployment tenant-b-payments/payment-service-canary", envOf+"[name=REQUIRE_PEER_IDENTITY].value", "false")},
		want:    []finding{fails(promises.IDAppCallers, "tenant-b", "Deployment tenant-b-payments/payment-service-canary", `REQUIRE_PEER_IDENTITY is "false"`)}},
	{name: "AppTrustDomainNotTheMeshs",
		patches: []patch{appendTo("Deployment tenant-a-orders/inventory-service", envOf, map[string]any{"name": "MESH_TRUST_DOMAIN", "value": "evil.example"})},
		want:    []finding{fails(promises.IDAppCallers, "tenant-a", "Deployment tenant-a-orders/inventory-service", `trust domain "evil.example", the mesh's is "cluster.local"`)}},
	{name: "AppTenantNotTheNamespaces",
		patches: []patch{set("Deployment tenant-a-payments/payment-service", envOf+"[name=TENANT_ID].value", "tenant-b")},
		want:    []finding{fails(promises.IDAppCallers, "tenant-a", "Deployment tenant-a-payments/payment-service", "expects its callers in tenant-b-orders", "tenant-a-orders")}},
	{name: "SidecarsForwardTheCallersXFCC",
		patches: []patch{set(istioOperator, "spec.meshConfig.defaultConfig.proxyHeaders", map[string]any{"forwardedClientCert": "FORWARD_ONLY"})},
		want:    []finding{fails(promises.IDAppCallers, "mesh", "forwardedClientCert FORWARD_ONLY", "do not append the caller")}},
	{name: "PodOverridesXFCCForwarding",
		patches: []patch{set("Deployment tenant-b-orders/notify-service", annotations+`["proxy.istio.io/config"]`, "proxyHeaders:\n  forwardedClientCert: ALWAYS_FORWARD_ONLY\n")},
		want:    []finding{fails(promises.IDAppCallers, "tenant-b", "Deployment tenant-b-orders/notify-service", "forwardedClientCert ALWAYS_FORWARD_ONLY")}},
	{name: "ServiceAccountNotTheCallGraphs",
		patches: []patch{set("Deployment tenant-a-orders/inventory-service", "spec.template.spec.serviceAccountName", "inventory")},
		want:    []finding{fails(promises.IDIdentity, "tenant-a", "Deployment tenant-a-orders/inventory-service", "runs as ServiceAccount inventory, but the call graph names inventory-service")}},

	// ---- the kustomize sources, not rendered objects ----
	{name: "SourceOverlayWidensSidecar",
		source: []edit{{"overlays/tenant-b/kustomization.yaml", "components:\n",
			"patches:\n  - target: {kind: Sidecar, name: default}\n    patch: |-\n      - op: add\n        path: /spec/egress/0/hosts/-\n        value: \"*/*\"\ncomponents:\n"}},
		want: []finding{fails(promises.IDSidecarEgress, "tenant-b", "Sidecar tenant-b-orders/default", `host "*/*"`)}},
	{name: "SourceOverlayNamesOtherTenant",
		// A copy-pasted overlay: tenant-b's ConfigMap still says tenant-a's payments namespace.
		source: []edit{{"overlays/tenant-b/tenant/kustomization.yaml", "- paymentsNamespace=tenant-b-payments", "- paymentsNamespace=tenant-a-payments"}},
		want:   []finding{fails(promises.IDVisibleToCaller, "tenant-b", "payment-service.tenant-b-payments.svc.cluster.local", "no VirtualService for it is visible to order-service (tenant-b-orders)")}},
	{name: "SourceTenantParamsNetworkPolicyNotReplaced",
		source: []edit{{"components/tenant-params/kustomization.yaml",
			"      - select: {kind: NetworkPolicy}\n        fieldPaths:\n          - spec.ingress.0.from.0.namespaceSelector.matchLabels.tenant\n          - spec.egress.0.to.0.namespaceSelector.matchLabels.tenant\n", ""}},
		want: []finding{fails(promises.IDNetworkPolicy, "tenant-a", "NetworkPolicy tenant-a-orders/tenant-isolation", "selects namespaces labelled tenant=TENANT, not this tenant's tenant-a")}},
	{name: "SourceTenantParamsExportToNotReplaced",
		source: []edit{{"components/tenant-params/kustomization.yaml",
			"      - select: {kind: DestinationRule, name: payment-service}\n        fieldPaths: [spec.exportTo.1]\n        options: {delimiter: \"-\", index: 0}\n", ""}},
		want: []finding{fails(promises.IDVisibleToCaller, "tenant-a", "payment-service.tenant-a-payments.svc.cluster.local", "no DestinationRule for it is visible to order-service (tenant-a-orders)")}},
	{name: "SourceInjectionLabelRemoved",
		source: []edit{{"base/namespaces/namespaces.yaml",
			"    istio-injection: enabled\n    app.kubernetes.io/part-of: ordermesh\n    ordermesh.io/role: payments\n",
			"    app.kubernetes.io/part-of: ordermesh\n    ordermesh.io/role: payments\n"}},
		want: []finding{fails(promises.IDInjection, "tenant-b", "Namespace tenant-b-payments", "not labelled for sidecar injection")}},
	{name: "SourceGatewayLosesTenantHost",
		source: []edit{{"mesh/gateway.yaml", "        - tenant-b-orders/tenant-b.ordermesh.local\n", ""}},
		want:   []finding{fails(promises.IDGatewayHosts, "tenant-b", "VirtualService tenant-b-orders/order-service-ingress", `host "tenant-b.ordermesh.local" is not granted`)}},

	// ---- the gateway-api variant (Istio's own conversion of the Gateway API objects) ----
	{name: "GatewayAPIMeshRouteToOtherTenant", routing: manifest.RoutingGatewayAPI,
		// Istio accepts it (it enforces ReferenceGrants only on a Gateway's routes): the promise catches it.
		patches: []patch{set("HTTPRoute tenant-a-orders/inventory-service", "spec.rules[*].backendRefs[0].namespace", "tenant-b-orders")},
		want: []finding{fails(promises.IDTenantBackends, "gateway-api/tenant-a", "HTTPRoute tenant-a-orders/inventory-service",
			"sends traffic to inventory-service.tenant-b-orders.svc.cluster.local, a Service of tenant tenant-b")}},
	{name: "GatewayAPIIngressRouteToOtherTenant", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("HTTPRoute tenant-a-orders/order-service-ingress", "spec.rules[*].backendRefs[0].namespace", "tenant-b-orders")},
		want: []finding{
			fails(IDGatewayAPIIstio, "gateway-api/tenant-a", "HTTPRoute tenant-a-orders/order-service-ingress", "ResolvedRefs=False, reason RefNotPermitted"),
			// Istio drops the backend it may not reach: the gateway has no route to order-service left.
			fails(promises.IDVisibleToCaller, "gateway-api/tenant-a", "order-service.tenant-a-orders.svc.cluster.local", "no VirtualService for it is visible to the ingress gateway"),
		}},
	{name: "GatewayAPIRouteWithoutParentRefs", routing: manifest.RoutingGatewayAPI,
		patches: []patch{del("HTTPRoute tenant-a-payments/payment-service", "spec.parentRefs")},
		want: []finding{
			fails(IDGatewayAPIIstio, "gateway-api/tenant-a", "HTTPRoute tenant-a-payments/payment-service", "has no parentRefs"),
			fails(promises.IDVisibleToCaller, "gateway-api/tenant-a", "payment-service.tenant-a-payments.svc.cluster.local", "no VirtualService for it is visible to order-service"),
		}},
	{name: "GatewayAPICanaryWeights8020", routing: manifest.RoutingGatewayAPI,
		patches: []patch{
			set("HTTPRoute tenant-a-payments/payment-service", "spec.rules[*].backendRefs[0].weight", int64(80)),
			set("HTTPRoute tenant-a-payments/payment-service", "spec.rules[*].backendRefs[1].weight", int64(20)),
		},
		want: []finding{fails(promises.IDWeights, "gateway-api/tenant-a", "HTTPRoute tenant-a-payments/payment-service",
			"sends 20% to the canary (payment-service-canary.tenant-a-payments.svc.cluster.local), promised 10%")}},
	{name: "GatewayAPIAndVirtualServiceOnOneHost", routing: manifest.RoutingGatewayAPI,
		add: added{"tenant-a", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment-service, namespace: tenant-a-payments}
spec:
  hosts: [payment-service.tenant-a-payments.svc.cluster.local]
  http:
    - timeout: 10s
      retries: {attempts: 0}
      route: [{destination: {host: payment-service.tenant-a-payments.svc.cluster.local}}]
`},
		want: []finding{fails(promises.IDOneAPI, "gateway-api/tenant-a", "VirtualService tenant-a-payments/payment-service",
			`host "payment-service.tenant-a-payments.svc.cluster.local" is routed by`, "HTTPRoute tenant-a-payments/payment-service")}},
	{name: "GatewayAPIAndIstioGatewayOnOneHost", routing: manifest.RoutingGatewayAPI,
		add: added{"mesh", `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: legacy, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: [tenant-a-orders/tenant-a.ordermesh.local]
`},
		want: []finding{fails(promises.IDOneAPI, "gateway-api/mesh", "Gateway istio-system/legacy", `host "tenant-a.ordermesh.local" is served by an Istio Gateway`)}},
	{name: "GatewayAPICanaryRuleHiddenFromCaller", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("DestinationRule tenant-a-payments/payment-service-canary", "spec.exportTo", []any{"."})},
		want: []finding{fails(promises.IDVisibleToCaller, "gateway-api/tenant-a", "payment-service-canary.tenant-a-payments.svc.cluster.local",
			"HTTPRoute tenant-a-payments/payment-service routes payment-service.tenant-a-payments.svc.cluster.local's calls here", "no DestinationRule for it is visible to order-service (tenant-a-orders)")}},
	{name: "GatewayAPIListenerFromAll", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("Gateway istio-system/ordermesh-gateway", "spec.listeners[name=tenant-a].allowedRoutes.namespaces", map[string]any{"from": "All"})},
		want:    []finding{fails(promises.IDGatewayHosts, "gateway-api/mesh", "Gateway istio-system/ordermesh-gateway", `host "*/tenant-a.ordermesh.local" is not bound to one namespace`)}},
	{name: "GatewayAPIListenerFromSame", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("Gateway istio-system/ordermesh-gateway", "spec.listeners[name=tenant-b].allowedRoutes.namespaces", map[string]any{"from": "Same"})},
		want: []finding{
			fails(promises.IDGatewayHosts, "gateway-api/mesh", `host "istio-system/tenant-b.ordermesh.local" is granted to namespace istio-system`),
			fails(IDGatewayAPIIstio, "gateway-api/tenant-b", "HTTPRoute tenant-b-orders/order-service-ingress", "Accepted=False, reason NotAllowedByListeners"),
		}},
	{name: "GatewayAPIListenerAdmitsWholeTenant", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("Gateway istio-system/ordermesh-gateway", "spec.listeners[name=tenant-a].allowedRoutes.namespaces.selector",
			map[string]any{"matchLabels": map[string]any{"tenant": "tenant-a"}})},
		want: []finding{fails(promises.IDGatewayHosts, "gateway-api/tenant-a", "Gateway istio-system/ordermesh-gateway",
			`host "tenant-a-payments/tenant-a.ordermesh.local" is granted to tenant-a-payments, not to the tenant's orders namespace tenant-a-orders`)}},
	{name: "GatewayAPIListenerWildcardHostname", routing: manifest.RoutingGatewayAPI,
		patches: []patch{del("Gateway istio-system/ordermesh-gateway", "spec.listeners[name=tenant-a].hostname")},
		want:    []finding{fails(promises.IDGatewayHosts, "gateway-api/mesh", "Gateway istio-system/ordermesh-gateway", "is a wildcard")}},
	{name: "IstioVariantHTTPRouteOnVirtualServiceHost",
		add: added{"tenant-b", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: notify-service, namespace: tenant-b-orders}
spec:
  parentRefs: [{group: "", kind: Service, name: notify-service, port: 8080}]
  rules: [{backendRefs: [{name: notify-service, port: 8080}], timeouts: {request: 10s}}]
`},
		want: []finding{fails(promises.IDOneAPI, "tenant-b", "VirtualService tenant-b-orders/notify-service",
			`host "notify-service.tenant-b-orders.svc.cluster.local" is routed by a VirtualService`, "HTTPRoute tenant-b-orders/notify-service")}},
	{name: "GatewayAPITelemetryTargetsOtherGateway", routing: manifest.RoutingGatewayAPI,
		// The gateway workload is the Gateway's deployment; the Telemetry binds to it by targetRefs only.
		patches: []patch{set("Telemetry istio-system/ingress-gateway", "spec.targetRefs[0].name", "other-gateway")},
		want:    []finding{fails(promises.IDGatewayTracing, "gateway-api/mesh", "Deployment istio-system/ordermesh-gateway-istio", `custom tag "tenant" must come from header x-tenant-id`)}},
	{name: "SourceGatewayAPIListenerNamesOtherTenant", routing: manifest.RoutingGatewayAPI,
		// A copy-pasted listener: tenant-b's listener admits tenant-a's orders namespace.
		source: []edit{{"mesh-gateway-api/gateway.yaml", "kubernetes.io/metadata.name: tenant-b-orders", "kubernetes.io/metadata.name: tenant-a-orders"}},
		want: []finding{
			fails(promises.IDGatewayHosts, "gateway-api/tenant-a", `host "tenant-a-orders/tenant-b.ordermesh.local"`, "is not tenant-a.*"),
			fails(IDGatewayAPIIstio, "gateway-api/tenant-b", "HTTPRoute tenant-b-orders/order-service-ingress", "NotAllowedByListeners"),
		}},
	{name: "GatewayAPISchemaViolation", routing: manifest.RoutingGatewayAPI,
		patches: []patch{set("HTTPRoute tenant-a-orders/notify-service", "spec.rules[name=read].timeouts.request", "ten seconds")},
		want:    []finding{fails(IDGatewayAPIValidate, "gateway-api/tenant-a", "HTTPRoute tenant-a-orders/notify-service", "CRD schema (experimental)", "timeouts.request")}},
}

// TestNegative runs the table, one subtest per case.
func TestNegative(t *testing.T) {
	for _, c := range negativeCases {
		t.Run(c.name, c.run)
	}
}

func (c negativeCase) run(t *testing.T) {
	broken := c.add.yaml != "" || len(c.patches) > 0
	if len(c.want) == 0 || broken == (len(c.source) > 0) {
		t.Fatalf("a case breaks either the render (add, patches) or the sources, and wants a finding")
	}
	_, baseline := baseFor(t, c.variant())
	for _, w := range c.want {
		for _, bc := range baseline.Find(w.id) {
			if bc.Scope == w.scope && bc.Status != report.Pass {
				t.Fatalf("baseline: %s [%s] already fails on the unmodified deploy/:\n%s", w.id, w.scope, failuresText(baseline))
			}
		}
		if len(baseline.Find(w.id)) == 0 {
			t.Fatalf("baseline: check %s never runs", w.id)
		}
	}
	var r *report.Report
	if broken {
		b, _ := baseFor(t, c.variant())
		if c.add.yaml != "" {
			addYAML(t, b, c.add.unit, c.add.yaml)
		}
		applyPatches(t, b, c.patches...)
		r = Check(b)
	} else {
		r = checkSources(t, c.source...)
	}
	if r.OK {
		t.Fatalf("break not caught: every check passes")
	}
	for _, w := range c.want {
		expectFinding(t, r, w)
	}
}

func (c negativeCase) variant() manifest.Routing {
	if c.routing == "" {
		return manifest.RoutingIstio
	}
	return c.routing
}

// expectFinding asserts that w.id fails in w.scope with a finding holding every string of w.text,
// and that the finding says how to fix it.
func expectFinding(t *testing.T, r *report.Report, w finding) {
	t.Helper()
	for _, c := range r.Find(w.id) {
		if c.Scope != w.scope || c.Status == report.Pass {
			continue
		}
		for _, f := range c.Findings {
			text := f.Object + ": " + f.Message
			ok := true
			for _, s := range w.text {
				ok = ok && strings.Contains(text, s)
			}
			if ok {
				if f.Fix == "" && w.id != IDRender {
					t.Errorf("finding has no fix: %s", text)
				}
				return
			}
		}
	}
	t.Errorf("expected %s [%s] to fail with %q; failures were:\n%s", w.id, w.scope, w.text, failuresText(r))
}

// checkSources copies deploy/ to a temporary directory, applies the edits to its kustomize
// sources (overlays, components, bases), renders and checks it there.
func checkSources(t *testing.T, edits ...edit) *report.Report {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.CopyFS(dir, os.DirFS(deployDir)); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		path := filepath.Join(dir, filepath.FromSlash(e.file))
		b, err := os.ReadFile(path)
		content := e.new
		switch {
		case e.old == "" && err == nil:
			t.Fatalf("%s exists: an edit with no old text creates a file", e.file)
		case e.old == "":
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if n := strings.Count(string(b), e.old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want 1 (the source changed: update the case)", e.file, e.old, n)
			}
			content = strings.Replace(string(b), e.old, e.new, 1)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Run(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
