package invariants

// The promises deploy/ makes beyond authorization and mTLS, each proved on the rendered objects:
// circuit breakers and LEAST_REQUEST on every host and subset, the canary's fallback to stable,
// VirtualServices and DestinationRules visible to every caller, route timeouts above the
// callers' own UPSTREAM_TIMEOUT_MS, Sidecar egress scoping, per-tenant NetworkPolicies, the
// gateway's hosts per tenant, and the tracing decisions (the gateway's 10%, the apps' own roots).

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	netv1 "k8s.io/api/networking/v1"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// Check IDs of the promises.
const (
	IDCircuitBreaker  = "routing.circuit-breakers"
	IDLeastRequest    = "routing.least-request"
	IDCanaryFallback  = "routing.canary-fallback"
	IDVisibleToCaller = "routing.visible-to-callers"
	IDTimeoutVsCaller = "routing.timeout-vs-caller"
	IDSidecarEgress   = "mesh.sidecar-egress"
	IDNetworkPolicy   = "netpol.tenant-isolation"
	IDGatewayHosts    = "gateway.tenant-hosts"
	IDGatewayTracing  = "telemetry.gateway-sampling"
	IDAppSampling     = "telemetry.app-sampling"
	IDAdmission       = "gateway.admission"
)

const (
	// AppSampler is the OpenTelemetry sampler the apps must use: follow a parent's decision,
	// sample their own roots at the mesh's ratio.
	AppSampler = "parentbased_traceidratio"
	// DefaultUpstreamTimeoutMS is the platform crate's default when UPSTREAM_TIMEOUT_MS is unset.
	DefaultUpstreamTimeoutMS = 2000
	// GatewayTenantHeader is where the shared gateway takes the `tenant` span tag from.
	GatewayTenantHeader       = "x-tenant-id"
	annotationExcludeOutbound = "traffic.sidecar.istio.io/excludeOutboundPorts"
)

func checkPromises(m *model.Model, r *report.Report) {
	checkDestinationRules(m, r)
	checkCanaryFallback(m, r)
	checkCallers(m, r)
	checkSidecarEgress(m, r)
	checkNetworkPolicies(m, r)
	checkGatewayHosts(m, r)
	checkGatewayTracing(m, r)
	checkAppSampling(m, r)
	checkAdmission(m, r)
}

// hostEdge is one call-graph edge resolved for a tenant: the caller's namespace and app ("" for
// the ingress gateway) and the callee's full host name.
type hostEdge struct {
	callerNS, callerApp string
	host                string
	edge                callgraph.Edge
}

func tenantEdges(m *model.Model, t *model.Tenant) []hostEdge {
	var out []hostEdge
	for _, e := range callgraph.Edges {
		to := t.NamespaceFor(e.ToRole)
		if to == "" {
			continue
		}
		from := callgraph.Gateway.Namespace
		if e.From != "" {
			from = t.NamespaceFor(e.FromRole)
		}
		out = append(out, hostEdge{callerNS: from, callerApp: e.From, host: m.FQDN(e.To, to), edge: e})
	}
	return out
}

func destinationRulesFor(m *model.Model, host string) []*model.Istio[*networking.DestinationRule] {
	var out []*model.Istio[*networking.DestinationRule]
	for _, dr := range m.DestinationRules {
		if m.FQDN(dr.Spec.GetHost(), dr.Namespace) == host {
			out = append(out, dr)
		}
	}
	return out
}

// mergeSubset is Istio's MergeTrafficPolicy: a subset's fields replace the host's, field by field.
func mergeSubset(host, subset *networking.TrafficPolicy) *networking.TrafficPolicy {
	if subset == nil {
		return host
	}
	out := &networking.TrafficPolicy{}
	if host != nil {
		out.LoadBalancer, out.ConnectionPool, out.OutlierDetection = host.GetLoadBalancer(), host.GetConnectionPool(), host.GetOutlierDetection()
	}
	if subset.GetLoadBalancer() != nil {
		out.LoadBalancer = subset.GetLoadBalancer()
	}
	if subset.GetConnectionPool() != nil {
		out.ConnectionPool = subset.GetConnectionPool()
	}
	if subset.GetOutlierDetection() != nil {
		out.OutlierDetection = subset.GetOutlierDetection()
	}
	return out
}

