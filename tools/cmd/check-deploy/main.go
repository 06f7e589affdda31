// Command check-deploy verifies deploy/ with Kubernetes' and Istio's own code plus the
// promises deploy/ makes (see tools/README.md). It prints one line per check and exits 1 on any failure.
//
//	check-deploy [-deploy DIR] [-routing istio|gateway-api|both] [-format text|json] [-json FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ordermesh.local/tools/internal/checkdeploy"
	"ordermesh.local/tools/internal/manifest"
)

// parseRoutings reads -routing: "both" is every variant, else one of them.
func parseRoutings(s string) ([]manifest.Routing, error) {
	if s == "both" {
		return manifest.Routings, nil
	}
	r, err := manifest.ParseRouting(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("-routing %q: want istio, gateway-api or both", s)
	}
	return []manifest.Routing{r}, nil
}

func main() {
	deployDir := flag.String("deploy", "deploy", "the deploy/ directory (overlays/<tenant>, mesh/)")
	format := flag.String("format", "text", "stdout format: text or json")
	jsonFile := flag.String("json", "", "also write the JSON report to this file")
	routing := flag.String("routing", "both", "the routing variant(s) to check: istio, gateway-api or both")
	flag.Parse()
	if *format != "text" && *format != "json" {
		fmt.Fprintln(os.Stderr, "check-deploy: -format must be text or json")
		os.Exit(2)
	}
	routings, err := parseRoutings(*routing)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check-deploy:", err)
		os.Exit(2)
	}

	r, err := checkdeploy.Run(*deployDir, routings...)
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
