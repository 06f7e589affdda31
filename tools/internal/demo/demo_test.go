// Tests of the demos' pure parts: loadgen's progress lines, the chart, the canary weights.
package demo

import (
	"encoding/xml"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/mesh"
)

func TestParseProgress(t *testing.T) {
	got, ok := parseProgress("progress t=3s answered=20 ok=18 5xx=1 errors=1 p50_ms=12.3 p99_ms=40.1 ok_p99_ms=38.5")
	want := Tick{T: 3, Answered: 20, OK: 18, S5xx: 1, Errors: 1, P50ms: 12.3, P99ms: 40.1, OKP99ms: 38.5}
	if !ok || got != want {
		t.Fatalf("got %+v %v, want %+v", got, ok, want)
	}
	for _, bad := range []string{"", "loadgen: seeded", "progress t=x answered=1 ok=1 5xx=0 errors=0 p50_ms=1 p99_ms=1"} {
		if _, ok := parseProgress(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestChartLineScalesToTheRate(t *testing.T) {
	line := chartLine(Tick{T: 7, Answered: 20, OK: 16, S5xx: 4}, 20, "fig")
	if !strings.Contains(line, strings.Repeat("█", 20)+strings.Repeat("▒", 5)+" ") || !strings.HasSuffix(line, "│ fig") {
		t.Errorf("chart line %q", line)
	}
	if long := chartLine(Tick{OK: 100}, 20, ""); strings.Count(long, "█") > 29 {
		t.Errorf("bar not capped: %q", long)
	}
}

func TestDelta(t *testing.T) {
	d := delta()
	if d(10) != 0 || d(15) != 5 || d(15) != 0 {
		t.Error("delta is not per-call increments")
	}
}

// The sweep's chart is well-formed SVG with one line per series, its points placed on the axes'
// scale (the largest total at the top of a 1-2-5 scale, the largest rate at the right).
func TestSweepChart(t *testing.T) {
	plain := []sweepPoint{{rate: 40, total: 4}, {rate: 80, total: 3.5}, {rate: 120, total: 3.2}}
	meshed := []sweepPoint{{rate: 40, envoys: 7, total: 14}, {rate: 80, envoys: 6, total: 12}, {rate: 120, envoys: 5, total: 11}}
	svg := sweepSVG(plain, meshed)
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if n := strings.Count(svg, "<polyline"); n != 3 {
		t.Errorf("%d lines, want 3 (without, with, the Envoys)", n)
	}
	// y axis 0..20 ms over 310 px from y=350: 14 ms at 350-310*14/20 = 133; x axis 0..200/s over
	// 560 px from x=60: 40/s at 172.
	if !strings.Contains(svg, `<circle cx="172.0" cy="133.0"`) {
		t.Errorf("the meshed 40/s point is not at (172, 133):\n%s", svg)
	}
	for v, want := range map[float64]float64{0.3: 1, 1: 1, 3.2: 5, 14: 20, 120: 200, 500: 500} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%g) = %g, want %g", v, got, want)
		}
	}
}

// Every demo has its graph, a URL of make observe's Prometheus whose query decodes back intact.
func TestEveryDemoHasAPrometheusGraph(t *testing.T) {
	for _, name := range Names {
		q := graphs[name]
		if q == "" {
			t.Errorf("demo %s has no graph", name)
			continue
		}
		u, err := url.Parse(prometheusGraph(q))
		if err != nil || u.Query().Get("g0.expr") != q || u.Path != "/graph" {
			t.Errorf("demo %s: %q does not carry its query (%v)", name, prometheusGraph(q), err)
		}
	}
}

func TestCutCountsClosedConnectionsNotPoolGrowth(t *testing.T) {
	open := func(pids ...string) map[string]bool {
		m := map[string]bool{}
		for _, p := range pids {
			m["ns/"+p] = true
		}
		return m
	}
	before := cutShortCounts{handlers: 4, opened: 10, open: open("1", "2", "3")}
	grown := cutShortCounts{handlers: 4, opened: 12, open: open("1", "2", "3", "4", "5")}
	if h, closed, _ := grown.cut(before); h != 0 || closed != 0 {
		t.Fatalf("a pool that grew: %v handlers, %v closed; want 0, 0", h, closed)
	}
	// 3 closed; 4 and 5 opened and still open; one more opened and closed in between.
	churned := cutShortCounts{handlers: 7, opened: 13, abandoned: 1, open: open("1", "2", "4", "5")}
	if h, closed, abandoned := churned.cut(before); h != 3 || closed != 2 || abandoned != 1 {
		t.Fatalf("churned: %v handlers, %v closed, %v abandoned; want 3, 2, 1", h, closed, abandoned)
	}
}

// The canary and circuit-breaker graphs select payment-service's stable and canary clusters in
// either routing variant (subset clusters, or the per-version Services' clusters), and nothing
// else of tenant-a's.
func TestPaymentGraphsMatchBothVariantsClusters(t *testing.T) {
	deploy, err := filepath.Abs("../../../deploy")
	if err != nil {
		t.Fatal(err)
	}
	matchers := regexp.MustCompile(`cluster_name=~"([^"]*)"`)
	selects := func(q, cluster string) bool {
		for _, m := range matchers.FindAllStringSubmatch(q, -1) {
			if !regexp.MustCompile(`^(?:` + m[1] + `)$`).MatchString(cluster) {
				return false
			}
		}
		return true
	}
	const ns = "tenant-a-payments"
	for _, routing := range manifest.Routings {
		ld, err := mesh.LoadRouting(deploy, "", mesh.DefaultNetwork, routing)
		if err != nil {
			t.Fatal(err)
		}
		stable, canary := ld.RouteCluster(ns, "payment-service", "stable", 8080), ld.RouteCluster(ns, "payment-service", "canary", 8080)
		inventory := ld.RouteCluster("tenant-a-orders", "inventory-service", "stable", 8080)
		for _, c := range []struct {
			graph, cluster string
			want           bool
		}{
			{"canary", stable, true}, {"canary", canary, true}, {"canary", inventory, false},
			{"circuit-breaker", stable, true}, {"circuit-breaker", inventory, false},
		} {
			if got := selects(graphs[c.graph], c.cluster); got != c.want {
				t.Errorf("%s: graph %s selects %s: %v, want %v", routing, c.graph, c.cluster, got, c.want)
			}
		}
	}
}
