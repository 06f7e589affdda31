// The bench's rate sweep: CPU per order at a quarter, a half and three quarters of the meshed
// capacity, without and with the mesh, printed as a table and drawn as an SVG chart
// (.local/bench/cpu-per-order.svg) — where the proxies' cost per order goes as the rate grows.
package demo

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sweepFractions are the rates of the sweep, as fractions of the meshed capacity.
var sweepFractions = []float64{0.25, 0.5, 0.75}

const sweepRun = 10 * time.Second

// sweepPoint is one rate's CPU per order, in ms, split like printSplit's rows.
type sweepPoint struct {
	rate                          int
	apps, envoys, postgres, total float64
}

// sweep runs target at each rate of the sweep and returns CPU ms per order at each; idle is
// what the measured processes burn per second with no orders.
func (e *Env) sweep(tenant string, direct bool, target []string, sku string, rates []int, idle cpuSplit) ([]sweepPoint, error) {
	var out []sweepPoint
	for _, rate := range rates {
		before, err := e.classTicks(tenant, direct)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		s, err := e.loadgenJSON(append(append([]string{}, target...), "--rate", strconv.Itoa(rate), "--duration", seconds(sweepRun),
			"--warmup", "2s", "--skus", sku, "--json", "--seed", "14", "--timeout", "15s"))
		if err != nil {
			return nil, err
		}
		after, err := e.classTicks(tenant, direct)
		if err != nil {
			return nil, err
		}
		c := after.minus(before).minus(idle.times(time.Since(t0).Seconds()))
		// Ticks are 1/100 s; the warm-up's orders are not counted, its CPU is: count its orders too.
		orders := float64(s.Requests) * (sweepRun + 2*time.Second).Seconds() / sweepRun.Seconds()
		per := func(ticks float64) float64 { return 1000 * ticks / 100 / max(orders, 1) }
		out = append(out, sweepPoint{rate: rate, apps: per(c.apps), envoys: per(c.envoys), postgres: per(c.postgres),
			total: per(c.apps + c.envoys + c.postgres)})
	}
	return out, nil
}

// sweepRates are the sweep's rates for a meshed capacity of capMesh orders/s.
func sweepRates(capMesh float64) []int {
	var rates []int
	for _, f := range sweepFractions {
		rates = append(rates, max(int(f*capMesh+0.5), 1))
	}
	return rates
}

// printSweep prints the table and writes the chart; it returns the chart's path.
func (e *Env) printSweep(plain, meshed []sweepPoint) (string, error) {
	e.say("\nCPU ms per order against the rate (%s per point, idle rate subtracted):", sweepRun)
	e.say("  %12s %26s %38s", "orders/s", "without the mesh: apps / PG / total", "with it: apps / Envoys / PG / total")
	for i := range plain {
		p, m := plain[i], meshed[i]
		e.say("  %12d %10.2f / %4.2f / %5.2f %16.2f / %5.2f / %4.2f / %5.2f", p.rate, p.apps, p.postgres, p.total, m.apps, m.envoys, m.postgres, m.total)
	}
	path := filepath.Join(e.Layout.Root, ".local", "bench", "cpu-per-order.svg")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(sweepSVG(plain, meshed)), 0o644); err != nil {
		return "", err
	}
	e.say("  chart: %s", path)
	return path, nil
}

// sweepSVG draws CPU per order (y, ms) against the rate (x, orders/s): the total without the
// mesh, the total with it, and the meshed Envoys' part, each a line with its points.
func sweepSVG(plain, meshed []sweepPoint) string {
	const w, h, left, right, top, bottom = 640.0, 400.0, 60.0, 20.0, 40.0, 50.0
	maxX, maxY := 0.0, 0.0
	for _, ps := range [][]sweepPoint{plain, meshed} {
		for _, p := range ps {
			maxX, maxY = math.Max(maxX, float64(p.rate)), math.Max(maxY, p.total)
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)
	x := func(v float64) float64 { return left + (w-left-right)*v/maxX }
	y := func(v float64) float64 { return h - bottom - (h-top-bottom)*v/maxY }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14">CPU per order against the rate (make bench-mesh)</text>`+"\n", left)
	for i := 0; i <= 4; i++ {
		vx, vy := maxX*float64(i)/4, maxY*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(vy), w-right, y(vy))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, y(vy)+4, vy)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", x(vx), h-bottom+18, vx)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">orders/s</text>`+"\n", left+(w-left-right)/2, h-12)
	fmt.Fprintf(&b, `<text x="14" y="%.1f" transform="rotate(-90 14 %.1f)" text-anchor="middle">CPU ms per order</text>`+"\n", top+(h-top-bottom)/2, top+(h-top-bottom)/2)
	series := []struct {
		name, color string
		value       func(sweepPoint) float64
		points      []sweepPoint
	}{
		{"without the mesh (total)", "#1f77b4", func(p sweepPoint) float64 { return p.total }, plain},
		{"with the mesh (total)", "#d62728", func(p sweepPoint) float64 { return p.total }, meshed},
		{"with the mesh: the Envoys", "#ff7f0e", func(p sweepPoint) float64 { return p.envoys }, meshed},
	}
	for i, s := range series {
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(p.rate)), y(s.value(p))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for _, p := range s.points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%d orders/s: %.2f ms</title></circle>`+"\n",
				x(float64(p.rate)), y(s.value(p)), s.color, p.rate, s.value(p))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", left+10, top+16+16*float64(i), s.color, s.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
