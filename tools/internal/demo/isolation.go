// tenant-isolation: every identity of the first tenant calls every service of the others from
// inside its own pod (so its sidecar sends the request with the pod's SPIFFE identity), with an
// operation the destination's own tenant may call; the counts show none reached an app.
package demo

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/mesh"
)

// probe is a request's fate.
type probe struct {
	status  int
	fromApp bool // the app's JSON answered, not a proxy
	err     error
}

func (p probe) String() string {
	if p.err != nil {
		return "no answer"
	}
	if p.fromApp {
		return fmt.Sprintf("%d from the APP", p.status)
	}
	return fmt.Sprintf("%d (proxy)", p.status)
}

// opInto is the first operation the call graph allows into app, with a concrete path.
func opInto(app string) (string, string) {
	for _, e := range callgraph.Edges {
		if e.To == app && len(e.Ops) > 0 {
			return e.Ops[0].Method, regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(e.Ops[0].Path, "0192d6a0-0000-7000-8000-000000000010")
		}
	}
	return http.MethodGet, "/api/v1/orders"
}

// fromPod sends a request from inside pod src to svc's ClusterIP, through src's sidecar.
func fromPod(src *mesh.Pod, svc *mesh.Service, method, path, tenant string) probe {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: mesh.DialContextIn(src.NetnsPath()), DisableKeepAlives: true}}
	var body *strings.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader("{}")
	} else {
		body = strings.NewReader("")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://%s:8080%s", svc.ClusterIP, path), body)
	if err != nil {
		return probe{err: err}
	}
	req.Host = svc.FQDN() + ":8080"
	req.Header.Set("x-tenant-id", tenant)
	req.Header.Set("content-type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return probe{err: err}
	}
	resp.Body.Close()
	ct := resp.Header.Get("content-type")
	return probe{status: resp.StatusCode, fromApp: strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/problem+json")}
}

func tenantIsolation(e *Env) error {
	t := e.Loaded.Topology
	tenantOf := map[string]string{}
	for tn, ns := range e.Loaded.Model.Tenants.Namespaces() {
		tenantOf[ns] = tn.ID
	}
	a := e.Loaded.Model.Tenants[0].ID
	e.say(`tenant-isolation — every workload identity of %s (one pod each: apps and PostgreSQL, each
request sent from inside that pod so its sidecar uses the pod's SPIFFE identity) calls every
service of the other tenants with an operation the call graph allows that service's own tenant,
and the other tenant's x-tenant-id. Denied = answered by a proxy (the caller's sidecar: the other
tenant is outside its Sidecar egress scope, REGISTRY_ONLY; or the destination's: 403 RBAC), never
by an app.
`, a)
	seen := map[string]bool{}
	denied, reached := 0, 0
	byAnswer := map[string]int{}
	for _, src := range t.Pods {
		id := src.Namespace + "/" + src.ServiceAccount
		if !src.Sidecar || tenantOf[src.Namespace] != a || seen[id] {
			continue
		}
		seen[id] = true
		var cells []string
		for _, svc := range t.Services {
			b := tenantOf[svc.Namespace]
			if b == "" || b == a || !hasPort(svc, 8080) {
				continue
			}
			app := svc.Spec.Selector["app"]
			method, path := opInto(app)
			r := fromPod(src, svc, method, path, b)
			byAnswer[r.String()]++
			if r.fromApp {
				reached++
			} else {
				denied++
			}
			cells = append(cells, fmt.Sprintf("%s %s", strings.TrimSuffix(svc.Name, "-service"), r))
		}
		e.say("  spiffe://…/ns/%s/sa/%-18s → %s", src.Namespace, src.ServiceAccount, strings.Join(cells, " · "))
	}
	e.say("\n%d identities × %d services of the other tenant: %d denied, %d reached an app", len(seen), (denied+reached)/max(len(seen), 1), denied, reached)
	for _, k := range slices.Sorted(maps.Keys(byAnswer)) {
		e.say("  %-16s %d", k, byAnswer[k])
	}
	if reached > 0 {
		return fmt.Errorf("%d cross-tenant requests reached an app", reached)
	}
	return nil
}

func hasPort(s *mesh.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}
