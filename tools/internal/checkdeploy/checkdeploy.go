// Package checkdeploy is `make check-deploy`: it renders deploy/, decodes and validates every
// object with Kubernetes' and Istio's own code, runs the istioctl analyzers and proves the
// promises deploy/ makes (internal/promises), producing one report.
package checkdeploy

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/analysis/local"

	"ordermesh.local/tools/internal/istioadapter"
	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/promises"
	"ordermesh.local/tools/internal/report"
)

// Check IDs of the pipeline stages.
const (
	IDRender   = "render"
	IDDecode   = "decode.strict"
	IDValidate = "istio.validate"
	IDAnalyze  = "analyze"
	// The gateway-api variant (gatewayapi.go).
	IDGatewayAPIValidate = "gateway-api.validate"
	IDGatewayAPIIstio    = "gateway-api.istio"
)

// Suppressions are the accepted analyzer messages, each with the reason it is accepted.
// Keep this list short and every reason specific; a suppression is a reviewed decision.
var Suppressions = []istioadapter.Suppression{{
	AnalysisSuppression: local.AnalysisSuppression{Code: "IST0133", ResourceName: "EnvoyFilter " + admissionFilterRef},
	Reason:              admissionFilterReason,
}}

// VariantSuppressions are accepted analyzer messages in one routing variant only.
var VariantSuppressions = map[manifest.Routing][]istioadapter.Suppression{
	manifest.RoutingGatewayAPI: {
		{AnalysisSuppression: local.AnalysisSuppression{Code: "IST0160", ResourceName: "Telemetry istio-system/ingress-gateway"}, Reason: targetRefTelemetryReason},
		{AnalysisSuppression: local.AnalysisSuppression{Code: "IST0160", ResourceName: "Telemetry istio-system/mesh-default"}, Reason: targetRefTelemetryReason},
	},
}

// Why IST0160 is accepted for the gateway's Telemetry in the gateway-api variant.
const targetRefTelemetryReason = "Istio's telemetry.DefaultSelectorAnalyzer reads only spec.selector and so counts the gateway's Telemetry, " +
	"bound to the Gateway by targetRefs (deploy/mesh-gateway-api: Istio ignores selectors on a Kubernetes Gateway's pods, IST0166), " +
	"as a second namespace-wide one; istiod applies it to that Gateway's pods only, and mesh-default stays the one namespace-wide Telemetry"

// AcceptedValidationWarnings are Istio validation warnings accepted on one object each, with
// the reason: object ref -> the warning's text starts with.
var AcceptedValidationWarnings = map[string]struct{ Prefix, Reason string }{
	"EnvoyFilter " + admissionFilterRef: {Prefix: "validation: EnvoyFilter exposes internal implementation details", Reason: admissionFilterReason},
}

// The one EnvoyFilter of deploy/ (deploy/mesh/envoyfilter-gateway-admission.yaml) and why Istio's
// generic warning about EnvoyFilters is accepted for it.
const (
	admissionFilterRef    = "istio-system/gateway-admission"
	admissionFilterReason = "Istio has no API for a local reply's body and headers or for buffering a request at the gateway; " +
		"the filter is scoped to the ingress gateway, uses only stable Envoy v3 fields, and the live mesh tests prove it on every Istio pin"
)

// DefaultProxyImage is used for the synthesized sidecars when the IstioOperator names no tag.
const DefaultProxyImage = "docker.io/istio/proxyv2:1.29.0"

// Run renders deployDir in each routing variant (both when none is given) and checks it: one
// report, the gateway-api variant's lines scoped "gateway-api/<scope>".
func Run(deployDir string, routings ...manifest.Routing) (*report.Report, error) {
	if len(routings) == 0 {
		routings = manifest.Routings
	}
	r := &report.Report{DeployDir: deployDir}
	for _, routing := range routings {
		b, err := manifest.Load(deployDir, routing)
		if err != nil {
			return nil, err
		}
		for _, c := range Check(b).Checks {
			r.Add(c)
		}
	}
	return r, nil
}

// VariantScope is the report scope of a check in a routing variant: the Istio variant's scopes
// are bare ("tenant-a", "mesh", "all"), the others' prefixed ("gateway-api/tenant-a").
func VariantScope(routing manifest.Routing, scope string) string {
	if routing == "" || routing == manifest.RoutingIstio {
		return scope
	}
	return string(routing) + "/" + scope
}

