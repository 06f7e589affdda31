// `make bench-mesh`: the same open-loop order load without the mesh and with it, in one run, and
// what the proxies cost. Without the mesh = tenant-a's four release binaries started on the
// host's loopback with the pods' own environment, calling each other directly and their
// databases (the mesh's PostgreSQL pods) over unix sockets; with the mesh = through the ingress
// gateway and every sidecar. Printed: p50/p99 of both and the difference, Envoy CPU per order
// and per proxied request (from /proc/<pid>/stat of the recorded Envoy processes), split into
// the gateway, the database connections and the HTTP passes, the HTTP pass against a bare
// Envoy pass measured at the same rate (barepass.go), vCPU per 1,000 proxied requests/s, proxy
// and control-plane RSS, and how long a config change takes to reach every proxy that routes it.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/mesh"
)

// BenchOptions size the benchmark.
type BenchOptions struct {
	Rate     int // orders/s of the fixed-rate comparison; 0: half the meshed capacity
	Duration time.Duration
	Warmup   time.Duration
	Workers  int           // closed-loop workers the capacity search starts from; 0: no capacity or overload phase
	Overload time.Duration // how long twice the meshed capacity is offered; 0: no overload phase
}

// summary is the part of loadgen --json the bench reads.
type summary struct {
	Requests   int                `json:"requests"`
	ElapsedS   float64            `json:"elapsed_s"`
	Status     map[string]int     `json:"status"`
	Errors     map[string]int     `json:"errors"`
	LatencyMs  map[string]float64 `json:"latency_ms"`
	AdmittedMs map[string]float64 `json:"admitted_latency_ms"`
	ShedMs     map[string]float64 `json:"shed_latency_ms"`
}

