package checkdeploy

// The gateway-api variant: the Gateway API objects validated against the pinned module's CRD
// schemas (the channel deploy/versions.env installs), and Istio's own conversion of them
// (istioadapter.ConvertGatewayAPI): a route or gateway Istio does not accept, or a backend it
// cannot resolve, fails with Istio's reason; what Istio generates joins the model, so the
// promises run on it.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"ordermesh.local/tools/internal/istioadapter"
	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/promises"
	"ordermesh.local/tools/internal/report"
)

// ConversionTimeout bounds the wait for istiod's Gateway API controller and its status writes.
var ConversionTimeout = 20 * time.Second

// gatewayAPIValidation collects one unit's Gateway API schema findings.
type gatewayAPIValidation struct {
	routing  manifest.Routing
	channel  string
	v        *istioadapter.GatewayAPIValidator
	err      error
	n        int
	findings []report.Finding
	// rejected are the objects the API server would refuse (schema violations): they never
	// reach Istio's controller.
	rejected map[*manifest.Object]bool
}

func newGatewayAPIValidation(b *manifest.Bundle) *gatewayAPIValidation {
	g := &gatewayAPIValidation{routing: b.Routing, rejected: map[*manifest.Object]bool{}}
	g.channel, g.err = manifest.GatewayAPIChannel(b.DeployDir)
	if g.err == nil {
		g.v, g.err = istioadapter.NewGatewayAPIValidator(g.channel)
	}
	return g
}

// validate checks a strictly decoded object against its CRD schema when it is a Gateway API
// object, and returns it as the API server stores it (the schema's defaults applied, decoded
// again); other objects are returned unchanged.
func (g *gatewayAPIValidation) validate(o *manifest.Object, decoded runtime.Object) runtime.Object {
	if !istioadapter.IsGatewayAPIGroup(o.APIVersion()) {
		return decoded
	}
	g.n++
	if g.err != nil {
		g.findings = append(g.findings, report.Finding{Object: o.Ref(), Message: g.err.Error(), Fix: "set GATEWAY_API_CHANNEL in deploy/versions.env"})
		return decoded
	}
	if err := g.v.Validate(o.Obj); err != nil {
		g.findings = append(g.findings, report.Finding{Object: o.Ref(), Message: "CRD schema (" + g.channel + "): " + err.Error(),
			Fix: "fix the field (see the Gateway API reference for " + o.Kind() + ", " + g.channel + " channel)"})
		g.rejected[o] = true
		return decoded
	}
	stored, err := model.DecodeKube(&manifest.Object{Source: o.Source, Obj: g.v.Default(o.Obj)})
	if err != nil {
		return decoded
	}
	return stored
}

// emit adds the unit's line (in the gateway-api variant, or whenever a unit holds such objects)
// and resets for the next unit.
func (g *gatewayAPIValidation) emit(r *report.Report, scope string) {
	if g.routing == manifest.RoutingGatewayAPI || g.n > 0 {
		r.Add(report.Check{ID: IDGatewayAPIValidate, Scope: scope, Title: "Gateway API objects: strict decoding + CRD schemas (" + g.channel + " channel)",
			Findings: g.findings, Detail: plural(g.n, "Gateway API object") + " valid"})
	}
	g.n, g.findings = 0, nil
}

// convertGatewayAPI runs Istio's conversion over the variant's Namespaces, Services and Gateway
// API objects, reports what Istio does not accept, and adds what it generates to the model.
func convertGatewayAPI(m *model.Model, decoded []model.Decoded, rejected map[*manifest.Object]bool, r *report.Report) {
	var objs []runtime.Object
	for _, d := range decoded {
		if rejected[d.Object] {
			continue
		}
		switch d.Kube.(type) {
		case *corev1.Namespace, *corev1.Service, *corev1.ConfigMap, *gatewayv1.Gateway, *gatewayv1.HTTPRoute, *gatewayv1.GRPCRoute,
			*gatewayv1.GatewayClass, *gatewayv1.ReferenceGrant:
			objs = append(objs, d.Kube.DeepCopyObject())
		}
	}
	c := newScoped(m)
	res, err := istioadapter.ConvertGatewayAPI(objs, m.DomainSuffix, ConversionTimeout)
	if err != nil {
		c.add(promises.MeshScope, report.Finding{Message: err.Error(), Fix: "see istioadapter.ConvertGatewayAPI"})
		c.emit(r)
		return
	}
	byRef := map[string]istioadapter.GatewayAPIStatus{}
	for _, st := range res.Statuses {
		byRef[st.Ref()] = st
	}
	for _, gw := range m.GatewayAPIGateways {
		gatewayFindings(c, gw, byRef[gw.Ref()])
	}
	for _, rt := range m.HTTPRoutes {
		routeFindings(c, rt, byRef[rt.Ref()])
	}
	m.AddGenerated(generated(res.VirtualServices), generated(res.Gateways))
	for _, gw := range m.GatewayAPIGateways {
		c.count(c.scopeOf(gw.Namespace), "Gateway")
	}
	for _, rt := range m.HTTPRoutes {
		c.count(c.scopeOf(rt.Namespace), "HTTPRoute")
	}
	for _, vs := range res.VirtualServices {
		c.count(c.scopeOf(vs.Namespace), "generated VirtualService")
	}
	c.emit(r)
}

