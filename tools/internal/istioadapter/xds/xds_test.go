package xds

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"istio.io/istio/pilot/pkg/features"
	pilotmodel "istio.io/istio/pilot/pkg/model"

	"ordermesh.local/tools/internal/istioadapter"
)

// The pieces of Istio configuration upstream Envoy rejects (see UpstreamEnvoy).
var istioOnly = []string{"istio.metadata_exchange", "io.istio.http.peer_metadata", "istio.alpn", "istio.stats"}

const fixtureConfig = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: shop}
spec: {}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: defaults, namespace: shop}
spec:
  tracing: [{providers: [{name: otel}], randomSamplingPercentage: 10.0}]
  metrics: [{providers: [{name: prometheus}]}]
`

const fixtureMesh = `
defaultProviders: {metrics: [prometheus], tracing: [otel]}
extensionProviders:
  - name: otel
    opentelemetry: {service: api.shop.svc.cluster.local, port: 8080}
`

func fixtureObjects() []kuberuntime.Object {
	ready := true
	name, port, proto := "http", int32(8080), corev1.ProtocolTCP
	labels := map[string]string{"app": "api", "security.istio.io/tlsMode": "istio"}
	return []kuberuntime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "shop", Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "n", ServiceAccountName: "api", Containers: []corev1.Container{{Name: "api"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.2", PodIPs: []corev1.PodIP{{IP: "10.0.0.2"}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: corev1.ServiceSpec{
			ClusterIP: "10.1.0.1", Selector: map[string]string{"app": "api"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "api-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "api-0"}}},
		},
	}
}

func startFixture(t *testing.T) *Server {
	t.Helper()
	m, err := MeshConfig(fixtureMesh)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "xds.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Options{KubeObjects: fixtureObjects(), IstioConfig: fixtureConfig, Mesh: m, Listener: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// generated is everything istiod generates for the fixture's sidecar, as JSON.
func generated(t *testing.T, s *Server) string {
	t.Helper()
	p := s.fake.SetupProxy(&pilotmodel.Proxy{
		Type: pilotmodel.SidecarProxy, IPAddresses: []string{"10.0.0.2"}, ID: "api-0.shop", ConfigNamespace: "shop",
		Metadata: &pilotmodel.NodeMetadata{IstioVersion: IstioVersion, Namespace: "shop", ServiceAccount: "api",
			Labels: map[string]string{"app": "api", "security.istio.io/tlsMode": "istio"}},
	})
	var b strings.Builder
	var msgs []proto.Message
	for _, l := range s.fake.Listeners(p) {
		msgs = append(msgs, l)
	}
	for _, c := range s.fake.Clusters(p) {
		msgs = append(msgs, c)
	}
	if len(msgs) == 0 {
		t.Fatal("istiod generated nothing for the sidecar")
	}
	for _, m := range msgs {
		j, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
	}
	return b.String()
}

// TestGeneratedConfigIsUpstreamEnvoy: with the local mesh's switches, nothing istiod generates
// names an Istio-only extension, while STRICT mTLS (SDS certificates), RBAC and tracing remain.
func TestGeneratedConfigIsUpstreamEnvoy(t *testing.T) {
	out := generated(t, startFixture(t))
	for _, ext := range istioOnly {
		if strings.Contains(out, ext) {
			t.Errorf("generated config names %s, which upstream Envoy rejects", ext)
		}
	}
	for _, want := range []string{"envoy.filters.http.rbac", "sds-grpc", "ROOTCA", "envoy.tracers.opentelemetry", "spiffe://cluster.local/ns/shop/sa/api"} {
		if !strings.Contains(out, want) {
			t.Errorf("generated config lacks %s", want)
		}
	}
}

// TestSwitchesMatter: the same generation with Istio's defaults does name the Istio-only
// extensions, so the test above would see them if a switch stopped working.
func TestSwitchesMatter(t *testing.T) {
	features.MetadataExchange, features.ALPNFilter = true, true
	t.Cleanup(func() { features.MetadataExchange, features.ALPNFilter = false, false })
	out := generated(t, startFixture(t))
	for _, ext := range []string{"istio.metadata_exchange", "istio.alpn"} {
		if !strings.Contains(out, ext) {
			t.Errorf("with Istio's default features, %s is not generated: the switch no longer matters (re-check UpstreamEnvoy)", ext)
		}
	}
}

func TestMeshConfigDropsMetricsKeepsTracing(t *testing.T) {
	m, err := MeshConfig(fixtureMesh)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetDefaultProviders().GetMetrics(); len(got) != 0 {
		t.Errorf("default metrics providers %v survive (they generate istio.stats)", got)
	}
	if got := m.GetDefaultProviders().GetTracing(); len(got) != 1 || got[0] != "otel" {
		t.Errorf("default tracing providers = %v, want [otel]", got)
	}
}

// TestIstioVersionMatchesModule: the version proxies announce is the pinned module's.
func TestIstioVersionMatchesModule(t *testing.T) {
	crds, err := istioadapter.CRDsFile()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSuffix(crds, filepath.FromSlash(istioadapter.CRDsPathInModule))
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); !strings.HasPrefix(IstioVersion, want+".") {
		t.Errorf("IstioVersion %s, but the pinned istio.io/istio is %s", IstioVersion, want)
	}
}

func TestCAIssuesWorkloadIdentity(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	id := SpiffeID("cluster.local", "shop", "api")
	chain, key, err := ca.Issue(id, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, chain)
	if len(cert.URIs) != 1 || cert.URIs[0].String() != id {
		t.Errorf("URI SANs %v, want [%s]", cert.URIs, id)
	}
	if err := cert.CheckSignatureFrom(parseCert(t, ca.RootPEM())); err != nil {
		t.Errorf("not signed by the root: %v", err)
	}
	if len(key) == 0 {
		t.Error("no key")
	}
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
