//go:build mesh

// Admission at the front door (deploy/mesh/envoyfilter-gateway-admission.yaml and each
// tenant's order-service DestinationRule): past the admission window the gateway refuses at
// once, with problem+json and Retry-After, keeps the client's connection, and never passes the
// refused order on; the admitted orders complete.
package meshtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGatewayRefusesPastTheAdmissionWindowWithRetryAfter(t *testing.T) {
	base, hosts := gateway(t)
	tn := loaded.Model.Tenants[0]
	orders := tn.NamespaceFor("orders")
	// HTTP/2 to order-service: the gateway's cap on requests in flight (promises/admission.go).
	window := int(destinationRule(t, orders, "order-service").GetTrafficPolicy().GetConnectionPool().GetHttp().GetHttp2MaxRequests())
	n := window + 12

	// order-service frozen: the window fills and stays full until the apps go on.
	thaw := freezeApps(t, podsOf(orders, "order-service"))
	defer thaw()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	type answer struct {
		status              int
		retryAfter, ctype   string
		closed              bool
		problemType, detail string
	}
	answers := make([]answer, n)
	var refusedSoFar atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"customer_id":"c-admission","currency":"EUR","items":[{"sku":%q,"quantity":1}]}`, testSKU)
			req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/orders", strings.NewReader(body))
			req.Host = hosts[tn.ID]
			req.Header.Set("content-type", "application/json")
			req.Header.Set("x-tenant-id", tn.ID)
			req.Header.Set("Idempotency-Key", "admission-"+randomHex(12))
			resp, err := client.Do(req)
			if err != nil {
				answers[i].detail = err.Error()
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusServiceUnavailable {
				refusedSoFar.Add(1)
			}
			var p struct{ Type, Detail string }
			_ = json.Unmarshal(raw, &p)
			answers[i] = answer{status: resp.StatusCode, retryAfter: resp.Header.Get("retry-after"),
				ctype: resp.Header.Get("content-type"), closed: resp.Close, problemType: p.Type, detail: string(raw)}
		}(i)
	}
	// The refusals come at once, while the window is still full: wait for them, well within the
	// gateway's 10 s timeout for an order, after which the admitted ones would get 504 instead.
	deadline := time.Now().Add(4 * time.Second)
	for refusedSoFar.Load() < int64(n-window) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	thaw()
	wg.Wait()

	refused, admitted := 0, 0
	for _, a := range answers {
		switch a.status {
		case http.StatusCreated:
			admitted++
		case http.StatusServiceUnavailable:
			refused++
			if a.retryAfter != "1" || a.ctype != "application/problem+json" || a.problemType != "https://ordermesh.dev/problems/overloaded" {
				t.Errorf("a refusal is not problem+json with Retry-After: retry-after %q, content-type %q, body %s", a.retryAfter, a.ctype, a.detail)
			}
			if a.closed {
				t.Errorf("a refusal closed the client's connection (the gateway answered before reading the body)")
			}
		default:
			t.Errorf("answer %d: %s", a.status, a.detail)
		}
	}
	// At most the window is admitted (fewer when a pod's connection was still being set up: a
	// request waits for it only in the short pending queue); every other order is refused.
	if admitted < 1 || admitted > window || refused != n-admitted {
		t.Errorf("%d concurrent orders against a window of %d: %d admitted, %d refused (want 1..%d admitted, the rest refused)",
			n, window, admitted, refused, window)
	}
	t.Logf("%d concurrent orders, order-service frozen, window %d in flight per gateway: %d refused at once with 503 problem+json Retry-After: 1 (connection kept), %d admitted and answered 201 once it went on",
		n, window, refused, admitted)
}
