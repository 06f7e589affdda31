// The bench's load phases around the fixed-rate comparison (bench.go): the closed-loop capacity
// of the same tenant with and without the mesh, and the overload — twice the meshed capacity
// offered open loop, then half of it — with goodput, shed requests, the admitted orders' latency
// and how long latency takes to come back. Each figure is printed beside issue 19's goal with a
// verdict; none is asserted (the bench measures, the tests prove).
package demo

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"ordermesh.local/tools/internal/mesh"
)

// Issue 19's goals, as the bench reads them.
const (
	goalCapacityRatio   = 0.60 // meshed capacity ≥ 60% of the unmeshed
	goalPassMs          = 0.25 // Envoy CPU per proxy pass at ≥ 50% of meshed capacity
	goalAddedP50Ms      = 2.0  // latency the mesh adds at half capacity
	goalAddedP99Ms      = 5.0
	goalGoodputFraction = 0.90 // under 2× overload
	goalAdmittedP99Ms   = 250.0
	goalRecovery        = 5 * time.Second
)

// closedLoop is the orders/s the target confirms with workers each sending its next order
// when the last one is answered, over d after a short warm-up.
func (e *Env) closedLoop(target []string, sku string, workers int, d time.Duration) (float64, error) {
	args := append(append([]string{}, target...), "--concurrency", strconv.Itoa(workers),
		"--duration", seconds(d), "--warmup", "2s", "--skus", sku, "--json", "--timeout", "15s", "--seed", "12")
	s, err := e.loadgenJSON(args)
	if err != nil {
		return 0, err
	}
	return float64(s.Status["201"]) / max(s.ElapsedS, 1e-9), nil
}

// capacity searches the closed loop's throughput: workers doubling from start until another
// doubling adds less than 5% (or 256 workers), 8 s each; the best orders/s and its workers.
func (e *Env) capacity(target []string, sku string, start int) (float64, int, error) {
	best, bestWorkers := 0.0, start
	for workers := start; workers <= 256; workers *= 2 {
		rate, err := e.closedLoop(target, sku, workers, 8*time.Second)
		if err != nil {
			return 0, 0, err
		}
		if rate < best*1.05 {
			break
		}
		best, bestWorkers = max(best, rate), workers
	}
	return best, bestWorkers, nil
}

// gatewayTarget is loadgen's target arguments for tenant's host on the ingress gateway.
func (e *Env) gatewayTarget(tenant string) []string {
	gw := e.Loaded.Topology.Gateway()
	return []string{"--target", fmt.Sprintf("%s=http://%s:%d", tenant, gw.IP, mesh.GatewayPort),
		"--host-header", mesh.TenantHosts(e.Loaded)[tenant], "--allow-remote"}
}

// printCapacity prints both capacities and goal 2's verdict.
func (e *Env) printCapacity(direct, meshed float64, directWorkers, meshWorkers int) {
	ratio := meshed / max(direct, 1e-9)
	e.say("\ncapacity (closed loop, workers doubled until another doubling adds < 5%%; orders confirmed per second):")
	e.say("  without the mesh %.0f/s (%d workers), with it %.0f/s (%d workers) = %.0f%%   goal ≥ %.0f%%: %s",
		direct, directWorkers, meshed, meshWorkers, 100*ratio, 100*goalCapacityRatio, verdict(ratio >= goalCapacityRatio))
}

