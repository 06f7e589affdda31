// The bench's floor: what one bare Envoy mTLS pass costs on this machine, measured in the same
// run at the rate each of the mesh's proxies just saw. Two Envoys of the sidecars' build and
// worker count — a client (plain HTTP in, mTLS with a client certificate out) and a server
// (mTLS in, requiring the certificate, XFCC set, plain HTTP out) — in front of a third that
// answers 200 itself (its CPU not counted), nothing else: no RBAC, tracing, access log or
// stats beyond Envoy's own. Per request CPU of the client and the server is the price of a
// sidecar pass before any of deploy/'s configuration; the mesh's HTTP pass is read against it.
// On a VM whose idle vCPUs must be woken, that price rises as the rate falls, which is why it
// is measured at the mesh's rate rather than quoted from a loaded benchmark.
package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// barePass is the measured price of one pass, in µs of CPU per request.
type barePass struct {
	rate           float64
	client, server float64
}

// measureBarePass runs the three Envoys, paces GET requests at rate/s over conns keep-alive
// connections for d, and returns the client's and server's CPU per request (idle subtracted).
func (e *Env) measureBarePass(rate float64, conns int, d time.Duration, concurrency string) (barePass, error) {
	dir, err := os.MkdirTemp(e.Layout.StateDir, "bare-pass-")
	if err != nil {
		return barePass{}, err
	}
	defer os.RemoveAll(dir)
	if err := writeBareCerts(dir); err != nil {
		return barePass{}, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return barePass{}, err
	}
	in, tls, app := ports[0], ports[1], ports[2]
	configs := map[string]map[string]any{
		"client":  bareClient(dir, ports[3], in, tls),
		"server":  bareServer(dir, ports[4], tls, app),
		"backend": bareBackend(ports[5], app),
	}
	procs := map[string]*exec.Cmd{}
	defer func() {
		for _, c := range procs {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
	}()
	for i, name := range []string{"client", "server", "backend"} {
		path := filepath.Join(dir, name+".json")
		b, _ := json.Marshal(configs[name])
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return barePass{}, err
		}
		c := exec.Command(e.Layout.EnvoyBin, "-c", path, "--concurrency", concurrency, "--disable-hot-restart",
			"--base-id", fmt.Sprint(9000+i), "--log-level", "warning")
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return barePass{}, err
		}
		defer log.Close()
		c.Stdout, c.Stderr = log, log
		if err := c.Start(); err != nil {
			return barePass{}, err
		}
		procs[name] = c
	}
	target := fmt.Sprintf("http://127.0.0.1:%d/", in)
	if err := waitReady(target, 10*time.Second); err != nil {
		return barePass{}, fmt.Errorf("the bare Envoys: %w", err)
	}
	client, server := procs["client"].Process.Pid, procs["server"].Process.Pid
	ticks := func() (float64, float64) { return cpuTicks(client), cpuTicks(server) }
	c0, s0 := ticks()
	idleFor := 3 * time.Second
	time.Sleep(idleFor)
	c1, s1 := ticks()
	n, err := pace(target, rate, conns, d)
	if err != nil {
		return barePass{}, err
	}
	c2, s2 := ticks()
	perRequest := func(idle, busy float64) float64 {
		rate := idle / idleFor.Seconds()
		return 1e6 * (busy - rate*d.Seconds()) / 100 / float64(max(n, 1))
	}
	return barePass{rate: rate, client: perRequest(c1-c0, c2-c1), server: perRequest(s1-s0, s2-s1)}, nil
}

// pace sends GET requests at rate/s for d, spread over conns keep-alive connections (each
// connection's requests follow one another), and returns how many were answered 200.
func pace(target string, rate float64, conns int, d time.Duration) (int, error) {
	var mu sync.Mutex
	answered, failures := 0, 0
	var wg sync.WaitGroup
	period := time.Duration(float64(conns) / rate * float64(time.Second))
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for next := start.Add(period * time.Duration(i) / time.Duration(conns)); next.Before(start.Add(d)); next = next.Add(period) {
				time.Sleep(time.Until(next))
				resp, err := c.Get(target)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					answered++
				} else {
					failures++
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if failures > 0 {
		return answered, fmt.Errorf("the bare Envoys failed %d of %d requests", failures, answered+failures)
	}
	return answered, nil
}

// freePorts is n distinct free ports: all are held open until each is chosen, so none repeats
// (freePort, one at a time, may hand out the same port twice).
func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// writeBareCerts writes a CA and a client and a server certificate (ECDSA P-256, like the
// mesh's workload certificates, SPIFFE URI SANs) into dir.
func writeBareCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bare-pass CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, name := range []string{"client", "server"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		id, _ := url.Parse("spiffe://cluster.local/ns/bare/sa/" + name)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), URIs: []*url.URL{id},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, name+".key"), "EC PRIVATE KEY", keyDER); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// The three bootstraps, as JSON-able maps.

