package promises

// NetworkPolicies (netpol.tenant-isolation): tenant isolation at L3/L4, beneath the mesh's
// AuthorizationPolicies (authz.go) — every tenant namespace is closed by a podSelector-{}
// Ingress+Egress policy whose peers are only the tenant's own namespaces (by their tenant
// label), istio-system and kube-dns, and only the tenant's namespaces carry that label.

import (
	"fmt"

	netv1 "k8s.io/api/networking/v1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

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
	}
	for t, ns := range m.Tenants.Namespaces() {
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
	c.detailPerTenant(func(t *model.Tenant) string {
		return plural(len(t.Namespaces), "namespace") + " isolated to tenant=" + t.ID + " + istio-system"
	})
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