// breakerProblems lists what is missing or unsafe in a policy's circuit breaker.
func breakerProblems(p *networking.TrafficPolicy) []string {
	var bad []string
	od := p.GetOutlierDetection()
	if od == nil {
		bad = append(bad, "no outlierDetection")
	} else {
		if od.GetConsecutiveGatewayErrors().GetValue() == 0 && od.GetConsecutive_5XxErrors().GetValue() == 0 {
			bad = append(bad, "outlierDetection ejects on nothing (consecutiveGatewayErrors and consecutive5xxErrors both 0/unset)")
		}
		if od.GetInterval().AsDuration() <= 0 {
			bad = append(bad, "outlierDetection.interval unset")
		}
		if od.GetBaseEjectionTime().AsDuration() <= 0 {
			bad = append(bad, "outlierDetection.baseEjectionTime unset")
		}
		if pct := od.GetMaxEjectionPercent(); pct < 1 || pct > 100 {
			bad = append(bad, fmt.Sprintf("outlierDetection.maxEjectionPercent %d (want 1-100; unset is Istio's 10%%, which ejects nothing in a pool of 2-3)", pct))
		}
	}
	cp := p.GetConnectionPool()
	switch {
	case cp == nil:
		bad = append(bad, "no connectionPool")
	default:
		if cp.GetTcp().GetMaxConnections() <= 0 {
			bad = append(bad, "connectionPool.tcp.maxConnections unset (unbounded)")
		}
		if cp.GetTcp().GetConnectTimeout().AsDuration() <= 0 {
			bad = append(bad, "connectionPool.tcp.connectTimeout unset")
		}
		if cp.GetHttp().GetHttp1MaxPendingRequests() <= 0 {
			bad = append(bad, "connectionPool.http.http1MaxPendingRequests unset (unbounded)")
		}
		if cp.GetHttp().GetHttp2MaxRequests() <= 0 {
			bad = append(bad, "connectionPool.http.http2MaxRequests unset (unbounded)")
		}
	}
	return bad
}

// checkDestinationRules: every service host has one DestinationRule whose effective policy, for
// the host and for every subset (the canary included), has a sane circuit breaker and LEAST_REQUEST.
func checkDestinationRules(m *model.Model, r *report.Report) {
	cb := newCollector(m)
	lb := newCollector(m)
	for _, t := range m.Tenants {
		n := 0
		for _, s := range callgraph.Services {
			ns := t.NamespaceFor(s.Role)
			if ns == "" {
				continue
			}
			host := m.FQDN(s.Name, ns)
			drs := destinationRulesFor(m, host)
			if len(drs) != 1 {
				cb.add(t.Overlay, host, fmt.Sprintf("%d DestinationRules for the host (want exactly 1: with several, Istio merges or picks one)", len(drs)),
					"define one DestinationRule per host (deploy/components/istio-tenant/destinationrule-circuit-breaker.yaml)")
				continue
			}
			dr := drs[0]
			n++
			pools := []struct {
				where  string
				policy *networking.TrafficPolicy
			}{{"trafficPolicy", dr.Spec.GetTrafficPolicy()}}
			for _, sub := range dr.Spec.GetSubsets() {
				pools = append(pools, struct {
					where  string
					policy *networking.TrafficPolicy
				}{fmt.Sprintf("subset %q", sub.GetName()), mergeSubset(dr.Spec.GetTrafficPolicy(), sub.GetTrafficPolicy())})
			}
			for _, p := range pools {
				for _, b := range breakerProblems(p.policy) {
					cb.add(t.Overlay, dr.Ref(), p.where+": "+b,
						"give every host and subset outlierDetection (consecutiveGatewayErrors, interval, baseEjectionTime, maxEjectionPercent) and a bounded connectionPool")
				}
				l := p.policy.GetLoadBalancer()
				if l.GetSimple() != networking.LoadBalancerSettings_LEAST_REQUEST || l.GetConsistentHash() != nil {
					got := "unset"
					if l != nil {
						got = l.GetSimple().String()
						if l.GetConsistentHash() != nil {
							got = "consistentHash"
						}
					}
					lb.add(t.Overlay, dr.Ref(), fmt.Sprintf("%s: loadBalancer %s, want simple LEAST_REQUEST", p.where, got),
						"set loadBalancer.simple: LEAST_REQUEST (a subset's loadBalancer replaces the host's as a whole)")
				}
			}
		}
		cb.detail(t.Overlay, plural(n, "host")+" with outlier detection and connection pools on every subset")
		lb.detail(t.Overlay, plural(n, "host")+" LEAST_REQUEST on every subset")
	}
	cb.emit(r, IDCircuitBreaker, "circuit breakers on every host and subset", false)
	lb.emit(r, IDLeastRequest, "LEAST_REQUEST on every host and subset", false)
}

