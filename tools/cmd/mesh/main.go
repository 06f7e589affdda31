// Command mesh is the local mesh: deploy/'s workloads behind real Envoy sidecars configured by
// Istio's own xDS generation, on this machine, without Kubernetes (see tools/README.md).
//
//	mesh up      [-root DIR]   start or repair it (make mesh-up)
//	mesh down    [-root DIR]   remove everything it created (make mesh-down)
//	mesh status  [-root DIR]   per pod: processes, Envoy state, config, rejections (make mesh-status)
//	mesh serve   [-root DIR]   the control plane process (started by `up`)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ordermesh.local/tools/internal/mesh"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	root := fs.String("root", ".", "the repository root")
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
		fail(mesh.Up(mesh.UpOptions{Layout: l, Network: mesh.DefaultNetwork, Self: self, Out: os.Stdout, Catalog: catalog}))
	case "down":
		fail(mesh.Down(l, os.Stdout))
	case "status":
		fail(mesh.Status(l, mesh.DefaultNetwork, os.Stdout))
	case "serve":
		fail(mesh.Serve(l, mesh.DefaultNetwork))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mesh up|down|status|serve [-root DIR]")
	os.Exit(2)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "mesh: "+err.Error())
		os.Exit(1)
	}
}
