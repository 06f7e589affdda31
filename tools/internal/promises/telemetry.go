package promises

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// The tracing every tenant workload must get (deploy/README.md "What the mesh enforces", DESIGN.md "Headers contract").
const (
	TenantSampling     = 10.0
	OrderIDHeader      = "x-order-id"
	OrderIDDefault     = "unknown"
	TagTenant          = "tenant"
	TagServiceType     = "service_type"
	TagOrderID         = "order_id"
	MetricLabelOrderID = "order_id"
)

func checkMeshInstall(m *model.Model, c *collector) {
	if m.Mesh == nil {
		return
	}
	if m.Mesh.GetAccessLogFile() == "" {
		c.add(MeshScope, "IstioOperator spec.meshConfig", "accessLogFile is not set", "set meshConfig.accessLogFile: /dev/stdout")
	}
	switch m.Mesh.GetPathNormalization().GetNormalization() {
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES,
		meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
	default:
		c.add(MeshScope, "IstioOperator spec.meshConfig",
			fmt.Sprintf("pathNormalization is %s: `//api/v1/orders` would slip past the path rules",
				m.Mesh.GetPathNormalization().GetNormalization()),
			"set meshConfig.pathNormalization.normalization: MERGE_SLASHES (or DECODE_AND_MERGE_SLASHES)")
	}
}

// CheckMeshInstall reports mesh-install settings the policies depend on.
func CheckMeshInstall(m *model.Model, r *report.Report, operatorFindings []report.Finding) {
	c := newCollector(m)
	c.findings[MeshScope] = append(c.findings[MeshScope], operatorFindings...)
	checkMeshInstall(m, c)
	if m.Mesh != nil && len(c.findings[MeshScope]) == 0 {
		c.detail(MeshScope, fmt.Sprintf("accessLogFile %s, pathNormalization %s", m.Mesh.GetAccessLogFile(),
			m.Mesh.GetPathNormalization().GetNormalization()))
	}
	r.Add(report.Check{ID: IDMeshInstall, Scope: MeshScope, Title: "mesh install (IstioOperator) is valid and complete",
		Findings: c.findings[MeshScope], Detail: joinDetail(c.details[MeshScope])})
}

func providerNames(mc *meshv1alpha1.MeshConfig) map[string]string {
	out := map[string]string{}
	for _, p := range mc.GetExtensionProviders() {
		kind := "other"
		switch {
		case p.GetOpentelemetry() != nil:
			kind = "opentelemetry"
		case p.GetZipkin() != nil:
			kind = "zipkin"
		case p.GetPrometheus() != nil:
			kind = "prometheus"
		case p.GetEnvoyFileAccessLog() != nil:
			kind = "envoyFileAccessLog"
		}
		out[p.GetName()] = kind
	}
	return out
}

// effectiveTracing merges the Telemetry levels that apply to a workload: root namespace, then
// the workload's namespace, then a selector match; a more specific level replaces sampling,
// providers and (as a whole) the custom tags it sets.
type tracing struct {
	sampling  *float64
	providers []string
	tags      map[string]*telemetry.Tracing_CustomTag
	sources   []string
}

func (tr *tracing) apply(t *model.Istio[*telemetry.Telemetry]) {
	for _, x := range t.Spec.GetTracing() {
		tr.sources = append(tr.sources, t.Ref())
		if x.GetRandomSamplingPercentage() != nil {
			v := x.GetRandomSamplingPercentage().GetValue()
			tr.sampling = &v
		}
		if len(x.GetProviders()) > 0 {
			tr.providers = nil
			for _, p := range x.GetProviders() {
				tr.providers = append(tr.providers, p.GetName())
			}
		}
		if len(x.GetCustomTags()) > 0 {
			tr.tags = x.GetCustomTags()
		}
	}
}

