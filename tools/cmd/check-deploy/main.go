// Command check-deploy verifies deploy/ with Kubernetes' and Istio's own code plus the
// promises deploy/ makes (see tools/README.md). It prints one line per check and exits 1 on any failure.
//
//	check-deploy [-deploy DIR] [-format text|json] [-json FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ordermesh.local/tools/internal/checkdeploy"
)

func main() {
	deployDir := flag.String("deploy", "deploy", "the deploy/ directory (overlays/<tenant>, mesh/)")
	format := flag.String("format", "text", "stdout format: text or json")
	jsonFile := flag.String("json", "", "also write the JSON report to this file")
	flag.Parse()
	if *format != "text" && *format != "json" {
		fmt.Fprintln(os.Stderr, "check-deploy: -format must be text or json")
		os.Exit(2)
	}

	r, err := checkdeploy.Run(*deployDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check-deploy:", err)
		os.Exit(2)
	}
	if *format == "json" {
		err = r.WriteJSON(os.Stdout)
	} else {
		err = r.WriteText(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "check-deploy:", err)
		os.Exit(2)
	}
	if *jsonFile != "" {
		if err := os.MkdirAll(filepath.Dir(*jsonFile), 0o755); err == nil {
			var f *os.File
			if f, err = os.Create(*jsonFile); err == nil {
				err = r.WriteJSON(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "check-deploy: writing JSON report:", err)
			os.Exit(2)
		}
	}
	if !r.OK {
		os.Exit(1)
	}
}
