package promises

// The canary's fallback (routing.canary-fallback): a weighted subset too small to survive an
// ejection (payment-service's one-replica canary) must fall back to the stable pods, through
// failoverPriority over a pool that holds both; istioadapter/xds's TestCanaryFallsBackToStable
// shows istiod turning that into priority 0 = canary, 1 = stable.

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// checkCanaryFallback: a subset that a weighted route sends a share to and that holds fewer than
// two replicas of its own must fall back to other endpoints when they are ejected: a
// failoverPriority "label=value" whose priority 0 is the subset's own pods, over a pool that also
// holds other pods, with outlier detection (Istio enables failover only with it).
func checkCanaryFallback(m *model.Model, r *report.Report) {
	c := newCollector(m)
	noted := map[string]bool{}
	for _, vs := range m.VirtualServices {
		scope := c.scopeOf(vs.Namespace)
		for i, hr := range vs.Spec.GetHttp() {
			if len(hr.GetRoute()) < 2 {
				continue
			}
			for _, d := range hr.GetRoute() {
				if d.GetWeight() == 0 {
					continue
				}
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				subset := d.GetDestination().GetSubset()
				what, noteAs := fmt.Sprintf("subset %q of %s", subset, host), fmt.Sprintf("%s subset %q", host, subset)
				msg := fallbackProblem(m, host, subset)
				if subset == "" {
					what, noteAs, msg = host, host, hostFallbackProblem(m, host)
				}
				if msg != "" {
					c.add(scope, vs.Ref(), fmt.Sprintf("%s sends %d%% to %s: %s", routeName(i, hr), d.GetWeight(), what, msg),
						`let the subset (or per-version Service) select every pod of the service and prioritise its own: trafficPolicy.loadBalancer.localityLbSetting {enabled: true, failoverPriority: ["version=<version>"]}`)
				} else if d := noteAs + ": fallback or ≥ 2 replicas"; !noted[scope+d] {
					noted[scope+d] = true
					c.detail(scope, d)
				}
			}
		}
	}
	c.emit(r, IDCanaryFallback, "a small weighted subset falls back to the others when ejected", false)
}

func fallbackProblem(m *model.Model, host, subsetName string) string {
	svc := m.ServiceByFQDN(host)
	if svc == nil {
		return "" // routing.subsets reports it
	}
	for _, dr := range destinationRulesFor(m, host) {
		for _, sub := range dr.Spec.GetSubsets() {
			if sub.GetName() != subsetName {
				continue
			}
			return poolFallbackProblem(m, svc, sub.GetLabels(), mergeSubset(dr.Spec.GetTrafficPolicy(), sub.GetTrafficPolicy()))
		}
	}
	return "" // routing.subsets reports a missing subset
}

// hostFallbackProblem is fallbackProblem for a weighted share sent to a whole host (a
// per-version Service, as the Gateway API splits by backendRefs): its pool is the pods its
// Service selects, its policy its DestinationRule's.
func hostFallbackProblem(m *model.Model, host string) string {
	svc := m.ServiceByFQDN(host)
	if svc == nil {
		return "" // routing.subsets reports it
	}
	var pol *networking.TrafficPolicy
	if drs := destinationRulesFor(m, host); len(drs) > 0 {
		pol = drs[0].Spec.GetTrafficPolicy()
	}
	return poolFallbackProblem(m, svc, nil, pol)
}

// poolFallbackProblem: the pods of svc that labels select (all, for nil) either hold 2+
// replicas, or failoverPriority puts some of them first and keeps others to fall back to.
func poolFallbackProblem(m *model.Model, svc *model.Service, labels map[string]string, pol *networking.TrafficPolicy) string {
	var pool []*model.Workload
	replicas := int32(0)
	for _, w := range m.WorkloadsBehind(svc) {
		if model.Selects(labels, w.PodLabels) && w.Replicas > 0 {
			pool = append(pool, w)
			replicas += w.Replicas
		}
	}
	loc := pol.GetLoadBalancer().GetLocalityLbSetting()
	prios := loc.GetFailoverPriority()
	if len(prios) == 0 || (loc.GetEnabled() != nil && !loc.GetEnabled().GetValue()) {
		if replicas >= 2 {
			return ""
		}
		return fmt.Sprintf("its pool is %d replica(s) and has no failoverPriority: once ejected, that share gets 503 \"no healthy upstream\"", replicas)
	}
	if pol.GetOutlierDetection() == nil {
		return "failoverPriority without outlierDetection: Istio does not enable failover"
	}
	first, rest, bad := prioritySplit(pool, prios)
	switch {
	case bad != "":
		return fmt.Sprintf("failoverPriority %q takes its value from each caller's labels; write %q=<value>", bad, bad)
	case first == 0:
		return fmt.Sprintf("failoverPriority %v puts none of its pods first: the subset's share goes to the fallback only", prios)
	case rest == 0:
		return fmt.Sprintf("failoverPriority %v leaves nothing to fall back to (the pool's labels %v select only the prioritised pods)", prios, selectorOf(svc, labels))
	}
	return ""
}

// prioritySplit counts the pool's replicas that failoverPriority ("label=value" each) puts
// first and the rest; bad is a priority without "=value".
func prioritySplit(pool []*model.Workload, prios []string) (first, rest int32, bad string) {
	for _, w := range pool {
		top := true
		for _, p := range prios {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				return 0, 0, p
			}
			top = top && w.PodLabels[k] == v
		}
		if top {
			first += w.Replicas
		} else {
			rest += w.Replicas
		}
	}
	return first, rest, ""
}

func selectorOf(svc *model.Service, labels map[string]string) map[string]string {
	if labels == nil {
		return svc.Spec.Selector
	}
	return labels
}