func admin(port int) map[string]any {
	return map[string]any{"address": sockAddr(port)}
}

func sockAddr(port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
}

func staticCluster(name string, port int, transport map[string]any) map[string]any {
	c := map[string]any{"name": name, "type": "STATIC", "connect_timeout": "1s",
		"load_assignment": map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{
			"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": sockAddr(port)}}}}}}}
	if transport != nil {
		c["transport_socket"] = transport
	}
	return c
}

// hcm is an HTTP connection manager whose one route matches every path and does action (a
// `route` to a cluster or a `direct_response`), with extra settings merged in.
func hcm(prefix string, action map[string]any, extra map[string]any) map[string]any {
	route := map[string]any{"match": map[string]any{"prefix": "/"}}
	for k, v := range action {
		route[k] = v
	}
	cfg := map[string]any{
		"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix": prefix,
		"route_config": map[string]any{"virtual_hosts": []any{map[string]any{"name": "all", "domains": []any{"*"},
			"routes": []any{route}}}},
		"http_filters": []any{map[string]any{"name": "envoy.filters.http.router",
			"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return map[string]any{"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}
}

func tlsContext(dir, name string) map[string]any {
	return map[string]any{
		"tls_certificates": []any{map[string]any{
			"certificate_chain": map[string]any{"filename": filepath.Join(dir, name+".crt")},
			"private_key":       map[string]any{"filename": filepath.Join(dir, name+".key")}}},
		"validation_context": map[string]any{"trusted_ca": map[string]any{"filename": filepath.Join(dir, "ca.crt")}},
	}
}

func bareClient(dir string, adminPort, in, server int) map[string]any {
	upstreamTLS := map[string]any{"name": "envoy.transport_sockets.tls", "typed_config": map[string]any{
		"@type":              "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
		"common_tls_context": tlsContext(dir, "client")}}
	return map[string]any{"admin": admin(adminPort), "static_resources": map[string]any{
		"listeners": []any{map[string]any{"address": sockAddr(in), "filter_chains": []any{map[string]any{
			"filters": []any{hcm("outbound", map[string]any{"route": map[string]any{"cluster": "server"}}, nil)}}}}},
		"clusters": []any{staticCluster("server", server, upstreamTLS)}}}
}

func bareServer(dir string, adminPort, tls, app int) map[string]any {
	downstreamTLS := map[string]any{"name": "envoy.transport_sockets.tls", "typed_config": map[string]any{
		"@type":                      "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"require_client_certificate": true,
		"common_tls_context":         tlsContext(dir, "server")}}
	xfcc := map[string]any{"forward_client_cert_details": "APPEND_FORWARD",
		"set_current_client_cert_details": map[string]any{"uri": true}}
	return map[string]any{"admin": admin(adminPort), "static_resources": map[string]any{
		"listeners": []any{map[string]any{"address": sockAddr(tls), "filter_chains": []any{map[string]any{
			"transport_socket": downstreamTLS,
			"filters":          []any{hcm("inbound", map[string]any{"route": map[string]any{"cluster": "app"}}, xfcc)}}}}},
		"clusters": []any{staticCluster("app", app, nil)}}}
}

func bareBackend(adminPort, app int) map[string]any {
	answer := map[string]any{"direct_response": map[string]any{"status": 200, "body": map[string]any{"inline_string": "ok"}}}
	return map[string]any{"admin": admin(adminPort), "static_resources": map[string]any{
		"listeners": []any{map[string]any{"address": sockAddr(app), "filter_chains": []any{map[string]any{
			"filters": []any{hcm("backend", answer, nil)}}}}}}}
}
