package promises

// The apps' own caller check (crates/platform/src/callers.rs), as deploy/ configures it: each
// app refuses every caller the call graph does not name for the route, from the last element of
// the x-forwarded-client-cert header its sidecar writes. In the cluster that check must fail
// closed and read the same identities the policies name.

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// The apps' settings (README, "Configuration") and their defaults.
const (
	EnvRequirePeerIdentity = "REQUIRE_PEER_IDENTITY"
	EnvMeshTrustDomain     = "MESH_TRUST_DOMAIN"
	EnvTenantID            = "TENANT_ID"
	AppDefaultTrustDomain  = "cluster.local"
)

// annotationProxyConfig is the pod annotation whose ProxyConfig the injector merges over the
// mesh's defaultConfig.
const annotationProxyConfig = "proxy.istio.io/config"

// checkAppCallers: every app of the call graph runs with REQUIRE_PEER_IDENTITY=true (a request
// that reaches it without its sidecar's x-forwarded-client-cert is refused), names its callers
// as the policies do (TENANT_ID is the tenant whose namespaces are <TENANT_ID>-<role>;
// MESH_TRUST_DOMAIN, default cluster.local, is the mesh's trust domain), and its sidecar writes
// the immediate caller as the header's last element — Istio's APPEND_FORWARD (the default) or
// SANITIZE_SET; FORWARD_ONLY, ALWAYS_FORWARD_ONLY or SANITIZE would leave the app reading the
// caller's own, forgeable header, or nothing.
func checkAppCallers(m *model.Model, r *report.Report) {
	c := newCollector(m)
	if mode := m.Mesh.GetDefaultConfig().GetProxyHeaders().GetForwardedClientCert(); !keepsCallerLast(mode) {
		c.add(MeshScope, "IstioOperator meshConfig", fmt.Sprintf("defaultConfig.proxyHeaders.forwardedClientCert %s: the sidecars do not append the caller to x-forwarded-client-cert", mode),
			"leave it unset (APPEND_FORWARD) or set APPEND_FORWARD")
	} else {
		if mode == meshv1alpha1.ForwardClientCertDetails_UNDEFINED {
			mode = meshv1alpha1.ForwardClientCertDetails_APPEND_FORWARD
		}
		c.detail(MeshScope, fmt.Sprintf("sidecars write the caller last in x-forwarded-client-cert (%s)", mode))
	}
	for _, t := range m.Tenants {
		checked := 0
		for _, svc := range callgraph.Services {
			for _, w := range m.AppWorkloads(t.NamespaceFor(svc.Role), svc.Name) {
				before := len(c.findings[t.Overlay])
				checkAppIdentitySettings(c, m, t, w)
				if len(c.findings[t.Overlay]) == before {
					checked++
				}
			}
		}
		c.detail(t.Overlay, plural(checked, "workload")+" refuse callers outside the call graph, without a sidecar's x-forwarded-client-cert too")
	}
	c.emit(r, IDAppCallers, "apps check their caller against the call graph and fail closed", true)
}

// checkAppIdentitySettings checks one app workload's settings and its sidecar's XFCC mode.
func checkAppIdentitySettings(c *collector, m *model.Model, t *model.Tenant, w *model.Workload) {
	if v, _ := env(w, EnvRequirePeerIdentity); v != "true" {
		c.add(t.Overlay, w.Ref(), fmt.Sprintf("%s is %q: a request that reaches the app past its sidecar, with no x-forwarded-client-cert, is served", EnvRequirePeerIdentity, v),
			"set "+EnvRequirePeerIdentity+"=true on the app container")
	}
	domain, set := env(w, EnvMeshTrustDomain)
	if !set {
		domain = AppDefaultTrustDomain
	}
	if domain != m.TrustDomain {
		c.add(t.Overlay, w.Ref(), fmt.Sprintf("the app accepts callers of trust domain %q, the mesh's is %q: it would refuse every caller", domain, m.TrustDomain),
			fmt.Sprintf("set %s=%s", EnvMeshTrustDomain, m.TrustDomain))
	}
	tenant, _ := env(w, EnvTenantID)
	for _, role := range []string{callgraph.Orders, callgraph.Payments} {
		if ns := t.NamespaceFor(role); ns != "" && ns != tenant+"-"+role {
			c.add(t.Overlay, w.Ref(), fmt.Sprintf("%s %q: the app expects its callers in %s-%s, the tenant's namespace is %s", EnvTenantID, tenant, tenant, role, ns),
				"set "+EnvTenantID+" to the tenant the namespaces are named after")
		}
	}
	if mode, err := annotatedXFCCMode(w); err != nil {
		c.add(t.Overlay, w.Ref(), fmt.Sprintf("annotation %s does not parse: %v", annotationProxyConfig, err), "fix the annotation's ProxyConfig YAML")
	} else if !keepsCallerLast(mode) {
		c.add(t.Overlay, w.Ref(), fmt.Sprintf("annotation %s sets proxyHeaders.forwardedClientCert %s: the sidecar does not append the caller to x-forwarded-client-cert", annotationProxyConfig, mode),
			"remove it (the mesh's APPEND_FORWARD applies)")
	}
}

// keepsCallerLast: the inbound sidecar appends (or sets) the verified client's element, so the
// header's last element is the immediate caller. UNDEFINED is Istio's default, APPEND_FORWARD.
func keepsCallerLast(mode meshv1alpha1.ForwardClientCertDetails) bool {
	switch mode {
	case meshv1alpha1.ForwardClientCertDetails_UNDEFINED, meshv1alpha1.ForwardClientCertDetails_APPEND_FORWARD,
		meshv1alpha1.ForwardClientCertDetails_SANITIZE_SET:
		return true
	}
	return false
}

// annotatedXFCCMode is the forwardedClientCert a pod template's proxy.istio.io/config sets
// (UNDEFINED when it sets none).
func annotatedXFCCMode(w *model.Workload) (meshv1alpha1.ForwardClientCertDetails, error) {
	raw := w.Template.Annotations[annotationProxyConfig]
	if raw == "" {
		return meshv1alpha1.ForwardClientCertDetails_UNDEFINED, nil
	}
	js, err := yaml.YAMLToJSON([]byte(raw))
	if err != nil {
		return meshv1alpha1.ForwardClientCertDetails_UNDEFINED, err
	}
	var pc meshv1alpha1.ProxyConfig
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, &pc); err != nil {
		return meshv1alpha1.ForwardClientCertDetails_UNDEFINED, err
	}
	return pc.GetProxyHeaders().GetForwardedClientCert(), nil
}
