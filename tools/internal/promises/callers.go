package promises

// What each caller's proxy sees of its callee (routing.visible-to-callers,
// routing.timeout-vs-caller): for every call-graph edge, the callee's VirtualService and
// DestinationRule are exported to the caller's namespace (else Istio's default retries and no
// circuit breaker apply there), and every route timeout is longer than the calling app's own
// UPSTREAM_TIMEOUT_MS, so the app gives up first and answers cleanly.

import (
	"fmt"
	"strconv"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// DefaultUpstreamTimeoutMS is the platform crate's default when UPSTREAM_TIMEOUT_MS is unset.
const DefaultUpstreamTimeoutMS = 2000

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
			backendRulesVisible(m, vis, t, e, caller, seen)
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

// backendRulesVisible: when the callee's routes send its traffic to other hosts (a Gateway API
// split to per-version Services), the caller's proxy must see those hosts' DestinationRules
// too, or it calls them without circuit breaker and without the canary's failover.
func backendRulesVisible(m *model.Model, vis *collector, t *model.Tenant, e hostEdge, caller string, seen []*model.Istio[*networking.VirtualService]) {
	done := map[string]bool{e.host: true}
	for _, vs := range seen {
		for _, hr := range vs.Spec.GetHttp() {
			for _, d := range hr.GetRoute() {
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				if done[host] {
					continue
				}
				done[host] = true
				visible := false
				for _, dr := range destinationRulesFor(m, host) {
					visible = visible || exportedTo(m, dr.Namespace, dr.Spec.GetExportTo(), m.Mesh.GetDefaultDestinationRuleExportTo(), e.callerNS)
				}
				if !visible {
					vis.add(t.Overlay, host, fmt.Sprintf("%s routes %s's calls here, but no DestinationRule for it is visible to %s (%s): no circuit breaker, no failover there",
						vs.Ref(), e.host, caller, e.callerNS), "add "+e.callerNS+" to the DestinationRule's exportTo")
				}
			}
		}
	}
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
