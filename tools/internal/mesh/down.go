// `make mesh-down`: stops every recorded process (apps first, then PostgreSQL, the proxies,
// Jaeger and the control plane) and removes every recorded namespace, interface, file and
// socket — by the record, nothing else. The pods' iptables rules live in their namespaces and
// go with them. Data (PostgreSQL clusters, the CA) stays in .local/mesh for the next mesh-up.
package mesh

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Down tears the mesh down.
func Down(l Layout, out io.Writer) error {
	st, err := LoadState(l.statePath())
	if err != nil {
		return err
	}
	if st.Empty() {
		fmt.Fprintln(out, "mesh-down: nothing recorded; nothing to stop")
		return nil
	}
	stopped := 0
	// Order: apps, then proxies, then the control plane (so nothing reconnects in between).
	for _, phase := range []func(string) bool{
		func(k string) bool { return strings.HasSuffix(k, "/app") },
		func(k string) bool { return strings.HasSuffix(k, "/envoy") },
		func(k string) bool { return k == keyControlPlane },
	} {
		for _, k := range st.ProcKeys() {
			if !phase(k) {
				continue
			}
			if p := st.Procs[k]; p.Alive() {
				p.Stop(10 * time.Second)
				stopped++
			}
			delete(st.Procs, k)
		}
	}
	var errs []error
	// Host-side veths go before the namespaces: deleting one removes its peer at once, whereas
	// the kernel removes a deleted namespace's interfaces asynchronously — a veth seen a moment
	// ago can vanish before `ip link delete` reaches it.
	for _, v := range st.Veths {
		if err := removeLink(v); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range st.Netns {
		if netnsExists(ns) {
			if err := run("ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if st.Bridge != "" {
		if err := removeLink(st.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range st.EtcNetns {
		if filepath.Dir(d) == etcNetns {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := removeCPUGroups(st); err != nil {
		errs = append(errs, err)
	}
	if st.RunDir != "" && strings.HasPrefix(st.RunDir, "/run/ordermesh-") {
		if err := os.RemoveAll(st.RunDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = st.Save()
		return err
	}
	fmt.Fprintf(out, "mesh-down: stopped %d processes, removed %d network namespaces, %d interfaces and the bridge\n",
		stopped, len(st.Netns), len(st.Veths))
	st.Netns, st.Veths, st.EtcNetns, st.Bridge, st.RunDir, st.Cgroups = nil, nil, nil, "", "", nil
	if err := os.Remove(l.routingPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(l.statePath())
}

// removeLink deletes a host interface; one that is gone (before or during the call) counts as
// removed, since the kernel may take it away with its peer's namespace at any moment.
func removeLink(name string) error {
	if !linkExists(name) {
		return nil
	}
	if err := run("ip", "link", "delete", name); err != nil && linkExists(name) {
		return err
	}
	return nil
}
