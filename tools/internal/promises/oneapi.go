package promises

// One routing API per host (routing.one-api) and routes that stay in their tenant
// (routing.tenant-backends). In a variant, a host is routed either by a VirtualService or by an
// HTTPRoute (which Istio turns into a VirtualService of its own: with both, Istio merges or
// picks one, and which route policy a call gets is an accident), and a tenant's public host is
// served either by the Istio Gateway or by the Gateway API Gateway. And every route a tenant
// writes sends traffic only to that tenant's Services (Istio enforces ReferenceGrants on a
// Gateway's routes but not on mesh routes).

import (
	"fmt"
	"sort"
	"strings"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// checkOneAPI: no host routed by both a VirtualService and an HTTPRoute, no host served by both
// an Istio Gateway and a Gateway API Gateway.
func checkOneAPI(m *model.Model, r *report.Report) {
	c := newCollector(m)
	routed := map[string][2][]model.Meta{} // host -> [rendered VirtualServices, Gateway API routes]
	for _, vs := range m.VirtualServices {
		for _, h := range vs.Spec.GetHosts() {
			e := routed[m.FQDN(h, vs.Namespace)]
			e[apiIndex(vs.Meta)] = append(e[apiIndex(vs.Meta)], vs.Meta)
			routed[m.FQDN(h, vs.Namespace)] = e
		}
	}
	served := map[string][2][]model.Meta{} // public host -> [Istio Gateways, Gateway API Gateways]
	for _, gw := range m.Gateways {
		for _, srv := range gw.Spec.GetServers() {
			for _, h := range srv.GetHosts() {
				_, host, ok := strings.Cut(h, "/")
				if !ok {
					host = h
				}
				e := served[host]
				e[apiIndex(gw.Meta)] = append(e[apiIndex(gw.Meta)], gw.Meta)
				served[host] = e
			}
		}
	}
	both(c, routed, "routed by", "a VirtualService", "route it with one API: delete the VirtualService in the gateway-api variant (or the HTTPRoute in the istio variant)")
	both(c, served, "served by", "an Istio Gateway", "serve the tenant's host from one gateway: the Istio Gateway in the istio variant, the Gateway API Gateway in the gateway-api variant")
	c.detailPerTenant(func(*model.Tenant) string { return "every host routed by one API, served by one gateway API" })
	c.emit(r, IDOneAPI, "one routing API per host and per public host", true)
}

// apiIndex is 0 for an object rendered from deploy/, 1 for one Istio generated from the
// Gateway API.
func apiIndex(m model.Meta) int {
	if len(m.GeneratedFrom) > 0 {
		return 1
	}
	return 0
}

func both(c *collector, byHost map[string][2][]model.Meta, verb, istioAPI, fix string) {
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		e := byHost[h]
		if len(e[0]) == 0 || len(e[1]) == 0 {
			continue
		}
		c.add(c.scopeOf(e[0][0].Namespace), e[0][0].Ref(), fmt.Sprintf("host %q is %s %s (%s) and by the Gateway API (%s): Istio merges them or picks one",
			h, verb, istioAPI, refs(e[0]), refs(e[1])), fix)
	}
}

func refs(ms []model.Meta) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Ref())
	}
	return strings.Join(out, "; ")
}

// checkTenantBackends: every route in a tenant namespace sends traffic only to Services of
// that tenant.
func checkTenantBackends(m *model.Model, r *report.Report) {
	c := newCollector(m)
	n := map[string]int{}
	for _, vs := range m.VirtualServices {
		t := m.TenantOf(vs.Namespace)
		if t == nil {
			continue
		}
		for i, hr := range vs.Spec.GetHttp() {
			for _, d := range hr.GetRoute() {
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				n[t.Overlay]++
				if owner := hostTenant(m, host); owner != nil && owner != t {
					c.add(t.Overlay, vs.Ref(), fmt.Sprintf("%s sends traffic to %s, a Service of tenant %s", routeName(i, hr), host, owner.ID),
						"route only to the tenant's own Services (backendRefs without a namespace of another tenant)")
				}
			}
		}
	}
	c.detailPerTenant(func(t *model.Tenant) string { return plural(n[t.Overlay], "route destination") + " in the tenant" })
	c.emit(r, IDTenantBackends, "routes send traffic only to their tenant's Services", false)
}

// hostTenant is the tenant owning the namespace of a cluster-local host (name.ns.svc.<suffix>).
func hostTenant(m *model.Model, host string) *model.Tenant {
	rest, ok := strings.CutSuffix(host, ".svc."+m.DomainSuffix)
	if !ok {
		return nil
	}
	_, ns, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	return m.TenantOf(ns)
}
