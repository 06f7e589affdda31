//go:build mesh

// Package meshtest checks the local mesh on live traffic (make test-mesh, part of make test).
// TestMain brings the mesh up with the real binaries, runs the suite twice (state_test.go: each
// pass orders an SKU of its own, the demo catalog drained in between; the first pass on deploy/'s
// istio routing variant, the second on its gateway-api variant), and takes the mesh down
// again, checking that nothing it created is left (namespaces, interfaces, sockets, processes).
// The tests send real requests through the gateway and the sidecars. Needs root, Envoy and the
// release build.
package meshtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/mesh"
)

var (
	layout mesh.Layout
	loaded *mesh.Loaded
)

func TestMain(m *testing.M) {
	root, bin := os.Getenv("MESH_ROOT"), os.Getenv("MESH_BIN")
	if root == "" || bin == "" {
		fmt.Fprintln(os.Stderr, "meshtest: set MESH_ROOT and MESH_BIN (make test-mesh does)")
		os.Exit(2)
	}
	layout = mesh.NewLayout(root)
	passes, err := testPasses()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := runPasses(m, passes, func(r manifest.Routing) error { return meshUpWith(bin, root, r) })
	_ = runMesh(bin, root, "status")
	if os.Getenv("MESH_KEEP") == "1" { // for running single tests against a mesh left up
		fmt.Println("MESH_KEEP=1: the mesh stays up (make mesh-down removes it)")
		os.Exit(code)
	}
	if err := runMesh(bin, root, "down"); err != nil {
		fmt.Fprintln(os.Stderr, "mesh down:", err)
		code = 1
	}
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: mesh down left behind:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	} else {
		fmt.Println("mesh down left no namespace, interface, socket or process behind")
	}
	os.Exit(code)
}

// meshUpWith brings the mesh up in routing variant r and loads deploy/ as it runs: a mesh up in
// the other variant is taken down first (its pods and Services differ).
func meshUpWith(bin, root string, r manifest.Routing) error {
	running, err := mesh.RunningRouting(layout)
	if err != nil {
		return err
	}
	if running != r {
		if err := runMesh(bin, root, "down"); err != nil {
			return fmt.Errorf("mesh down: %w", err)
		}
	}
	if loaded, err = mesh.LoadRouting(layout.DeployDir, layout.ExtraDir(), mesh.DefaultNetwork, r); err != nil {
		return err
	}
	t0 := time.Now()
	if err := runMesh(bin, root, "up", "-routing", string(r)); err != nil {
		return fmt.Errorf("mesh up: %w", err)
	}
	fmt.Printf("mesh up (routing %s) took %s\n", r, time.Since(t0).Round(time.Millisecond))
	return nil
}

