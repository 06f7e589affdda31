package promises

// The ingress Gateway's hosts (gateway.tenant-hosts): the one shared gateway grants each tenant
// its own host, bound to that tenant's orders namespace and never a wildcard, so no tenant's
// VirtualService can claim another's public name; every tenant's ingress VirtualService is
// granted. (The gateway's admission window is admission.go's.)

import (
	"fmt"
	"strings"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

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
				if orders := t.NamespaceFor(callgraph.Orders); hns != orders {
					c.add(t.Overlay, gw.Ref(), fmt.Sprintf("host %q is granted to %s, not to the tenant's orders namespace %s (the only one serving the public API)", h, hns, orders),
						"grant the host to <tenant>-orders only (a Gateway API listener: allowedRoutes from Selector kubernetes.io/metadata.name: <tenant>-orders)")
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
