//go:build mesh

// The mesh's traffic promises on live traffic: retries and timeouts, the canary split and a
// live weight change, tracing at the deployed 10%. Faults are real: an app killed (its sidecar
// answers 503), a sidecar killed (connections refused), apps frozen with SIGSTOP (no answer).
package meshtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ordermesh.local/tools/internal/mesh"
)

// envoyStats reads the counters whose names match re from a pod's Envoy admin port. Istio names a
// cluster's stats "cluster.<cluster name>;.<stat>" (the ";" ends the name for tag extraction).
func envoyStats(t *testing.T, p *mesh.Pod, re string) map[string]float64 {
	t.Helper()
	out, err := mesh.EnvoyStats(context.Background(), p, re)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sum(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// procOf is the recorded process of a pod ("app" or "envoy").
func procOf(t *testing.T, p *mesh.Pod, what string) *mesh.Proc {
	t.Helper()
	st, err := mesh.LoadState(filepath.Join(layout.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	pr := st.Procs[p.Key()+"/"+what]
	if !pr.Alive() {
		t.Fatalf("%s %s is not running", p.Key(), what)
	}
	return pr
}

func kill(t *testing.T, pr *mesh.Proc) {
	t.Helper()
	if err := syscall.Kill(pr.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for pr.Alive() {
		time.Sleep(10 * time.Millisecond)
	}
}

// restore runs mesh up, which restarts what was killed.
func restore(t *testing.T) {
	t.Helper()
	if err := runMesh(os.Getenv("MESH_BIN"), layout.Root, "up"); err != nil {
		t.Fatalf("mesh up: %v", err)
	}
}

// envoyLogCount counts the access-log lines of a pod's Envoy that carry requestID, after making
// the Envoy flush its access log (it buffers up to a second; /reopen_logs flushes).
func envoyLogCount(t *testing.T, p *mesh.Pod, requestID string) int {
	t.Helper()
	resp, err := mesh.PodClient(p, 5*time.Second).Post("http://127.0.0.1:15000/reopen_logs", "text/plain", nil)
	if err != nil {
		t.Fatalf("%s: flushing the access log: %v", p.Key(), err)
	}
	resp.Body.Close()
	b, _ := os.ReadFile(filepath.Join(layout.StateDir, "pods", p.Namespace, p.Name, "envoy.log"))
	return strings.Count(string(b), `"request_id":"`+requestID+`"`)
}

// TestRetriesAndTimeouts: GET is retried past a replica whose app died (its sidecar answers
// 503) and succeeds; POST is not retried on that 503 (the dead replica's sidecar saw exactly one
// attempt, no other replica any); POST is retried when the connection itself fails (a replica's
// sidecar died); with every replica frozen, GET and POST end in 504 at their route timeouts.
func TestRetriesAndTimeouts(t *testing.T) {
	tn := loaded.Model.Tenants[0]
	orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
	orderPod := podOf(t, orders, "order-service", "")
	payPod := podOf(t, payments, "payment-service", "")
	paySvc, invSvc, notifySvc := service(t, payments, "payment-service"), service(t, orders, "inventory-service"), service(t, orders, "notify-service")
	hdr := func(rid string) map[string]string {
		return map[string]string{"x-tenant-id": tn.ID, "x-request-id": rid}
	}
	defer restore(t)

	// GET order -> payment, payment-service-0's app killed.
	kill(t, procOf(t, podOf(t, payments, "payment-service", "stable"), "app"))
	retryRe := regexp.QuoteMeta(loaded.RouteCluster(payments, "payment-service", "stable", 8080)) + `;\.upstream_rq_retry$`
	before := sum(envoyStats(t, orderPod, retryRe))
	for i := 0; i < 100; i++ {
		r := fromPod(orderPod, paySvc, http.MethodGet, "/api/v1/payments?order_id=0192d6a0-0000-7000-8000-00000000000a", hdr(randomHex(8)), "")
		if !r.FromApp {
			t.Fatalf("GET %d with one payment app dead was not retried to a live replica: %s", i, r)
		}
	}
	retried := sum(envoyStats(t, orderPod, retryRe)) - before
	if retried < 1 {
		t.Errorf("no GET was retried (upstream_rq_retry +%v), yet none failed: did the dead replica get any request?", retried)
	}
	t.Logf("GET: 100 of 100 answered by an app with one payment replica's app dead; %v retries", retried)

	// POST payment -> inventory, inventory-service-0's app killed: a 503 is final.
	deadInv := podOf(t, orders, "inventory-service", "")
	kill(t, procOf(t, deadInv, "app"))
	fiveHundreds := 0
	for i := 0; i < 60 && fiveHundreds < 3; i++ {
		rid := "post-" + randomHex(8)
		r := fromPod(payPod, invSvc, http.MethodPost, "/api/v1/reservations", hdr(rid), "{}")
		seenByDead := envoyLogCount(t, deadInv, rid)
		if seenByDead > 0 && r.FromApp {
			t.Errorf("POST %s: the dead replica's sidecar answered it 503, yet an app answered in the end: the POST was retried on 5xx", rid)
			continue
		}
		if r.Status != http.StatusServiceUnavailable || r.FromApp {
			continue
		}
		fiveHundreds++
		for _, p := range loaded.Topology.Pods {
			if p.Namespace != orders || p.Labels["app"] != "inventory-service" {
				continue
			}
			want := 0
			if p == deadInv {
				want = 1
			}
			if got := envoyLogCount(t, p, rid); got != want {
				t.Errorf("POST %s answered 503: %s's sidecar logged %d attempts, want %d (POST must not be retried on 5xx)", rid, p.Key(), got, want)
			}
		}
	}
	if fiveHundreds == 0 && !t.Failed() {
		t.Fatal("no POST reached the dead inventory replica in 60 tries")
	}
	t.Logf("POST: %d answered 503 by the dead replica's sidecar, each seen once there and nowhere else (not retried)", fiveHundreds)

	// POST order -> notify, notify-service-0's sidecar killed: connect failures are retried.
	deadNotify := podOf(t, orders, "notify-service", "")
	kill(t, procOf(t, deadNotify, "envoy"))
	// Connections the caller already had to it close with it; wait until the caller has seen
	// that, so what is measured is new connections failing (a request on a connection that dies
	// under it may have reached the app, and a POST is rightly not retried then).
	notifyCluster := loaded.RouteCluster(orders, notifySvc.Name, "stable", 8080)
	for deadline := time.Now().Add(10 * time.Second); hostStat(t, orderPod, notifyCluster, "cx_active")[deadNotify.IP.String()] > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%s still has connections to the killed sidecar after 10 s", orderPod.Key())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfRe := regexp.QuoteMeta(notifyCluster) + `;\.upstream_rq_retry$`
	before = sum(envoyStats(t, orderPod, cfRe))
	for i := 0; i < 50; i++ {
		r := fromPod(orderPod, notifySvc, http.MethodPost, "/api/v1/notifications", hdr(randomHex(8)), "{}")
		if !r.FromApp {
			t.Fatalf("POST %d with one notify sidecar dead: %s (connect failures must be retried)", i, r)
		}
	}
	t.Logf("POST: 50 of 50 answered by an app with one notify replica's sidecar dead; %v retries on connect failure",
		sum(envoyStats(t, orderPod, cfRe))-before)
	restore(t)

	// Every payment replica frozen: 504 at the route timeouts (GET 6s, POST 10s).
	thaw := freezeApps(t, podsOf(payments, "payment-service"))
	defer thaw()
	for _, c := range []struct {
		method  string
		path    string
		timeout time.Duration
	}{
		{http.MethodGet, "/api/v1/payments?order_id=0192d6a0-0000-7000-8000-00000000000b", routeTimeout(t, payments, "payment-service", "GET")},
		{http.MethodPost, "/api/v1/payments", routeTimeout(t, payments, "payment-service", "POST")},
	} {
		start := time.Now()
		r := fromPod(orderPod, paySvc, c.method, c.path, hdr(randomHex(8)), bodyFor(c.method))
		took := time.Since(start)
		if r.Status != http.StatusGatewayTimeout {
			t.Errorf("%s with every payment replica frozen: want 504, got %s", c.method, r)
		}
		if d := math.Abs(float64(took-c.timeout)) / float64(c.timeout); d > 0.10 {
			t.Errorf("%s: 504 after %s, the route timeout is %s (more than 10%% off)", c.method, took.Round(time.Millisecond), c.timeout)
		}
		t.Logf("%s: %d after %s (route timeout %s)", c.method, r.Status, took.Round(time.Millisecond), c.timeout)
	}
}

// freezeApps stops the pods' apps with SIGSTOP (a process that accepts connections and never
// answers); the returned function resumes them and may be called more than once.
func freezeApps(t *testing.T, pods []*mesh.Pod) (thaw func()) {
	t.Helper()
	var frozen []*mesh.Proc
	for _, p := range pods {
		pr := procOf(t, p, "app")
		if err := syscall.Kill(pr.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		frozen = append(frozen, pr)
	}
	return func() {
		for _, pr := range frozen {
			_ = syscall.Kill(pr.Pid, syscall.SIGCONT)
		}
	}
}

// routeTimeout is when the deployed route (VirtualService or HTTPRoute) for method gives up on a
// callee that never answers (mesh.Loaded.RouteTimeout).
func routeTimeout(t *testing.T, ns, name, method string) time.Duration {
	t.Helper()
	d, err := loaded.RouteTimeout(ns, name, method)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// binomialBounds is the two-sided 99.9% interval of a Binomial(n, p) count (normal
// approximation; z = 3.29).
func binomialBounds(n int, p float64) (int, int) {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return int(math.Floor(mean - 3.29*sd)), int(math.Ceil(mean + 3.29*sd))
}

// TestCanarySplit: 2,000 order -> payment calls split between the stable and canary subsets
// within the 99.9% bounds of the deployed weights; a weight change applied to the running mesh
// (as `kubectl apply` would, then `make mesh-up`) moves the split without restarting any app.
func TestCanarySplit(t *testing.T) {
	tn := loaded.Model.Tenants[0]
	orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
	orderPod := podOf(t, orders, "order-service", "")
	paySvc := service(t, payments, "payment-service")
	split := func() (stable, canary int) {
		stableC, canaryC := loaded.RouteCluster(payments, paySvc.Name, "stable", 8080), loaded.RouteCluster(payments, paySvc.Name, "canary", 8080)
		re := `^cluster\.(` + regexp.QuoteMeta(stableC) + `|` + regexp.QuoteMeta(canaryC) + `);\.upstream_rq_total$`
		before := envoyStats(t, orderPod, re)
		const n = 2000
		parallel(n, func(i int) {
			_ = fromPod(orderPod, paySvc, http.MethodGet, "/api/v1/payments?order_id=0192d6a0-0000-7000-8000-00000000000c",
				map[string]string{"x-tenant-id": tn.ID}, "")
		})
		for k, v := range envoyStats(t, orderPod, re) {
			d := int(v - before[k])
			if strings.Contains(k, canaryC+";") {
				canary += d
			} else {
				stable += d
			}
		}
		return stable, canary
	}
	// The promise (deploy/README.md): 10% of payment traffic to the canary.
	const promised = 10
	weight := canaryWeight(t, payments)
	if weight != promised {
		t.Errorf("deploy/ gives the canary %d%%; the promise is %d%%", weight, promised)
	}
	stable, canary := split()
	lo, hi := binomialBounds(stable+canary, float64(promised)/100)
	t.Logf("deployed %d%% canary: %d stable, %d canary of %d (99.9%% bounds for %d%%: %d..%d)", weight, stable, canary, stable+canary, promised, lo, hi)
	if stable+canary < 2000 || canary < lo || canary > hi {
		t.Errorf("canary got %d of %d calls, outside %d..%d for %d%%", canary, stable+canary, lo, hi, promised)
	}

	// Shift to 50/50 live.
	pids := appPids(t)
	applyExtra(t, "canary-50.yaml", withCanaryWeight(t, payments, 50))
	waitRouteWeight(t, orderPod, loaded.RouteCluster(payments, paySvc.Name, "stable", 8080), 50)
	stable, canary = split()
	lo, hi = binomialBounds(stable+canary, 0.5)
	t.Logf("after the change to 50%%: %d stable, %d canary (99.9%% bounds %d..%d)", stable, canary, lo, hi)
	if canary < lo || canary > hi {
		t.Errorf("after the weight change, canary got %d of %d, outside %d..%d for 50%%", canary, stable+canary, lo, hi)
	}
	removeExtra(t, "canary-50.yaml")
	waitRouteWeight(t, orderPod, loaded.RouteCluster(payments, paySvc.Name, "stable", 8080), 100-weight)
	for k, pid := range pids {
		if now := appPids(t)[k]; now != pid {
			t.Errorf("%s restarted during the weight change (pid %d -> %d)", k, pid, now)
		}
	}
}

func appPids(t *testing.T) map[string]int {
	t.Helper()
	st, err := mesh.LoadState(filepath.Join(layout.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k, p := range st.Procs {
		if strings.HasSuffix(k, "/app") && p.Alive() {
			out[k] = p.Pid
		}
	}
	return out
}

// canaryWeight is the deployed weight of payment-service's canary (mesh.Loaded.CanaryWeight).
func canaryWeight(t *testing.T, ns string) int {
	t.Helper()
	w, err := loaded.CanaryWeight(ns)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// withCanaryWeight is deploy/'s payment-service route with the canary at weight w.
func withCanaryWeight(t *testing.T, ns string, w int) []byte {
	t.Helper()
	y, err := loaded.WithCanaryWeight(ns, w)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func applyExtra(t *testing.T, name string, y []byte) {
	t.Helper()
	dir := layout.ExtraDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), y, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(dir, name)) })
	restore(t)
}

func removeExtra(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(layout.ExtraDir(), name)); err != nil {
		t.Fatal(err)
	}
	restore(t)
}

// waitRouteWeight waits until the pod's Envoy routes to the stable cluster with weight w (the
// push reached it).
func waitRouteWeight(t *testing.T, p *mesh.Pod, stable string, w int) {
	t.Helper()
	want := regexp.MustCompile(fmt.Sprintf(`"name": %s,\s*"weight": %d\b`, regexp.QuoteMeta(strconv.Quote(stable)), w))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := mesh.PodClient(p, 5*time.Second).Get("http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs")
		if err == nil {
			if want.MatchString(readAll(resp)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's routes do not show %s after 30 s", p.Key(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTracingSampling: of 2,000 orders through the gateway at the deployed 10%, the traced ones
// are within the binomial 99.9% bounds; every traced order is one trace with the gateway's, the
// sidecars' and the four apps' spans, the proxies' spans tagged tenant, service_type and
// order_id; an untraced order left no span anywhere (its outbox delivery included).
func TestTracingSampling(t *testing.T) {
	base, hosts := gateway(t)
	tenant := tenantIDs()[0]
	const n = 2000
	ids := make([]string, n)
	body := fmt.Sprintf(`{"customer_id":"c-sampling","currency":"EUR","items":[{"sku":%q,"quantity":1}]}`, testSKU)
	parallel(n, func(i int) {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/orders", strings.NewReader(body))
		req.Host = hosts[tenant]
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-tenant-id", tenant)
		req.Header.Set("Idempotency-Key", randomHex(16))
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var o order
		if json.NewDecoder(resp.Body).Decode(&o) == nil && resp.StatusCode == http.StatusCreated {
			ids[i] = o.TraceID
		}
	})
	placed := 0
	for _, id := range ids {
		if id != "" {
			placed++
		}
	}
	if placed < n*99/100 {
		t.Fatalf("only %d of %d orders were placed", placed, n)
	}
	traced := waitTracedSet(t, ids)
	lo, hi := binomialBounds(placed, 0.10)
	t.Logf("%d orders: %d traced (99.9%% bounds for 10%%: %d..%d)", placed, len(traced), lo, hi)
	if len(traced) < lo || len(traced) > hi {
		t.Errorf("%d of %d orders traced, outside %d..%d for 10%%", len(traced), placed, lo, hi)
	}
	ns := loaded.Model.Tenants[indexOfTenant(tenant)]
	orders, payments := ns.NamespaceFor("orders"), ns.NamespaceFor("payments")
	wantServices := []string{gatewayTraceService(), "order-service." + orders, "payment-service." + payments,
		"inventory-service." + orders, "notify-service." + orders, "order-service", "payment-service", "inventory-service", "notify-service"}
	checked := 0
	for id := range traced {
		if checked == 20 {
			break
		}
		checked++
		spans := waitTraceSpans(t, id, wantServices)
		for _, s := range spans {
			if !strings.Contains(s.service, ".") { // an app span
				continue
			}
			for _, tag := range []string{"tenant", "service_type", "order_id"} {
				if s.tags[tag] == "" {
					t.Errorf("trace %s: proxy span %q of %s has no %s tag", id, s.operation, s.service, tag)
				}
			}
		}
	}
	untraced := 0
	for _, id := range ids {
		if id == "" || traced[id] {
			continue
		}
		if untraced == 100 {
			break
		}
		untraced++
		if spans := traceSpans(id); len(spans) > 0 {
			t.Errorf("untraced order %s left %d spans", id, len(spans))
		}
	}
	t.Logf("%d traced orders checked: one trace each with the gateway, 4 sidecars and 4 apps; %d untraced orders left no span", checked, untraced)
}

type span struct {
	service, operation string
	tags               map[string]string
}

func traceSpans(traceID string) []span {
	url := fmt.Sprintf("http://%s:%d/api/traces/%s", loaded.Topology.Jaeger().IP, mesh.JaegerQueryPort, traceID)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var doc struct {
		Data []struct {
			Spans []struct {
				OperationName string `json:"operationName"`
				ProcessID     string `json:"processID"`
				Tags          []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&doc) != nil || len(doc.Data) != 1 {
		return nil
	}
	var out []span
	for _, s := range doc.Data[0].Spans {
		sp := span{service: doc.Data[0].Processes[s.ProcessID].ServiceName, operation: s.OperationName, tags: map[string]string{}}
		for _, tg := range s.Tags {
			sp.tags[tg.Key] = fmt.Sprint(tg.Value)
		}
		out = append(out, sp)
	}
	return out
}

// waitTraceSpans waits until the trace has spans of every wanted service.
func waitTraceSpans(t *testing.T, id string, want []string) []span {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := traceSpans(id)
		have := traceServices(id)
		var missing []string
		for _, w := range want {
			if have[w] == 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return spans
		}
		if time.Now().After(deadline) {
			t.Errorf("trace %s lacks %v after 30 s", id, missing)
			return spans
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitTracedSet returns the ids among ids that Jaeger holds a gateway span for, once that set has
// stopped growing for longer than the proxies' export interval (5 s).
func waitTracedSet(t *testing.T, ids []string) map[string]bool {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		if id != "" {
			want[id] = true
		}
	}
	url := fmt.Sprintf("http://%s:%d/api/traces?service=%s&limit=100000&lookback=1h",
		loaded.Topology.Jaeger().IP, mesh.JaegerQueryPort, gatewayTraceService())
	found, last, stableSince := map[string]bool{}, -1, time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var doc struct {
				Data []struct {
					TraceID string `json:"traceID"`
				} `json:"data"`
			}
			if json.NewDecoder(resp.Body).Decode(&doc) == nil {
				found = map[string]bool{}
				for _, d := range doc.Data {
					if want[d.TraceID] {
						found[d.TraceID] = true
					}
				}
			}
			resp.Body.Close()
		}
		if len(found) != last {
			last, stableSince = len(found), time.Now()
		}
		if time.Since(stableSince) > 7*time.Second {
			return found
		}
		if ctx.Err() != nil {
			t.Fatal("Jaeger did not settle in 90 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