func runMesh(bin, root, cmd string, args ...string) error {
	c := exec.Command(bin, append([]string{cmd, "-root", root}, args...)...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	return c.Run()
}

// leftovers lists what the mesh creates that still exists.
func leftovers() []string {
	var out []string
	nss, _ := os.ReadDir("/var/run/netns")
	for _, n := range nss {
		if strings.HasPrefix(n.Name(), "om-") {
			out = append(out, "network namespace "+n.Name())
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "ombr") || strings.HasPrefix(i.Name, "omv") {
			out = append(out, "interface "+i.Name)
		}
	}
	if mesh.HostHasCaptureRules() {
		out = append(out, "Istio iptables chains in the host's namespace")
	}
	if _, err := os.Stat(layout.RunDir); err == nil {
		out = append(out, "socket directory "+layout.RunDir)
	}
	groups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/cpu", filepath.Base(layout.RunDir)+".*"))
	for _, g := range groups {
		out = append(out, "cgroup "+g)
	}
	etc, _ := os.ReadDir("/etc/netns")
	for _, e := range etc {
		if strings.HasPrefix(e.Name(), "om-") {
			out = append(out, "/etc/netns/"+e.Name())
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, layout.EnvoyBin) || strings.Contains(cmd, filepath.Join(layout.StateDir, "postgres")) ||
			(strings.Contains(cmd, " serve -root "+layout.Root) && strings.Contains(cmd, "mesh")) {
			out = append(out, "process "+strings.TrimSpace(cmd))
		}
	}
	return out
}

// The ingress gateway runs in its cgroup weighted as two CPUs (mesh/cpu.go); every app,
// sidecar and PostgreSQL in none of the mesh's.
func TestOnlyTheGatewayHasACPUGroupOfItsOwn(t *testing.T) {
	st, err := mesh.LoadState(filepath.Join(layout.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	gatewayGroup := "/" + filepath.Base(layout.RunDir) + "." + mesh.GatewayGroup
	for key, proc := range st.Procs {
		got := mesh.CPUGroupOf(proc.Pid)
		switch {
		case isGatewayProc(key):
			if got != gatewayGroup {
				t.Errorf("the gateway (%s, pid %d) runs in cgroup %q, want %q", key, proc.Pid, got, gatewayGroup)
			}
		case strings.Contains(got, "ordermesh-"):
			t.Errorf("%s (pid %d) runs in the mesh's cgroup %q: only the gateway has one", key, proc.Pid, got)
		}
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", gatewayGroup, "cpu.shares"))
	if err != nil || strings.TrimSpace(string(b)) != "2048" {
		t.Errorf("the gateway's cpu.shares = %q, %v; want 2048 (two CPUs)", b, err)
	}
}

// isGatewayProc reports whether a process key is one of the ingress gateway pods'.
func isGatewayProc(key string) bool {
	for _, p := range loaded.Topology.Pods {
		if p.Role == mesh.RoleGateway && strings.HasPrefix(key, p.Key()+"/") {
			return true
		}
	}
	return false
}

// gatewayTraceService is the gateway's service name in traces (<canonical name>.<namespace>:
// istio-ingressgateway's, or the Gateway API Gateway's <gateway>-istio).
func gatewayTraceService() string {
	gw := loaded.Topology.Gateway()
	return gw.Labels["service.istio.io/canonical-name"] + "." + gw.Namespace
}

// gateway returns the gateway's URL and each tenant's Host.
func gateway(t *testing.T) (string, map[string]string) {
	gw := loaded.Topology.Gateway()
	hosts := mesh.TenantHosts(loaded)
	if len(hosts) == 0 {
		t.Fatal("no tenant host on the Gateway")
	}
	return fmt.Sprintf("http://%s:%d", gw.IP, loaded.Topology.GatewayPort()), hosts
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type order struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	TraceID string `json:"trace_id"`
}

// placeOrder posts an order through the gateway with a W3C trace context naming traceID and an
// x-client-trace-id, with which Envoy traces the request whatever its 10% random sampling
// decides (Envoy's client_sampling, 100% in Istio's configuration).
func placeOrder(t *testing.T, base, host, tenant, traceID string) (int, order, string) {
	return placeOrderWith(t, base, host, tenant, traceID, nil)
}

// placeOrderWith is placeOrder with extra headers.
func placeOrderWith(t *testing.T, base, host, tenant, traceID string, extra map[string]string) (int, order, string) {
	body := fmt.Sprintf(`{"customer_id":"c-mesh","currency":"EUR","items":[{"sku":%q,"quantity":1,"unit_price":%d}]}`, testSKU, testPrice)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/orders", strings.NewReader(body))
	req.Host = host
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-tenant-id", tenant)
	req.Header.Set("Idempotency-Key", randomHex(16))
	req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	req.Header.Set("x-client-trace-id", randomHex(16))
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST through the gateway: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var o order
	_ = json.Unmarshal(raw, &o)
	return resp.StatusCode, o, string(raw)
}

// TestOrdersThroughGateway: for each tenant an order enters through the ingress gateway, crosses
// order → payment → inventory and order → notify over mTLS, and is CONFIRMED; the trace Jaeger
// holds for it is one trace with the gateway's, the sidecars' and the four apps' spans.
func TestOrdersThroughGateway(t *testing.T) {
	base, hosts := gateway(t)
	tenants := make([]string, 0, len(hosts))
	for tn := range hosts {
		tenants = append(tenants, tn)
	}
	sort.Strings(tenants)
	for _, tenant := range tenants {
		t.Run(tenant, func(t *testing.T) {
			traceID := randomHex(16)
			code, o, raw := placeOrder(t, base, hosts[tenant], tenant, traceID)
			if code != http.StatusCreated || o.Status != "CONFIRMED" {
				t.Fatalf("order through the gateway: %d %s", code, raw)
			}
			if o.TraceID != traceID {
				t.Errorf("the order's trace id is %s, want the caller's %s (context lost on the way)", o.TraceID, traceID)
			}
			t.Logf("%s: order %s CONFIRMED through the gateway, trace %s", tenant, o.ID, traceID)
			services := waitTrace(t, traceID, []string{
				gatewayTraceService(),
				"order-service." + tenant + "-orders", "payment-service." + tenant + "-payments",
				"inventory-service." + tenant + "-orders", "notify-service." + tenant + "-orders",
				"order-service", "payment-service", "inventory-service", "notify-service",
			})
			t.Logf("trace %s: spans per service %v", traceID, services)
		})
	}
}

// waitTrace polls Jaeger until the trace has spans from every wanted service (Jaeger's process
// service name: the proxies report "<workload>.<namespace>", the apps their OTEL_SERVICE_NAME).
func waitTrace(t *testing.T, traceID string, want []string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]int
	for {
		got = traceServices(traceID)
		missing := []string{}
		for _, w := range want {
			if got[w] == 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s lacks spans from %v after 30 s; it has %v", traceID, missing, got)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// traceServices counts the trace's spans per service (Jaeger's process service name: the proxies
// report "<workload>.<namespace>", the apps their OTEL_SERVICE_NAME); the canary's proxy stands
// for payment-service's.
func traceServices(traceID string) map[string]int {
	out := map[string]int{}
	for _, s := range traceSpans(traceID) {
		out[strings.Replace(s.service, "-canary.", ".", 1)]++
	}
	return out
}

// TestPlaintextToPodRefused: STRICT mTLS — a plaintext HTTP request from the host (outside the
// mesh) to a pod's app port never reaches the app.
func TestPlaintextToPodRefused(t *testing.T) {
	for _, p := range loaded.Topology.Pods {
		if p.Role != mesh.RoleApp {
			continue
		}
		url := fmt.Sprintf("http://%s:8080/api/v1/orders", p.IP)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("%s: plaintext GET %s answered %d %s; STRICT mTLS must refuse it", p.Key(), url, resp.StatusCode, bytes.TrimSpace(body))
		}
	}
}

// TestKilledAppComesBack: killing one app leaves every other process running, and mesh up
// brings it back without restarting anything else; orders confirm again.
func TestKilledAppComesBack(t *testing.T) {
	st, err := mesh.LoadState(filepath.Join(layout.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var victim *mesh.Pod
	for _, p := range loaded.Topology.Pods {
		if p.Role == mesh.RoleApp && p.Labels["app"] == "payment-service" && p.Labels["version"] == "stable" {
			victim = p
			break
		}
	}
	if victim == nil {
		t.Fatal("no stable payment-service pod")
	}
	key := victim.Key() + "/app"
	before := map[string]int{}
	for k, p := range st.Procs {
		if p.Alive() {
			before[k] = p.Pid
		}
	}
	if err := syscall.Kill(st.Procs[key].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for st.Procs[key].Alive() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := runMesh(os.Getenv("MESH_BIN"), layout.Root, "up"); err != nil {
		t.Fatalf("mesh up after the kill: %v", err)
	}
	st2, err := mesh.LoadState(filepath.Join(layout.StateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Procs[key].Alive() {
		t.Fatalf("%s is not back after mesh up", key)
	}
	for k, pid := range before {
		if k == key {
			continue
		}
		if st2.Procs[k].Pid != pid || !st2.Procs[k].Alive() {
			t.Errorf("%s was restarted (pid %d -> %d); mesh up must leave running processes alone", k, pid, st2.Procs[k].Pid)
		}
	}
	base, hosts := gateway(t)
	tenant := loaded.Model.TenantOf(victim.Namespace).ID
	if code, o, raw := placeOrder(t, base, hosts[tenant], tenant, randomHex(16)); code != http.StatusCreated || o.Status != "CONFIRMED" {
		t.Fatalf("after mesh up brought %s back: %d %s", victim.Key(), code, raw)
	}
}