// checkCanaryFallback: a subset that a weighted route sends a share to and that holds fewer than
// two replicas of its own must fall back to other endpoints when they are ejected: a
// failoverPriority "label=value" whose priority 0 is the subset's own pods, over a pool that also
// holds other pods, with outlier detection (Istio enables failover only with it).
func checkCanaryFallback(m *model.Model, r *report.Report) {
	c := newCollector(m)
	noted := map[string]bool{}
	for _, vs := range m.VirtualServices {
		scope := c.scopeOf(vs.Namespace)
		for i, hr := range vs.Spec.GetHttp() {
			if len(hr.GetRoute()) < 2 {
				continue
			}
			for _, d := range hr.GetRoute() {
				if d.GetDestination().GetSubset() == "" || d.GetWeight() == 0 {
					continue
				}
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				if msg := fallbackProblem(m, host, d.GetDestination().GetSubset()); msg != "" {
					c.add(scope, vs.Ref(), fmt.Sprintf("%s sends %d%% to subset %q of %s: %s", routeName(i, hr), d.GetWeight(), d.GetDestination().GetSubset(), host, msg),
						`let the subset select every pod of the service and prioritise its own: trafficPolicy.loadBalancer.localityLbSetting {enabled: true, failoverPriority: ["version=<subset>"]}`)
				} else if d := fmt.Sprintf("%s subset %q: fallback or ≥ 2 replicas", host, d.GetDestination().GetSubset()); !noted[scope+d] {
					noted[scope+d] = true
					c.detail(scope, d)
				}
			}
		}
	}
	c.emit(r, IDCanaryFallback, "a small weighted subset falls back to the others when ejected", false)
}

func fallbackProblem(m *model.Model, host, subsetName string) string {
	svc := m.ServiceByFQDN(host)
	if svc == nil {
		return "" // routing.subsets reports it
	}
	for _, dr := range destinationRulesFor(m, host) {
		for _, sub := range dr.Spec.GetSubsets() {
			if sub.GetName() != subsetName {
				continue
			}
			pol := mergeSubset(dr.Spec.GetTrafficPolicy(), sub.GetTrafficPolicy())
			var pool []*model.Workload
			replicas := int32(0)
			for _, w := range m.WorkloadsBehind(svc) {
				if model.Selects(sub.GetLabels(), w.PodLabels) && w.Replicas > 0 {
					pool = append(pool, w)
					replicas += w.Replicas
				}
			}
			loc := pol.GetLoadBalancer().GetLocalityLbSetting()
			prios := loc.GetFailoverPriority()
			if len(prios) == 0 || (loc.GetEnabled() != nil && !loc.GetEnabled().GetValue()) {
				if replicas >= 2 {
					return ""
				}
				return fmt.Sprintf("its pool is %d replica(s) and has no failoverPriority: once ejected, that share gets 503 \"no healthy upstream\"", replicas)
			}
			if pol.GetOutlierDetection() == nil {
				return "failoverPriority without outlierDetection: Istio does not enable failover"
			}
			var first, rest int32
			for _, w := range pool {
				top := true
				for _, p := range prios {
					k, v, ok := strings.Cut(p, "=")
					if !ok {
						return fmt.Sprintf("failoverPriority %q takes its value from each caller's labels; write %q=<value>", p, p)
					}
					top = top && w.PodLabels[k] == v
				}
				if top {
					first += w.Replicas
				} else {
					rest += w.Replicas
				}
			}
			switch {
			case first == 0:
				return fmt.Sprintf("failoverPriority %v puts none of its pods first: the subset's share goes to the fallback only", prios)
			case rest == 0:
				return fmt.Sprintf("failoverPriority %v leaves nothing to fall back to (the subset's labels %v select only the prioritised pods)", prios, sub.GetLabels())
			}
			return ""
		}
	}
	return "" // routing.subsets reports a missing subset
}

