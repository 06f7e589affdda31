// Admission control at the front door (README § "The mesh under load"): the ingress gateway is
// where load the platform cannot serve is refused, at once and with an answer, instead of
// queueing for seconds behind the work it should have refused.
//
//  1. Each tenant's public host (order-service, the gateway's only upstream) has a small
//     admission window: what one gateway keeps in flight (connectionPool.tcp.maxConnections,
//     HTTP/1.1 upstream) plus what it queues (http1MaxPendingRequests) is at most
//     MaxAdmittedPerGateway, and the queue is no longer than what is in flight — so a queued
//     order waits about one order's time at most.
//  2. A refusal is an answer a client can act on: an EnvoyFilter on the ingress gateway maps
//     Envoy's overflow reply (response flag UO) to one with a Retry-After header.
package invariants

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
	"ordermesh.local/tools/internal/report"
)

// MaxAdmittedPerGateway bounds what one gateway admits to one tenant's order-service: in flight
// plus queued. On the reference machine (2 cores) bench-mesh finds the knee at 8-16 orders in
// flight; 32 leaves room for bigger nodes and still cannot queue seconds of work.
const MaxAdmittedPerGateway = 32

func checkAdmission(m *model.Model, r *report.Report) {
	c := newCollector(m)
	for _, t := range m.Tenants {
		host := m.FQDN("order-service", t.NamespaceFor(callgraph.Orders))
		for _, dr := range destinationRulesFor(m, host) {
			for _, b := range admissionProblems(dr.Spec.GetTrafficPolicy().GetConnectionPool()) {
				c.add(t.Overlay, dr.Ref(), b, fmt.Sprintf("size the gateway's pool to order-service from make bench-mesh's knee: maxConnections + http1MaxPendingRequests ≤ %d, the queue ≤ the connections", MaxAdmittedPerGateway))
			}
			cp := dr.Spec.GetTrafficPolicy().GetConnectionPool()
			c.detail(t.Overlay, fmt.Sprintf("%d in flight + %d queued per gateway", cp.GetTcp().GetMaxConnections(), cp.GetHttp().GetHttp1MaxPendingRequests()))
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

// admissionProblems lists what makes the front door's pool an unbounded or long queue.
func admissionProblems(cp *networking.ConnectionPoolSettings) []string {
	inFlight, queued := cp.GetTcp().GetMaxConnections(), cp.GetHttp().GetHttp1MaxPendingRequests()
	var bad []string
	if inFlight <= 0 || queued <= 0 {
		return []string{"no admission window (connectionPool.tcp.maxConnections or http.http1MaxPendingRequests unset: Istio's default is 2^32-1)"}
	}
	if inFlight+queued > MaxAdmittedPerGateway {
		bad = append(bad, fmt.Sprintf("admits %d in flight + %d queued per gateway (> %d): past capacity, admitted orders wait in the queue instead of being refused", inFlight, queued, MaxAdmittedPerGateway))
	}
	if queued > inFlight {
		bad = append(bad, fmt.Sprintf("queues %d behind %d in flight: a queued order waits longer than an order takes", queued, inFlight))
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