// Bench runs the benchmark and prints the table.
func Bench(e *Env, o BenchOptions) error {
	tn := e.tenantA()
	sku, err := e.demoSKU(tn.ID, 1_000_000)
	if err != nil {
		return err
	}
	direct, stop, err := e.startDirect(tn.NamespaceFor("orders"), tn.NamespaceFor("payments"))
	defer stop()
	if err != nil {
		return err
	}
	var capDirect, capMesh float64
	var directWorkers, meshWorkers int
	if o.Workers > 0 {
		if capDirect, directWorkers, err = e.capacity([]string{"--target", tn.ID + "=" + direct}, sku, o.Workers); err != nil {
			return err
		}
		if capMesh, meshWorkers, err = e.capacity(e.gatewayTarget(tn.ID), sku, o.Workers); err != nil {
			return err
		}
		if o.Rate == 0 {
			o.Rate = max(int(capMesh/2+0.5), 1)
		}
	}
	if o.Rate <= 0 {
		return fmt.Errorf("bench-mesh: a rate, or workers to measure the capacity it is half of")
	}
	e.say("bench-mesh: %d orders/s open loop, %s after %s warm-up, tenant %s, %d cores (shared)", o.Rate, o.Duration, o.Warmup, tn.ID, numCPU())
	base := []string{"--rate", strconv.Itoa(o.Rate), "--duration", seconds(o.Duration), "--warmup", seconds(o.Warmup),
		"--skus", sku, "--json", "--seed", "11", "--timeout", "15s"}
	idlePlain, err := e.idleRate(tn.ID, true)
	if err != nil {
		return err
	}
	before, err := e.classTicks(tn.ID, true)
	if err != nil {
		return err
	}
	t0 := time.Now()
	plain, err := e.loadgenJSON(append([]string{"--target", tn.ID + "=" + direct}, base...))
	if err != nil {
		return err
	}
	after, err := e.classTicks(tn.ID, true)
	if err != nil {
		return err
	}
	plainCPU := after.minus(before).minus(idlePlain.times(time.Since(t0).Seconds()))
	var plainSweep, meshSweep []sweepPoint
	if o.Workers > 0 {
		if plainSweep, err = e.sweep(tn.ID, true, []string{"--target", tn.ID + "=" + direct}, sku, sweepRates(capMesh), idlePlain); err != nil {
			return err
		}
	}
	stop()
	rq0, err := e.proxiedRequests()
	if err != nil {
		return err
	}
	idleMesh, err := e.idleRate(tn.ID, false)
	if err != nil {
		return err
	}
	before, err = e.classTicks(tn.ID, false)
	if err != nil {
		return err
	}
	t0 = time.Now()
	meshed, err := e.loadgenJSON(append(e.gatewayTarget(tn.ID), base...))
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	after, err = e.classTicks(tn.ID, false)
	if err != nil {
		return err
	}
	meshCPU := after.minus(before).minus(idleMesh.times(wall.Seconds()))
	rq1, err := e.proxiedRequests()
	if err != nil {
		return err
	}
	handshakes := e.handshakes()
	if o.Workers > 0 {
		if meshSweep, err = e.sweep(tn.ID, false, e.gatewayTarget(tn.ID), sku, sweepRates(capMesh), idleMesh); err != nil {
			return err
		}
	}
	e.printLatency(plain, meshed)
	e.printSplit(plainCPU, plain.Requests, meshCPU, meshed.Requests)
	proxied, busyProxies := servedBetween(rq0, rq1)
	perPass, httpPass := e.printCost(meshCPU, proxied, meshed.Requests, wall)
	if err := e.printBarePass(httpPass, proxied/wall.Seconds(), busyProxies); err != nil {
		return err
	}
	e.say("  mTLS handshakes since the mesh started, per proxied request: %.3f (%.0f handshakes; connections are pooled and reused)", handshakes/max(sumValues(rq1), 1), handshakes)
	if o.Workers > 0 {
		e.printCapacity(capDirect, capMesh, directWorkers, meshWorkers)
		e.say("  the runs at a fixed rate above offered %d orders/s = %.0f%% of the meshed capacity", o.Rate, 100*float64(o.Rate)/max(capMesh, 1e-9))
	}
	e.say("\nat %d orders/s:", o.Rate)
	e.say("  Envoy CPU per proxy pass %.0f µs (without the database proxying %.0f µs)   goal ≤ %.0f µs: %s",
		perPass, httpPass, 1000*goalPassMs, verdict(perPass <= 1000*goalPassMs))
	e.say("  proxies' CPU per order %.1f× the apps'   goal ≤ 1×: %s", meshCPU.envoys/max(meshCPU.apps, 1e-9), verdict(meshCPU.envoys <= meshCPU.apps))
	addedP50, addedP99 := meshed.LatencyMs["p50"]-plain.LatencyMs["p50"], meshed.LatencyMs["p99"]-plain.LatencyMs["p99"]
	e.say("  latency added p50 %+.1f ms, p99 %+.1f ms   goal ≤ %.0f / %.0f ms: %s", addedP50, addedP99, goalAddedP50Ms, goalAddedP99Ms,
		verdict(addedP50 <= goalAddedP50Ms && addedP99 <= goalAddedP99Ms))
	if o.Workers > 0 {
		if _, err := e.printSweep(plainSweep, meshSweep); err != nil {
			return err
		}
	}
	if o.Workers > 0 && o.Overload > 0 {
		if err := e.overload(tn.ID, sku, capMesh, meshed.LatencyMs["p99"], o.Overload); err != nil {
			return err
		}
	}
	if err := e.printMemory(); err != nil {
		return err
	}
	return e.benchPush(tn.NamespaceFor("payments"))
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func (e *Env) loadgenJSON(args []string) (summary, error) {
	var s summary
	var out, stderr bytes.Buffer
	cmd := exec.Command(e.Loadgen, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := e.startInLoadGeneratorGroup(cmd); err != nil {
		return s, err
	}
	if err := cmd.Wait(); err != nil {
		return s, fmt.Errorf("loadgen %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return s, json.Unmarshal(out.Bytes(), &s)
}

func (e *Env) printLatency(plain, meshed summary) {
	e.say("\n%-34s %10s %10s %10s %10s", "order latency (POST /api/v1/orders)", "orders", "p50 ms", "p90 ms", "p99 ms")
	row := func(name string, s summary) {
		e.say("%-34s %10d %10.2f %10.2f %10.2f   status %v", name, s.Requests, s.LatencyMs["p50"], s.LatencyMs["p90"], s.LatencyMs["p99"], s.Status)
	}
	row("without the mesh (loopback)", plain)
	row("with the mesh (gateway+sidecars)", meshed)
	e.say("%-34s %10s %+10.2f %+10.2f %+10.2f", "added by the mesh", "", meshed.LatencyMs["p50"]-plain.LatencyMs["p50"],
		meshed.LatencyMs["p90"]-plain.LatencyMs["p90"], meshed.LatencyMs["p99"]-plain.LatencyMs["p99"])
}

// printCost prints what the proxies cost and returns, in µs, every Envoy's CPU per proxied HTTP
// request (issue 19's "per proxy pass") and an HTTP pass without the database proxying.
func (e *Env) printCost(cpu cpuSplit, proxied float64, orders int, wall time.Duration) (perPass, httpPass float64) {
	hz := 100.0 // USER_HZ on Linux
	cpuSec := cpu.envoys / hz
	perOrder := func(ticks float64) float64 { return 1e6 * ticks / hz / float64(max(orders, 1)) }
	e.say("\nproxy CPU (every Envoy, /proc/<pid>/stat utime+stime over the meshed run, %s, idle rate subtracted):", wall.Round(time.Millisecond))
	e.say("  %.2f CPU-s; %.0f µs per order; %.0f proxied HTTP requests (%.1f per order), %.0f µs each",
		cpuSec, perOrder(cpu.envoys), proxied, proxied/float64(max(orders, 1)), 1e6*cpuSec/max(proxied, 1))
	rps := proxied / wall.Seconds()
	e.say("  %.3f vCPU per 1,000 proxied requests/s (Istio's published figure: ≈0.20 vCPU per 1,000 rps per sidecar)",
		(cpuSec/wall.Seconds())/max(rps/1000, 1e-9))
	// The figure above charges the database connections' proxying to the HTTP requests. The
	// PostgreSQL pods' sidecars proxy nothing else; the apps' sidecars carry the same bytes
	// through the same mTLS on the other end of each connection, so twice theirs estimates it.
	db := 2 * perOrder(cpu.dbSidecars)
	httpPasses := max(proxied, 1)
	e.say("  per order: gateway %.0f µs; database connections ≈ %.0f µs (PostgreSQL pods' sidecars %.0f µs, as much again estimated for the apps' ends); HTTP passes the rest",
		perOrder(cpu.gateway), db, perOrder(cpu.dbSidecars))
	pass := (perOrder(cpu.envoys) - db) * float64(max(orders, 1)) / httpPasses
	e.say("  an HTTP pass without the database proxying: %.0f µs (Istio's published figure: ≈200 µs per pass at 1,000 rps)", pass)
	return 1e6 * cpuSec / max(proxied, 1), pass
}

// printBarePass measures a bare Envoy mTLS pass (barepass.go) at the rate each of the httpProxies
// that served the run's HTTP requests saw, and prints the mesh's pass against it.
func (e *Env) printBarePass(meshPass, proxiedPerSecond float64, httpProxies int) error {
	rate := proxiedPerSecond / float64(max(httpProxies, 1))
	bare, err := e.measureBarePass(rate, 4, 15*time.Second, xds.Concurrency(e.Loaded.Mesh.GetDefaultConfig()))
	if err != nil {
		return err
	}
	floor := (bare.client + bare.server) / 2
	e.say("\nthe floor: a bare Envoy mTLS pass (same build and workers, no filters but the router; client + server Envoy, 4 keep-alive connections)")
	e.say("  at %.0f requests/s, the rate each of the mesh's %d HTTP proxies just saw: client %.0f µs, server %.0f µs per request",
		bare.rate, httpProxies, bare.client, bare.server)
	e.say("  the mesh's HTTP pass (%.0f µs) costs %.1f× a bare pass at the same rate; the rest of a pass's price is this machine's at that rate",
		meshPass, meshPass/max(floor, 1))
	return nil
}

// proxiedRequests is the HTTP requests each Envoy's listeners served (downstream_rq_total, the
// admin listener excluded), by pod.
func (e *Env) proxiedRequests() (map[string]float64, error) {
	out := map[string]float64{}
	for _, p := range e.Loaded.Topology.Pods {
		if !p.Proxy {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, err := mesh.EnvoyStats(ctx, p, `^http\..*\.downstream_rq_total$`)
		cancel()
		if err != nil {
			return nil, err
		}
		for name, v := range m {
			if !strings.HasPrefix(name, "http.admin.") {
				out[p.Key()] += v
			}
		}
	}
	return out, nil
}

// servedBetween is how many requests the proxies served between two proxiedRequests readings,
// and how many proxies served any.
func servedBetween(before, after map[string]float64) (requests float64, proxies int) {
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			requests += d
			proxies++
		}
	}
	return requests, proxies
}

// cpuTicks is a process's utime+stime from /proc/<pid>/stat (fields 14 and 15).
func cpuTicks(pid int) float64 { return procStatPair(pid, 11) }

// reapedTicks is the CPU of the children a process has reaped: cutime+cstime (fields 16, 17).
func reapedTicks(pid int) float64 { return procStatPair(pid, 13) }

// procStatPair adds two consecutive /proc/<pid>/stat fields, counted from the one after the state.
func procStatPair(pid, i int) float64 {
	f := statFields(pid)
	if len(f) < i+2 {
		return 0
	}
	a, _ := strconv.ParseFloat(f[i], 64)
	b, _ := strconv.ParseFloat(f[i+1], 64)
	return a + b
}

// isGatewayProc reports whether a process key is one of the ingress gateway pods' (the
// istio-ingressgateway pod, or the Gateway API Gateway's <gateway>-istio pods).
func (e *Env) isGatewayProc(key string) bool {
	for _, p := range e.Loaded.Topology.Pods {
		if p.Role == mesh.RoleGateway && strings.HasPrefix(key, p.Key()+"/") {
			return true
		}
	}
	return false
}

func (e *Env) printMemory() error {
	st, err := e.state()
	if err != nil {
		return err
	}
	var sidecars, gateway []int
	for k, p := range st.Procs {
		if !strings.HasSuffix(k, "/envoy") || !p.Alive() {
			continue
		}
		if e.isGatewayProc(k) {
			gateway = append(gateway, p.RSSKiB())
		} else {
			sidecars = append(sidecars, p.RSSKiB())
		}
	}
	sort.Ints(sidecars)
	if len(sidecars) == 0 {
		return fmt.Errorf("no sidecar running")
	}
	total := 0
	for _, r := range sidecars {
		total += r
	}
	e.say("\nmemory (VmRSS): %d sidecars: median %.1f MiB, max %.1f MiB, total %.0f MiB; gateway %v KiB; control plane (istiod's generation + ADS + SDS, one process) %.1f MiB (Istio's figure: ≈60 MB per sidecar)",
		len(sidecars), float64(sidecars[len(sidecars)/2])/1024, float64(sidecars[len(sidecars)-1])/1024, float64(total)/1024,
		gateway, float64(st.Procs["control-plane"].RSSKiB())/1024)
	return nil
}

// benchPush times a config change (payment's canary weight) from `mesh up` starting until every
// proxy that routes payment-service in that namespace shows it in its route configuration.
func (e *Env) benchPush(payments string) error {
	host := e.Loaded.RouteCluster(payments, "payment-service", "stable", 8080)
	var watchers []*mesh.Pod
	for _, p := range e.Loaded.Topology.Pods {
		if p.Proxy && strings.Contains(routeDump(p), host) {
			watchers = append(watchers, p)
		}
	}
	y, err := e.Loaded.WithCanaryWeight(payments, 20)
	if err != nil {
		return err
	}
	const extra = "bench-push.yaml"
	defer func() {
		_ = e.removeExtra(extra)
		_, _ = e.meshUp()
	}()
	if err := e.writeExtra(extra, y); err != nil {
		return err
	}
	t0 := time.Now()
	got := make([]time.Duration, len(watchers))
	var wg sync.WaitGroup
	for i, p := range watchers {
		wg.Add(1)
		go func(i int, p *mesh.Pod) {
			defer wg.Done()
			for time.Since(t0) < 60*time.Second {
				if d := routeDump(p); strings.Contains(d, `"weight": 80`) && strings.Contains(d, host) {
					got[i] = time.Since(t0)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}(i, p)
	}
	upTook, err := e.meshUp()
	if err != nil {
		return err
	}
	wg.Wait()
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) == 0 || got[0] == 0 {
		return fmt.Errorf("the weight change never reached a proxy")
	}
	e.say("\nconfig push: canary weight changed via .local/mesh/extra + mesh up (which took %s: load deploy/, SIGHUP, wait for every Envoy):", upTook.Round(time.Millisecond))
	e.say("  %d proxies route payment-service; first had it after %s, median %s, last %s (from the start of mesh up; polled every 50 ms)",
		len(got), got[0].Round(time.Millisecond), got[len(got)/2].Round(time.Millisecond), got[len(got)-1].Round(time.Millisecond))
	return nil
}

// routeDump is the pod's Envoy's dynamic route configuration ("" when unreachable).
func routeDump(p *mesh.Pod) string {
	c := mesh.PodClient(p, 3*time.Second)
	resp, err := c.Get("http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// startDirect starts one replica of each of the tenant's apps on the host's loopback with its
// pod's environment, rewired: listen on a free port, call the others directly, reach the
// databases over the PostgreSQL pods' unix sockets, no peer-namespace check (no sidecar to vouch
// for callers, as in `make up`). Returns order-service's URL and a stop function.
func (e *Env) startDirect(orders, payments string) (string, func(), error) {
	apps := map[string]*mesh.Pod{}
	for _, ns := range []string{orders, payments} {
		for _, p := range e.Loaded.Topology.Pods {
			if p.Namespace == ns && p.Role == mesh.RoleApp && p.Labels["version"] != "canary" && apps[p.Labels["app"]] == nil {
				apps[p.Labels["app"]] = p
			}
		}
	}
	ports := map[string]int{}
	for app := range apps {
		port, err := freePort()
		if err != nil {
			return "", func() {}, err
		}
		ports[app] = port
	}
	var procs []*os.Process
	stop := func() {
		for _, p := range procs {
			_ = p.Kill()
			_, _ = p.Wait()
		}
		procs = nil
	}
	logDir := filepath.Join(e.Layout.StateDir, "bench-direct")
	_ = os.MkdirAll(logDir, 0o755)
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		env, err := e.directEnv(apps[app], ports)
		if err != nil {
			return "", stop, err
		}
		log, err := os.Create(filepath.Join(logDir, app+".log"))
		if err != nil {
			return "", stop, err
		}
		cmd := exec.Command(filepath.Join(e.Layout.TargetDir, apps[app].Workload.Template.Spec.Containers[0].Name))
		cmd.Env, cmd.Stdout, cmd.Stderr = env, log, log
		// A session of its own, as the mesh starts every process: each app is its own scheduling
		// autogroup, weighed like the meshed apps it is compared with (mesh/cpu.go).
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
		if err := cmd.Start(); err != nil {
			log.Close()
			return "", stop, err
		}
		log.Close()
		procs = append(procs, cmd.Process)
	}
	for app, port := range ports {
		if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", port), 30*time.Second); err != nil {
			return "", stop, fmt.Errorf("%s without the mesh: %v (log in %s)", app, err, logDir)
		}
	}
	e.directPids = nil
	for _, p := range procs {
		e.directPids = append(e.directPids, p.Pid)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports["order-service"]), stop, nil
}

// directEnv rewires a pod's environment for the host (see startDirect).
func (e *Env) directEnv(p *mesh.Pod, ports map[string]int) ([]string, error) {
	env, err := mesh.AppEnv(e.Loaded.Topology, p)
	if err != nil {
		return nil, err
	}
	out := []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "LISTEN_ADDR":
			v = fmt.Sprintf("127.0.0.1:%d", ports[p.Labels["app"]])
		case k == "TRUSTED_PEER_NAMESPACES" || k == "REQUIRE_PEER_IDENTITY":
			// Without sidecars nothing vouches for a caller: the apps run as `make up` runs them.
			continue
		case k == "DATABASE_URL":
			if v, err = e.socketURL(v); err != nil {
				return nil, err
			}
		case k == "OTEL_EXPORTER_OTLP_ENDPOINT":
			v = fmt.Sprintf("http://%s:4318", e.Loaded.Topology.Jaeger().IP)
		case strings.HasSuffix(k, "_SERVICE_URL"):
			app := strings.ToLower(strings.TrimSuffix(k, "_SERVICE_URL")) + "-service"
			v = fmt.Sprintf("http://127.0.0.1:%d", ports[app])
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// socketURL turns postgres://u:p@postgres.<ns>.svc…:5432/db into the same database over the
// unix socket of <ns>'s PostgreSQL pod.
func (e *Env) socketURL(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %v", err)
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 2 {
		return "", fmt.Errorf("DATABASE_URL host %q is not a Service name", u.Hostname())
	}
	socket, err := e.dbURL(parts[1], strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return "", err
	}
	s, _ := url.Parse(socket)
	s.User = u.User
	return s.String(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %d", u, resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuSplit is CPU clock ticks by class. envoys is every Envoy; gateway and dbSidecars are parts of it:
// the ingress gateway, and the sidecars of the PostgreSQL pods, which proxy nothing but the
// apps' database connections (TCP over mTLS).
type cpuSplit struct{ apps, envoys, postgres, gateway, dbSidecars float64 }

func (a cpuSplit) minus(b cpuSplit) cpuSplit {
	return cpuSplit{a.apps - b.apps, a.envoys - b.envoys, a.postgres - b.postgres, a.gateway - b.gateway, a.dbSidecars - b.dbSidecars}
}

func (a cpuSplit) times(f float64) cpuSplit {
	return cpuSplit{a.apps * f, a.envoys * f, a.postgres * f, a.gateway * f, a.dbSidecars * f}
}

// idleRate is what the processes burn per second with no orders (timers, polling, stats
// flushes), measured over 5 s, so that a run's CPU per order counts only what the orders cost.
func (e *Env) idleRate(tenant string, direct bool) (cpuSplit, error) {
	before, err := e.classTicks(tenant, direct)
	if err != nil {
		return before, err
	}
	t0 := time.Now()
	time.Sleep(5 * time.Second)
	after, err := e.classTicks(tenant, direct)
	return after.minus(before).times(1 / time.Since(t0).Seconds()), err
}

// classTicks sums CPU ticks of the tenant's apps (the host copies when direct is set, else the
// pods'), of every Envoy, and of the mesh's PostgreSQL pods (each postmaster, its live children
// and the children it has reaped).
func (e *Env) classTicks(tenant string, direct bool) (cpuSplit, error) {
	var c cpuSplit
	st, err := e.state()
	if err != nil {
		return c, err
	}
	if direct {
		for _, pid := range e.directPids {
			c.apps += cpuTicks(pid)
		}
	}
	for k, p := range st.Procs {
		if !p.Alive() {
			continue
		}
		switch {
		case strings.HasSuffix(k, "/envoy"):
			ticks := cpuTicks(p.Pid)
			c.envoys += ticks
			switch {
			case e.isGatewayProc(k):
				c.gateway += ticks
			case strings.Contains(k, "/postgres-"):
				c.dbSidecars += ticks
			}
		case strings.Contains(k, "/postgres-") && strings.HasSuffix(k, "/app"):
			c.postgres += treeTicks(p.Pid)
		case !direct && strings.HasPrefix(k, tenant+"-") && strings.HasSuffix(k, "/app"):
			c.apps += cpuTicks(p.Pid)
		}
	}
	return c, nil
}

// treeTicks is a process's CPU plus its live children's and the reaped children's it collected
// (cutime+cstime): a PostgreSQL postmaster and its backends.
func treeTicks(pid int) float64 {
	total := cpuTicks(pid) + reapedTicks(pid)
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid(child) == pid {
			total += cpuTicks(child)
		}
	}
	return total
}

func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// printSplit prints CPU per order by kind of process, without and with the mesh: the sidecars'
// share next to the apps' own, measured on the same machine in the same run.
func (e *Env) printSplit(plain cpuSplit, plainOrders int, meshed cpuSplit, meshOrders int) {
	per := func(ticks float64, orders int) float64 { return 1000 * ticks / 100 / float64(max(orders, 1)) }
	e.say("\nCPU ms per order (/proc utime+stime, idle rate subtracted) %7s %10s %10s %10s", "apps", "Envoys", "PostgreSQL", "total")
	row := func(name string, c cpuSplit, n int) {
		e.say("%-55s %10.2f %10.2f %10.2f %10.2f", name, per(c.apps, n), per(c.envoys, n), per(c.postgres, n),
			per(c.apps+c.envoys+c.postgres, n))
	}
	row("without the mesh", plain, plainOrders)
	row("with the mesh", meshed, meshOrders)
	if meshed.apps > 0 {
		e.say("the proxies cost %.1f× the apps' own CPU per order", meshed.envoys/meshed.apps)
	}
}

// handshakes is the TLS handshakes every Envoy's outbound clusters made since it started.
func (e *Env) handshakes() float64 {
	var proxies []*mesh.Pod
	for _, p := range e.Loaded.Topology.Pods {
		if p.Proxy {
			proxies = append(proxies, p)
		}
	}
	var n float64
	for _, v := range statSum(proxies, `^cluster\.outbound\|.*\.ssl\.handshake$`) {
		n += v
	}
	return n
}
