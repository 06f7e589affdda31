//go:build mesh

// The mesh's promises on live traffic: STRICT mTLS, default deny equal to the call graph,
// tenant isolation. Each test sends real requests through the sidecars and counts what the
// apps received; each prints its figure.
package meshtest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/mesh"
	"ordermesh.local/tools/internal/promises"
)

// route is one operation of DESIGN.md's API with a concrete path.
type route struct{ Method, Path string }

// apiPaths are the paths of every service's API (DESIGN.md), concrete, plus the operational
// endpoints, which no mesh caller may reach.
var apiPaths = []string{
	"/api/v1/orders", "/api/v1/orders/0192d6a0-0000-7000-8000-000000000001", "/api/v1/orders/0192d6a0-0000-7000-8000-000000000001/cancel",
	"/api/v1/payments", "/api/v1/payments/0192d6a0-0000-7000-8000-000000000002", "/api/v1/payments/0192d6a0-0000-7000-8000-000000000002/refund",
	"/api/v1/reservations", "/api/v1/reservations/0192d6a0-0000-7000-8000-000000000003",
	"/api/v1/reservations/0192d6a0-0000-7000-8000-000000000003/commit", "/api/v1/reservations/0192d6a0-0000-7000-8000-000000000003/release",
	"/api/v1/items/SKU-001", "/api/v1/notifications", "/healthz", "/readyz", "/metrics",
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// tenantOf is the tenant owning a namespace.
func tenantOf(ns string) string {
	if t := loaded.Model.TenantOf(ns); t != nil {
		return t.ID
	}
	return ""
}

type decision struct {
	Source, Dest, Method, Path string
	Live, Static, Graph        bool
	Reply                      reply
}

func (d decision) String() string {
	return fmt.Sprintf("%s -> %s %s %s: live %v, deploy/ %v, call graph %v (%s)", d.Source, d.Dest, d.Method, d.Path, d.Live, d.Static, d.Graph, d.Reply)
}

// graphAllows is DESIGN.md's call graph (tools/internal/callgraph) for one request: src is
// "namespace/serviceaccount" ("" for the outside, through the gateway); every service runs as
// the service account of its name.
func graphAllows(src, dstNS, app, method, path string) bool {
	if tenantOf(dstNS) == "" {
		return false
	}
	srcNS, srcSA, _ := strings.Cut(src, "/")
	for _, e := range callgraph.Edges {
		if e.To != app || !strings.HasSuffix(dstNS, "-"+e.ToRole) {
			continue
		}
		if src == "" {
			if e.From != "" {
				continue
			}
		} else if e.From == "" || e.From != srcSA || !strings.HasSuffix(srcNS, "-"+e.FromRole) || tenantOf(srcNS) != tenantOf(dstNS) {
			continue
		}
		for _, op := range e.Ops {
			if op.Method == method && templatePath(op.Path, path) {
				return true
			}
		}
	}
	return false
}

// templatePath matches a DESIGN.md path with {name} segments against a concrete path (the
// query string is not part of it).
func templatePath(template, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") {
			if ps[i] == "" {
				return false
			}
		} else if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// parallel runs fn over n items with a few workers.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestDefaultDenyIsTheCallGraph sends every method × path of the API from every workload
// identity (both tenants) to every service, and from outside through the gateway to every
// tenant, and compares what reached an app with what deploy/'s AuthorizationPolicies allow
// (check-deploy's reading, request by request) and with DESIGN.md's call graph: all three must
// agree. Then it replays every denied request that
// shares a destination with an allowed one in the classic bypass spellings.
func TestDefaultDenyIsTheCallGraph(t *testing.T) {
	var cases []decision
	var send []func() reply
	for _, src := range identities() {
		for _, svc := range loaded.Topology.Services {
			app := appOfService(svc)
			if app == "" {
				continue
			}
			for _, m := range methods {
				for _, path := range apiPaths {
					src, svc, m, path := src, svc, m, path
					cases = append(cases, decision{
						Source: src.Namespace + "/" + src.ServiceAccount, Dest: svc.Namespace + "/" + app, Method: m, Path: path,
						Static: promises.Allows(loaded.Model, src.Namespace+"/"+src.ServiceAccount, svc.Namespace, app, m, path),
						Graph:  graphAllows(src.Namespace+"/"+src.ServiceAccount, svc.Namespace, app, m, path),
					})
					send = append(send, func() reply {
						return fromPod(src, svc, m, path, map[string]string{"x-tenant-id": tenantOf(svc.Namespace)}, bodyFor(m))
					})
				}
			}
		}
	}
	gwID := loaded.Model.IngressGateway
	for tenant, host := range mesh.TenantHosts(loaded) {
		ordersNS := loaded.Model.Tenants[indexOfTenant(tenant)].NamespaceFor("orders")
		for _, m := range methods {
			for _, path := range apiPaths {
				tenant, host, m, path := tenant, host, m, path
				cases = append(cases, decision{
					Source: "(outside, via the gateway)", Dest: ordersNS + "/order-service", Method: m, Path: path,
					Static: promises.Allows(loaded.Model, "", gwID.Namespace, gwID.App(), m, path) &&
						promises.Allows(loaded.Model, gwID.Namespace+"/"+gwID.ServiceAccount, ordersNS, "order-service", m, path),
					Graph: graphAllows("", ordersNS, "order-service", m, path),
				})
				send = append(send, func() reply {
					return throughGateway(host, m, path, map[string]string{"x-tenant-id": tenant}, bodyFor(m))
				})
			}
		}
	}
	parallel(len(cases), func(i int) {
		cases[i].Reply = send[i]()
		cases[i].Live = cases[i].Reply.FromApp
	})
	allowed, diffs := 0, 0
	for _, c := range cases {
		if c.Live {
			allowed++
		}
		if c.Live != c.Static || c.Live != c.Graph {
			diffs++
			t.Errorf("%s", c)
		}
	}
	t.Logf("%d requests from %d identities + the gateway: %d reached an app, %d denied by the mesh; %d differ from deploy/'s policies or the call graph",
		len(cases), len(identities()), allowed, len(cases)-allowed, diffs)
	for _, c := range cases {
		if c.Live {
			t.Logf("  allowed live and in deploy/: %s -> %s %s %s", c.Source, c.Dest, c.Method, c.Path)
		}
	}

	// Bypass spellings of denied requests to destinations that allow the source something.
	allowedPath := map[string]string{}
	for _, c := range cases {
		if c.Live && strings.HasPrefix(c.Path, "/api/") {
			allowedPath[c.Source+"|"+c.Dest] = c.Path
		}
	}
	type bypass struct {
		decision
		variant string
	}
	var tries []bypass
	var trySend []func() reply
	for i, c := range cases {
		base, ok := allowedPath[c.Source+"|"+c.Dest]
		if c.Live || c.Static || !ok || c.Method != http.MethodGet && c.Method != http.MethodPost {
			continue
		}
		for _, v := range bypassVariants(base, c.Path) {
			i, v := i, v
			tries = append(tries, bypass{decision: cases[i], variant: v})
			trySend = append(trySend, func() reply {
				c := cases[i]
				if strings.HasPrefix(c.Source, "(outside") {
					tenant := tenantOf(strings.Split(c.Dest, "/")[0])
					return throughGateway(mesh.TenantHosts(loaded)[tenant], c.Method, v, map[string]string{"x-tenant-id": tenant}, bodyFor(c.Method))
				}
				src := podByIdentity(c.Source)
				svc := serviceOfDest(c.Dest)
				return fromPod(src, svc, c.Method, v, map[string]string{"x-tenant-id": tenantOf(svc.Namespace)}, bodyFor(c.Method))
			})
		}
	}
	leaked := 0
	parallel(len(tries), func(i int) { tries[i].Reply = trySend[i]() })
	for _, b := range tries {
		if b.Reply.FromApp {
			leaked++
			t.Errorf("bypass: %s -> %s %s %q reached the app (%s); %s is denied", b.Source, b.Dest, b.Method, b.variant, b.Reply, b.Path)
		}
	}
	t.Logf("%d bypass spellings (//, %%2F, %%2e%%2e, .., #, mixed case, trailing slash) of denied requests: %d reached an app", len(tries), leaked)
}

// bypassVariants spells denied path in ways that have slipped past path rules: each either
// normalises to denied itself or matches no rule, so each must stay denied.
func bypassVariants(allowed, denied string) []string {
	up := strings.Repeat("/..", strings.Count(allowed, "/"))
	return []string{
		"/" + denied,                           // //api/...
		strings.ReplaceAll(denied, "/", "%2F"), // %2Fapi%2Fv1...
		"/api%2F" + strings.TrimPrefix(denied, "/api/"),
		allowed + up + denied,                                     // allowed/../../..denied
		allowed + strings.ReplaceAll(up, "..", "%2e%2e") + denied, // percent-encoded dots
		allowed + strings.ReplaceAll(up, "/", "%2F") + denied,     // encoded slashes around ..
		allowed + "#" + up + denied,                               // a fragment
		strings.ToUpper(denied[:5]) + denied[5:],                  // /API/v1...
		denied + "/",                                              // trailing slash
	}
}

func bodyFor(method string) string {
	if method == http.MethodPost || method == http.MethodPut {
		return "{}"
	}
	return ""
}

// appOfService is the app a tenant Service fronts ("" for add-ons and databases).
func appOfService(s *mesh.Service) string {
	app := s.Spec.Selector["app"]
	if tenantOf(s.Namespace) == "" || app == "" || app == "postgres" {
		return ""
	}
	return app
}

func indexOfTenant(id string) int {
	for i, t := range loaded.Model.Tenants {
		if t.ID == id {
			return i
		}
	}
	return -1
}

func podByIdentity(id string) *mesh.Pod {
	for _, p := range identities() {
		if p.Namespace+"/"+p.ServiceAccount == id {
			return p
		}
	}
	return nil
}

func serviceOfDest(dest string) *mesh.Service {
	ns, app, _ := strings.Cut(dest, "/")
	for _, s := range loaded.Topology.Services {
		if s.Namespace == ns && s.Spec.Selector["app"] == app {
			return s
		}
	}
	return nil
}

// TestStrictMTLS: on every workload port, a client outside the mesh gets nothing — plaintext,
// TLS without a client certificate, and TLS with a certificate from another CA are all refused
// — while a certificate from the mesh's CA is accepted (the control); inside the mesh, each app
// sees its caller's SPIFFE identity in x-forwarded-client-cert.
func TestStrictMTLS(t *testing.T) {
	checked := 0
	for _, p := range loaded.Topology.Pods {
		if !p.Sidecar {
			continue
		}
		for _, port := range p.Ports {
			port := int(port.ContainerPort)
			if c, err := mtlsTo(p, port, nil); err == nil {
				c.Close()
				t.Errorf("%s:%d accepted TLS without a client certificate", p.Key(), port)
			}
			if c, err := mtlsTo(p, port, foreignCert(t, p.Namespace, p.ServiceAccount)); err == nil {
				c.Close()
				t.Errorf("%s:%d accepted a certificate from a foreign CA", p.Key(), port)
			}
			c, err := mtlsTo(p, port, meshCert(t, p.Namespace, p.ServiceAccount))
			if err != nil {
				t.Errorf("%s:%d refused a certificate from the mesh CA (the control): %v", p.Key(), port, err)
				continue
			}
			c.Close()
			checked++
		}
	}
	t.Logf("%d workload ports: plaintext (TestPlaintextToPodRefused), no client certificate and a foreign CA refused; the mesh CA accepted", checked)

	// The callers' identities as the apps saw them, along one order per tenant.
	base, hosts := gateway(t)
	for _, tenant := range tenantIDs() {
		// The gateway, an edge proxy, replaces an outside x-request-id; the order id marks the
		// order's requests in every app's log.
		code, o, raw := placeOrder(t, base, hosts[tenant], tenant, randomHex(16))
		if code != http.StatusCreated || o.Status != "CONFIRMED" {
			t.Fatalf("%s: %d %s", tenant, code, raw)
		}
		rid := o.ID
		tn := loaded.Model.Tenants[indexOfTenant(tenant)]
		orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
		td := loaded.Model.TrustDomain
		want := map[string]string{
			orders + "/order-service":     "spiffe://" + td + "/ns/istio-system/sa/istio-ingressgateway-service-account",
			payments + "/payment-service": "spiffe://" + td + "/ns/" + orders + "/sa/order-service",
			orders + "/inventory-service": "spiffe://" + td + "/ns/" + payments + "/sa/payment-service",
		}
		for dest, peer := range want {
			ns, app, _ := strings.Cut(dest, "/")
			found := false
			for _, p := range loaded.Topology.Pods {
				if p.Namespace != ns || p.Labels["app"] != app {
					continue
				}
				if f, ok := appLogHas(p, rid); ok {
					found = true
					if f["peer"] != peer {
						t.Errorf("%s: %s saw caller %v, want %s", tenant, dest, f["peer"], peer)
					}
				}
			}
			if !found {
				t.Errorf("%s: no %s pod logged request %s", tenant, dest, rid)
			}
		}
	}
}

// callGraphOpInto is the first operation the call graph allows into app, with a concrete path.
func callGraphOpInto(app string) route {
	for _, e := range callgraph.Edges {
		if e.To == app && len(e.Ops) > 0 {
			op := e.Ops[0]
			return route{op.Method, regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(op.Path, "0192d6a0-0000-7000-8000-000000000010")}
		}
	}
	return route{http.MethodGet, "/api/v1/orders"}
}

// TestTenantIsolation: the mesh denies every identity of one tenant on every workload of the
// other — at the caller's sidecar (the other tenant's services are outside its Sidecar scope)
// and, for a connection that gets past it with a valid mesh certificate, at the destination's
// sidecar with 403 — and the app never sees the request. Within a tenant, a forged x-tenant-id
// that the mesh lets through is refused by the app.
func TestTenantIsolation(t *testing.T) {
	tenants := tenantIDs()
	denied, byEnvoy := 0, 0
	for _, a := range tenants {
		for _, b := range tenants {
			if a == b {
				continue
			}
			for _, src := range identities() {
				if tenantOf(src.Namespace) != a {
					continue
				}
				for _, dst := range loaded.Topology.Pods {
					if tenantOf(dst.Namespace) != b || dst.Role != mesh.RoleApp {
						continue
					}
					svc := serviceOfDest(dst.Namespace + "/" + dst.Labels["app"])
					// A request the destination's own tenant may send: only the tenant decides.
					op := callGraphOpInto(dst.Labels["app"])
					rid := "iso-" + randomHex(8)
					r := fromPod(src, svc, op.Method, op.Path, map[string]string{"x-tenant-id": b, "x-request-id": rid}, bodyFor(op.Method))
					if r.FromApp {
						t.Errorf("%s/%s -> %s: reached the app (%s)", src.Namespace, src.ServiceAccount, svc.FQDN(), r)
					}
					// Past the caller's sidecar: straight to the pod with the caller's mesh certificate.
					c, err := mtlsTo(dst, 8080, meshCert(t, src.Namespace, src.ServiceAccount))
					if err != nil {
						t.Errorf("%s: mTLS with a mesh certificate of %s/%s failed: %v", dst.Key(), src.Namespace, src.ServiceAccount, err)
						continue
					}
					direct := rawRequest(c, svc.FQDN(), op.Method, op.Path, map[string]string{"x-tenant-id": b, "x-request-id": rid}, bodyFor(op.Method))
					c.Close()
					if direct.Status != http.StatusForbidden || !strings.Contains(direct.Body, "RBAC: access denied") {
						t.Errorf("%s as %s/%s: want Envoy's 403 RBAC: access denied, got %s", dst.Key(), src.Namespace, src.ServiceAccount, direct)
					} else {
						byEnvoy++
					}
					if anyAppLogHas(dst.Namespace, rid) {
						t.Errorf("%s: the app logged request %s from tenant %s", dst.Key(), rid, a)
					}
					denied++
				}
			}
		}
	}
	t.Logf("%d cross-tenant (identity, pod) pairs: none reached an app; %d answered 403 by the destination's sidecar when a valid mesh certificate got past the caller's", denied, byEnvoy)

	// The control for the direct path: a same-tenant allowed identity reaches the app.
	tn := loaded.Model.Tenants[0]
	orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
	pay := podOf(t, payments, "payment-service", "stable")
	c, err := mtlsTo(pay, 8080, meshCert(t, orders, "order-service"))
	if err != nil {
		t.Fatal(err)
	}
	ok := rawRequest(c, "payment-service", http.MethodGet, "/api/v1/payments?order_id=0192d6a0-0000-7000-8000-000000000009", map[string]string{"x-tenant-id": tn.ID}, "")
	c.Close()
	if !ok.FromApp {
		t.Errorf("the control: order-service's identity to its own tenant's payment-service did not reach the app: %s", ok)
	}

	// Inside one tenant: the mesh allows order-service -> payment-service; the app refuses a
	// forged tenant.
	other := tenants[len(tenants)-1]
	if other == tn.ID {
		other = tenants[0]
	}
	forged := fromPod(podOf(t, orders, "order-service", ""), service(t, payments, "payment-service"), http.MethodGet,
		"/api/v1/payments?order_id=0192d6a0-0000-7000-8000-000000000009", map[string]string{"x-tenant-id": other}, "")
	if forged.Status != http.StatusForbidden || !forged.FromApp {
		t.Errorf("a forged x-tenant-id %s from %s's order-service: want the app's 403, got %s", other, tn.ID, forged)
	}
}
