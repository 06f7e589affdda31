package promises

// Who decides to trace (telemetry.gateway-sampling, telemetry.app-sampling): the ingress
// gateway, first on every public request, samples 10% with the tenant/service_type/order_id
// tags; the apps follow their parent's decision, sample the roots they start themselves at
// their proxy's ratio, and export their spans past the sidecar. The tenants' own proxies'
// tracing is telemetry.go's.

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	telemetry "istio.io/api/telemetry/v1alpha1"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

const (
	// AppSampler is the OpenTelemetry sampler the apps must use: follow a parent's decision,
	// sample their own roots at the mesh's ratio.
	AppSampler = "parentbased_traceidratio"
	// GatewayTenantHeader is where the shared gateway takes the `tenant` span tag from.
	GatewayTenantHeader       = "x-tenant-id"
	annotationExcludeOutbound = "traffic.sidecar.istio.io/excludeOutboundPorts"
)

// checkGatewayTracing: the ingress gateway is the first proxy on the public path and decides
// for the whole trace: its effective Telemetry samples 10% with the tenant (x-tenant-id),
// service_type and order_id tags.
func checkGatewayTracing(m *model.Model, r *report.Report) {
	c := newCollector(m)
	var tr tracing
	gw := m.IngressGateway
	for _, tel := range m.Telemetries {
		if tel.Namespace == gw.Namespace && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 && !hasTargetRefs(tel) {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		bySelector := len(tel.Spec.GetSelector().GetMatchLabels()) > 0 && model.Selects(tel.Spec.GetSelector().GetMatchLabels(), gw.PodLabels)
		byRef := gw.TargetedBy(tel.Namespace, policyTargetRefs(tel.Spec.GetTargetRef(), tel.Spec.GetTargetRefs()))
		if tel.Namespace == gw.Namespace && (bySelector || byRef) {
			tr.apply(tel)
		}
	}
	src := strings.Join(tr.sources, ", ")
	fix := "set it in the ingress gateway's Telemetry (deploy/mesh/observability-telemetry.yaml)"
	if tr.sampling == nil || *tr.sampling != TenantSampling {
		got := "unset (Istio's default 1%)"
		if tr.sampling != nil {
			got = fmt.Sprintf("%g%%", *tr.sampling)
		}
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("the gateway samples %s, want %g%%: it decides for every public request's trace (from %s)", got, TenantSampling, src), fix)
	}
	if h := tr.tags[TagTenant].GetHeader(); h == nil || !strings.EqualFold(h.GetName(), GatewayTenantHeader) {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must come from header %s at the shared gateway (got %s)", TagTenant, GatewayTenantHeader, describeTag(tr.tags[TagTenant])), fix)
	}
	if tr.tags[TagServiceType].GetLiteral().GetValue() == "" {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must be a non-empty literal (got %s)", TagServiceType, describeTag(tr.tags[TagServiceType])), fix)
	}
	if h := tr.tags[TagOrderID].GetHeader(); h == nil || !strings.EqualFold(h.GetName(), OrderIDHeader) {
		c.add(MeshScope, gw.Ref(), fmt.Sprintf("custom tag %q must come from header %s (got %s)", TagOrderID, OrderIDHeader, describeTag(tr.tags[TagOrderID])), fix)
	}
	if len(c.findings[MeshScope]) == 0 {
		c.detail(MeshScope, fmt.Sprintf("%g%% at the gateway (%s)", TenantSampling, src))
	}
	c.emit(r, IDGatewayTracing, "the ingress gateway samples 10% with the tenant/order tags", true)
}

func hasTargetRefs(tel *model.Istio[*telemetry.Telemetry]) bool {
	return tel.Spec.GetTargetRef() != nil || len(tel.Spec.GetTargetRefs()) > 0
}

// checkAppSampling: the apps follow a parent's decision and sample the roots they start
// themselves at their proxy's ratio (parentbased_traceidratio, ratio = percentage/100), and
// their own trace export bypasses the sidecar (else each export is itself a traced request).
func checkAppSampling(m *model.Model, r *report.Report) {
	c := newCollector(m)
	sampled := map[*model.Tenant]int{}
	for t, ns := range m.Tenants.Namespaces() {
		for _, w := range m.WorkloadsIn(ns) {
			if !isHTTPService(w.App()) {
				continue
			}
			before := len(c.findings[t.Overlay])
			want := TenantSampling
			if tr := workloadTracing(m, ns, w); tr.sampling != nil {
				want = *tr.sampling
			}
			sampler, _ := env(w, "OTEL_TRACES_SAMPLER")
			arg, _ := env(w, "OTEL_TRACES_SAMPLER_ARG")
			ratio, err := strconv.ParseFloat(arg, 64)
			switch {
			case sampler != AppSampler:
				c.add(t.Overlay, w.Ref(), fmt.Sprintf("OTEL_TRACES_SAMPLER %q: the app's own root traces (outbox, reconciler) must sample like the mesh", sampler),
					"set OTEL_TRACES_SAMPLER="+AppSampler+" and OTEL_TRACES_SAMPLER_ARG to the proxies' ratio")
			case err != nil || fmt.Sprintf("%.6f", ratio*100) != fmt.Sprintf("%.6f", want):
				c.add(t.Overlay, w.Ref(), fmt.Sprintf("OTEL_TRACES_SAMPLER_ARG %q, but its proxy samples %g%%", arg, want),
					fmt.Sprintf("set OTEL_TRACES_SAMPLER_ARG=%g", want/100))
			}
			if ep, set := env(w, "OTEL_EXPORTER_OTLP_ENDPOINT"); set && ep != "" {
				port := exportPort(ep)
				excluded := false
				for _, p := range strings.Split(w.Template.Annotations[annotationExcludeOutbound], ",") {
					excluded = excluded || strings.TrimSpace(p) == port
				}
				if !excluded {
					c.add(t.Overlay, w.Ref(), fmt.Sprintf("trace export to %s goes through the sidecar: every export is a request the mesh traces", ep),
						fmt.Sprintf("annotate the pod template %s: %q", annotationExcludeOutbound, port))
				}
			}
			if len(c.findings[t.Overlay]) == before {
				sampled[t]++
			}
		}
	}
	c.detailPerTenant(func(t *model.Tenant) string {
		return plural(sampled[t], "workload") + ": " + AppSampler + " at the proxy's ratio, export past the sidecar"
	})
	c.emit(r, IDAppSampling, "apps sample their own roots like the mesh; their export is not traced", false)
}

func exportPort(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// workloadTracing merges the Telemetry levels that apply to a workload (root namespace, its
// namespace, selector matches), as Istio does.
func workloadTracing(m *model.Model, ns string, w *model.Workload) *tracing {
	var tr tracing
	for _, tel := range m.Telemetries {
		if tel.Namespace == m.RootNamespace && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 && tel.Spec.GetTargetRef() == nil && len(tel.Spec.GetTargetRefs()) == 0 {
			tr.apply(tel)
		}
	}
	for _, tel := range m.Telemetries {
		if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) > 0 && model.Selects(tel.Spec.GetSelector().GetMatchLabels(), w.PodLabels) {
			tr.apply(tel)
		}
	}
	return &tr
}