// checkCallers: for every call-graph edge, the caller's proxy sees the callee's VirtualService
// and DestinationRule (exportTo), or it uses Istio's defaults: 2 retries that include 503 —
// on POST too — and no circuit breaker; and every route timeout is longer than the caller's
// own UPSTREAM_TIMEOUT_MS, so the app gives up first and answers cleanly.
func checkCallers(m *model.Model, r *report.Report) {
	vis := newCollector(m)
	tmo := newCollector(m)
	for _, t := range m.Tenants {
		nEdges := 0
		for _, e := range tenantEdges(m, t) {
			nEdges++
			var seen []*model.Istio[*networking.VirtualService]
			for _, vs := range m.VirtualServices {
				if e.callerApp == "" {
					if boundToIngress(vs) && vsRoutesTo(m, vs, e.host) && exportedTo(m, vs.Namespace, vs.Spec.GetExportTo(), m.Mesh.GetDefaultVirtualServiceExportTo(), e.callerNS) {
						seen = append(seen, vs)
					}
					continue
				}
				if !hostsInclude(m, vs, e.host) || !appliesToMesh(vs) {
					continue
				}
				if exportedTo(m, vs.Namespace, vs.Spec.GetExportTo(), m.Mesh.GetDefaultVirtualServiceExportTo(), e.callerNS) {
					seen = append(seen, vs)
				}
			}
			caller := e.callerApp
			if caller == "" {
				caller = "the ingress gateway"
			}
			if len(seen) == 0 {
				vis.add(t.Overlay, e.host, fmt.Sprintf("no VirtualService for it is visible to %s (%s): that proxy uses Istio's default retry policy (2 retries on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes 503 — POST included) and no route timeout", caller, e.callerNS),
					"add "+e.callerNS+" to the VirtualService's exportTo")
			}
			drVisible := false
			for _, dr := range destinationRulesFor(m, e.host) {
				drVisible = drVisible || exportedTo(m, dr.Namespace, dr.Spec.GetExportTo(), m.Mesh.GetDefaultDestinationRuleExportTo(), e.callerNS)
			}
			if !drVisible {
				vis.add(t.Overlay, e.host, fmt.Sprintf("no DestinationRule for it is visible to %s (%s): no circuit breaker, no subsets there", caller, e.callerNS),
					"add "+e.callerNS+" to the DestinationRule's exportTo")
			}
			if e.callerApp == "" {
				continue // the gateway has no application timeout of its own
			}
			for _, w := range m.AppWorkloads(e.callerNS, e.callerApp) {
				ms, src := upstreamTimeoutMS(w)
				for _, vs := range seen {
					for i, hr := range vs.Spec.GetHttp() {
						to := hr.GetTimeout().AsDuration()
						if to > 0 && to.Milliseconds() <= ms {
							tmo.add(t.Overlay, vs.Ref(), fmt.Sprintf("%s timeout %s is not longer than %s's UPSTREAM_TIMEOUT_MS %d (%s): the mesh cuts the call before the app gives up and answers cleanly",
								routeName(i, hr), to, w.Ref(), ms, src),
								"make the route timeout longer than the caller's UPSTREAM_TIMEOUT_MS (or lower that)")
						}
					}
				}
			}
		}
		vis.detail(t.Overlay, plural(nEdges, "call-graph edge")+": VirtualService and DestinationRule visible to the caller")
		tmo.detail(t.Overlay, "route timeouts > callers' UPSTREAM_TIMEOUT_MS")
	}
	vis.emit(r, IDVisibleToCaller, "every caller sees the callee's VirtualService and DestinationRule", false)
	tmo.emit(r, IDTimeoutVsCaller, "route timeouts are longer than the callers' own", false)
}

func boundToIngress(vs *model.Istio[*networking.VirtualService]) bool {
	for _, g := range vs.Spec.GetGateways() {
		if g != "mesh" {
			return true
		}
	}
	return false
}

func appliesToMesh(vs *model.Istio[*networking.VirtualService]) bool {
	if len(vs.Spec.GetGateways()) == 0 {
		return true
	}
	for _, g := range vs.Spec.GetGateways() {
		if g == "mesh" {
			return true
		}
	}
	return false
}

func hostsInclude(m *model.Model, vs *model.Istio[*networking.VirtualService], host string) bool {
	for _, h := range vs.Spec.GetHosts() {
		if m.FQDN(h, vs.Namespace) == host {
			return true
		}
	}
	return false
}

func vsRoutesTo(m *model.Model, vs *model.Istio[*networking.VirtualService], host string) bool {
	for _, hr := range vs.Spec.GetHttp() {
		for _, d := range hr.GetRoute() {
			if m.FQDN(d.GetDestination().GetHost(), vs.Namespace) == host {
				return true
			}
		}
	}
	return false
}

