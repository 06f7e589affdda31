package promises

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/istioadapter"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// routeName names a route in findings: "http[1] (name)".
func routeName(i int, r *networking.HTTPRoute) string {
	if r.GetName() != "" {
		return fmt.Sprintf("http[%d] %q", i, r.GetName())
	}
	return fmt.Sprintf("http[%d]", i)
}

// matchesMethod reports whether an HTTP route can receive requests with the given method:
// no match block, or any match without a method condition, or a method condition matching.
func matchesMethod(r *networking.HTTPRoute, method string) bool {
	if len(r.GetMatch()) == 0 {
		return true
	}
	for _, m := range r.GetMatch() {
		sm := m.GetMethod()
		if sm == nil {
			return true
		}
		switch {
		case sm.GetExact() != "":
			if sm.GetExact() == method {
				return true
			}
		case sm.GetPrefix() != "":
			if strings.HasPrefix(method, sm.GetPrefix()) {
				return true
			}
		case sm.GetRegex() != "":
			re, err := regexp.Compile("^(?:" + sm.GetRegex() + ")$")
			if err != nil || re.MatchString(method) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// unsafeForPOST lists the retry conditions that may replay a request the upstream already
// processed: any 5xx-class condition and `reset` (a reset after the request was sent).
func unsafeForPOST(p istioadapter.RetryPolicy) []string {
	var bad []string
	for _, c := range p.RetryOn {
		switch c {
		case "5xx", "gateway-error", "retriable-status-codes", "reset", "retriable-headers", "http3-post-connect-failure":
			bad = append(bad, c)
		default:
			if n, err := strconv.Atoi(c); err == nil && n >= 500 {
				bad = append(bad, c)
			}
		}
	}
	for _, code := range p.StatusCodes {
		if code >= 500 {
			bad = append(bad, strconv.Itoa(int(code)))
		}
	}
	return bad
}

func checkRouting(m *model.Model, r *report.Report) {
	sub := newCollector(m)
	wt := newCollector(m)
	rt := newCollector(m)
	post := newCollector(m)
	counts := map[string]int{}

	for _, vs := range m.VirtualServices {
		scope := sub.scopeOf(vs.Namespace)
		for i, hr := range vs.Spec.GetHttp() {
			counts[scope]++
			where := routeName(i, hr)
			sum := int32(0)
			for _, d := range hr.GetRoute() {
				sum += d.GetWeight()
				checkSubset(m, sub, scope, vs, where, d.GetDestination())
			}
			checkWeights(wt, scope, vs.Ref(), where, len(hr.GetRoute()), sum)
			checkCanaryShare(m, wt, scope, vs, where, hr.GetRoute())

			eff := istioadapter.EffectiveRetry(hr.GetRetries(), m.Mesh)
			if eff.Enabled && hr.GetTimeout().AsDuration() <= 0 {
				src := "an explicit `retries`"
				if hr.GetRetries() == nil {
					src = "Istio's default retries (no `retries` block)"
				}
				rt.add(scope, vs.Ref(), fmt.Sprintf("%s retries %d× on %s via %s but has no route timeout",
					where, eff.NumRetries, strings.Join(eff.RetryOn, ","), src),
					"set the route `timeout` (it caps all attempts; perTryTimeout alone misbehaves)")
			}
			if eff.Enabled && matchesMethod(hr, "POST") {
				if bad := unsafeForPOST(eff); len(bad) > 0 {
					src := "`retries.retryOn`"
					if hr.GetRetries() == nil {
						src = "Istio's default retry policy (no `retries` block)"
					} else if hr.GetRetries().GetRetryOn() == "" {
						src = "Istio's default retryOn (retries without retryOn)"
					}
					what := "matches POST"
					if len(hr.GetMatch()) == 0 {
						what = "matches every method"
					}
					post.add(scope, vs.Ref(), fmt.Sprintf("%s %s and retries on %s (from %s)", where, what, strings.Join(bad, ","), src),
						"POST routes retry only on connection failures: retries.retryOn: connect-failure,refused-stream,reset-before-request (or attempts: 0)")
				}
			}
		}
		for i, tr := range vs.Spec.GetTcp() {
			sum := int32(0)
			for _, d := range tr.GetRoute() {
				sum += d.GetWeight()
				checkSubset(m, sub, scope, vs, fmt.Sprintf("tcp[%d]", i), d.GetDestination())
			}
			checkWeights(wt, scope, vs.Ref(), fmt.Sprintf("tcp[%d]", i), len(tr.GetRoute()), sum)
		}
		for i, tr := range vs.Spec.GetTls() {
			sum := int32(0)
			for _, d := range tr.GetRoute() {
				sum += d.GetWeight()
				checkSubset(m, sub, scope, vs, fmt.Sprintf("tls[%d]", i), d.GetDestination())
			}
			checkWeights(wt, scope, vs.Ref(), fmt.Sprintf("tls[%d]", i), len(tr.GetRoute()), sum)
		}
	}
	for _, s := range append([]string{MeshScope}, tenantNames(m)...) {
		if counts[s] > 0 {
			d := plural(counts[s], "HTTP route") + " checked"
			sub.detail(s, d)
			wt.detail(s, d)
			rt.detail(s, d)
			post.detail(s, d)
		}
	}
	sub.emit(r, IDSubsets, "VirtualService subsets exist and select running workloads", false)
	wt.emit(r, IDWeights, "route weights sum to 100; the canary gets its 10%", false)
	rt.emit(r, IDRetryTimeout, "every retrying route has a route timeout", false)
	post.emit(r, IDPostRetry, "POST routes never retry on 5xx", false)
}

// vsConsumers lists the namespaces whose proxies use a VirtualService: the namespaces it is
// exported to (for the mesh gateway) and the namespaces of the Gateways it binds to.
func vsConsumers(m *model.Model, vs *model.Istio[*networking.VirtualService]) []string {
	set := map[string]bool{}
	gws := vs.Spec.GetGateways()
	if len(gws) == 0 {
		gws = []string{"mesh"}
	}
	for _, g := range gws {
		if g == "mesh" {
			exp := vs.Spec.GetExportTo()
			if len(exp) == 0 {
				exp = m.Mesh.GetDefaultVirtualServiceExportTo()
			}
			for _, e := range exp {
				switch e {
				case ".":
					set[vs.Namespace] = true
				case "*", "":
					for ns := range m.Namespaces {
						set[ns] = true
					}
					set[m.RootNamespace] = true
				case "~":
				default:
					set[e] = true
				}
			}
			continue
		}
		if ns, _, ok := strings.Cut(g, "/"); ok {
			set[ns] = true
		} else {
			set[vs.Namespace] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// exportedTo reports whether an object in ns with the given exportTo is visible to consumer.
func exportedTo(m *model.Model, ns string, exportTo, meshDefault []string, consumer string) bool {
	if len(exportTo) == 0 {
		exportTo = meshDefault
	}
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch {
		case e == "*":
			return true
		case e == "." && consumer == ns:
			return true
		case e == consumer:
			return true
		}
	}
	return false
}

func tenantNames(m *model.Model) []string {
	var out []string
	for _, t := range m.Tenants {
		out = append(out, t.Overlay)
	}
	return out
}

// CanaryVersion is the `version` label of a canary's pods; CanaryPercent is the share of a
// service's traffic its canary is promised (deploy/README.md: the 90/10 payment split).
const (
	CanaryVersion = "canary"
	CanaryPercent = 10
)

// checkCanaryShare: a weighted route with a canary destination (a subset or a per-version
// Service whose pods are the canary's first) sends it exactly CanaryPercent.
func checkCanaryShare(m *model.Model, c *collector, scope string, vs *model.Istio[*networking.VirtualService], where string, dests []*networking.HTTPRouteDestination) {
	if len(dests) < 2 {
		return
	}
	for _, d := range dests {
		if !isCanary(m, vs.Namespace, d.GetDestination()) || d.GetWeight() == CanaryPercent {
			continue
		}
		c.add(scope, vs.Ref(), fmt.Sprintf("%s sends %d%% to the canary %s, promised %d%% (the rest to stable)", where, d.GetWeight(), describeDest(d.GetDestination()), CanaryPercent),
			fmt.Sprintf("weight the canary %d and stable %d", CanaryPercent, 100-CanaryPercent))
	}
}

// isCanary: the destination is a canary subset (labels version=canary), or a host whose
// DestinationRule puts version=canary pods first, or whose Service selects only those.
func isCanary(m *model.Model, ns string, d *networking.Destination) bool {
	host := m.FQDN(d.GetHost(), ns)
	want := "version=" + CanaryVersion
	for _, dr := range destinationRulesFor(m, host) {
		if d.GetSubset() != "" {
			for _, sub := range dr.Spec.GetSubsets() {
				if sub.GetName() == d.GetSubset() && sub.GetLabels()["version"] == CanaryVersion {
					return true
				}
			}
			continue
		}
		if slices.Contains(dr.Spec.GetTrafficPolicy().GetLoadBalancer().GetLocalityLbSetting().GetFailoverPriority(), want) {
			return true
		}
	}
	if svc := m.ServiceByFQDN(host); d.GetSubset() == "" && svc != nil {
		return svc.Spec.Selector["version"] == CanaryVersion
	}
	return false
}

func describeDest(d *networking.Destination) string {
	if d.GetSubset() != "" {
		return fmt.Sprintf("(subset %q of %s)", d.GetSubset(), d.GetHost())
	}
	return "(" + d.GetHost() + ")"
}

func checkWeights(c *collector, scope, obj, where string, n int, sum int32) {
	switch {
	case n > 1 && sum != 100:
		c.add(scope, obj, fmt.Sprintf("%s weights sum to %d, not 100", where, sum), "make the destination weights add up to 100")
	case n == 1 && sum != 0 && sum != 100:
		c.add(scope, obj, fmt.Sprintf("%s single destination has weight %d", where, sum), "drop the weight or set it to 100")
	}
}

// checkSubset: a subset must be defined by a DestinationRule for the same host, and its labels
// must select at least one workload behind the host's Service.
func checkSubset(m *model.Model, c *collector, scope string, vs *model.Istio[*networking.VirtualService], where string, d *networking.Destination) {
	if d == nil {
		return
	}
	host := m.FQDN(d.GetHost(), vs.Namespace)
	svc := m.ServiceByFQDN(host)
	if d.GetSubset() == "" {
		if svc == nil && strings.HasSuffix(host, ".svc."+m.DomainSuffix) {
			c.add(scope, vs.Ref(), fmt.Sprintf("%s routes to %s, which is not a rendered Service", where, host),
				"route to a Service of deploy/ (for a version split, the per-version Services payment-service-stable/-canary)")
		}
		return
	}
	var subset *networking.Subset
	var drRef string
	var defining []*model.Istio[*networking.DestinationRule]
	for _, dr := range m.DestinationRules {
		if m.FQDN(dr.Spec.GetHost(), dr.Namespace) != host {
			continue
		}
		for _, s := range dr.Spec.GetSubsets() {
			if s.GetName() == d.GetSubset() {
				subset, drRef = s, dr.Ref()
				defining = append(defining, dr)
			}
		}
	}
	if subset != nil {
		// The proxies that use this route must see a DestinationRule defining the subset,
		// or they answer 503 (no cluster for the subset).
		for _, consumer := range vsConsumers(m, vs) {
			visible := false
			for _, dr := range defining {
				visible = visible || exportedTo(m, dr.Namespace, dr.Spec.GetExportTo(), m.Mesh.GetDefaultDestinationRuleExportTo(), consumer)
			}
			if !visible {
				c.add(scope, vs.Ref(), fmt.Sprintf("%s routes to subset %q of %s, but no DestinationRule defining it is exported to %s, where this route is used",
					where, d.GetSubset(), host, consumer),
					"add "+consumer+" to the DestinationRule's exportTo (or narrow the VirtualService's exportTo/gateways)")
			}
		}
	}
	if subset == nil {
		c.add(scope, vs.Ref(), fmt.Sprintf("%s routes to subset %q of %s, which no DestinationRule defines", where, d.GetSubset(), host),
			"add the subset (labels version: <subset>) to the host's DestinationRule, or fix the subset name")
		return
	}
	if svc == nil {
		c.add(scope, vs.Ref(), fmt.Sprintf("%s routes to %s, which is not a rendered Service", where, host),
			"use the full host name of a Service in deploy/")
		return
	}
	n := 0
	for _, w := range m.WorkloadsBehind(svc) {
		if model.Selects(subset.GetLabels(), w.PodLabels) && w.Replicas > 0 {
			n++
		}
	}
	if n == 0 {
		c.add(scope, drRef, fmt.Sprintf("subset %q labels %v select no workload behind Service %s/%s (used by %s %s)",
			subset.GetName(), subset.GetLabels(), svc.Namespace, svc.Name, vs.Ref(), where),
			"match the subset labels to a Deployment's pod labels (e.g. version: stable|canary)")
	}
}
