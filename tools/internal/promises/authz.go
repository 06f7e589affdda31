package promises

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	security "istio.io/api/security/v1beta1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// grant is one (source → destination, method, path, port) an ALLOW rule admits.
// Source is "ns/sa" for one identity, "ns/*" for a whole namespace, "*" for anyone, or the
// raw principal pattern when it has wildcards. Method/Path/Port are "*" when unrestricted.
type grant struct {
	Source, Dest, Method, Path, Port string
}

func (g grant) key() string {
	return strings.Join([]string{g.Source, g.Dest, g.Method, g.Path, g.Port}, "|")
}

func (g grant) String() string {
	op := g.Method + " " + g.Path
	if g.Method == "*" && g.Path == "*" {
		op = "any request"
		if g.Port != "*" {
			op = "TCP port " + g.Port
		}
	}
	return fmt.Sprintf("%s → %s: %s", g.Source, g.Dest, op)
}

var templateSegment = regexp.MustCompile(`\{[^}*]+\}`)

// policyPattern turns a DESIGN.md path ("/api/v1/payments/{id}") into the AuthorizationPolicy
// path that covers exactly it ("/api/v1/payments/{*}": one segment).
func policyPattern(path string) string { return templateSegment.ReplaceAllString(path, "{*}") }

// principalToSource converts "cluster.local/ns/X/sa/Y" (spiffe:// prefix tolerated) to "X/Y".
func principalToSource(p, trustDomain string) string {
	if p == "*" {
		return "*"
	}
	s := strings.TrimPrefix(p, "spiffe://")
	parts := strings.Split(s, "/")
	if len(parts) == 5 && parts[1] == "ns" && parts[3] == "sa" && !strings.Contains(s, "*") {
		if parts[0] != trustDomain {
			return "principal:" + p
		}
		return parts[2] + "/" + parts[4]
	}
	return "principal:" + p
}

// sourcesOf lists the identities a rule's `from` admits (over-approximated: narrowing fields
// such as notPrincipals or ipBlocks are ignored, so the result is never smaller than reality).
func sourcesOf(rule *security.Rule, trustDomain string) []string {
	if len(rule.GetFrom()) == 0 {
		return []string{"*"}
	}
	var out []string
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		switch {
		case len(s.GetPrincipals()) > 0:
			for _, p := range s.GetPrincipals() {
				out = append(out, principalToSource(p, trustDomain))
			}
		case len(s.GetServiceAccounts()) > 0:
			for _, sa := range s.GetServiceAccounts() {
				if strings.Contains(sa, "*") {
					out = append(out, "serviceAccount:"+sa)
				} else {
					out = append(out, sa)
				}
			}
		case len(s.GetNamespaces()) > 0:
			for _, ns := range s.GetNamespaces() {
				if ns == "*" {
					out = append(out, "*")
				} else {
					out = append(out, ns+"/*")
				}
			}
		default:
			// Only negative or IP/JWT conditions: any peer identity.
			out = append(out, "*")
		}
	}
	return out
}

type op struct{ Method, Path, Port string }

func opsOf(rule *security.Rule) []op {
	if len(rule.GetTo()) == 0 {
		return []op{{"*", "*", "*"}}
	}
	var out []op
	for _, t := range rule.GetTo() {
		o := t.GetOperation()
		methods, paths, ports := o.GetMethods(), o.GetPaths(), o.GetPorts()
		if len(methods) == 0 {
			methods = []string{"*"}
		}
		if len(paths) == 0 {
			paths = []string{"*"}
		}
		if len(ports) == 0 {
			ports = []string{"*"}
		}
		for _, m := range methods {
			for _, p := range paths {
				for _, port := range ports {
					if m != "*" || p != "*" {
						// HTTP-level grant: a port restriction only narrows it.
						port = "*"
					}
					out = append(out, op{m, p, port})
				}
			}
		}
	}
	return out
}

// targets returns the workloads a policy applies to: by selector (a root-namespace policy
// applies mesh-wide), or by targetRefs the Gateway API gateway's deployment.
func targets(m *model.Model, ap *model.Istio[*security.AuthorizationPolicy]) []*model.Workload {
	if refs := policyTargetRefs(ap.Spec.GetTargetRef(), ap.Spec.GetTargetRefs()); len(refs) > 0 {
		if m.IngressGateway.TargetedBy(ap.Namespace, refs) {
			return []*model.Workload{m.IngressGateway}
		}
		return nil
	}
	sel := ap.Spec.GetSelector().GetMatchLabels()
	var out []*model.Workload
	for _, w := range append(append([]*model.Workload{}, m.Workloads...), m.IngressGateway) {
		if (ap.Namespace == m.RootNamespace || w.Namespace == ap.Namespace) && model.Selects(sel, w.PodLabels) {
			out = append(out, w)
		}
	}
	return out
}

