// Admission control at the front door (README § "The mesh under load"): the ingress gateway is
// where load the platform cannot serve is refused, at once and with an answer, instead of
// queueing for seconds behind the work it should have refused.
//
//  1. Each tenant's public host (order-service, the gateway's only upstream) has a small
//     admission window: the gateway speaks HTTP/2 to it (h2UpgradePolicy UPGRADE), so that
//     http2MaxRequests caps the requests in flight across all its pods, and that cap is at most
//     MaxAdmittedPerGateway. (Over HTTP/1.1 the cap would be maxConnections, enforced across
//     per-pod connection pools: an idle connection to one pod cannot serve a request sent to
//     another, which waits as pending or is refused below the cap.)
//  2. A refusal is an answer a client can act on: an EnvoyFilter on the ingress gateway maps
//     Envoy's overflow reply (response flag UO) to one with a Retry-After header.
package promises

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// MaxAdmittedPerGateway bounds the orders one gateway keeps in flight to one tenant's
// order-service. On the reference machine (2 cores) bench-mesh finds the knee at 8; 32 leaves
// room for bigger nodes and still cannot queue seconds of work.
const MaxAdmittedPerGateway = 32

func checkAdmission(m *model.Model, r *report.Report) {
	c := newCollector(m)
	for _, t := range m.Tenants {
		host := m.FQDN("order-service", t.NamespaceFor(callgraph.Orders))
		for _, dr := range destinationRulesFor(m, host) {
			cp := dr.Spec.GetTrafficPolicy().GetConnectionPool()
			for _, b := range admissionProblems(cp) {
				c.add(t.Overlay, dr.Ref(), b, fmt.Sprintf("the gateway's pool to order-service: h2UpgradePolicy UPGRADE and http2MaxRequests ≤ %d, sized from make bench-mesh's knee", MaxAdmittedPerGateway))
			}
			c.detail(t.Overlay, fmt.Sprintf("%d orders in flight per gateway (HTTP/2)", cp.GetHttp().GetHttp2MaxRequests()))
		}
	}
	if ref := overflowAnswer(m); ref == "" {
		c.add(MeshScope, m.IngressGateway.Ref(), "the gateway's refusals (response flag UO) carry no Retry-After: a client cannot tell when to repeat",
			"deploy/mesh/envoyfilter-gateway-admission.yaml maps UO to problem+json with Retry-After")
	} else {
		c.detail(MeshScope, "refusals answered with Retry-After ("+ref+")")
	}
	c.emit(r, IDAdmission, "the ingress gateway admits a bounded window and answers the rest with Retry-After", true)
}

// admissionProblems lists what keeps the front door's pool from being a small cap on the
// requests in flight.
func admissionProblems(cp *networking.ConnectionPoolSettings) []string {
	var bad []string
	if cp.GetHttp().GetH2UpgradePolicy() != networking.ConnectionPoolSettings_HTTPSettings_UPGRADE {
		bad = append(bad, "the gateway speaks HTTP/1.1 to order-service: its cap is per connection pool, not on the requests in flight (h2UpgradePolicy is not UPGRADE)")
	}
	switch n := cp.GetHttp().GetHttp2MaxRequests(); {
	case n <= 0:
		bad = append(bad, "no admission window (connectionPool.http.http2MaxRequests unset: Istio's default is 2^32-1)")
	case n > MaxAdmittedPerGateway:
		bad = append(bad, fmt.Sprintf("admits %d orders in flight per gateway (> %d): past capacity, admitted orders wait behind each other instead of the excess being refused", n, MaxAdmittedPerGateway))
	}
	return bad
}

// overflowAnswer is the ref of an EnvoyFilter on the ingress gateway whose local reply mapper
// adds Retry-After to the UO (overflow) reply; "" when there is none.
func overflowAnswer(m *model.Model) string {
	for _, ef := range m.EnvoyFilters {
		if ef.Namespace != m.IngressGateway.Namespace || !model.Selects(ef.Spec.GetWorkloadSelector().GetLabels(), m.IngressGateway.PodLabels) {
			continue
		}
		for _, p := range ef.Spec.GetConfigPatches() {
			if p.GetApplyTo() != networking.EnvoyFilter_NETWORK_FILTER || p.GetPatch().GetValue() == nil {
				continue
			}
			hcm, _ := p.GetPatch().GetValue().AsMap()["typed_config"].(map[string]any)
			lrc, _ := hcm["local_reply_config"].(map[string]any)
			mappers, _ := lrc["mappers"].([]any)
			for _, mp := range mappers {
				if mapsOverflowWithRetryAfter(mp) {
					return ef.Ref()
				}
			}
		}
	}
	return ""
}

func mapsOverflowWithRetryAfter(mapper any) bool {
	mp, _ := mapper.(map[string]any)
	filter, _ := mp["filter"].(map[string]any)
	flags, _ := filter["response_flag_filter"].(map[string]any)["flags"].([]any)
	if !slices.Contains(flags, any("UO")) {
		return false
	}
	headers, _ := mp["headers_to_add"].([]any)
	for _, h := range headers {
		hv, _ := h.(map[string]any)["header"].(map[string]any)
		if key, _ := hv["key"].(string); strings.EqualFold(key, "retry-after") {
			return true
		}
	}
	return false
}