func checkTelemetry(m *model.Model, r *report.Report) {
	// Providers: every tracing provider named (or defaulted) exists in the mesh install.
	pc := newCollector(m)
	if m.Mesh == nil {
		pc.add(MeshScope, "IstioOperator", "no usable mesh config: cannot resolve tracing providers", "fix deploy/mesh/istio-operator.yaml")
	} else {
		known := providerNames(m.Mesh)
		defaults := m.Mesh.GetDefaultProviders().GetTracing()
		for _, d := range defaults {
			if _, ok := known[d]; !ok {
				pc.add(MeshScope, "IstioOperator spec.meshConfig.defaultProviders.tracing",
					fmt.Sprintf("default tracing provider %q is not in extensionProviders", d),
					"define it in meshConfig.extensionProviders (opentelemetry → the Jaeger collector on 4317)")
			}
		}
		anyTracing := len(defaults) > 0
		for _, t := range m.Telemetries {
			scope := pc.scopeOf(t.Namespace)
			for i, x := range t.Spec.GetTracing() {
				if len(x.GetProviders()) == 0 && len(defaults) == 0 && !x.GetDisableSpanReporting().GetValue() {
					pc.add(scope, t.Ref(), fmt.Sprintf("tracing[%d] names no provider and the mesh has no default tracing provider", i),
						"set meshConfig.defaultProviders.tracing or tracing.providers")
				}
				for _, p := range x.GetProviders() {
					anyTracing = true
					kind, ok := known[p.GetName()]
					if !ok {
						pc.add(scope, t.Ref(), fmt.Sprintf("tracing provider %q is not in the mesh install's extensionProviders", p.GetName()),
							"add it to meshConfig.extensionProviders in deploy/mesh/istio-operator.yaml, or use the defined provider")
					} else if kind != "opentelemetry" && kind != "zipkin" && kind != "other" {
						pc.add(scope, t.Ref(), fmt.Sprintf("tracing provider %q is a %s provider, not a tracer", p.GetName(), kind),
							"reference the OpenTelemetry (or Zipkin) provider")
					}
				}
			}
		}
		if !anyTracing {
			pc.add(MeshScope, "IstioOperator spec.meshConfig", "no tracing provider is active (no default, none referenced)",
				"set defaultProviders.tracing to the OpenTelemetry provider")
		} else if len(pc.findings[MeshScope]) == 0 {
			names := slices.Sorted(maps.Keys(known))
			pc.detail(MeshScope, fmt.Sprintf("extensionProviders %v, default tracing %v", names, defaults))
		}
	}
	pc.emit(r, IDTraceProvider, "tracing providers exist in the mesh install", true)

	// Per tenant workload: 10% sampling and the tenant/service_type/order_id tags.
	tc := newCollector(m)
	traced := map[*model.Tenant]int{}
	for t, ns := range m.Tenants.Namespaces() {
		var nsLevel []*model.Istio[*telemetry.Telemetry]
		for _, tel := range m.Telemetries {
			if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 && tel.Spec.GetTargetRef() == nil && len(tel.Spec.GetTargetRefs()) == 0 {
				nsLevel = append(nsLevel, tel)
			}
		}
		if len(nsLevel) > 1 {
			refs := []string{}
			for _, x := range nsLevel {
				refs = append(refs, x.Ref())
			}
			tc.add(t.Overlay, strings.Join(refs, ", "), "more than one namespace-wide Telemetry: Istio picks one arbitrarily",
				"keep a single Telemetry without selector per namespace")
		}
		for _, w := range m.WorkloadsIn(ns) {
			if !isHTTPService(w.App()) {
				continue // the databases speak TCP: no spans, no tags
			}
			var tr tracing
			for _, tel := range m.Telemetries {
				if tel.Namespace == m.RootNamespace && len(tel.Spec.GetSelector().GetMatchLabels()) == 0 {
					tr.apply(tel)
				}
			}
			for _, tel := range nsLevel {
				tr.apply(tel)
			}
			for _, tel := range m.Telemetries {
				if tel.Namespace == ns && len(tel.Spec.GetSelector().GetMatchLabels()) > 0 && model.Selects(tel.Spec.GetSelector().GetMatchLabels(), w.PodLabels) {
					tr.apply(tel)
				}
			}
			before := len(tc.findings[t.Overlay])
			checkWorkloadTracing(tc, t, w, &tr)
			if len(tc.findings[t.Overlay]) == before {
				traced[t]++
			}
		}
	}
	tc.detailPerTenant(func(t *model.Tenant) string {
		return fmt.Sprintf("%s: %.0f%% sampling, tags tenant=%q, service_type, order_id←%s", plural(traced[t], "workload"), TenantSampling, t.ID, OrderIDHeader)
	})
	tc.emit(r, IDTenantTracing, "tenant tracing: 10% sampling, tenant/service_type/order_id tags", false)

	// Never order_id as a metric label (unbounded cardinality).
	mc := newCollector(m)
	for _, tel := range m.Telemetries {
		scope := mc.scopeOf(tel.Namespace)
		for i, met := range tel.Spec.GetMetrics() {
			for j, ov := range met.GetOverrides() {
				keys := make([]string, 0, len(ov.GetTagOverrides()))
				for k := range ov.GetTagOverrides() {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					to := ov.GetTagOverrides()[k]
					if to.GetOperation() == telemetry.MetricsOverrides_TagOverride_REMOVE {
						continue
					}
					if k == MetricLabelOrderID || strings.Contains(strings.ToLower(to.GetValue()), OrderIDHeader) {
						mc.add(scope, tel.Ref(), fmt.Sprintf("metrics[%d].overrides[%d] adds metric label %q (%s): one time series per order", i, j, k, to.GetValue()),
							"remove it: order_id belongs on spans (tracing custom tag), never on metrics")
					}
				}
			}
		}
	}
	mc.emit(r, IDNoOrderIDMetric, "no order_id metric label", true)

	checkAppMetrics(m, r)
}

