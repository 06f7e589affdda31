// The pod network: one Linux network namespace per pod, joined to a private bridge on the host
// by a veth pair, with the pod's IP and a default route through the host (ClusterIPs need a
// route to exist before the sidecar's iptables rules capture them). Names: namespaces
// "om-<index>-<pod>" (readable in `ip netns`), host-side interfaces "omv<index>", the bridge
// "ombr0". Each namespace also gets /etc/netns/<name>/hosts (bind-mounted over /etc/hosts by
// `ip netns exec`), which is how apps resolve Kubernetes Service names to ClusterIPs.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	bridgeName = "ombr0"
	netnsDir   = "/var/run/netns"
	etcNetns   = "/etc/netns"
)

// NetnsName is the network namespace of a pod.
func (p *Pod) NetnsName() string {
	n := fmt.Sprintf("om-%02d-%s", p.Index, p.Name)
	if len(n) > 60 {
		n = n[:60]
	}
	return n
}

// NetnsPath is where the namespace is bound.
func (p *Pod) NetnsPath() string { return filepath.Join(netnsDir, p.NetnsName()) }

func (p *Pod) hostVeth() string { return fmt.Sprintf("omv%d", p.Index) }

// run runs a command and returns its combined output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// ensureBridge creates the bridge with the host's address, once.
func ensureBridge(t *Topology, st *State) error {
	if linkExists(bridgeName) {
		return nil
	}
	st.Bridge = bridgeName
	if err := st.Save(); err != nil {
		return err
	}
	if err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", fmt.Sprintf("%s/%d", t.HostIP, t.Subnet.Bits()), "dev", bridgeName); err != nil {
		return err
	}
	return run("ip", "link", "set", bridgeName, "up")
}

// ensurePodNetwork creates the pod's namespace, veth pair, address, routes and hosts file, and
// for a sidecar pod applies Istio's capture rules; it does nothing for a namespace that exists.
func ensurePodNetwork(t *Topology, p *Pod, st *State, capture func(nsPath string) error) error {
	ns := p.NetnsName()
	if err := os.MkdirAll(filepath.Join(etcNetns, ns), 0o755); err != nil {
		return err
	}
	st.EtcNetns = appendOnce(st.EtcNetns, filepath.Join(etcNetns, ns))
	if err := os.WriteFile(filepath.Join(etcNetns, ns, "hosts"), []byte(t.Hosts(p.Namespace)), 0o644); err != nil {
		return err
	}
	resolv := fmt.Sprintf("search %s.svc.%s svc.%s %s\noptions ndots:5\n", p.Namespace, clusterDomain, clusterDomain, clusterDomain)
	if err := os.WriteFile(filepath.Join(etcNetns, ns, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		return err
	}
	if netnsExists(ns) {
		return nil
	}
	st.Netns = appendOnce(st.Netns, ns)
	st.Veths = appendOnce(st.Veths, p.hostVeth())
	if err := st.Save(); err != nil {
		return err
	}
	veth, peer := p.hostVeth(), p.hostVeth()+"p"
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", ns},
		{"ip", "link", "set", veth, "master", bridgeName},
		{"ip", "link", "set", veth, "up"},
		{"ip", "-n", ns, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", p.IP, t.Subnet.Bits()), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", t.HostIP.String()},
	}
	if p.Role == RoleGateway && t.GatewayPort() < 1024 {
		// As the kube-gateway template's pod securityContext: the non-root proxy binds the
		// listener's port (80).
		steps = append(steps, []string{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("pod %s: %w", p.Key(), err)
		}
	}
	if p.Sidecar {
		if err := capture(p.NetnsPath()); err != nil {
			return fmt.Errorf("pod %s: %w", p.Key(), err)
		}
		out, err := exec.Command("ip", "netns", "exec", ns, "iptables-save", "-t", "nat").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-j ISTIO_OUTPUT") {
			return fmt.Errorf("pod %s: Istio's capture rules are not in its namespace: %v %s", p.Key(), err, out)
		}
	}
	return nil
}

// HostHasCaptureRules reports whether Istio's chains exist in the host's own namespace (they
// must only ever be inside pods).
func HostHasCaptureRules() bool {
	out, _ := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	return strings.Contains(string(out), "ISTIO_")
}

// DialContextIn returns a dial function whose sockets live in the network namespace at nsPath
// (what `kubectl exec` into the pod gives: its loopback, its Envoy admin port). A socket stays
// in the namespace it was created in, so only its creation runs on a thread moved there.
func DialContextIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, nsPath, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering %s: %w", nsPath, err)
	}
	var d net.Dialer
	c, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of serving others
		// from the wrong namespace.
		if c != nil {
			c.Close()
		}
		return nil, errors.Join(dialErr, err)
	}
	runtime.UnlockOSThread()
	return c, dialErr
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