func isAllow(ap *model.Istio[*security.AuthorizationPolicy]) bool {
	return ap.Spec.GetAction() == security.AuthorizationPolicy_ALLOW
}

type grantOrigin struct {
	g      grant
	policy string
}

// allowedGrants computes every grant of every ALLOW policy, with the policy it comes from.
func allowedGrants(m *model.Model) []grantOrigin {
	var out []grantOrigin
	for _, ap := range m.AuthorizationPolicies {
		if !isAllow(ap) {
			continue
		}
		for _, w := range targets(m, ap) {
			for _, rule := range ap.Spec.GetRules() {
				for _, src := range sourcesOf(rule, m.TrustDomain) {
					for _, o := range opsOf(rule) {
						out = append(out, grantOrigin{grant{src, w.Namespace + "/" + w.App(), o.Method, o.Path, o.Port}, ap.Ref()})
					}
				}
			}
		}
	}
	return out
}

// expectedGrants is the call graph of one tenant as grants.
func expectedGrants(m *model.Model, t *model.Tenant) []grant {
	var out []grant
	// The call graph's own account, which the apps check callers against (identity.service-accounts
	// proves that the workloads run as it).
	saOf := func(app, role string) string {
		for _, s := range callgraph.Services {
			if s.Name == app {
				return t.NamespaceFor(role) + "/" + s.ServiceAccount
			}
		}
		return t.NamespaceFor(role) + "/" + app
	}
	for _, e := range callgraph.All() {
		src := callgraph.Gateway.Namespace + "/" + callgraph.Gateway.ServiceAccount
		if e.From != "" {
			src = saOf(e.From, e.FromRole)
		}
		dst := t.NamespaceFor(e.ToRole) + "/" + e.To
		if len(e.Ops) == 0 {
			out = append(out, grant{src, dst, "*", "*", e.Port})
		}
		for _, o := range e.Ops {
			out = append(out, grant{src, dst, o.Method, policyPattern(o.Path), "*"})
		}
	}
	return out
}

// expectedPublic is what anyone (end users, no identity) may send to the ingress gateway.
func expectedPublic(m *model.Model) []grant {
	var out []grant
	dst := m.IngressGateway.Namespace + "/" + m.IngressGateway.App()
	for _, o := range callgraph.PublicOps() {
		out = append(out, grant{"*", dst, o.Method, policyPattern(o.Path), "*"})
	}
	return out
}

