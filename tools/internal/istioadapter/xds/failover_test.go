package xds

// The canary's fallback, shown on istiod's own endpoint generation: with the DestinationRule
// shape deploy/ uses (the canary subset holds every pod, failoverPriority "version=canary"),
// the canary subset's cluster has the canary pod at priority 0 and the stable pods at priority
// 1, so when outlier detection ejects the canary Envoy sends that share to stable; with a plain
// `version: canary` subset the cluster holds the canary pod alone and an ejection leaves it empty.

import (
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	pilotmodel "istio.io/istio/pilot/pkg/model"
)

const canaryCluster = "outbound|8080|canary|pay.shop.svc.cluster.local"

func canaryFixture() []kuberuntime.Object {
	ready := true
	name, port, proto := "http", int32(8080), corev1.ProtocolTCP
	objs := []kuberuntime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "pay", Namespace: "shop"}, Spec: corev1.ServiceSpec{
			ClusterIP: "10.1.0.2", Selector: map[string]string{"app": "pay"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "pay-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "pay"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	pod := func(name, ip string, labels map[string]string) {
		labels["security.istio.io/tlsMode"] = "istio"
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "n", ServiceAccountName: "sa", Containers: []corev1.Container{{Name: "c"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
		if labels["app"] == "pay" {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: name}})
		}
	}
	pod("pay-stable-0", "10.0.0.11", map[string]string{"app": "pay", "version": "stable"})
	pod("pay-stable-1", "10.0.0.12", map[string]string{"app": "pay", "version": "stable"})
	pod("pay-canary-0", "10.0.0.13", map[string]string{"app": "pay", "version": "canary"})
	pod("client-0", "10.0.0.2", map[string]string{"app": "client", "version": "stable"})
	return append(objs, slice)
}

const canaryHostPolicy = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay, namespace: shop}
spec:
  host: pay.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    outlierDetection: {consecutiveGatewayErrors: 5, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 0}
  subsets:
    - name: stable
      labels: {version: stable}
`

// canaryPriorities returns, for the canary subset's cluster as the client's sidecar gets it,
// each endpoint address with its priority.
func canaryPriorities(t *testing.T, canarySubset string) map[string]uint32 {
	t.Helper()
	m, err := MeshConfig(fixtureMesh)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "xds.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Options{KubeObjects: canaryFixture(), IstioConfig: canaryHostPolicy + canarySubset, Mesh: m, Listener: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	// The caller's labels, as istiod reads them from its node metadata (a caller without labels
	// gets no label-based priorities at all).
	callerLabels := map[string]string{"app": "client", "version": "stable", "security.istio.io/tlsMode": "istio"}
	p := s.fake.SetupProxy(&pilotmodel.Proxy{
		Type: pilotmodel.SidecarProxy, IPAddresses: []string{"10.0.0.2"}, ID: "client-0.shop", ConfigNamespace: "shop",
		Labels: callerLabels,
		Metadata: &pilotmodel.NodeMetadata{IstioVersion: IstioVersion, Namespace: "shop", ServiceAccount: "sa",
			Labels: callerLabels},
	})
	got := map[string]uint32{}
	var names []string
	for _, cla := range s.fake.Endpoints(p) {
		names = append(names, cla.GetClusterName())
		if cla.GetClusterName() != canaryCluster {
			continue
		}
		for _, loc := range cla.GetEndpoints() {
			for _, ep := range loc.GetLbEndpoints() {
				got[ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = loc.GetPriority()
			}
		}
	}
	if len(got) == 0 {
		sort.Strings(names)
		t.Fatalf("no endpoints for %s; clusters: %s", canaryCluster, strings.Join(names, ", "))
	}
	return got
}

func TestCanaryFallsBackToStable(t *testing.T) {
	cases := []struct {
		name, subset string
		want         map[string]uint32
	}{
		{
			name: "deploy/'s shape: every pod, the canary first",
			subset: `    - name: canary
      labels: {app: pay}
      trafficPolicy:
        loadBalancer:
          simple: LEAST_REQUEST
          localityLbSetting: {enabled: true, failoverPriority: ["version=canary"]}
`,
			want: map[string]uint32{"10.0.0.13": 0, "10.0.0.11": 1, "10.0.0.12": 1},
		},
		{
			name: "a plain canary subset: nothing to fall back to",
			subset: `    - name: canary
      labels: {version: canary}
`,
			want: map[string]uint32{"10.0.0.13": 0},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := canaryPriorities(t, c.subset)
			if len(got) != len(c.want) {
				t.Fatalf("endpoints %v, want %v", got, c.want)
			}
			for ip, prio := range c.want {
				if g, ok := got[ip]; !ok || g != prio {
					t.Errorf("endpoint %s: priority %d (present %v), want %d; all: %v", ip, g, ok, prio, got)
				}
			}
		})
	}
}
