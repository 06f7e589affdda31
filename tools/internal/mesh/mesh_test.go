package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// deployDir is the repository's deploy/ (tests run in tools/internal/mesh).
func deployDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../../../deploy")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// copyDeploy copies deploy/ so a test can break it.
func copyDeploy(t *testing.T) string {
	t.Helper()
	src, dst := deployDir(t), filepath.Join(t.TempDir(), "deploy")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestTopologyOfDeploy(t *testing.T) {
	ld, err := Load(deployDir(t), "", DefaultNetwork)
	if err != nil {
		t.Fatal(err)
	}
	top := ld.Topology
	roles := map[Role]int{}
	ips := map[netip.Addr]string{}
	for _, p := range top.Pods {
		roles[p.Role]++
		if prev, dup := ips[p.IP]; dup {
			t.Errorf("%s and %s share %s", prev, p.Key(), p.IP)
		}
		ips[p.IP] = p.Key()
		if !top.Subnet.Contains(p.IP) || p.IP == top.HostIP {
			t.Errorf("%s has %s, outside the pod network or the host's", p.Key(), p.IP)
		}
		if (p.Role == RoleApp || p.Role == RolePostgres) && (!p.Sidecar || p.Labels["security.istio.io/tlsMode"] != "istio") {
			t.Errorf("%s: an injected tenant workload must have a sidecar and tlsMode=istio (labels %v)", p.Key(), p.Labels)
		}
	}
	// Per tenant: order 2, payment 2 + canary 1, inventory 2, notify 2 (apps); postgres in
	// both namespaces; plus the gateway and Jaeger.
	tenants := len(top.Tenants)
	if tenants < 2 || roles[RoleApp] != 9*tenants || roles[RolePostgres] != 2*tenants || roles[RoleGateway] != 1 || roles[RoleJaeger] != 1 {
		t.Errorf("pods by role %v for %d tenants", roles, tenants)
	}
	for _, s := range top.Services {
		if !top.ServiceNet.Contains(s.ClusterIP) {
			t.Errorf("%s has ClusterIP %s outside %s", s.FQDN(), s.ClusterIP, top.ServiceNet)
		}
	}
	hosts := top.Hosts("tenant-a-orders")
	for _, want := range []string{"payment-service.tenant-a-payments.svc.cluster.local", "jaeger-collector.istio-system.svc.cluster.local", " postgres\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts of tenant-a-orders lack %q", want)
		}
	}
	if strings.Contains(top.Hosts("tenant-b-orders"), " postgres.tenant-a-orders.svc.cluster.local postgres.tenant-a-orders.svc postgres.tenant-a-orders postgres\n") {
		t.Error("tenant-b pods resolve the bare name postgres to tenant-a's")
	}
}

func TestLoadRefusesWhatIstiodCannotUse(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"invalid Istio field value", "components/istio-routing/virtualservice-retry-timeout.yaml",
			"timeout: 10s", "timeout: ten-seconds", "VirtualService tenant-a-payments/payment-service"},
		{"route to a host no Service provides", "components/istio-routing/virtualservice-retry-timeout.yaml",
			"host: notify-service.TENANT-orders.svc.cluster.local", "host: notifier.TENANT-orders.svc.cluster.local", "notifier.tenant-a-orders.svc.cluster.local"},
		{"app calling a host no Service provides", "base/order-service/deployment.yaml",
			"http://payment-service.TENANT-payments", "http://payments.TENANT-payments", "payments.tenant-a-payments.svc.cluster.local"},
		{"unknown Kubernetes field", "base/notify-service/service.yaml", "selector:", "selectr:", "Service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDeploy(t)
			path := filepath.Join(dir, c.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), c.old) {
				t.Fatalf("%s no longer contains %q: update the test", c.file, c.old)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Load(dir, "", DefaultNetwork)
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load accepted it (err %v)", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("the error does not name %q:\n%v", c.want, err)
			}
		})
	}
}

func TestContainerEnvResolvesLikeTheKubelet(t *testing.T) {
	top := &Topology{
		Secrets:    map[string]map[string]string{"ns/creds": {"PW": "s3cret", "USER_PW": "u"}},
		ConfigMaps: map[string]map[string]string{"ns/dbs": {"DATABASES": "a b"}},
	}
	c := corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dbs"}}}},
		Env: []corev1.EnvVar{
			{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "PW"}}},
			{Name: "URL", Value: "postgres://u:$(DB_PASSWORD)@h/$(UNDEFINED)/$$(DB_PASSWORD)"},
		},
	}
	env, err := containerEnv(top, "ns", c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DATABASES=a b", "DB_PASSWORD=s3cret", "URL=postgres://u:s3cret@h/$(UNDEFINED)/$(DB_PASSWORD)"}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Errorf("env\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	c.Env[0].ValueFrom.SecretKeyRef.Key = "MISSING"
	if _, err := containerEnv(top, "ns", c); err == nil {
		t.Error("a missing Secret key must be an error, as the kubelet refuses to start the container")
	}
}

