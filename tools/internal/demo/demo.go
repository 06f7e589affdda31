// Package demo is `make mesh-demo NAME=…` and `make bench-mesh`: bounded, narrated scenarios on
// the running local mesh. Load comes from loadgen (--progress, one line per second) through the
// ingress gateway; each second the demo prints a chart line — orders answered, 5xx, errors,
// p50/p99 — with the scenario's own figure read from the proxies (canary share, ejected hosts,
// retries), while scripted events (a weight change, a killed or frozen app) happen live. Every
// demo ends with DESIGN.md's invariants checked in SQL on the mesh's databases by
// check-invariants (tests/src/invariants.rs, the end-to-end tests' own checks).
//
// Files: load.go (loadgen and the chart), scenarios.go (canary, circuit-breaker, retries),
// isolation.go (tenant-isolation), overload.go (overload), invariants.go (the SQL check at the
// end); the bench: bench.go (fixed rate, without and with the mesh), benchload.go (capacity and
// overload), sweep.go (CPU per order by rate), barepass.go (one bare Envoy mTLS pass).
package demo

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"ordermesh.local/tools/internal/mesh"
)

// Env is what a demo runs against.
type Env struct {
	Layout  mesh.Layout
	Loaded  *mesh.Loaded
	MeshBin string // `mesh up` is run again to apply extra objects or restart a killed app
	Loadgen string // target/release/loadgen
	Checker string // target/release/check-invariants
	Out     io.Writer

	seeded     []seeded // SKUs this run seeded: their stock is checked exactly
	directPids []int    // the bench's apps started without the mesh
}

type seeded struct {
	tenant, sku string
	stock       int64
}

// Names lists the demos.
var Names = []string{"canary", "circuit-breaker", "retries", "tenant-isolation", "overload"}

// Run runs the named demo.
func Run(e *Env, name string) error {
	demos := map[string]func(*Env) error{
		"canary": canary, "circuit-breaker": circuitBreaker, "retries": retries, "tenant-isolation": tenantIsolation,
		"overload": overload,
	}
	d, ok := demos[name]
	if !ok {
		return fmt.Errorf("no demo %q (have: %s)", name, strings.Join(Names, ", "))
	}
	if q := graphs[name]; q != "" {
		e.say("with make observe running, the graph of it: %s\n", prometheusGraph(q))
	}
	if err := d(e); err != nil {
		return err
	}
	return e.checkInvariants()
}

// graphs is each demo's query for Prometheus' graph page (README § "Watching it"), tenant-a,
// over 30 s windows: the demos last under a minute.
var graphs = map[string]string{
	"canary":           `sum by (cluster_name) (rate(envoy_cluster_upstream_rq_completed{namespace="tenant-a-orders", cluster_name=~"outbound.*payment-service.*", cluster_name=~".*(stable|canary).*"}[30s]))`,
	"circuit-breaker":  `sum by (pod) (envoy_cluster_outlier_detection_ejections_active{namespace="tenant-a-orders", cluster_name=~"outbound.*payment-service.*", cluster_name=~".*stable.*"})`,
	"retries":          `sum(rate(envoy_cluster_upstream_rq_timeout{namespace="tenant-a-payments", cluster_name=~".*inventory-service.*"}[30s]))`,
	"tenant-isolation": `sum by (namespace, app) (increase(envoy_http_rbac{authz_enforce_result="denied"}[1m]))`,
	"overload":         `sum by (cluster_name) (rate(envoy_cluster_upstream_rq_active_overflow{namespace="istio-system", cluster_name=~"outbound.*order-service.tenant-a-orders.*"}[30s]))`,
}

// prometheusGraph is the URL of `make observe`'s graph page for query q, over 5 minutes.
func prometheusGraph(q string) string {
	port := os.Getenv("OBSERVE_PORT")
	if port == "" {
		port = "9090"
	}
	return fmt.Sprintf("http://127.0.0.1:%s/graph?g0.expr=%s&g0.tab=0&g0.range_input=5m", port, url.QueryEscape(q))
}

func (e *Env) say(format string, args ...any) {
	fmt.Fprintf(e.Out, format+"\n", args...)
}

// meshUp runs `mesh up` again (it applies .local/mesh/extra/ and restarts what died, restarting
// no running app); its output goes to a log file, the demo says how long it took.
func (e *Env) meshUp() (time.Duration, error) {
	t0 := time.Now()
	logPath := filepath.Join(e.Layout.StateDir, "demo-mesh-up.log")
	f, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command(e.MeshBin, "up", "-root", e.Layout.Root)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("mesh up: %v (log: %s)", err, logPath)
	}
	return time.Since(t0), nil
}

// writeExtra puts an Istio object into the extra directory (applied by the next mesh up).
func (e *Env) writeExtra(name string, y []byte) error {
	if err := os.MkdirAll(e.Layout.ExtraDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.Layout.ExtraDir(), name), y, 0o644)
}

func (e *Env) removeExtra(name string) error {
	err := os.Remove(filepath.Join(e.Layout.ExtraDir(), name))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// state reads the mesh's record of its processes.
func (e *Env) state() (*mesh.State, error) {
	return mesh.LoadState(filepath.Join(e.Layout.StateDir, "state.json"))
}

// podsOf lists the pods of app in namespace ns (version "" = any), in topology order.
func (e *Env) podsOf(ns, app, version string) []*mesh.Pod {
	var out []*mesh.Pod
	for _, p := range e.Loaded.Topology.Pods {
		if p.Namespace == ns && p.Labels["app"] == app && (version == "" || p.Labels["version"] == version) {
			out = append(out, p)
		}
	}
	return out
}

// statSum sums a stat regexp over pods; a pod that does not answer counts nothing.
func statSum(pods []*mesh.Pod, re string) map[string]float64 {
	return sumOver(pods, func(ctx context.Context, p *mesh.Pod) (map[string]float64, error) {
		return mesh.EnvoyStats(ctx, p, re)
	})
}

// sumOver adds up, key by key, what read answers for each pod within 2 s; a pod that does not
// answer counts nothing.
func sumOver[V int | float64](pods []*mesh.Pod, read func(context.Context, *mesh.Pod) (map[string]V, error)) map[string]V {
	out := map[string]V{}
	for _, p := range pods {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := read(ctx, p)
		cancel()
		if err != nil {
			continue
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}
