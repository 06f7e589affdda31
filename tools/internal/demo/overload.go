// The overload demo: twice what the platform can take, offered through the gateway, and what the
// front door does with it (deploy/mesh/envoyfilter-gateway-admission.yaml and each tenant's
// order-service pool): it admits a small window, refuses the rest at once with 503 problem+json
// and Retry-After, and the admitted orders keep a bounded latency; then half the capacity, and
// latency is normal again at once.
package demo

import (
	"fmt"
	"regexp"
	"time"
)

func overload(e *Env) error {
	tn := e.tenantA()
	orders := tn.NamespaceFor("orders")
	gw := e.Loaded.Topology.Gateway()
	cluster := e.Loaded.RouteCluster(orders, "order-service", "stable", 8080)
	e.say(`overload — %s's orders through the ingress gateway at twice what the platform confirms per
second. The gateway admits at most a small window to order-service (its DestinationRule's pool)
and refuses the rest at once: 503 problem+json with Retry-After: 1, before anything behind it
spends a cycle. Watch the columns: ▒ refused in that second, "2xx p99" the admitted orders'
latency, and on the right what the gateway holds (in flight + queued) and refused
(cluster.%s;.upstream_rq_active_overflow).
`, tn.ID, cluster)
	sku, err := e.demoSKU(tn.ID, 1_000_000)
	if err != nil {
		return err
	}
	capacity, err := e.closedLoop(e.gatewayTarget(tn.ID), sku, 16, 6*time.Second)
	if err != nil {
		return err
	}
	offered, calm := int(2*capacity+0.5), max(int(capacity/2), 1)
	e.say("capacity: %.0f orders/s confirmed (closed loop, 16 clients, 6 s); now %d/s for 20 s, then %d/s for 8 s\n", capacity, offered, calm)

	// Over the cap on requests in flight (HTTP/2 to order-service) the refusal is counted as an
	// active overflow; a pending one only while a connection is being set up.
	re := regexp.QuoteMeta(cluster) + `;\.(upstream_rq_(active|pending)_overflow|upstream_rq_active|upstream_rq_pending_active)$`
	stat := func(m map[string]float64, name string) float64 { return m["cluster."+cluster+";."+name] }
	gateways := e.podsOf(gw.Namespace, gw.Labels["app"], "")
	refused := func(m map[string]float64) float64 {
		return stat(m, "upstream_rq_active_overflow") + stat(m, "upstream_rq_pending_overflow")
	}
	refusals := delta()
	refusals(refused(statSum(gateways, re)))
	figure := func() string {
		m := statSum(gateways, re)
		held := stat(m, "upstream_rq_active") + stat(m, "upstream_rq_pending_active")
		return fmt.Sprintf("gateway holds %2.0f, refused %4.0f/s", held, refusals(refused(m)))
	}
	l, err := e.startLoad(tn.ID, sku, offered, 20*time.Second)
	if err != nil {
		return err
	}
	if err := e.drive(l, offered, figure, nil); err != nil {
		return err
	}
	e.say("\nthe load drops to half the capacity:")
	l, err = e.startLoad(tn.ID, sku, calm, 8*time.Second)
	if err != nil {
		return err
	}
	return e.drive(l, offered, figure, nil)
}