func TestBootstrapNamesTheProxy(t *testing.T) {
	ld, err := Load(deployDir(t), "", DefaultNetwork)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLayout("/repo")
	for _, p := range []*Pod{ld.Topology.Gateway(), ld.Topology.Pod("tenant-a-orders", "order-service-0")} {
		b, err := bootstrapJSON(l, p, ld.ProxyOf(p))
		if err != nil {
			t.Fatal(err)
		}
		kind := "sidecar~"
		if p.Role == RoleGateway {
			kind = "router~"
		}
		for _, want := range []string{`"id": "` + kind + p.IP.String() + "~" + p.Name + "." + p.Namespace + "~" + p.Namespace + `.svc.cluster.local"`,
			`"ISTIO_VERSION": "1.31.0"`, `"SERVICE_ACCOUNT": "` + p.ServiceAccount + `"`, l.sdsSocket(p), l.xdsSocket(), `"DELTA_GRPC"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: bootstrap lacks %s", p.Key(), want)
			}
		}
	}
}

// TestCheckoutClosedToThePodUsersIsRefused: a checkout under a directory other users cannot
// enter (a `mktemp -d` copy, mode 0700) is refused up front, naming the directory, instead of
// starting every process and timing out on unreachable Envoys. Needs root (setpriv), as the mesh.
func TestCheckoutClosedToThePodUsersIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, as the local mesh does (setpriv to the pods' users)")
	}
	private, err := os.MkdirTemp("", "closed-checkout-") // mode 0700, as `mktemp -d`
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(private) })
	l := NewLayout(filepath.Join(private, "checkout"))
	if err := os.MkdirAll(filepath.Dir(l.EnvoyBin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.EnvoyBin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = checkUsersReachCheckout(l)
	if err == nil || !strings.Contains(err.Error(), private+" is mode 0700") {
		t.Fatalf("a checkout inside a 0700 directory: got %v, want an error naming %s", err, private)
	}
	if err := os.Chmod(private, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := checkUsersReachCheckout(l); err != nil {
		t.Fatalf("the same checkout once others may enter: %v", err)
	}
}

// CI once failed in mesh-down with "ip link delete omv1: Cannot find device": the veth was
// present when checked and gone (with its peer's namespace) when deleted. An interface that
// is already gone counts as removed; one that is present is removed.
func TestRemoveLinkToleratesAnInterfaceAlreadyGone(t *testing.T) {
	if err := removeLink("omtest-gone"); err != nil {
		t.Fatalf("removing an absent interface: %v", err)
	}
	if err := run("ip", "link", "add", "omtest-dummy", "type", "veth", "peer", "name", "omtest-peer"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run("ip", "link", "delete", "omtest-dummy") })
	if err := removeLink("omtest-dummy"); err != nil {
		t.Fatalf("removing a present interface: %v", err)
	}
	if linkExists("omtest-dummy") {
		t.Fatal("omtest-dummy is still present after removeLink")
	}
}

// A group is created weighted as two CPUs, holds the process moved into it, and is removed —
// the real cgroup v1 cpu controller, as mesh-up, the bench and mesh-down use it.
func TestCPUGroupsHoldTheirProcessesAndAreRemoved(t *testing.T) {
	if !cpuControllerMounted() {
		t.Fatalf("no cgroup v1 cpu controller at %s (the mesh tests run on a machine that has it)", cpuControllerDir)
	}
	l := Layout{RunDir: fmt.Sprintf("/run/ordermesh-test%d", os.Getpid()), StateDir: t.TempDir()}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	if err := JoinCPUGroup(l, LoadGeneratorGroup, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(l.statePath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeCPUGroups(st) })
	dir := l.cpuGroupDir(LoadGeneratorGroup)
	if !slices.Equal(st.Cgroups, []string{dir}) {
		t.Fatalf("recorded %v, want [%s]", st.Cgroups, dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.shares")); err != nil || strings.TrimSpace(string(b)) != "2048" {
		t.Fatalf("cpu.shares = %q, %v; want 2048", b, err)
	}
	if got, want := CPUGroupOf(sleeper.Process.Pid), strings.TrimPrefix(dir, cpuControllerDir); got != want {
		t.Errorf("the process is in %q, want %q", got, want)
	}
	if err := removeCPUGroups(st); err == nil {
		t.Error("a group that still holds a process was removed without an error")
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if err := removeCPUGroups(st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", dir, err)
	}
}
