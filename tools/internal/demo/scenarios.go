// The traffic demos: a canary weight shifted live, a payment replica killed and ejected by the
// circuit breaker, and a flaky inventory replica frozen on and off under load.
package demo

import (
	"context"
	"fmt"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/mesh"
	"ordermesh.local/tools/internal/model"
)

const demoRate = 20 // orders/s: visible on 2 shared cores without saturating them

// tenantA is the tenant the load goes to (the first one).
func (e *Env) tenantA() *model.Tenant { return e.Loaded.Model.Tenants[0] }

// paymentCluster is the outbound cluster deploy/'s routes send payment-service's subset to, as
// named in stats (it depends on the routing variant: mesh.Loaded.RouteCluster).
func (e *Env) paymentCluster(payments, subset string) string {
	return e.Loaded.RouteCluster(payments, "payment-service", subset, 8080)
}

// delta turns a cumulative counter into per-call increments.
func delta() func(now float64) float64 {
	var last float64
	first := true
	return func(now float64) float64 {
		d := now - last
		last = now
		if first {
			first = false
			return 0
		}
		return d
	}
}

// canary: the deployed split, then 50/50 applied live, then back.
func canary(e *Env) error {
	tn := e.tenantA()
	orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
	callers := e.podsOf(orders, "order-service", "")
	e.say(`canary — %s's order pods call payment-service through their sidecars; deploy/ sends 10%% of
those calls to the canary subset (version=canary). Watch the right-hand column: the share the
order pods' Envoys sent to each side in that second (cluster.%s;.upstream_rq_total and
cluster.%s;.upstream_rq_total).
At 12 s a %s with 50/50 is written to .local/mesh/extra/ and mesh up pushes it to
the running proxies (no app restarts); at 30 s it is removed and the split goes back to 10%%.
`, tn.ID, e.paymentCluster(payments, "stable"), e.paymentCluster(payments, "canary"), routeKind(e.Loaded))
	sku, err := e.demoSKU(tn.ID, 100000)
	if err != nil {
		return err
	}
	stableKey := "cluster." + e.paymentCluster(payments, "stable") + ";.upstream_rq_total"
	canaryKey := "cluster." + e.paymentCluster(payments, "canary") + ";.upstream_rq_total"
	re := `^(` + regexp.QuoteMeta(stableKey) + `|` + regexp.QuoteMeta(canaryKey) + `)$`
	ds, dc := delta(), delta()
	ds(statSum(callers, re)[stableKey])
	dc(statSum(callers, re)[canaryKey])
	figure := func() string {
		m := statSum(callers, re)
		s, c := ds(m[stableKey]), dc(m[canaryKey])
		share := 0.0
		if s+c > 0 {
			share = 100 * c / (s + c)
		}
		return fmt.Sprintf("payment stable %3.0f canary %3.0f  canary %3.0f%% %s", s, c, share, shareBar(share))
	}
	vs50, err := e.Loaded.WithCanaryWeight(payments, 50)
	if err != nil {
		return err
	}
	const extra = "demo-canary-50.yaml"
	defer func() { _ = e.removeExtra(extra) }()
	events := []*event{
		{At: 12, Say: "writing .local/mesh/extra/" + extra + " (canary 50%) and running mesh up", Do: func() (string, error) {
			if err := e.writeExtra(extra, vs50); err != nil {
				return "", err
			}
			d, err := e.meshUp()
			return fmt.Sprintf("mesh up pushed canary 50%% in %s (no app restarted)", d.Round(time.Millisecond)), err
		}},
		{At: 30, Say: "removing " + extra + " and running mesh up: back to deploy/'s 10%", Do: func() (string, error) {
			if err := e.removeExtra(extra); err != nil {
				return "", err
			}
			d, err := e.meshUp()
			return fmt.Sprintf("mesh up restored deploy/'s weights in %s", d.Round(time.Millisecond)), err
		}},
	}
	l, err := e.startLoad(tn.ID, sku, demoRate, 42*time.Second)
	if err != nil {
		return err
	}
	return e.drive(l, demoRate, figure, events)
}

// shareBar is a 20-cell bar of a percentage.
func shareBar(pct float64) string {
	n := int(pct/5 + 0.5)
	if n > 20 {
		n = 20
	}
	b := []rune("····················")
	for i := 0; i < n; i++ {
		b[i] = '▮'
	}
	return string(b)
}

// routeKind names the kind of route deploy/'s routing variant splits traffic with.
func routeKind(ld *mesh.Loaded) string {
	if ld.Routing == manifest.RoutingGatewayAPI {
		return "HTTPRoute"
	}
	return "VirtualService"
}

