//go:build mesh

// The apps check their callers themselves (issue 20): deploy/ runs every app with
// REQUIRE_PEER_IDENTITY=true, and each route answers only the callers the call graph names for it,
// read from the last x-forwarded-client-cert element its sidecar appended. So a request that gets
// past the sidecar — or carries an identity the mesh never vouched for — is refused by the app
// itself, not only by the mesh's policies.
package meshtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ordermesh.local/tools/internal/mesh"
)

const callerNotAllowed = "https://ordermesh.dev/problems/caller-not-allowed"

// pastSidecar sends a request to pod p's app from inside the pod, to 127.0.0.1:8080: the
// sidecar's capture never sees it (as with kubectl exec, or any way around the proxy), so no
// x-forwarded-client-cert is written for it.
func pastSidecar(p *mesh.Pod, method, path string, headers map[string]string, body string) reply {
	dial := mesh.DialContextIn(p.NetnsPath())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", "127.0.0.1:8080")
	if err != nil {
		return reply{Err: err}
	}
	defer c.Close()
	return rawRequest(c, "127.0.0.1:8080", method, path, headers, body)
}

// sidecarXFCC is the x-forwarded-client-cert the sidecar of callee (a SPIFFE id) writes for a
// client certificate of caller, in Envoy's exact form.
func sidecarXFCC(caller, callee string) string {
	return fmt.Sprintf(`By=%s;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="";URI=%s`, callee, caller)
}