func generated(cs []istioadapter.Converted) []model.Generated {
	var out []model.Generated
	for _, c := range cs {
		out = append(out, model.Generated{Namespace: c.Namespace, Name: c.Name, From: c.Parents, Spec: c.Spec})
	}
	return out
}

// conditionWanted is the status a healthy object carries for each condition type Istio writes;
// Programmed is not checked (no gateway Deployment runs here, so Istio finds no address).
var conditionWanted = map[string]string{"Accepted": "True", "ResolvedRefs": "True", "Conflicted": "False"}

func gatewayFindings(c *scoped, gw *model.GatewayAPIGateway, st istioadapter.GatewayAPIStatus) {
	if len(st.Conditions) == 0 {
		c.add(c.scopeOf(gw.Namespace), report.Finding{Object: gw.Ref(), Message: "Istio wrote no status: its controller does not own this Gateway (gatewayClassName " + string(gw.Spec.GatewayClassName) + ")",
			Fix: "use gatewayClassName: istio"})
		return
	}
	for _, cond := range st.Conditions {
		typ := cond.Type
		if _, after, ok := strings.Cut(typ, ": "); ok {
			typ = after
		}
		if want, ok := conditionWanted[typ]; ok && cond.Status != want {
			c.add(c.scopeOf(gw.Namespace), report.Finding{Object: gw.Ref(), Message: fmt.Sprintf("Istio: %s=%s, reason %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message),
				Fix: "fix the Gateway as Istio's reason says"})
		}
	}
}

func routeFindings(c *scoped, rt *model.HTTPRoute, st istioadapter.GatewayAPIStatus) {
	scope := c.scopeOf(rt.Namespace)
	if len(rt.Spec.ParentRefs) == 0 {
		c.add(scope, report.Finding{Object: rt.Ref(), Message: "has no parentRefs: Istio attaches it to no Gateway and no Service, so it routes nothing",
			Fix: "add a parentRef: the Service it routes for (kind: Service, group: \"\", port) or the Gateway listener (sectionName)"})
		return
	}
	parents := make([]string, 0, len(st.Parents))
	for p := range st.Parents {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	if len(parents) < len(rt.Spec.ParentRefs) {
		c.add(scope, report.Finding{Object: rt.Ref(), Message: fmt.Sprintf("Istio wrote status for %d of %d parentRefs (%v)", len(parents), len(rt.Spec.ParentRefs), parents),
			Fix: "point every parentRef at a Gateway of class istio or a Service"})
	}
	for _, p := range parents {
		for _, cond := range st.Parents[p] {
			if want, ok := conditionWanted[cond.Type]; ok && cond.Status != want {
				c.add(scope, report.Finding{Object: rt.Ref(), Message: fmt.Sprintf("Istio, parent %s: %s=%s, reason %s: %s", p, cond.Type, cond.Status, cond.Reason, cond.Message),
					Fix: "fix the route as Istio's reason says (a backend in another namespace needs a ReferenceGrant; a listener admits only its own namespace)"})
			}
		}
	}
}

// scoped collects findings and object counts per report scope (tenant overlay or mesh) for
// the conversion check.
type scoped struct {
	m        *model.Model
	findings map[string][]report.Finding
	counts   map[string]map[string]int // scope -> what -> n
}

func newScoped(m *model.Model) *scoped {
	return &scoped{m: m, findings: map[string][]report.Finding{}, counts: map[string]map[string]int{}}
}

func (s *scoped) count(scope, what string) {
	if s.counts[scope] == nil {
		s.counts[scope] = map[string]int{}
	}
	s.counts[scope][what]++
}

// detail is "1 Gateway, 4 HTTPRoutes, 4 generated VirtualServices" for a scope.
func (s *scoped) detail(scope string) string {
	var parts []string
	for _, what := range []string{"Gateway", "HTTPRoute", "generated VirtualService"} {
		if n := s.counts[scope][what]; n > 0 {
			parts = append(parts, plural(n, what))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "accepted by Istio: " + strings.Join(parts, ", ")
}

func (s *scoped) scopeOf(ns string) string {
	if t := s.m.TenantOf(ns); t != nil {
		return t.Overlay
	}
	return promises.MeshScope
}

func (s *scoped) add(scope string, f report.Finding) {
	s.findings[scope] = append(s.findings[scope], f)
}

func (s *scoped) emit(r *report.Report) {
	scopes := []string{promises.MeshScope}
	for _, t := range s.m.Tenants {
		scopes = append(scopes, t.Overlay)
	}
	for _, sc := range scopes {
		r.Add(report.Check{ID: IDGatewayAPIIstio, Scope: sc, Title: "Istio's Gateway API controller accepts every Gateway and route and resolves their backends",
			Findings: s.findings[sc], Detail: s.detail(sc)})
	}
}
