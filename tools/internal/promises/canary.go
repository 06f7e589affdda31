package promises

// The canary's fallback (routing.canary-fallback): a weighted subset too small to survive an
// ejection (payment-service's one-replica canary) must fall back to the stable pods, through
// failoverPriority over a pool that holds both; istioadapter/xds's TestCanaryFallsBackToStable
// shows istiod turning that into priority 0 = canary, 1 = stable.

import (
	"fmt"
	"strings"

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
				if d.GetDestination().GetSubset() == "" || d.GetWeight() == 0 {
					continue
				}
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				if msg := fallbackProblem(m, host, d.GetDestination().GetSubset()); msg != "" {
					c.add(scope, vs.Ref(), fmt.Sprintf("%s sends %d%% to subset %q of %s: %s", routeName(i, hr), d.GetWeight(), d.GetDestination().GetSubset(), host, msg),
						`let the subset select every pod of the service and prioritise its own: trafficPolicy.loadBalancer.localityLbSetting {enabled: true, failoverPriority: ["version=<subset>"]}`)
				} else if d := fmt.Sprintf("%s subset %q: fallback or ≥ 2 replicas", host, d.GetDestination().GetSubset()); !noted[scope+d] {
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
			pol := mergeSubset(dr.Spec.GetTrafficPolicy(), sub.GetTrafficPolicy())
			var pool []*model.Workload
			replicas := int32(0)
			for _, w := range m.WorkloadsBehind(svc) {
				if model.Selects(sub.GetLabels(), w.PodLabels) && w.Replicas > 0 {
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
			var first, rest int32
			for _, w := range pool {
				top := true
				for _, p := range prios {
					k, v, ok := strings.Cut(p, "=")
					if !ok {
						return fmt.Sprintf("failoverPriority %q takes its value from each caller's labels; write %q=<value>", p, p)
					}
					top = top && w.PodLabels[k] == v
				}
				if top {
					first += w.Replicas
				} else {
					rest += w.Replicas
				}
			}
			switch {
			case first == 0:
				return fmt.Sprintf("failoverPriority %v puts none of its pods first: the subset's share goes to the fallback only", prios)
			case rest == 0:
				return fmt.Sprintf("failoverPriority %v leaves nothing to fall back to (the subset's labels %v select only the prioritised pods)", prios, sub.GetLabels())
			}
			return ""
		}
	}
	return "" // routing.subsets reports a missing subset
}