// env is the literal value of a container env var of the workload ("" when unset).
func env(w *model.Workload, name string) (string, bool) {
	for _, c := range w.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name && e.ValueFrom == nil {
				return e.Value, true
			}
		}
	}
	return "", false
}

func upstreamTimeoutMS(w *model.Workload) (int64, string) {
	v, ok := env(w, "UPSTREAM_TIMEOUT_MS")
	if !ok {
		return DefaultUpstreamTimeoutMS, "unset: the platform's default"
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return DefaultUpstreamTimeoutMS, fmt.Sprintf("%q does not parse: the platform's default", v)
	}
	return n, "env"
}

// checkSidecarEgress: every tenant namespace has one namespace-wide Sidecar whose egress names
// only the tenant's own namespaces and istio-system (never another tenant, never "*"), includes
// every namespace its workloads call, and does not reopen ALLOW_ANY; the mesh is REGISTRY_ONLY.
func checkSidecarEgress(m *model.Model, r *report.Report) {
	c := newCollector(m)
	if m.Mesh != nil && (m.Mesh.GetOutboundTrafficPolicy() == nil || m.Mesh.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY) {
		c.add(MeshScope, "IstioOperator spec.meshConfig.outboundTrafficPolicy", "not REGISTRY_ONLY: a proxy passes traffic to any destination its Sidecar does not list",
			"set meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY")
	}
	for _, t := range m.Tenants {
		own := map[string]bool{m.RootNamespace: true}
		for _, ns := range t.Namespaces {
			own[ns] = true
		}
		for _, ns := range t.Namespaces {
			var def []*model.Istio[*networking.Sidecar]
			for _, sc := range m.Sidecars {
				if sc.Namespace != ns {
					continue
				}
				if sc.Spec.GetWorkloadSelector() == nil {
					def = append(def, sc)
				}
				if sc.Spec.GetOutboundTrafficPolicy().GetMode() == networking.OutboundTrafficPolicy_ALLOW_ANY {
					c.add(t.Overlay, sc.Ref(), "outboundTrafficPolicy ALLOW_ANY reopens every destination", "remove it (the mesh is REGISTRY_ONLY)")
				}
				for i, eg := range sc.Spec.GetEgress() {
					for _, h := range eg.GetHosts() {
						hns, _, _ := strings.Cut(h, "/")
						switch {
						case hns == "." || hns == "~":
						case hns == "*":
							c.add(t.Overlay, sc.Ref(), fmt.Sprintf("egress[%d] host %q lets the proxy reach every namespace, other tenants' included", i, h),
								"list the tenant's own namespaces and istio-system only")
						case !own[hns]:
							c.add(t.Overlay, sc.Ref(), fmt.Sprintf("egress[%d] host %q names namespace %s, outside tenant %s", i, h, hns, t.ID),
								"list the tenant's own namespaces and istio-system only")
						}
					}
				}
			}
			if len(def) != 1 {
				c.add(t.Overlay, "namespace "+ns, fmt.Sprintf("%d namespace-wide Sidecars (want 1): the proxies see every namespace's services", len(def)),
					"keep one Sidecar `default` without workloadSelector per tenant namespace")
				continue
			}
			reach := map[string]bool{}
			for _, eg := range def[0].Spec.GetEgress() {
				for _, h := range eg.GetHosts() {
					hns, _, _ := strings.Cut(h, "/")
					if hns == "." {
						hns = ns
					}
					reach[hns] = true
				}
			}
			for _, e := range tenantEdges(m, t) {
				if e.callerNS != ns || e.callerApp == "" {
					continue
				}
				calleeNS := strings.Split(e.host, ".")[1]
				if !reach[calleeNS] {
					c.add(t.Overlay, def[0].Ref(), fmt.Sprintf("egress does not include %s, where %s calls %s", calleeNS, e.callerApp, e.host),
						"add \""+calleeNS+"/*\" to the egress hosts")
				}
			}
		}
		c.detail(t.Overlay, plural(len(t.Namespaces), "namespace")+" scoped to the tenant + istio-system")
	}
	c.emit(r, IDSidecarEgress, "Sidecar egress is scoped to the tenant", true)
}

