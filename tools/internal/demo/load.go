// The demos' load: loadgen's open loop through the ingress gateway with --progress, its
// per-second lines parsed and printed as a text chart next to the scenario's own figure, and
// scripted events fired at their second while the load runs.
package demo

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"ordermesh.local/tools/internal/mesh"
)

// Tick is one loadgen --progress line: the requests answered in second T.
type Tick struct {
	T                          int
	Answered, OK, S5xx, Errors int
	P50ms, P99ms               float64
	OKP99ms                    float64 // the 2xx answers' alone
}

// parseProgress reads "progress t=3s answered=20 ok=19 5xx=1 errors=0 p50_ms=12.3 p99_ms=40.1 ok_p99_ms=38.2".
func parseProgress(line string) (Tick, bool) {
	f := strings.Fields(line)
	if len(f) < 7 || f[0] != "progress" {
		return Tick{}, false
	}
	var t Tick
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Tick{}, false
		}
		v = strings.TrimSuffix(v, "s")
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Tick{}, false
		}
		switch k {
		case "t":
			t.T = int(n)
		case "answered":
			t.Answered = int(n)
		case "ok":
			t.OK = int(n)
		case "5xx":
			t.S5xx = int(n)
		case "errors":
			t.Errors = int(n)
		case "p50_ms":
			t.P50ms = n
		case "p99_ms":
			t.P99ms = n
		case "ok_p99_ms":
			t.OKP99ms = n
		}
	}
	return t, true
}

// chartLine draws one second: a bar of answers (█ 2xx, ▒ 5xx, x errors; scale: rate = 25
// cells), the counts, the latencies and the scenario's figure.
func chartLine(t Tick, rate int, figure string) string {
	cells := func(n int) int {
		if rate <= 0 {
			return 0
		}
		return (n*25 + rate - 1) / rate
	}
	bar := strings.Repeat("█", cells(t.OK)) + strings.Repeat("▒", cells(t.S5xx)) + strings.Repeat("x", cells(t.Errors))
	if r := []rune(bar); len(r) > 30 {
		bar = string(r[:29]) + "…"
	}
	return fmt.Sprintf("%3ds %-30s %3d/s 5xx %3d err %3d  p50 %6.1fms p99 %7.1fms 2xx p99 %7.1fms │ %s",
		t.T, bar, t.Answered, t.S5xx, t.Errors, t.P50ms, t.P99ms, t.OKP99ms, figure)
}

// event happens at second At of the load.
type event struct {
	At   int
	Say  string
	Do   func() (string, error)
	done bool
}

// loadRun is one loadgen process.
type loadRun struct {
	cmd     *exec.Cmd
	ticks   chan Tick
	summary bytes.Buffer
	errs    bytes.Buffer
}

// startLoad starts loadgen against tenant's host on the gateway: rate orders/s for d.
func (e *Env) startLoad(tenant, sku string, rate int, d time.Duration) (*loadRun, error) {
	if mesh.TenantHosts(e.Loaded)[tenant] == "" {
		return nil, fmt.Errorf("no gateway host for %s", tenant)
	}
	args := append(e.gatewayTarget(tenant), "--rate", strconv.Itoa(rate), "--duration", seconds(d),
		"--skus", sku, "--timeout", "15s", "--progress", "--seed", "8")
	return e.startLoadgen(args)
}

func (e *Env) startLoadgen(args []string) (*loadRun, error) {
	l := &loadRun{cmd: exec.Command(e.Loadgen, args...), ticks: make(chan Tick, 16)}
	l.cmd.Stdout = &l.summary
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := e.startInLoadGeneratorGroup(l.cmd); err != nil {
		return nil, err
	}
	go func() {
		defer close(l.ticks)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if t, ok := parseProgress(sc.Text()); ok {
				l.ticks <- t
			} else {
				l.errs.WriteString(sc.Text() + "\n")
			}
		}
	}()
	return l, nil
}

// drive prints a chart line per second until the load ends, firing events at their second
// (each in the background: a `mesh up` takes seconds, the chart goes on), then loadgen's summary.
func (e *Env) drive(l *loadRun, rate int, figure func() string, events []*event) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for t := range l.ticks {
		for _, ev := range events {
			if ev.done || ev.At > t.T {
				continue
			}
			ev.done = true
			e.say("     ▶ %s", ev.Say)
			wg.Add(1)
			go func(ev *event) {
				defer wg.Done()
				msg, err := ev.Do()
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err != nil {
					msg = "FAILED: " + err.Error()
				}
				if msg != "" {
					e.say("     ◀ %s", msg)
				}
			}(ev)
		}
		e.say("%s", chartLine(t, rate, figure()))
	}
	wg.Wait()
	runErr := l.cmd.Wait()
	e.say("\nloadgen's summary:\n%s", indent(l.summary.String()))
	if runErr != nil {
		return fmt.Errorf("loadgen: %v: %s", runErr, l.errs.String())
	}
	return firstErr
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// demoSKU is a fresh SKU per run, seeded with stock in the tenant, so the stock invariant
// (initial = available + committed) can be checked for it exactly.
func (e *Env) demoSKU(tenant string, stock int64) (string, error) {
	sku := fmt.Sprintf("DEMO-%d", time.Now().Unix()%1_000_000_000)
	tn := e.Loaded.Model.Tenants.ByID(tenant)
	if tn == nil {
		return "", fmt.Errorf("no tenant %s", tenant)
	}
	inv := e.podsOf(tn.NamespaceFor("orders"), "inventory-service", "")
	if len(inv) == 0 {
		return "", fmt.Errorf("no inventory pod in %s", tenant)
	}
	if err := mesh.SetStock(e.Loaded.Topology, inv[0], sku, stock, 1999); err != nil {
		return "", err
	}
	e.seeded = append(e.seeded, seeded{tenant: tenant, sku: sku, stock: stock})
	return sku, nil
}

// startInLoadGeneratorGroup starts a loadgen in the load generator's cgroup: it stands for
// clients on other machines, so it must not wait for a core behind the pods it measures
// (mesh/cpu.go).
func (e *Env) startInLoadGeneratorGroup(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if err := mesh.JoinCPUGroup(e.Layout, mesh.LoadGeneratorGroup, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}