// circuitBreaker: one stable payment replica's app killed under load.
func circuitBreaker(e *Env) error {
	tn := e.tenantA()
	orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
	callers := e.podsOf(orders, "order-service", "")
	stable := e.podsOf(payments, "payment-service", "stable")
	victim := stable[len(stable)-1]
	cluster := e.paymentCluster(payments, "stable")
	e.say(`circuit-breaker — load through the gateway; at 5 s %s's app is killed (SIGKILL; its
sidecar stays and answers 503). Watch: the 5xx column (POST /payments is never retried on 503 —
order-service answers 503 and its reconciler finishes the order), then each caller's Envoy
ejecting the replica after 5 consecutive gateway errors (outlier_detection.ejections_active,
right-hand column) and the requests to it dropping to 0/s while the other replica serves.
At 14 s mesh up restarts the app; the replica is back after baseEjectionTime (30 s) + up to one
interval (5 s).
`, victim.Key())
	sku, err := e.demoSKU(tn.ID, 100000)
	if err != nil {
		return err
	}
	activeRe := regexp.QuoteMeta(cluster) + `;\.outlier_detection\.ejections_active$`
	toVictim := delta()
	toVictim(float64(hostRequests(callers, cluster)[victim.IP.String()]))
	figure := func() string {
		ejected := 0
		for _, c := range callers {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m, err := mesh.EnvoyStats(ctx, c, activeRe)
			cancel()
			if err == nil && sumValues(m) > 0 {
				ejected++
			}
		}
		n := toVictim(float64(hostRequests(callers, cluster)[victim.IP.String()]))
		return fmt.Sprintf("ejected by %d/%d callers · to %s %3.0f/s", ejected, len(callers), victim.Name, n)
	}
	events := []*event{
		{At: 5, Say: "SIGKILL " + victim.Key() + "'s app", Do: func() (string, error) {
			return "", e.signalApp(victim, syscall.SIGKILL)
		}},
		{At: 14, Say: "mesh up: restart what died", Do: func() (string, error) {
			d, err := e.meshUp()
			return fmt.Sprintf("mesh up restarted %s's app in %s", victim.Name, d.Round(time.Millisecond)), err
		}},
	}
	l, err := e.startLoad(tn.ID, sku, demoRate, 55*time.Second)
	if err != nil {
		return err
	}
	return e.drive(l, demoRate, figure, events)
}

// retries: one inventory replica frozen (SIGSTOP) and thawed (SIGCONT) every 3 s under load.
func retries(e *Env) error {
	tn := e.tenantA()
	orders := tn.NamespaceFor("orders")
	// payment-service is inventory's caller (order → payment → inventory): its Envoys time out.
	callers := e.podsOf(tn.NamespaceFor("payments"), "payment-service", "")
	inv := e.podsOf(orders, "inventory-service", "")
	victim := inv[len(inv)-1]
	cluster := fmt.Sprintf("outbound|8080||inventory-service.%s.svc.cluster.local", orders)
	e.say(`retries — load through the gateway; from 6 s to 30 s %s's app is frozen (SIGSTOP) for
3 s, thawed (SIGCONT) for 3 s, and so on. A reservation sent to the frozen replica hangs until
the route's timeout; POSTs are not retried on 5xx or timeouts (a retry could reserve twice), so
payment-service and then order-service answer 503 and the order stays PENDING; order-service's
reconciler finishes it. Watch the 5xx column and the right-hand column (frozen or not; the
payment pods' Envoys' timeouts and retries to inventory that second). At the end: every order settled, no double charge (SQL).
`, victim.Key())
	sku, err := e.demoSKU(tn.ID, 100000)
	if err != nil {
		return err
	}
	retryKey := "cluster." + cluster + ";.upstream_rq_retry"
	timeoutKey := "cluster." + cluster + ";.upstream_rq_timeout"
	re := regexp.QuoteMeta(cluster) + `;\.upstream_rq_(retry|timeout)$`
	dr, dt := delta(), delta()
	m0 := statSum(callers, re)
	dr(m0[retryKey])
	dt(m0[timeoutKey])
	var frozen atomic.Bool
	figure := func() string {
		m := statSum(callers, re)
		state := "running"
		if frozen.Load() {
			state = "FROZEN "
		}
		return fmt.Sprintf("%s %s · inventory timeouts %2.0f retries %2.0f", victim.Name, state, dt(m[timeoutKey]), dr(m[retryKey]))
	}
	var events []*event
	for at := 6; at < 30; at += 6 {
		events = append(events,
			&event{At: at, Say: "SIGSTOP " + victim.Name + "'s app", Do: func() (string, error) {
				frozen.Store(true)
				return "", e.signalApp(victim, syscall.SIGSTOP)
			}},
			&event{At: at + 3, Say: "SIGCONT " + victim.Name + "'s app", Do: func() (string, error) {
				frozen.Store(false)
				return "", e.signalApp(victim, syscall.SIGCONT)
			}})
	}
	defer func() { _ = e.signalApp(victim, syscall.SIGCONT) }()
	l, err := e.startLoad(tn.ID, sku, demoRate, 40*time.Second)
	if err != nil {
		return err
	}
	return e.drive(l, demoRate, figure, events)
}

// signalApp sends sig to the pod's app process (as recorded by mesh up).
func (e *Env) signalApp(p *mesh.Pod, sig syscall.Signal) error {
	st, err := e.state()
	if err != nil {
		return err
	}
	pr := st.Procs[p.Key()+"/app"]
	if !pr.Alive() {
		return fmt.Errorf("%s's app is not running", p.Key())
	}
	return syscall.Kill(pr.Pid, sig)
}

func sumValues(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// hostRequests sums, over the callers' Envoys, the requests sent to each endpoint (pod IP) of
// the cluster.
func hostRequests(callers []*mesh.Pod, cluster string) map[string]int {
	return sumOver(callers, func(ctx context.Context, p *mesh.Pod) (map[string]int, error) {
		return mesh.HostRequests(ctx, p, cluster)
	})
}