// Check checks an already rendered (possibly mutated) bundle of one routing variant.
func Check(b *manifest.Bundle) *report.Report {
	r := check(b)
	for i := range r.Checks {
		r.Checks[i].Scope = VariantScope(b.Routing, r.Checks[i].Scope)
	}
	return r
}

func check(b *manifest.Bundle) *report.Report {
	r := &report.Report{DeployDir: b.DeployDir}
	gav := newGatewayAPIValidation(b)

	v, verr := istioadapter.NewValidator()
	var decoded []model.Decoded
	var overlayNames []string
	for _, u := range b.Overlays {
		overlayNames = append(overlayNames, u.Name)
	}

	for _, u := range b.Units() {
		scope := u.Name
		if u.Err != nil {
			r.Add(report.Check{ID: IDRender, Scope: scope, Title: "kustomize build " + u.Dir,
				Findings: []report.Finding{{Object: u.Dir, Message: u.Err.Error(), Fix: "fix the kustomization"}}})
			continue
		}
		r.Add(report.Check{ID: IDRender, Scope: scope, Title: "kustomize build " + u.Dir,
			Detail: plural(len(u.Objects), "object")})

		var decFindings, valFindings []report.Finding
		var valNotes []string
		nIstio := 0
		seen := map[string]string{}
		for _, o := range u.Objects {
			id := o.APIVersion() + "/" + o.Ref()
			if prev, dup := seen[id]; dup {
				decFindings = append(decFindings, report.Finding{Object: o.Ref(), Message: "rendered twice (" + prev + ")", Fix: "remove the duplicate"})
			}
			seen[id] = o.Source
			d := model.Decoded{Object: o, Unit: u.Name}
			if o.APIVersion() == "" || o.Kind() == "" || o.Name() == "" {
				decFindings = append(decFindings, report.Finding{Object: o.Ref(), Message: "missing apiVersion, kind or metadata.name"})
				continue
			}
			if istioadapter.IsIstioGroup(o.APIVersion()) {
				nIstio++
				if verr != nil {
					valFindings = append(valFindings, report.Finding{Object: o.Ref(), Message: verr.Error()})
					continue
				}
				res := v.ValidateIstio(o.Obj)
				for _, e := range res.Errors {
					valFindings = append(valFindings, report.Finding{Object: o.Ref(), Message: e,
						Fix: "fix the field (see the Istio API reference for " + o.Kind() + ")"})
				}
				for _, w := range res.Warnings {
					if a, ok := AcceptedValidationWarnings[o.Ref()]; ok && strings.HasPrefix(w, a.Prefix) {
						valNotes = append(valNotes, fmt.Sprintf("accepted warning on %s: %s (%s)", o.Ref(), w, a.Reason))
						continue
					}
					valFindings = append(valFindings, report.Finding{Object: o.Ref(), Message: "warning: " + w,
						Fix: "Istio's validation warns; fix it (warnings are failures here)"})
				}
				d.Spec = res.Spec
			} else {
				obj, err := model.DecodeKube(o)
				if err != nil {
					decFindings = append(decFindings, report.Finding{Object: o.Ref(), Message: err.Error(),
						Fix: "fix the field name/type (kubectl explain " + strings.ToLower(o.Kind()) + ")"})
					continue
				}
				d.Kube = gav.validate(o, obj)
			}
			decoded = append(decoded, d)
		}
		r.Add(report.Check{ID: IDDecode, Scope: scope, Title: "strict decoding of Kubernetes objects",
			Findings: decFindings, Detail: plural(len(u.Objects)-nIstio, "Kubernetes object") + " decoded strictly"})
		r.Add(report.Check{ID: IDValidate, Scope: scope, Title: "Istio validation + CRD schemas",
			Findings: valFindings, Notes: valNotes, Detail: plural(nIstio, "Istio object") + " valid"})
		gav.emit(r, scope)
	}

	// The mesh install.
	var mesh *istioadapter.MeshInstall
	var opFindings []report.Finding
	switch {
	case b.OperatorErr != nil:
		opFindings = append(opFindings, report.Finding{Object: b.OperatorPath, Message: b.OperatorErr.Error(),
			Fix: "provide the IstioOperator used by `istioctl install`"})
	default:
		mi, warns, errs := istioadapter.ParseIstioOperator(b.Operator)
		mesh = mi
		for _, e := range errs {
			opFindings = append(opFindings, report.Finding{Object: b.OperatorPath, Message: e,
				Fix: "fix the IstioOperator (istioctl install rejects it, or silently drops the field)"})
		}
		for _, w := range warns {
			opFindings = append(opFindings, report.Finding{Object: b.OperatorPath, Message: "warning: " + w,
				Fix: "Istio warns about this setting; fix it (warnings are failures here)"})
		}
	}
	m := model.Build(decoded, overlayNames, meshConfigOf(mesh))
	if b.Routing == manifest.RoutingGatewayAPI || len(m.GatewayAPIGateways)+len(m.HTTPRoutes) > 0 {
		convertGatewayAPI(m, decoded, gav.rejected, r)
	}
	promises.CheckMeshInstall(m, r, opFindings)

	// istioctl analyze, per overlay (with the mesh-wide objects) and over everything.
	analyze(b, m, mesh, r)

	promises.Run(m, r)
	return r
}