// The annotations that make Istio's metrics merging serve an app's own /metrics on the agent's
// port (15020), which Prometheus can scrape under STRICT mTLS (deploy/README.md, "Facts for tools").
const (
	annotationScrape = "prometheus.io/scrape"
	annotationPort   = "prometheus.io/port"
	annotationPath   = "prometheus.io/path"
	appMetricsPath   = "/metrics"
)

// checkAppMetrics: every service workload asks for its /metrics to be scraped, on a port its
// container really listens on.
func checkAppMetrics(m *model.Model, r *report.Report) {
	c := newCollector(m)
	fix := fmt.Sprintf("annotate the pod template: %s: \"true\", %s: \"<container port>\", %s: %s",
		annotationScrape, annotationPort, annotationPath, appMetricsPath)
	scraped := map[*model.Tenant]int{}
	for t, ns := range m.Tenants.Namespaces() {
		for _, w := range m.WorkloadsIn(ns) {
			if !isHTTPService(w.App()) {
				continue
			}
			a := w.Template.Annotations
			ports := map[string]bool{}
			for _, ctr := range w.Template.Spec.Containers {
				for _, p := range ctr.Ports {
					ports[fmt.Sprint(p.ContainerPort)] = true
				}
			}
			switch {
			case a[annotationScrape] != "true":
				c.add(t.Overlay, w.Ref(), fmt.Sprintf("%s is %q: the app's own metrics are never scraped", annotationScrape, a[annotationScrape]), fix)
			case !ports[a[annotationPort]]:
				c.add(t.Overlay, w.Ref(), fmt.Sprintf("%s is %q, not a container port", annotationPort, a[annotationPort]), fix)
			case a[annotationPath] != appMetricsPath:
				c.add(t.Overlay, w.Ref(), fmt.Sprintf("%s is %q, want %s", annotationPath, a[annotationPath], appMetricsPath), fix)
			default:
				scraped[t]++
			}
		}
	}
	c.detailPerTenant(func(t *model.Tenant) string { return plural(scraped[t], "workload") + " expose /metrics for merging" })
	c.emit(r, IDAppMetrics, "every service's /metrics is scraped (Istio metrics merging)", false)
}

func isHTTPService(app string) bool {
	for _, s := range callgraph.Services {
		if s.Name == app {
			return true
		}
	}
	return false
}

func checkWorkloadTracing(c *collector, t *model.Tenant, w *model.Workload, tr *tracing) {
	src := strings.Join(tr.sources, ", ")
	if src == "" {
		src = "no Telemetry"
	}
	obj := w.Ref()
	fix := "set it in the tenant namespace's Telemetry (deploy/components/.../observability-telemetry.yaml)"
	if tr.sampling == nil || *tr.sampling != TenantSampling {
		got := "unset (mesh default 1%)"
		if tr.sampling != nil {
			got = fmt.Sprintf("%g%%", *tr.sampling)
		}
		c.add(t.Overlay, obj, fmt.Sprintf("trace sampling is %s, want %g%% (from %s)", got, TenantSampling, src),
			"set tracing[0].randomSamplingPercentage: 10.0; "+fix)
	}
	lit := func(name string) (string, bool) {
		tag := tr.tags[name]
		if tag == nil || tag.GetLiteral() == nil {
			return "", false
		}
		return tag.GetLiteral().GetValue(), true
	}
	if v, ok := lit(TagTenant); !ok || v != t.ID {
		c.add(t.Overlay, obj, fmt.Sprintf("custom tag %q must be the literal %q (got %s)", TagTenant, t.ID, describeTag(tr.tags[TagTenant])), fix)
	}
	if v, ok := lit(TagServiceType); !ok || v == "" {
		c.add(t.Overlay, obj, fmt.Sprintf("custom tag %q must be a non-empty literal (got %s)", TagServiceType, describeTag(tr.tags[TagServiceType])), fix)
	}
	h := tr.tags[TagOrderID].GetHeader()
	if h == nil || !strings.EqualFold(h.GetName(), OrderIDHeader) || h.GetDefaultValue() != OrderIDDefault {
		c.add(t.Overlay, obj, fmt.Sprintf("custom tag %q must come from header %s with default %q (got %s)", TagOrderID, OrderIDHeader, OrderIDDefault, describeTag(tr.tags[TagOrderID])), fix)
	}
}

func describeTag(t *telemetry.Tracing_CustomTag) string {
	switch {
	case t == nil:
		return "nothing"
	case t.GetLiteral() != nil:
		return fmt.Sprintf("literal %q", t.GetLiteral().GetValue())
	case t.GetHeader() != nil:
		return fmt.Sprintf("header %q default %q", t.GetHeader().GetName(), t.GetHeader().GetDefaultValue())
	case t.GetEnvironment() != nil:
		return fmt.Sprintf("environment %q", t.GetEnvironment().GetName())
	}
	return "an unknown tag type"
}
