// CPU for what stands outside the pods' contention on this one machine: the load generator
// (clients on other machines) and the ingress gateway (in a cluster, a Deployment of its own,
// usually on nodes of its own) each run in a cgroup weighted as two CPUs, the machine's size.
// Everything else — apps, sidecars, PostgreSQL, the control plane — shares the CPU the way the
// kernel shares it by default: every process here is started in a session of its own, so each
// is a scheduling autogroup with the same weight.
//
// Why: under overload the gateway is where excess requests must be refused, cheaply and at
// once. As one autogroup among forty, it got a fortieth of a saturated machine and answered its
// refusals (and queued its admissions) seconds late, and the load generator fell seconds behind
// its own schedule — measuring this machine's scheduler, not the mesh (README § The mesh under
// load). Weighing every pod by its CPU request instead, as the kubelet does, was tried and not
// kept: on two cores it cost 14% more CPU per order and starved the gateway behind the pods'
// groups.
//
// cgroup v1's cpu controller (this workplace's kernel mounts it at /sys/fs/cgroup/cpu). Where it
// is not mounted, mesh-up says so and the gateway and the load generator run as ordinary
// processes.
package mesh

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cpuControllerDir is where cgroup v1's cpu controller is mounted.
const cpuControllerDir = "/sys/fs/cgroup/cpu"

// outsideShares weighs a group as two CPUs (cpu.shares 1024 per CPU, as the kubelet counts;
// a process's autogroup at nice 0 weighs 1024).
const outsideShares = 2048

// Groups of what stands outside the pods.
const (
	GatewayGroup       = "ingress-gateway"
	LoadGeneratorGroup = "load-generator"
)

// cpuGroupDir is group name's directory, named after the checkout's RunDir so that two
// checkouts never share one.
func (l Layout) cpuGroupDir(name string) string {
	return filepath.Join(cpuControllerDir, filepath.Base(l.RunDir)+"."+name)
}

// cpuControllerMounted reports whether cgroup v1's cpu controller is there to use.
func cpuControllerMounted() bool {
	_, err := os.Stat(filepath.Join(cpuControllerDir, "cpu.shares"))
	return err == nil
}

// JoinCPUGroup moves pid (all its threads; children it forks later follow) into group name,
// creating it when missing; recorded in the state, so mesh-down removes it. Without the cpu
// controller it does nothing.
func JoinCPUGroup(l Layout, name string, pid int) error {
	if !cpuControllerMounted() {
		return nil
	}
	st, err := LoadState(l.statePath())
	if err != nil {
		return err
	}
	dir := l.cpuGroupDir(name)
	if err := ensureCPUGroup(st, dir); err != nil {
		return err
	}
	return joinCPUGroup(dir, pid)
}

// ensureCPUGroup creates dir (recorded in st before it exists) weighted as two CPUs.
func ensureCPUGroup(st *State, dir string) error {
	if !slices.Contains(st.Cgroups, dir) {
		st.Cgroups = append(st.Cgroups, dir)
		if err := st.Save(); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating cgroup %s: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.Itoa(outsideShares)), 0o644)
}

func joinCPUGroup(dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("moving pid %d into cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// joinGatewayGroup puts the gateway's Envoy in its group, or says once why it cannot.
func joinGatewayGroup(l Layout, st *State, pid int, out io.Writer) error {
	if !cpuControllerMounted() {
		fmt.Fprintf(out, "mesh-up: no cgroup v1 cpu controller at %s: the gateway shares the CPU like every other process\n", cpuControllerDir)
		return nil
	}
	dir := l.cpuGroupDir(GatewayGroup)
	if err := ensureCPUGroup(st, dir); err != nil {
		return err
	}
	return joinCPUGroup(dir, pid)
}

// CPUGroupOf is the cpu controller's cgroup of pid ("/ordermesh-1a2b3c4d.ingress-gateway"; "/"
// for none of ours).
func CPUGroupOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-id:controller-list:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "cpu") {
			return parts[2]
		}
	}
	return ""
}

// removeCPUGroups removes the recorded groups; one still holding a process (something not
// stopped) is an error that names it.
func removeCPUGroups(st *State) error {
	var errs []error
	for _, d := range st.Cgroups {
		if !strings.HasPrefix(d, cpuControllerDir+"/ordermesh-") {
			continue // never anything but our own
		}
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