func meshConfigOf(mi *istioadapter.MeshInstall) *meshv1alpha1.MeshConfig {
	if mi == nil {
		return nil
	}
	return mi.MeshConfig
}

func analyze(b *manifest.Bundle, m *model.Model, mi *istioadapter.MeshInstall, r *report.Report) {
	meshYAML := ""
	if mi != nil {
		meshYAML = mi.MeshConfigYAML
	}
	pods, err := m.SynthesizePods(proxyImage(b.Operator))
	if err != nil {
		r.Add(report.Check{ID: IDAnalyze, Scope: "all", Title: "istioctl analyze", Findings: []report.Finding{{Message: err.Error()}}})
		return
	}
	docsOf := func(units ...*manifest.Unit) []istioadapter.Doc {
		var docs []istioadapter.Doc
		srcs := map[string]bool{}
		for _, u := range units {
			if u == nil {
				continue
			}
			srcs[u.Dir] = true
			for _, o := range u.Objects {
				y, err := o.YAML()
				if err != nil {
					continue
				}
				docs = append(docs, istioadapter.Doc{Name: u.Dir + ": " + o.Ref(), YAML: y})
			}
		}
		for _, p := range pods {
			if srcs[p.Source] {
				docs = append(docs, istioadapter.Doc{Name: p.Source + ": " + p.Ref + " (synthesized)", YAML: p.YAML})
			}
		}
		return docs
	}
	run := func(scope, title string, units ...*manifest.Unit) {
		for _, u := range units {
			if u != nil && u.Err != nil {
				r.Add(report.Check{ID: IDAnalyze, Scope: scope, Title: title,
					Findings: []report.Finding{{Object: u.Dir, Message: "not analyzed: render failed"}}})
				return
			}
		}
		res, err := istioadapter.Analyze(docsOf(units...), meshYAML, append(slices.Clone(Suppressions), VariantSuppressions[b.Routing]...))
		c := report.Check{ID: IDAnalyze, Scope: scope, Title: title}
		if err != nil {
			c.Findings = append(c.Findings, report.Finding{Message: err.Error()})
			r.Add(c)
			return
		}
		for _, msg := range res.Messages {
			if msg.Level == "Info" {
				c.Notes = append(c.Notes, "info: "+msg.String())
				continue
			}
			c.Findings = append(c.Findings, report.Finding{Object: msg.Resource, Message: fmt.Sprintf("%s %s: %s", msg.Level, msg.Code, msg.Text),
				Fix: "see https://istio.io/latest/docs/reference/config/analysis/" + strings.ToLower(msg.Code) + "/ (or suppress by code with a reason in checkdeploy.Suppressions)"})
		}
		for _, msg := range res.Suppressed {
			c.Notes = append(c.Notes, "suppressed: "+msg.String())
		}
		c.Detail = fmt.Sprintf("%d analyzers, 0 errors/warnings", len(res.Executed))
		r.Add(c)
	}
	for _, u := range b.Overlays {
		run(u.Name, "istioctl analyze (mesh + "+u.Dir+")", b.Mesh, u)
	}
	run("all", "istioctl analyze (mesh + every overlay)", b.Units()...)
}

// proxyImage derives the sidecar image from the IstioOperator's hub/tag.
func proxyImage(op []byte) string {
	var io struct {
		Spec struct {
			Hub string `json:"hub"`
			Tag any    `json:"tag"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(op, &io); err != nil || io.Spec.Tag == nil {
		return DefaultProxyImage
	}
	hub := io.Spec.Hub
	if hub == "" {
		hub = "docker.io/istio"
	}
	return fmt.Sprintf("%s/proxyv2:%v", hub, io.Spec.Tag)
}

func plural(n int, s string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, s)
	}
	return fmt.Sprintf("%d %ss", n, s)
}