// checkNetworkPolicies: every tenant namespace has a NetworkPolicy selecting all its pods for
// Ingress and Egress, and no policy there admits a peer outside the tenant (other than
// istio-system, and kube-system DNS for egress): no ipBlock, no empty peer or rule, no selector
// that is not this tenant's label. The tenant's namespaces carry that label; no other does.
func checkNetworkPolicies(m *model.Model, r *report.Report) {
	c := newCollector(m)
	for _, t := range m.Tenants {
		for ns, n := range m.Namespaces {
			if n.Labels["tenant"] == t.ID && m.TenantOf(ns) != t {
				c.add(t.Overlay, n.Ref(), fmt.Sprintf("namespace %s outside tenant %s carries its label tenant=%s: its NetworkPolicies admit it", ns, t.ID, t.ID),
					"label each namespace with its own tenant")
			}
		}
		for _, ns := range t.Namespaces {
			if n := m.Namespaces[ns]; n != nil && n.Labels["tenant"] != t.ID {
				c.add(t.Overlay, n.Ref(), fmt.Sprintf("namespace lacks label tenant=%s: the tenant's own NetworkPolicies block its call-graph edges", t.ID),
					"keep the tenant label on every tenant namespace (components/tenant-params)")
			}
			covered := false
			for _, np := range m.NetworkPolicies {
				if np.Namespace != ns {
					continue
				}
				types := map[netv1.PolicyType]bool{}
				for _, pt := range np.Spec.PolicyTypes {
					types[pt] = true
				}
				if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 && types[netv1.PolicyTypeIngress] && types[netv1.PolicyTypeEgress] {
					covered = true
				}
				for i, rule := range np.Spec.Ingress {
					if len(rule.From) == 0 {
						c.add(t.Overlay, np.Ref(), fmt.Sprintf("ingress[%d] has no `from`: it admits every source", i), "name the tenant's namespaces and istio-system")
					}
					for j, p := range rule.From {
						if msg := peerProblem(p, t, false); msg != "" {
							c.add(t.Overlay, np.Ref(), fmt.Sprintf("ingress[%d].from[%d] %s", i, j, msg), "admit only namespaceSelector tenant="+t.ID+" or kubernetes.io/metadata.name=istio-system")
						}
					}
				}
				for i, rule := range np.Spec.Egress {
					if len(rule.To) == 0 {
						c.add(t.Overlay, np.Ref(), fmt.Sprintf("egress[%d] has no `to`: it allows every destination", i), "name the tenant's namespaces, istio-system and kube-dns")
					}
					for j, p := range rule.To {
						if msg := peerProblem(p, t, true); msg != "" {
							c.add(t.Overlay, np.Ref(), fmt.Sprintf("egress[%d].to[%d] %s", i, j, msg), "allow only namespaceSelector tenant="+t.ID+", istio-system and kube-system DNS")
						}
					}
				}
			}
			if !covered {
				c.add(t.Overlay, "namespace "+ns, "no NetworkPolicy with podSelector {} and policyTypes [Ingress, Egress]: pods are open at L3/L4",
					"add the tenant-isolation NetworkPolicy (deploy/components/istio-tenant/multi-tenant-isolation.yaml)")
			}
		}
		c.detail(t.Overlay, plural(len(t.Namespaces), "namespace")+" isolated to tenant="+t.ID+" + istio-system")
	}
	c.emit(r, IDNetworkPolicy, "NetworkPolicies isolate each tenant", false)
}

func peerProblem(p netv1.NetworkPolicyPeer, t *model.Tenant, egress bool) string {
	if p.IPBlock != nil {
		return fmt.Sprintf("is an ipBlock %s: it can match any tenant's pods", p.IPBlock.CIDR)
	}
	if p.NamespaceSelector == nil {
		if p.PodSelector == nil {
			return "is empty: it matches everything"
		}
		return "" // pods of the policy's own namespace
	}
	sel := p.NamespaceSelector
	if len(sel.MatchExpressions) > 0 {
		return "selects namespaces by matchExpressions, which this check cannot prove tenant-local"
	}
	if v, ok := sel.MatchLabels["tenant"]; ok && len(sel.MatchLabels) == 1 {
		if v != t.ID {
			return fmt.Sprintf("selects namespaces labelled tenant=%s, not this tenant's %s", v, t.ID)
		}
		return ""
	}
	name := sel.MatchLabels["kubernetes.io/metadata.name"]
	switch {
	case len(sel.MatchLabels) == 1 && name == callgraph.Gateway.Namespace:
		return ""
	case len(sel.MatchLabels) == 1 && name == "kube-system" && egress && p.PodSelector != nil && p.PodSelector.MatchLabels["k8s-app"] == "kube-dns":
		return ""
	case len(sel.MatchLabels) == 0:
		return "selects every namespace"
	}
	return fmt.Sprintf("selects namespaces %v, outside the tenant", sel.MatchLabels)
}

