// Command mesh is the local mesh: deploy/'s workloads behind real Envoy sidecars configured by
// Istio's own xDS generation, on this machine, without Kubernetes (see tools/README.md).
//
//	mesh up      [-root DIR] [-routing istio|gateway-api]   start or repair it (make mesh-up)
//	mesh down    [-root DIR]   remove everything it created (make mesh-down)
//	mesh status  [-root DIR]   per pod: processes, Envoy state, config, rejections (make mesh-status)
//	mesh serve   [-root DIR]   the control plane process (started by `up`)
//	mesh demo    [-root DIR] -name NAME   a narrated scenario on the running mesh (make mesh-demo)
//	mesh bench   [-root DIR]   the same load with and without the mesh, proxy costs (make bench-mesh)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ordermesh.local/tools/internal/demo"
	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/mesh"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	root := fs.String("root", ".", "the repository root")
	name := fs.String("name", "", "demo: "+strings.Join(demo.Names, ", "))
	rate := fs.Int("rate", 0, "bench: orders/s of the fixed-rate runs (0: half the meshed capacity)")
	dur := fs.Duration("duration", 20*time.Second, "bench: measured time per run")
	workers := fs.Int("workers", 16, "bench: closed-loop workers the capacity search starts from, doubling (0: no capacity or overload phase)")
	overload := fs.Duration("overload", 60*time.Second, "bench: how long 2× the meshed capacity is offered (0: no overload phase)")
	routing := fs.String("routing", "", "up: the routing variant of deploy/, istio or gateway-api (default: the running mesh's, else istio)")
	_ = fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*root)
	if err != nil {
		fail(err)
	}
	l := mesh.NewLayout(abs)
	switch cmd {
	case "up":
		self, err := os.Executable()
		if err != nil {
			fail(err)
		}
		catalog, err := mesh.ReadCatalog(filepath.Join(abs, "scripts", "demo-catalog.txt"))
		fail(err)
		r, err := upRouting(l, *routing)
		fail(err)
		fail(mesh.Up(mesh.UpOptions{Layout: l, Network: mesh.DefaultNetwork, Self: self, Out: os.Stdout, Catalog: catalog, Routing: r}))
	case "down":
		fail(mesh.Down(l, os.Stdout))
	case "status":
		fail(mesh.Status(l, mesh.DefaultNetwork, os.Stdout))
	case "serve":
		fail(mesh.Serve(l, mesh.DefaultNetwork))
	case "demo":
		e := demoEnv(l)
		fail(demo.Run(e, *name))
	case "bench":
		fail(demo.Bench(demoEnv(l), demo.BenchOptions{Rate: *rate, Duration: *dur, Warmup: 3 * time.Second,
			Workers: *workers, Overload: *overload}))
	default:
		usage()
	}
}

// demoEnv is what demo and bench need: the loaded deploy/, this binary (for `mesh up`), the
// release loadgen and check-invariants.
func demoEnv(l mesh.Layout) *demo.Env {
	ld, err := mesh.LoadRunning(l, mesh.DefaultNetwork)
	fail(err)
	self, err := os.Executable()
	fail(err)
	return &demo.Env{Layout: l, Loaded: ld, MeshBin: self, Out: os.Stdout,
		Loadgen: filepath.Join(l.TargetDir, "loadgen"), Checker: filepath.Join(l.TargetDir, "check-invariants")}
}

// upRouting is the variant `mesh up` runs: the one asked for, else the running mesh's (so a
// demo's or a repair's `mesh up` keeps it), else istio.
func upRouting(l mesh.Layout, flag string) (manifest.Routing, error) {
	if flag == "" {
		return mesh.RunningRouting(l)
	}
	return manifest.ParseRouting(flag)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mesh up|down|status|serve|demo|bench [-root DIR] [-name DEMO]")
	os.Exit(2)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "mesh: "+err.Error())
		os.Exit(1)
	}
}
