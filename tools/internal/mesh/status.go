// `make mesh-status`: per pod, its processes and its Envoy (state, accepted config versions,
// rejected updates with Envoy's message, active connections, memory).
package mesh

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Status prints the mesh's state; it returns an error when something is down or rejected.
func Status(l Layout, nw Network, out io.Writer) error {
	st, err := LoadState(l.statePath())
	if err != nil {
		return err
	}
	if st.Empty() {
		fmt.Fprintln(out, "mesh: not running (make mesh-up)")
		return fmt.Errorf("not running")
	}
	ld, err := LoadRunning(l, nw)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "routing: %s\n", ld.Routing)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	problems := 0
	cp := st.Procs[keyControlPlane]
	fmt.Fprintf(out, "control plane: %s\n\n", procLine(cp))
	if !cp.Alive() {
		problems++
	}
	fmt.Fprintf(out, "%-20s %-26s %-8s %-9s %-8s %-49s %-8s %-6s %s\n", "NAMESPACE", "POD", "APP", "APP MiB", "ENVOY", "CONFIG (cds / lds)", "REJECTED", "CONNS", "ENVOY MiB")
	for _, p := range ld.Topology.Pods {
		app := st.Procs[p.Key()+"/app"]
		appState, appMiB := "-", "-"
		if p.Role != RoleGateway {
			appState, appMiB = "down", "-"
			if app.Alive() {
				appState, appMiB = "running", fmt.Sprintf("%.1f", float64(app.RSSKiB())/1024)
			} else {
				problems++
			}
		}
		envoy, envState, cfg, rej, conns, envMiB := st.Procs[p.Key()+"/envoy"], "-", "-", "-", "-", "-"
		var msg string
		if p.Proxy {
			s := ReadEnvoy(ctx, l, p)
			envState = s.State
			if s.Err != nil {
				envState = "down"
				problems++
			} else {
				cfg = s.Versions["cds"] + " / " + s.Versions["lds"]
				rej, conns = fmt.Sprint(s.Rejected), fmt.Sprint(s.Connections)
				if s.Rejected > 0 {
					problems++
					msg = s.RejectMessage
				}
			}
			if envoy.Alive() {
				envMiB = fmt.Sprintf("%.1f", float64(envoy.RSSKiB())/1024)
			}
		}
		fmt.Fprintf(out, "%-20s %-26s %-8s %-9s %-8s %-49s %-8s %-6s %s\n", p.Namespace, p.Name, appState, appMiB, envState, cfg, rej, conns, envMiB)
		if msg != "" {
			fmt.Fprintf(out, "    rejected: %s\n", msg)
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s): make mesh-up brings back what is down", problems)
	}
	return nil
}

func procLine(p *Proc) string {
	if !p.Alive() {
		return "down"
	}
	return fmt.Sprintf("running (pid %d, %.0f MiB)", p.Pid, float64(p.RSSKiB())/1024)
}