// checkGatewayHosts: the ingress Gateway lists every tenant's host, each only for that tenant's
// orders namespace ("<tenant>-orders/<tenant>.<domain>"), never a wildcard; each tenant's
// ingress VirtualService binds exactly hosts the gateway grants to its namespace.
func checkGatewayHosts(m *model.Model, r *report.Report) {
	c := newCollector(m)
	granted := map[string]string{} // "ns/host" -> Gateway ref
	for _, gw := range m.Gateways {
		if !model.Selects(gw.Spec.GetSelector(), callgraph.GatewayLabels) {
			continue
		}
		for _, srv := range gw.Spec.GetServers() {
			for _, h := range srv.GetHosts() {
				hns, host, ok := strings.Cut(h, "/")
				switch {
				case !ok || hns == "*" || hns == "." || hns == "~":
					c.add(MeshScope, gw.Ref(), fmt.Sprintf("host %q is not bound to one namespace: any namespace's VirtualService may claim it", h),
						"write hosts as <tenant>-orders/<tenant>.ordermesh.local")
					continue
				case strings.Contains(host, "*"):
					c.add(MeshScope, gw.Ref(), fmt.Sprintf("host %q is a wildcard", h), "list each tenant's host explicitly")
					continue
				}
				t := m.TenantOf(hns)
				if t == nil {
					c.add(MeshScope, gw.Ref(), fmt.Sprintf("host %q is granted to namespace %s, which is no tenant's", h, hns), "remove it, or add the tenant's overlay")
					continue
				}
				if !strings.HasPrefix(host, t.ID+".") {
					c.add(t.Overlay, gw.Ref(), fmt.Sprintf("host %q: tenant %s's namespace is granted a host that is not %s.*", h, t.ID, t.ID),
						"grant <tenant>-orders only <tenant>.ordermesh.local")
				}
				granted[hns+"/"+host] = gw.Ref()
			}
		}
	}
	for _, t := range m.Tenants {
		bound := 0
		for _, vs := range m.VirtualServices {
			if m.TenantOf(vs.Namespace) != t || !boundToIngress(vs) {
				continue
			}
			for _, h := range vs.Spec.GetHosts() {
				if granted[vs.Namespace+"/"+h] == "" {
					c.add(t.Overlay, vs.Ref(), fmt.Sprintf("host %q is not granted to %s by the ingress Gateway: the gateway answers 404", h, vs.Namespace),
						"add \""+vs.Namespace+"/"+h+"\" to deploy/mesh/gateway.yaml (make tenant does)")
				} else {
					bound++
				}
			}
		}
		if bound == 0 {
			c.add(t.Overlay, "tenant "+t.ID, "no host of this tenant is served by the ingress gateway", "add the tenant's host to deploy/mesh/gateway.yaml (make tenant NAME=...)")
		} else {
			c.detail(t.Overlay, plural(bound, "host")+" granted to the tenant's orders namespace only")
		}
	}
	c.emit(r, IDGatewayHosts, "the ingress Gateway grants each tenant its own host", true)
}

// checkGatewayTracing: the ingress gateway is the first proxy on the public path and decides
// for the whole trace: its effective Telemetry samples 10% with the tenant (x-tenant-id),
// service_type and order_id tags.
func checkGatewayTracing(m *model.Model, r *report.Report) {
	c := newCollector(m)
	var tr tracing
	gw := m.IngressGateway
	for _, tel := range m.Telemetries {
		if tel.Namespace == gw.Namespace && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		if tel.Namespace == gw.Namespace && len(tel.Spec.GetSelector().GetMatchLabels()) > 0 && model.Selects(tel.Spec.GetSelector().GetMatchLabels(), gw.PodLabels) {
			tr.apply(tel)
		}
	}
	src := strings.Join(tr.sources, ", ")
	fix := "set it in the ingress gateway's Telemetry (deploy/mesh/observability-telemetry.yaml)"
	if tr.sampling == nil || *tr.sampling != TenantSampling {
		got := "unset (Istio's default 1%)"
		if tr.sampling != nil {
			got = fmt.Sprintf("%g%%", *tr.sampling)
		}
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("the gateway samples %s, want %g%%: it decides for every public request's trace (from %s)", got, TenantSampling, src), fix)
	}
	if h := tr.tags[TagTenant].GetHeader(); h == nil || !strings.EqualFold(h.GetName(), GatewayTenantHeader) {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must come from header %s at the shared gateway (got %s)", TagTenant, GatewayTenantHeader, describeTag(tr.tags[TagTenant])), fix)
	}
	if tr.tags[TagServiceType].GetLiteral().GetValue() == "" {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must be a non-empty literal (got %s)", TagServiceType, describeTag(tr.tags[TagServiceType])), fix)
	}
	if h := tr.tags[TagOrderID].GetHeader(); h == nil || !strings.EqualFold(h.GetName(), OrderIDHeader) {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must come from header %s (got %s)", TagOrderID, OrderIDHeader, describeTag(tr.tags[TagOrderID])), fix)
	}
	if len(c.findings[MeshScope]) == 0 {
		c.detail(MeshScope, fmt.Sprintf("%g%% at the gateway (%s)", TenantSampling, src))
	}
	c.emit(r, IDGatewayTracing, "the ingress gateway samples 10% with the tenant/order tags", true)
}

