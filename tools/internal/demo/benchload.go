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
	return []string{"--target", fmt.Sprintf("%s=http://%s:%d", tenant, gw.IP, e.Loaded.Topology.GatewayPort()),
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
	handlers, closed, abandoned := cutAfter.cut(cutBefore)
	e.say("  handlers cut short (caller gone or deadline; ON_CALLER_GONE=finish runs them on): %.0f; database connections closed %.0f (abandoned %.0f)   goal 0 discarded: %s",
		handlers, closed, abandoned, verdict(closed == 0 && abandoned == 0))
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
// PostgreSQL's client sessions — which are open (by backend pid), how many were ever opened
// (`pg_stat_database.sessions`) and abandoned (the client vanished mid-session).
type cutShortCounts struct {
	handlers, opened, abandoned float64
	open                        map[string]bool // "namespace/pid"
}

// cut is what happened between two readings: handlers cut, and database connections closed —
// the open ones gone since, plus those opened and closed in between. A pool that grows opens
// sessions without closing any; a connection discarded (by sqlx after a statement cut
// mid-flight, or anything else) is a session closed.
func (a cutShortCounts) cut(before cutShortCounts) (handlers, closed, abandoned float64) {
	gone, born := 0, 0
	for k := range before.open {
		if !a.open[k] {
			gone++
		}
	}
	for k := range a.open {
		if !before.open[k] {
			born++
		}
	}
	openedAndClosed := max(a.opened-before.opened-float64(born), 0)
	return a.handlers - before.handlers, float64(gone) + openedAndClosed, a.abandoned - before.abandoned
}

const sessionsQuery = `SELECT
  (SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname NOT IN ('postgres', 'template0', 'template1')),
  (SELECT coalesce(sum(sessions_abandoned), 0) FROM pg_stat_database WHERE datname NOT IN ('postgres', 'template0', 'template1')),
  (SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND datname NOT IN ('postgres', 'template0', 'template1'))`

func (e *Env) cutShort(tenant string) (cutShortCounts, error) {
	c := cutShortCounts{open: map[string]bool{}}
	var namespaces []string
	if tn := e.Loaded.Model.Tenants.ByID(tenant); tn != nil {
		namespaces = tn.Namespaces
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
			out, err := exec.Command("psql", u, "-tAc", sessionsQuery).Output()
			if err != nil {
				return c, fmt.Errorf("pg_stat_database in %s: %v", p.Namespace, err)
			}
			fields := strings.Split(strings.TrimSpace(string(out)), "|")
			if len(fields) != 3 {
				return c, fmt.Errorf("pg_stat_database in %s: %q", p.Namespace, out)
			}
			opened, err1 := strconv.ParseFloat(fields[0], 64)
			abandoned, err2 := strconv.ParseFloat(fields[1], 64)
			if err1 != nil || err2 != nil {
				return c, fmt.Errorf("pg_stat_database in %s: %q", p.Namespace, out)
			}
			c.opened += opened
			c.abandoned += abandoned
			for _, pid := range strings.Split(fields[2], ",") {
				if pid != "" {
					c.open[p.Namespace+"/"+pid] = true
				}
			}
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
