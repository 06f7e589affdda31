package promises

// Sidecar egress (mesh.sidecar-egress): each tenant namespace's proxies know only the tenant's
// own namespaces and istio-system — one namespace-wide Sidecar, no other tenant, no "*", every
// callee included — and the mesh is REGISTRY_ONLY, so nothing outside that list is reachable.
// NetworkPolicies (networkpolicy.go) enforce the same boundary below the mesh.

import (
	"fmt"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// checkSidecarEgress: every tenant namespace has one namespace-wide Sidecar whose egress names
// only the tenant's own namespaces and istio-system (never another tenant, never "*"), includes
// every namespace its workloads call, and does not reopen ALLOW_ANY; the mesh is REGISTRY_ONLY.
func checkSidecarEgress(m *model.Model, r *report.Report) {
	c := newCollector(m)
	if m.Mesh != nil && (m.Mesh.GetOutboundTrafficPolicy() == nil || m.Mesh.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY) {
		c.add(MeshScope, "IstioOperator spec.meshConfig.outboundTrafficPolicy", "not REGISTRY_ONLY: a proxy passes traffic to any destination its Sidecar does not list",
			"set meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY")
	}
	for t, ns := range m.Tenants.Namespaces() {
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
					case hns != m.RootNamespace && m.TenantOf(hns) != t:
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
	c.detailPerTenant(func(t *model.Tenant) string {
		return plural(len(t.Namespaces), "namespace") + " scoped to the tenant + istio-system"
	})
	c.emit(r, IDSidecarEgress, "Sidecar egress is scoped to the tenant", true)
}