// overload offers twice the meshed capacity through the gateway for d, then half of it for
// 10 s, and prints goal 4's figures.
func (e *Env) overload(tenant, sku string, capacity float64, normalP99 float64, d time.Duration) error {
	offered := int(2*capacity + 0.5)
	e.say("\noverload: %d orders/s offered for %s (2× the meshed capacity), then %d/s for 10 s", offered, d, int(capacity/2))
	args := append(e.gatewayTarget(tenant), "--rate", strconv.Itoa(offered), "--duration", seconds(d),
		"--skus", sku, "--json", "--timeout", "15s", "--seed", "13")
	cutBefore, err := e.cutShort(tenant)
	if err != nil {
		return err
	}
	over, err := e.loadgenJSON(args)
	if err != nil {
		return err
	}
	cutAfter, err := e.cutShort(tenant)
	if err != nil {
		return err
	}
	recovery, err := e.recovery(tenant, sku, int(capacity/2), normalP99)
	if err != nil {
		return err
	}
	goodput := float64(over.Status["201"]) / max(over.ElapsedS, 1e-9)
	transport := 0
	for _, n := range over.Errors {
		transport += n
	}
	admitted := over.AdmittedMs["p99"]
	e.say("  goodput %.0f orders/s = %.0f%% of capacity   goal ≥ %.0f%%: %s", goodput, 100*goodput/max(capacity, 1e-9),
		100*goalGoodputFraction, verdict(goodput >= goalGoodputFraction*capacity))
	e.say("  admitted orders' latency p50 %.0f ms, p99 %.0f ms   goal p99 ≤ %.0f ms: %s", over.AdmittedMs["p50"], admitted,
		goalAdmittedP99Ms, verdict(admitted <= goalAdmittedP99Ms))
	e.say("  shed with 503: %d (their p99 %.0f ms); unanswered (reset, timeout): %d   goal 0: %s", over.Status["503"],
		over.ShedMs["p99"], transport, verdict(transport == 0))
	cut := cutAfter.minus(cutBefore)
	e.say("  handlers cut short (caller gone or deadline; ON_CALLER_GONE=finish runs them on): %.0f; database sessions opened %.0f, abandoned %.0f   goal 0 discarded: %s",
		cut.handlers, cut.sessions, cut.abandoned, verdict(cut.sessions == 0 && cut.abandoned == 0))
	if recovery < 0 {
		e.say("  latency back to normal (p99 ≤ 2× the %.1f ms of the normal run, every second after): not within 10 s   goal ≤ %s: %s",
			normalP99, goalRecovery, verdict(false))
	} else {
		e.say("  latency back to normal (p99 ≤ 2× the %.1f ms of the normal run, every second after): after %s   goal ≤ %s: %s",
			normalP99, recovery, goalRecovery, verdict(recovery <= goalRecovery))
	}
	return nil
}

// cutShortCounts is what a tenant's apps and databases count of work a caller did not wait for:
// the apps' handlers cancelled before their answer (`http_server_requests_cancelled_total`), and
// PostgreSQL's sessions opened and abandoned (`pg_stat_database`) — a pool opens a session only
// to replace a connection it discarded once it is warm.
type cutShortCounts struct{ handlers, sessions, abandoned float64 }

func (a cutShortCounts) minus(b cutShortCounts) cutShortCounts {
	return cutShortCounts{a.handlers - b.handlers, a.sessions - b.sessions, a.abandoned - b.abandoned}
}

func (e *Env) cutShort(tenant string) (cutShortCounts, error) {
	var c cutShortCounts
	var namespaces []string
	for _, tn := range e.Loaded.Model.Tenants {
		if tn.ID == tenant {
			namespaces = tn.Namespaces
		}
	}
	for _, p := range e.Loaded.Topology.Pods {
		if !slices.Contains(namespaces, p.Namespace) {
			continue
		}
		switch p.Role {
		case mesh.RoleApp:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n, err := mesh.AppCounter(ctx, p, "http_server_requests_cancelled_total")
			cancel()
			if err != nil {
				return c, err
			}
			c.handlers += n
		case mesh.RolePostgres:
			u, err := e.dbURL(p.Namespace, "postgres")
			if err != nil {
				return c, err
			}
			out, err := exec.Command("psql", u, "-tAc", `SELECT coalesce(sum(sessions), 0), coalesce(sum(sessions_abandoned), 0)
				FROM pg_stat_database WHERE datname NOT IN ('postgres', 'template0', 'template1')`).Output()
			if err != nil {
				return c, fmt.Errorf("pg_stat_database in %s: %v", p.Namespace, err)
			}
			var sessions, abandoned float64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%g|%g", &sessions, &abandoned); err != nil {
				return c, fmt.Errorf("pg_stat_database in %s: %q: %v", p.Namespace, out, err)
			}
			c.sessions += sessions
			c.abandoned += abandoned
		}
	}
	return c, nil
}

// recovery runs rate orders/s for 10 s with per-second progress and returns from which second
// on every second's p99 stayed within twice normalP99 (-1 when the last one did not).
func (e *Env) recovery(tenant, sku string, rate int, normalP99 float64) (time.Duration, error) {
	l, err := e.startLoad(tenant, sku, rate, 10*time.Second)
	if err != nil {
		return 0, err
	}
	since := -1
	for t := range l.ticks {
		switch {
		case t.OK > 0 && t.OKP99ms > 2*normalP99:
			since = -1
		case since < 0:
			since = t.T
		}
	}
	if err := l.cmd.Wait(); err != nil {
		return 0, fmt.Errorf("loadgen: %v: %s", err, l.errs.String())
	}
	if since < 0 {
		return -1, nil
	}
	// Second t's line covers (t-1 s, t s]: from second 1 on means at once.
	return time.Duration(max(since-1, 0)) * time.Second, nil
}

// seconds is d as loadgen reads a duration ("90s"; it takes one unit, not Go's "1m30s").
func seconds(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}