// compareGrants reports the difference between the allowed and the expected grants whose
// destination namespace is in dests.
func compareGrants(c *collector, scope string, grants []grantOrigin, dests map[string]bool, want []grant, fixMissing string) {
	actual := map[string][]string{} // key -> policies
	actualGrant := map[string]grant{}
	for _, g := range grants {
		ns, _, _ := strings.Cut(g.g.Dest, "/")
		if !dests[ns] && !dests[g.g.Dest] {
			continue
		}
		k := g.g.key()
		actual[k] = append(actual[k], g.policy)
		actualGrant[k] = g.g
	}
	expected := map[string]grant{}
	for _, g := range want {
		expected[g.key()] = g
	}
	for _, k := range slices.Sorted(maps.Keys(actual)) {
		if _, ok := expected[k]; !ok {
			c.add(scope, strings.Join(slices.Compact(slices.Sorted(slices.Values(actual[k]))), ", "), "allows "+actualGrant[k].String()+", which is not in the call graph",
				"restrict the rule to the call graph (tools/internal/callgraph, DESIGN.md): exact paths plus `{*}` templates, same-tenant service accounts, one method set per path")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(expected)) {
		if _, ok := actual[k]; !ok {
			c.add(scope, "call graph", "edge not allowed: "+expected[k].String(), fixMissing)
		}
	}
	if len(c.findings[scope]) == 0 {
		c.detail(scope, fmt.Sprintf("allowed set = call graph (%d grants)", len(expected)))
	}
}

func checkAuthz(m *model.Model, r *report.Report) {
	// allow-nothing in every tenant namespace.
	an := newCollector(m)
	for t, ns := range m.Tenants.Namespaces() {
		ok := false
		for _, ap := range m.AuthorizationPolicies {
			if ap.Namespace == ns && isAllow(ap) && len(ap.Spec.GetRules()) == 0 &&
				len(ap.Spec.GetSelector().GetMatchLabels()) == 0 && ap.Spec.GetTargetRef() == nil && len(ap.Spec.GetTargetRefs()) == 0 {
				ok = true
			}
		}
		if !ok {
			an.add(t.Overlay, "Namespace "+ns, "no allow-nothing AuthorizationPolicy: Istio allows all traffic by default",
				"add AuthorizationPolicy `allow-nothing` with `spec: {}` in "+ns)
		}
	}
	an.detailPerTenant(func(t *model.Tenant) string {
		return fmt.Sprintf("deny-by-default in %s", strings.Join(t.Namespaces, ", "))
	})
	an.emit(r, IDAllowNothing, "allow-nothing in every tenant namespace", false)

	grants := allowedGrants(m)

	// Allowed set == call graph + database edges, per tenant; the public gateway API for mesh.
	cg := newCollector(m)
	gwDest := m.IngressGateway.Namespace + "/" + m.IngressGateway.App()
	compareGrants(cg, MeshScope, grants, map[string]bool{gwDest: true}, expectedPublic(m),
		"allow it at the ingress gateway (deploy/mesh/authorizationpolicy-default-deny.yaml)")
	for _, t := range m.Tenants {
		inTenant := map[string]bool{}
		for _, ns := range t.Namespaces {
			inTenant[ns] = true
		}
		compareGrants(cg, t.Overlay, grants, inTenant, expectedGrants(m, t),
			"add it to the destination's ALLOW policy (deploy/components/istio-tenant/multi-tenant-isolation.yaml)")
	}
	cg.emit(r, IDCallGraph, "allowed (source SA → workload, method, path) = call graph", true)

	// Tenant isolation: no ALLOW rule admits another tenant, a foreign namespace or anyone.
	iso := newCollector(m)
	for _, ap := range m.AuthorizationPolicies {
		if !isAllow(ap) {
			continue
		}
		ws := targets(m, ap)
		scopes := map[string]bool{}
		for _, w := range ws {
			if w == m.IngressGateway {
				// The front door takes end-user traffic without a mesh identity; what it
				// admits is pinned to the public API by authz.call-graph [mesh].
				continue
			}
			scopes[iso.scopeOf(w.Namespace)] = true
		}
		if len(ws) == 0 {
			scopes[iso.scopeOf(ap.Namespace)] = true
		}
		for scope := range scopes {
			t := tenantByOverlay(m, scope)
			for i, rule := range ap.Spec.GetRules() {
				if len(rule.GetFrom()) == 0 {
					iso.add(scope, ap.Ref(), fmt.Sprintf("rules[%d] has no `from`: any caller, any tenant", i),
						"name the same tenant's service accounts in from.source.serviceAccounts")
					continue
				}
				for _, src := range sourcesOf(rule, m.TrustDomain) {
					if msg := foreignSource(m, t, src); msg != "" {
						iso.add(scope, ap.Ref(), fmt.Sprintf("rules[%d] admits %s: %s", i, src, msg),
							"only this tenant's service accounts (and the ingress gateway's, for order-service) may be allowed")
					}
				}
			}
		}
	}
	for _, t := range m.Tenants {
		if len(iso.findings[t.Overlay]) == 0 {
			iso.detail(t.Overlay, "every ALLOW names only this tenant's identities (or the ingress gateway)")
		}
	}
	iso.emit(r, IDIsolation, "no rule admits another tenant or a wildcard", false)
}

func tenantByOverlay(m *model.Model, overlay string) *model.Tenant {
	for _, t := range m.Tenants {
		if t.Overlay == overlay {
			return t
		}
	}
	return nil
}

// foreignSource explains why src is not acceptable for tenant t ("" when it is).
func foreignSource(m *model.Model, t *model.Tenant, src string) string {
	gw := callgraph.Gateway.Namespace + "/" + callgraph.Gateway.ServiceAccount
	if src == gw {
		return ""
	}
	if src == "*" || strings.Contains(src, "*") || strings.HasPrefix(src, "principal:") || strings.HasPrefix(src, "serviceAccount:") {
		return "a wildcard or unparsable identity (admits other tenants)"
	}
	ns, _, _ := strings.Cut(src, "/")
	if owner := m.TenantOf(ns); owner != nil {
		if t == nil || owner.Overlay != t.Overlay {
			return "namespace " + ns + " belongs to tenant " + owner.ID
		}
		return ""
	}
	if ns == m.RootNamespace {
		return "an " + m.RootNamespace + " identity other than the ingress gateway"
	}
	return "namespace " + ns + " is not one of this tenant's namespaces"
}
