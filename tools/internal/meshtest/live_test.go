//go:build mesh

// Helpers for the live tests: requests sent from inside a pod (so the pod's sidecar captures
// them and they leave with the pod's identity), raw request lines (so path tricks reach the
// proxy unaltered), mTLS clients with certificates of a chosen identity, and the apps' logs.
package meshtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/mesh"
)

// reply is what came back for one request.
type reply struct {
	Status  int
	Header  http.Header
	Body    string
	Err     error
	FromApp bool // the app answered (its JSON), not a proxy's local reply
}

func (r reply) String() string {
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	return fmt.Sprintf("%d %s", r.Status, strings.TrimSpace(r.Body))
}

func readReply(c net.Conn) reply {
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return reply{Err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ct := resp.Header.Get("content-type")
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: string(b),
		FromApp: strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/problem+json")}
}

// rawRequest writes one HTTP/1.1 request with the path exactly as given.
func rawRequest(c net.Conn, host, method, path string, headers map[string]string, body string) reply {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, host)
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, headers[k])
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		return reply{Err: err}
	}
	return readReply(c)
}

// fromPod sends a request from inside pod p to a Service, through p's sidecar.
func fromPod(p *mesh.Pod, svc *mesh.Service, method, path string, headers map[string]string, body string) reply {
	dial := mesh.DialContextIn(p.NetnsPath())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", fmt.Sprintf("%s:8080", svc.ClusterIP))
	if err != nil {
		return reply{Err: err}
	}
	defer c.Close()
	return rawRequest(c, svc.FQDN()+":8080", method, path, headers, body)
}

// throughGateway sends a request from the host to the ingress gateway.
func throughGateway(host, method, path string, headers map[string]string, body string) reply {
	gw := loaded.Topology.Gateway()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", gw.IP, loaded.Topology.GatewayPort()), 5*time.Second)
	if err != nil {
		return reply{Err: err}
	}
	defer c.Close()
	return rawRequest(c, host, method, path, headers, body)
}

// mtlsTo opens a TLS connection from the host straight to a pod's port (past every sidecar but
// the destination's), presenting cert (nil: none). It verifies nothing of the server: the
// question is what the server accepts.
func mtlsTo(p *mesh.Pod, port int, cert *tls.Certificate) (net.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-http/1.1", "istio", "http/1.1"}} //nolint:gosec // the client tests the server's checks
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("%s:%d", p.IP, port), cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate only on the first read.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	one := make([]byte, 1)
	if _, err := c.Read(one); err != nil && !isTimeout(err) {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// meshCert is a workload certificate for identity ns/sa from the mesh's own CA (as istiod would
// issue it to that workload).
func meshCert(t *testing.T, ns, sa string) *tls.Certificate {
	t.Helper()
	ca, err := xds.LoadOrCreateCA(filepath.Join(layout.StateDir, "ca"), loaded.Model.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return issue(t, ca, xds.SpiffeID(loaded.Model.TrustDomain, ns, sa))
}

// foreignCert is a certificate with a valid-looking identity from a CA the mesh does not trust.
func foreignCert(t *testing.T, ns, sa string) *tls.Certificate {
	t.Helper()
	ca, err := xds.LoadOrCreateCA(t.TempDir(), loaded.Model.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return issue(t, ca, xds.SpiffeID(loaded.Model.TrustDomain, ns, sa))
}

func issue(t *testing.T, ca *xds.CA, id string) *tls.Certificate {
	t.Helper()
	chain, key, err := ca.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	return &c
}

// appLogHas reports whether the pod's app logged serving a request that carries id (its
// x-request-id or the order id it was about), and returns the log line's fields.
func appLogHas(p *mesh.Pod, requestID string) (map[string]any, bool) {
	b, err := os.ReadFile(filepath.Join(layout.StateDir, "pods", p.Namespace, p.Name, "app.log"))
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, requestID) {
			continue
		}
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil && f["message"] == "request served" {
			return f, true
		}
	}
	return nil, false
}

// anyAppLogHas reports whether any app pod of namespace ns logged the request id.
func anyAppLogHas(ns, requestID string) bool {
	for _, p := range loaded.Topology.Pods {
		if p.Namespace == ns && p.Role == mesh.RoleApp {
			if _, ok := appLogHas(p, requestID); ok {
				return true
			}
		}
	}
	return false
}

// service finds a Service by name and namespace.
func service(t *testing.T, ns, name string) *mesh.Service {
	t.Helper()
	for _, s := range loaded.Topology.Services {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s/%s", ns, name)
	return nil
}

// podOf returns the first pod of app in namespace ns (version "" = any).
func podOf(t *testing.T, ns, app, version string) *mesh.Pod {
	t.Helper()
	for _, p := range loaded.Topology.Pods {
		if p.Namespace == ns && p.Labels["app"] == app && (version == "" || p.Labels["version"] == version) {
			return p
		}
	}
	t.Fatalf("no pod of %s in %s", app, ns)
	return nil
}

// identities returns one sidecar pod per distinct workload identity (namespace/serviceaccount).
func identities() []*mesh.Pod {
	seen := map[string]bool{}
	var out []*mesh.Pod
	for _, p := range loaded.Topology.Pods {
		id := p.Namespace + "/" + p.ServiceAccount
		if p.Sidecar && !seen[id] {
			seen[id] = true
			out = append(out, p)
		}
	}
	return out
}

func tenantIDs() []string {
	var out []string
	for _, t := range loaded.Topology.Tenants {
		out = append(out, t.ID)
	}
	sort.Strings(out)
	return out
}