// checkAppSampling: the apps follow a parent's decision and sample the roots they start
// themselves at their proxy's ratio (parentbased_traceidratio, ratio = percentage/100), and
// their own trace export bypasses the sidecar (else each export is itself a traced request).
func checkAppSampling(m *model.Model, r *report.Report) {
	c := newCollector(m)
	for _, t := range m.Tenants {
		ok := 0
		for _, ns := range t.Namespaces {
			for _, w := range m.WorkloadsIn(ns) {
				if !isHTTPService(w.App()) {
					continue
				}
				before := len(c.findings[t.Overlay])
				want := TenantSampling
				if tr := workloadTracing(m, ns, w); tr.sampling != nil {
					want = *tr.sampling
				}
				sampler, _ := env(w, "OTEL_TRACES_SAMPLER")
				arg, _ := env(w, "OTEL_TRACES_SAMPLER_ARG")
				ratio, err := strconv.ParseFloat(arg, 64)
				switch {
				case sampler != AppSampler:
					c.add(t.Overlay, w.Ref(), fmt.Sprintf("OTEL_TRACES_SAMPLER %q: the app's own root traces (outbox, reconciler) must sample like the mesh", sampler),
						"set OTEL_TRACES_SAMPLER="+AppSampler+" and OTEL_TRACES_SAMPLER_ARG to the proxies' ratio")
				case err != nil || fmt.Sprintf("%.6f", ratio*100) != fmt.Sprintf("%.6f", want):
					c.add(t.Overlay, w.Ref(), fmt.Sprintf("OTEL_TRACES_SAMPLER_ARG %q, but its proxy samples %g%%", arg, want),
						fmt.Sprintf("set OTEL_TRACES_SAMPLER_ARG=%g", want/100))
				}
				if ep, set := env(w, "OTEL_EXPORTER_OTLP_ENDPOINT"); set && ep != "" {
					port := exportPort(ep)
					excluded := false
					for _, p := range strings.Split(w.Template.Annotations[annotationExcludeOutbound], ",") {
						excluded = excluded || strings.TrimSpace(p) == port
					}
					if !excluded {
						c.add(t.Overlay, w.Ref(), fmt.Sprintf("trace export to %s goes through the sidecar: every export is a request the mesh traces", ep),
							fmt.Sprintf("annotate the pod template %s: %q", annotationExcludeOutbound, port))
					}
				}
				if len(c.findings[t.Overlay]) == before {
					ok++
				}
			}
		}
		c.detail(t.Overlay, plural(ok, "workload")+": "+AppSampler+" at the proxy's ratio, export past the sidecar")
	}
	c.emit(r, IDAppSampling, "apps sample their own roots like the mesh; their export is not traced", false)
}

func exportPort(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// workloadTracing merges the Telemetry levels that apply to a workload (root namespace, its
// namespace, selector matches), as Istio does.
func workloadTracing(m *model.Model, ns string, w *model.Workload) *tracing {
	var tr tracing
	for _, tel := range m.Telemetries {
		if tel.Namespace == m.RootNamespace && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 && tel.Spec.GetTargetRef() == nil && len(tel.Spec.GetTargetRefs()) == 0 {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) > 0 && model.Selects(tel.Spec.GetSelector().GetMatchLabels(), w.PodLabels) {
			tr.apply(tel)
		}
	}
	return &tr
}
