// Tests of the demos' pure parts: loadgen's progress lines, the chart, the canary weights.
package demo

import (
	"strings"
	"testing"
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
