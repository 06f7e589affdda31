package promises

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// checkIdentity: every service of the call graph (and each database) exists in its tenant
// namespace with its own, declared ServiceAccount (per-service rules need one identity each); a
// service's is the one the call graph names, which its callers' apps check it by.
func checkIdentity(m *model.Model, r *report.Report) {
	c := newCollector(m)
	for _, t := range m.Tenants {
		bySA := map[string][]string{}
		for _, svc := range append(append([]callgraph.Service{}, callgraph.Services...), callgraph.Databases...) {
			ns := t.NamespaceFor(svc.Role)
			ws := m.AppWorkloads(ns, svc.Name)
			if ns == "" || len(ws) == 0 {
				c.add(t.Overlay, fmt.Sprintf("%s %s", svc.Name, orUnknown(ns)),
					fmt.Sprintf("no workload with label app=%s in the tenant's %s namespace", svc.Name, svc.Role),
					"render a Deployment/StatefulSet (pod label app="+svc.Name+") in <tenant>-"+svc.Role)
				continue
			}
			sas := map[string]bool{}
			for _, w := range ws {
				sa := w.ServiceAccount
				if sa == "" || sa == "default" {
					c.add(t.Overlay, w.Ref(), "runs as the namespace's default ServiceAccount",
						"give it a dedicated ServiceAccount (spec.template.spec.serviceAccountName)")
					continue
				}
				if _, ok := m.ServiceAccounts[ns+"/"+sa]; !ok {
					c.add(t.Overlay, w.Ref(), fmt.Sprintf("ServiceAccount %s/%s is not rendered", ns, sa),
						"add the ServiceAccount to the service's base")
				}
				if svc.ServiceAccount != "" && sa != svc.ServiceAccount {
					c.add(t.Overlay, w.Ref(), fmt.Sprintf("runs as ServiceAccount %s, but the call graph names %s: the apps and the policies check callers by that name", sa, svc.ServiceAccount),
						"run it as "+svc.ServiceAccount+" (or change tools/internal/callgraph/callgraph.json, DESIGN.md and the policies together)")
				}
				sas[sa] = true
			}
			if len(sas) > 1 {
				c.add(t.Overlay, fmt.Sprintf("app %s in %s", svc.Name, ns), fmt.Sprintf("its workloads use different ServiceAccounts %v", slices.Sorted(maps.Keys(sas))),
					"stable and canary of one service share the service's ServiceAccount")
			}
			for sa := range sas {
				bySA[ns+"/"+sa] = append(bySA[ns+"/"+sa], svc.Name)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(bySA)) {
			if len(bySA[k]) > 1 {
				c.add(t.Overlay, "ServiceAccount "+k, fmt.Sprintf("shared by %v", bySA[k]),
					"one ServiceAccount per service, so AuthorizationPolicies can tell them apart")
			}
		}
		c.detail(t.Overlay, plural(len(bySA), "dedicated service account"))
	}
	c.emit(r, IDIdentity, "one dedicated ServiceAccount per service", false)
}

func orUnknown(s string) string {
	if s == "" {
		return "(no namespace)"
	}
	return "in " + s
}

// checkInjection: every tenant namespace is labelled for injection (one mechanism, not both) and
// no tenant workload opts out; without a sidecar neither STRICT mTLS nor the policies apply.
func checkInjection(m *model.Model, r *report.Report) {
	c := newCollector(m)
	injected := map[*model.Tenant]int{}
	for t, ns := range m.Tenants.Namespaces() {
		nsObj := m.Namespaces[ns]
		if nsObj == nil {
			c.add(t.Overlay, "Namespace "+ns, "namespace used but not rendered", "add the Namespace to the overlay")
			continue
		}
		_, legacy := nsObj.Labels["istio-injection"]
		_, rev := nsObj.Labels["istio.io/rev"]
		if legacy && rev {
			c.add(t.Overlay, nsObj.Ref(), "both istio-injection and istio.io/rev are set",
				"use istio-injection=enabled for the default revision, or istio.io/rev alone")
		}
		if !m.InjectionEnabled(ns) {
			c.add(t.Overlay, nsObj.Ref(), "not labelled for sidecar injection",
				"label it istio-injection=enabled (or istio.io/rev=<revision>)")
		}
		if nsObj.Labels["tenant"] == "" {
			c.add(t.Overlay, nsObj.Ref(), "has no `tenant` label", "label it tenant=<tenant id>")
		}
		for _, w := range m.WorkloadsIn(ns) {
			injected[t]++
			if w.OptsOut() {
				c.add(t.Overlay, w.Ref(), "pod template disables sidecar injection",
					"remove sidecar.istio.io/inject=false: without a sidecar STRICT mTLS and the AuthorizationPolicies do not apply")
			}
		}
	}
	c.detailPerTenant(func(t *model.Tenant) string { return plural(injected[t], "workload") + " injected" })
	c.emit(r, IDInjection, "tenant namespaces and workloads get sidecars", false)
}

func paMode(mt *security.PeerAuthentication_MutualTLS) security.PeerAuthentication_MutualTLS_Mode {
	if mt == nil {
		return security.PeerAuthentication_MutualTLS_UNSET
	}
	return mt.GetMode()
}

func checkMTLS(m *model.Model, r *report.Report) {
	// Mesh-wide STRICT in the root namespace.
	mesh := newCollector(m)
	found := false
	for _, pa := range m.PeerAuthentications {
		if pa.Namespace == m.RootNamespace && len(pa.Spec.GetSelector().GetMatchLabels()) == 0 {
			if paMode(pa.Spec.GetMtls()) == security.PeerAuthentication_MutualTLS_STRICT {
				found = true
			} else {
				mesh.add(MeshScope, pa.Ref(), "mesh-wide PeerAuthentication is not STRICT", "set spec.mtls.mode: STRICT")
			}
		}
	}
	if !found {
		mesh.add(MeshScope, "PeerAuthentication "+m.RootNamespace+"/default",
			"no mesh-wide STRICT PeerAuthentication in the root namespace",
			"add PeerAuthentication `default` in "+m.RootNamespace+" with mtls.mode STRICT")
	} else {
		mesh.detail(MeshScope, "STRICT in "+m.RootNamespace)
	}
	r.Add(report.Check{ID: IDStrictMesh, Scope: MeshScope, Title: "mesh-wide STRICT mTLS", Findings: mesh.findings[MeshScope],
		Detail: joinDetail(mesh.details[MeshScope])})

	// Namespace-level STRICT in every tenant namespace.
	c := newCollector(m)
	for t, ns := range m.Tenants.Namespaces() {
		ok := false
		for _, pa := range m.PeerAuthentications {
			if pa.Namespace == ns && len(pa.Spec.GetSelector().GetMatchLabels()) == 0 &&
				paMode(pa.Spec.GetMtls()) == security.PeerAuthentication_MutualTLS_STRICT {
				ok = true
			}
		}
		if !ok {
			c.add(t.Overlay, "Namespace "+ns, "no namespace-wide STRICT PeerAuthentication",
				"add PeerAuthentication `default` (no selector) in "+ns+" with mtls.mode STRICT")
		}
	}
	c.detailPerTenant(func(t *model.Tenant) string { return plural(len(t.Namespaces), "namespace") + " STRICT" })
	c.emit(r, IDStrict, "every tenant namespace is STRICT", false)

	// No PERMISSIVE/DISABLE anywhere: namespace, workload or port level.
	o := newCollector(m)
	for _, pa := range m.PeerAuthentications {
		scope := o.scopeOf(pa.Namespace)
		if mode := paMode(pa.Spec.GetMtls()); mode == security.PeerAuthentication_MutualTLS_PERMISSIVE ||
			mode == security.PeerAuthentication_MutualTLS_DISABLE {
			level := "namespace"
			if len(pa.Spec.GetSelector().GetMatchLabels()) > 0 {
				level = "workload"
			}
			o.add(scope, pa.Ref(), fmt.Sprintf("%s-level mtls.mode %s overrides STRICT", level, mode),
				"remove the override (or set STRICT); plaintext must never be accepted")
		}
		ports := make([]int, 0, len(pa.Spec.GetPortLevelMtls()))
		for p := range pa.Spec.GetPortLevelMtls() {
			ports = append(ports, int(p))
		}
		sort.Ints(ports)
		for _, p := range ports {
			mode := paMode(pa.Spec.GetPortLevelMtls()[uint32(p)])
			if mode == security.PeerAuthentication_MutualTLS_PERMISSIVE || mode == security.PeerAuthentication_MutualTLS_DISABLE {
				o.add(scope, pa.Ref(), fmt.Sprintf("portLevelMtls[%d] mode %s overrides STRICT", p, mode),
					"remove the port-level override")
			}
		}
	}
	o.emit(r, IDNoOverride, "no PERMISSIVE/DISABLE override (namespace, workload, port)", true)

	// No DestinationRule tls undoing auto-mTLS.
	d := newCollector(m)
	for _, dr := range m.DestinationRules {
		scope := d.scopeOf(dr.Namespace)
		checkTLS := func(where string, tp *networking.TrafficPolicy) {
			if tp == nil {
				return
			}
			if tls := tp.GetTls(); tls != nil && tls.GetMode() != networking.ClientTLSSettings_ISTIO_MUTUAL {
				d.add(scope, dr.Ref(), fmt.Sprintf("%s.tls.mode %s overrides auto-mTLS", where, tls.GetMode()),
					"remove `tls` so auto-mTLS applies (deploy/README.md, § Where the original README was wrong)")
			}
			for i, pl := range tp.GetPortLevelSettings() {
				if tls := pl.GetTls(); tls != nil && tls.GetMode() != networking.ClientTLSSettings_ISTIO_MUTUAL {
					d.add(scope, dr.Ref(), fmt.Sprintf("%s.portLevelSettings[%d].tls.mode %s overrides auto-mTLS", where, i, tls.GetMode()),
						"remove `tls` so auto-mTLS applies")
				}
			}
		}
		checkTLS("trafficPolicy", dr.Spec.GetTrafficPolicy())
		for _, s := range dr.Spec.GetSubsets() {
			checkTLS("subsets["+s.GetName()+"].trafficPolicy", s.GetTrafficPolicy())
		}
	}
	d.emit(r, IDDestRuleTLS, "no DestinationRule tls undoing auto-mTLS", true)
}

func joinDetail(d []string) string {
	if len(d) == 0 {
		return ""
	}
	out := d[0]
	for _, s := range d[1:] {
		out += "; " + s
	}
	return out
}
