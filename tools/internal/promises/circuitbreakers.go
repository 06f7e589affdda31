package promises

// Circuit breakers and load balancing (routing.circuit-breakers, routing.least-request): every
// service host has one DestinationRule, and its effective policy — for the host and for every
// subset, the canary included, merged as Istio merges them — ejects failing endpoints, bounds
// its connection pool and balances with LEAST_REQUEST. meshtest's TestCircuitBreaker shows an
// ejection on live traffic.

import (
	"fmt"
	"slices"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// breakerProblems lists what is missing or unsafe in a policy's circuit breaker.
func breakerProblems(p *networking.TrafficPolicy) []string {
	var bad []string
	od := p.GetOutlierDetection()
	if od == nil {
		bad = append(bad, "no outlierDetection")
	} else {
		if od.GetConsecutiveGatewayErrors().GetValue() == 0 && od.GetConsecutive_5XxErrors().GetValue() == 0 {
			bad = append(bad, "outlierDetection ejects on nothing (consecutiveGatewayErrors and consecutive5xxErrors both 0/unset)")
		}
		if od.GetInterval().AsDuration() <= 0 {
			bad = append(bad, "outlierDetection.interval unset")
		}
		if od.GetBaseEjectionTime().AsDuration() <= 0 {
			bad = append(bad, "outlierDetection.baseEjectionTime unset")
		}
		if pct := od.GetMaxEjectionPercent(); pct < 1 || pct > 100 {
			bad = append(bad, fmt.Sprintf("outlierDetection.maxEjectionPercent %d (want 1-100; unset is Istio's 10%%, which ejects nothing in a pool of 2-3)", pct))
		}
	}
	cp := p.GetConnectionPool()
	switch {
	case cp == nil:
		bad = append(bad, "no connectionPool")
	default:
		if cp.GetTcp().GetMaxConnections() <= 0 {
			bad = append(bad, "connectionPool.tcp.maxConnections unset (unbounded)")
		}
		if cp.GetTcp().GetConnectTimeout().AsDuration() <= 0 {
			bad = append(bad, "connectionPool.tcp.connectTimeout unset")
		}
		if cp.GetHttp().GetHttp1MaxPendingRequests() <= 0 {
			bad = append(bad, "connectionPool.http.http1MaxPendingRequests unset (unbounded)")
		}
		if cp.GetHttp().GetHttp2MaxRequests() <= 0 {
			bad = append(bad, "connectionPool.http.http2MaxRequests unset (unbounded)")
		}
	}
	return bad
}

// routedHosts are the tenant's service hosts (the call graph's) and every other host of the
// tenant that a route sends traffic to (e.g. the per-version Services of a Gateway API split).
func routedHosts(m *model.Model, t *model.Tenant) []string {
	var hosts []string
	for _, s := range callgraph.Services {
		if ns := t.NamespaceFor(s.Role); ns != "" {
			hosts = append(hosts, m.FQDN(s.Name, ns))
		}
	}
	for _, vs := range m.VirtualServices {
		for _, hr := range vs.Spec.GetHttp() {
			for _, d := range hr.GetRoute() {
				host := m.FQDN(d.GetDestination().GetHost(), vs.Namespace)
				if svc := m.ServiceByFQDN(host); svc != nil && m.TenantOf(svc.Namespace) == t && !slices.Contains(hosts, host) {
					hosts = append(hosts, host)
				}
			}
		}
	}
	return hosts
}

// checkDestinationRules: every service host has one DestinationRule whose effective policy, for
// the host and for every subset (the canary included), has a sane circuit breaker and LEAST_REQUEST.
func checkDestinationRules(m *model.Model, r *report.Report) {
	cb := newCollector(m)
	lb := newCollector(m)
	for _, t := range m.Tenants {
		n := 0
		for _, host := range routedHosts(m, t) {
			drs := destinationRulesFor(m, host)
			if len(drs) != 1 {
				cb.add(t.Overlay, host, fmt.Sprintf("%d DestinationRules for the host (want exactly 1: with several, Istio merges or picks one)", len(drs)),
					"define one DestinationRule per host (deploy/components/istio-tenant/destinationrule-circuit-breaker.yaml)")
				continue
			}
			dr := drs[0]
			n++
			pools := []struct {
				where  string
				policy *networking.TrafficPolicy
			}{{"trafficPolicy", dr.Spec.GetTrafficPolicy()}}
			for _, sub := range dr.Spec.GetSubsets() {
				pools = append(pools, struct {
					where  string
					policy *networking.TrafficPolicy
				}{fmt.Sprintf("subset %q", sub.GetName()), mergeSubset(dr.Spec.GetTrafficPolicy(), sub.GetTrafficPolicy())})
			}
			for _, p := range pools {
				for _, b := range breakerProblems(p.policy) {
					cb.add(t.Overlay, dr.Ref(), p.where+": "+b,
						"give every host and subset outlierDetection (consecutiveGatewayErrors, interval, baseEjectionTime, maxEjectionPercent) and a bounded connectionPool")
				}
				l := p.policy.GetLoadBalancer()
				if l.GetSimple() != networking.LoadBalancerSettings_LEAST_REQUEST || l.GetConsistentHash() != nil {
					got := "unset"
					if l != nil {
						got = l.GetSimple().String()
						if l.GetConsistentHash() != nil {
							got = "consistentHash"
						}
					}
					lb.add(t.Overlay, dr.Ref(), fmt.Sprintf("%s: loadBalancer %s, want simple LEAST_REQUEST", p.where, got),
						"set loadBalancer.simple: LEAST_REQUEST (a subset's loadBalancer replaces the host's as a whole)")
				}
			}
		}
		cb.detail(t.Overlay, plural(n, "host")+" with outlier detection and connection pools on every subset")
		lb.detail(t.Overlay, plural(n, "host")+" LEAST_REQUEST on every subset")
	}
	cb.emit(r, IDCircuitBreaker, "circuit breakers on every host and subset", false)
	lb.emit(r, IDLeastRequest, "LEAST_REQUEST on every host and subset", false)
}