// waitAppLog waits (at most 10 s: the app writes its log off the request path) for pod p's app
// to log message for request id rid, and returns the line's fields.
func waitAppLog(t *testing.T, p *mesh.Pod, rid, message string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(layout.StateDir, "pods", p.Namespace, p.Name, "app.log"))
		for _, line := range strings.Split(string(b), "\n") {
			var f map[string]any
			if strings.Contains(line, rid) && json.Unmarshal([]byte(line), &f) == nil && f["message"] == message && f["request_id"] == rid {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no %q for request %s within 10 s", p.Key(), message, rid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// problemType is the `type` of a problem+json reply ("" for anything else).
func problemType(r reply) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal([]byte(r.Body), &p)
	return p.Type
}

// identityAttack is one request a tenant's call graph forbids to everyone but the route's caller.
type identityAttack struct {
	name, method, path, body string
	pod                      *mesh.Pod
	caller                   string // the route's one caller (SPIFFE id), for the foreign-trust-domain variant
}

// TestAppsRefuseCallersTheGraphDoesNotName: for one CONFIRMED order per tenant, the three
// attacks of issue 20 — refund its payment, release its stock, pay for an order that does not
// exist — and a read of order-service's public API, each sent to the app past its sidecar with
// no x-forwarded-client-cert, with one naming notify-service (a service of the tenant that may
// call none of these routes), and with one naming the route's own caller in another trust
// domain: every one is answered 403 caller-not-allowed by the app itself (its problem+json, not
// an Envoy reply) and logged by the app with the caller's SPIFFE id ("none" past the sidecar).
// Afterwards the order is still CONFIRMED, its payment CAPTURED and its reservation COMMITTED,
// read the legitimate way — from the caller's pod through both sidecars — and no payment exists
// for the invented order.
func TestAppsRefuseCallersTheGraphDoesNotName(t *testing.T) {
	base, hosts := gateway(t)
	td := loaded.Model.TrustDomain
	refused := 0
	for _, tenant := range tenantIDs() {
		tn := loaded.Model.Tenants[indexOfTenant(tenant)]
		orders, payments := tn.NamespaceFor("orders"), tn.NamespaceFor("payments")
		id := func(ns, sa string) string { return "spiffe://" + td + "/ns/" + ns + "/sa/" + sa }
		code, o, raw := placeOrder(t, base, hosts[tenant], tenant, randomHex(16))
		var placed struct {
			PaymentID string `json:"payment_id"`
		}
		if err := json.Unmarshal([]byte(raw), &placed); code != http.StatusCreated || o.Status != "CONFIRMED" || err != nil || placed.PaymentID == "" {
			t.Fatalf("%s: order through the gateway: %d %s", tenant, code, raw)
		}
		// A new id each run: the mesh's databases outlive it.
		invented := fmt.Sprintf("%s-%s-4%s-8%s-%s", randomHex(4), randomHex(2), randomHex(2)[1:], randomHex(2)[1:], randomHex(6))
		payPod, invPod, orderPod := podOf(t, payments, "payment-service", "stable"), podOf(t, orders, "inventory-service", ""), podOf(t, orders, "order-service", "")
		attacks := []identityAttack{
			{"refund a confirmed order's payment", http.MethodPost, "/api/v1/payments/" + placed.PaymentID + "/refund", "{}", payPod, id(orders, "order-service")},
			{"release a confirmed order's stock", http.MethodPost, "/api/v1/reservations/" + o.ID + "/release", "{}", invPod, id(payments, "payment-service")},
			{"pay for an order that does not exist", http.MethodPost, "/api/v1/payments",
				fmt.Sprintf(`{"order_id":%q,"currency":"EUR","payment_method":"card","items":[{"sku":%q,"quantity":1}]}`, invented, testSKU), payPod, id(orders, "order-service")},
			{"read the public API", http.MethodGet, "/api/v1/orders", "", orderPod, id("istio-system", "istio-ingressgateway-service-account")},
		}
		for _, a := range attacks {
			callee := id(a.pod.Namespace, a.pod.ServiceAccount)
			evil := strings.Replace(a.caller, "spiffe://"+td+"/", "spiffe://evil.example/", 1)
			for _, v := range []struct{ label, xfcc, logged string }{
				{"past the sidecar, no identity", "", "none"},
				{"as notify-service", sidecarXFCC(id(orders, "notify-service"), callee), id(orders, "notify-service")},
				{"as its caller in trust domain evil.example", sidecarXFCC(evil, callee), evil},
			} {
				rid := "callers-" + randomHex(8)
				headers := map[string]string{"x-tenant-id": tenant, "x-request-id": rid}
				if v.xfcc != "" {
					headers["x-forwarded-client-cert"] = v.xfcc
				}
				r := pastSidecar(a.pod, a.method, a.path, headers, a.body)
				if r.Status != http.StatusForbidden || !r.FromApp || problemType(r) != callerNotAllowed {
					t.Errorf("%s: %s on %s, %s: want the app's 403 caller-not-allowed, got %s", tenant, a.name, a.pod.Key(), v.label, r)
					continue
				}
				if f := waitAppLog(t, a.pod, rid, "caller not allowed"); f["caller"] != v.logged {
					t.Errorf("%s: %s, %s: the app logged caller %v, want %s", tenant, a.name, v.label, f["caller"], v.logged)
				}
				refused++
			}
		}

		// Nothing moved, read the legitimate way: each route's caller, through both sidecars.
		paySvc, invSvc := service(t, payments, "payment-service"), service(t, orders, "inventory-service")
		hdr := map[string]string{"x-tenant-id": tenant}
		expectStatus(t, tenant+": the payment", fromPod(orderPod, paySvc, http.MethodGet, "/api/v1/payments/"+placed.PaymentID, hdr, ""), "CAPTURED")
		expectStatus(t, tenant+": the reservation", fromPod(payPod, invSvc, http.MethodGet, "/api/v1/reservations/"+o.ID, hdr, ""), "COMMITTED")
		none := fromPod(orderPod, paySvc, http.MethodGet, "/api/v1/payments?order_id="+invented, hdr, "")
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if none.Status != http.StatusOK || json.Unmarshal([]byte(none.Body), &list) != nil || len(list.Items) != 0 {
			t.Errorf("%s: payments for the invented order %s: want none, got %s", tenant, invented, none)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/orders/"+o.ID, nil)
		req.Host = hosts[tenant]
		req.Header.Set("x-tenant-id", tenant)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: GET the order through the gateway: %v", tenant, err)
		}
		expectStatus(t, tenant+": the order", reply{Status: resp.StatusCode, Body: readAll(resp)}, "CONFIRMED")
	}
	t.Logf("%d requests past the sidecar or with an identity the call graph does not name for the route: each refused 403 caller-not-allowed by the app and logged with the caller's SPIFFE id", refused)
}

// expectStatus asserts a 200 whose JSON `status` is want.
func expectStatus(t *testing.T, what string, r reply, want string) {
	t.Helper()
	var body struct {
		Status string `json:"status"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &body) != nil || body.Status != want {
		t.Errorf("%s: want 200 with status %s, got %s", what, want, r)
	}
}
