// Package mesh is the local mesh: deploy/'s workloads as real processes behind real Envoy
// sidecars on one machine, with no Kubernetes. This file turns the rendered deploy/ into what a
// cluster would run — one pod per replica with an IP, Services with ClusterIPs, the add-ons
// deploy/ expects (ingress gateway, Jaeger) — and into the Kubernetes objects istiod would read.
//
// The other files: control.go (the control-plane process: xDS + SDS), netns.go (bridge,
// namespaces, interfaces), proc.go (processes and their records), pods.go (what runs in each
// pod), up.go / down.go / status.go (the commands).
package mesh

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ordermesh.local/tools/internal/model"
)

// Role is what runs in a pod.
type Role string

const (
	RoleApp      Role = "app"      // a service of deploy/ (order, payment, ...) behind a sidecar
	RolePostgres Role = "postgres" // deploy/'s per-namespace PostgreSQL behind a sidecar
	RoleGateway  Role = "gateway"  // the ingress gateway: a router Envoy, no app
	RoleJaeger   Role = "jaeger"   // the Jaeger add-on (istio-system, no sidecar, as Istio's sample)
)

// Add-ons that `istioctl install` and Istio's samples/addons create and deploy/ does not render.
const (
	GatewayService   = "istio-ingressgateway"
	GatewayPort      = 8080 // the gateway's HTTP container port (Service port 80 → 8080)
	JaegerNamespace  = "istio-system"
	JaegerCollector  = "jaeger-collector"
	JaegerQueryPort  = 16686
	jaegerOTLPGRPC   = 4317
	jaegerOTLPHTTP   = 4318
	jaegerAppLabel   = "jaeger"
	postgresUser     = "postgres"
	clusterDomain    = "cluster.local"
	nodeName         = "ordermesh-local"
	injectedRevision = "default"
)

// Pod is one replica as a cluster would run it.
type Pod struct {
	Name, Namespace string
	Role            Role
	Workload        *model.Workload // nil for the add-ons
	WorkloadName    string
	ServiceAccount  string
	Labels          map[string]string
	Annotations     map[string]string
	IP              netip.Addr
	Sidecar         bool // an Envoy sidecar with traffic capture
	Proxy           bool // an Envoy at all (sidecar or gateway)
	Ports           []corev1.ContainerPort
	Index           int // position in the topology (names of host-side interfaces, sockets)
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Service is a Service with the ClusterIP the mesh gives it.
type Service struct {
	Name, Namespace string
	ClusterIP       netip.Addr
	Spec            corev1.ServiceSpec
}

// FQDN is the Service's cluster-local host name.
func (s *Service) FQDN() string {
	return fmt.Sprintf("%s.%s.svc.%s", s.Name, s.Namespace, clusterDomain)
}

// Topology is everything the mesh runs, with addresses.
type Topology struct {
	Subnet     netip.Prefix // pod network (a /24 on the mesh bridge)
	HostIP     netip.Addr   // the bridge's address on the host
	ServiceNet netip.Prefix // ClusterIPs (never routed: the sidecars capture them)
	Pods       []*Pod
	Services   []*Service
	Namespaces []string
	SAs        []string // "ns/name"
	Tenants    model.Tenants
	Secrets    map[string]map[string]string // "ns/name" -> key -> value (decoded)
	ConfigMaps map[string]map[string]string
	// GatewayPlan is the ingress gateway's Deployment and Service (gateway.go).
	GatewayPlan *GatewayPlan
}

// GatewayPort is the port the ingress gateway's Envoy takes HTTP on.
func (t *Topology) GatewayPort() int { return int(t.GatewayPlan.Port) }

// Pod finds a pod by namespace and name.
func (t *Topology) Pod(ns, name string) *Pod {
	for _, p := range t.Pods {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

// Gateway is the ingress gateway's first pod.
func (t *Topology) Gateway() *Pod {
	for _, p := range t.Pods {
		if p.Role == RoleGateway {
			return p
		}
	}
	return nil
}

// Jaeger is the Jaeger pod.
func (t *Topology) Jaeger() *Pod {
	for _, p := range t.Pods {
		if p.Role == RoleJaeger {
			return p
		}
	}
	return nil
}

// BuildTopology lays out m: pods in a stable order (namespace, workload, replica) with
// addresses from subnet (.1 is the host), and Services with ClusterIPs from serviceNet.
func BuildTopology(m *model.Model, subnet, serviceNet netip.Prefix, gw *GatewayPlan) (*Topology, error) {
	t := &Topology{Subnet: subnet.Masked(), ServiceNet: serviceNet.Masked(), Tenants: m.Tenants, GatewayPlan: gw,
		Secrets: map[string]map[string]string{}, ConfigMaps: map[string]map[string]string{}}
	t.HostIP = t.Subnet.Addr().Next()

	pods := append(gw.pods(), &Pod{
		Name: "jaeger-0", Namespace: JaegerNamespace, Role: RoleJaeger, WorkloadName: "jaeger",
		ServiceAccount: "default", Labels: map[string]string{"app": jaegerAppLabel, "sidecar.istio.io/inject": "false"},
		Ports: []corev1.ContainerPort{{Name: "grpc-otel", ContainerPort: jaegerOTLPGRPC}, {Name: "http-otel", ContainerPort: jaegerOTLPHTTP},
			{Name: "http-query", ContainerPort: JaegerQueryPort}},
	})
	workloads := append([]*model.Workload(nil), m.Workloads...)
	sort.Slice(workloads, func(i, j int) bool {
		if workloads[i].Namespace != workloads[j].Namespace {
			return workloads[i].Namespace < workloads[j].Namespace
		}
		return workloads[i].Name < workloads[j].Name
	})
	for _, w := range workloads {
		role := RoleApp
		if w.App() == "postgres" {
			role = RolePostgres
		}
		injected := m.Injected(w)
		var ports []corev1.ContainerPort
		for _, c := range w.Template.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		for i := 0; i < int(w.Replicas); i++ {
			pods = append(pods, &Pod{
				Name: fmt.Sprintf("%s-%d", w.Name, i), Namespace: w.Namespace, Role: role, Workload: w,
				WorkloadName: w.Name, ServiceAccount: w.ServiceAccount, Labels: m.PodLabels(w),
				Annotations: m.PodAnnotations(w), Sidecar: injected, Proxy: injected, Ports: ports,
			})
		}
	}
	// Addresses: .1 host, pods from .10.
	ip := t.HostIP
	for i := 0; i < 9; i++ {
		ip = ip.Next()
	}
	for i, p := range pods {
		ip = ip.Next()
		if !t.Subnet.Contains(ip) || ip == lastAddr(t.Subnet) {
			return nil, fmt.Errorf("%d pods do not fit in %s", len(pods), t.Subnet)
		}
		p.IP, p.Index = ip, i
	}
	t.Pods = pods

	// Services: deploy/'s, plus the gateway's and Jaeger's.
	svcs := []*Service{
		{Name: gw.Service, Namespace: gw.Namespace, Spec: corev1.ServiceSpec{Selector: gw.Selector, Ports: gw.ServicePorts}},
		{Name: JaegerCollector, Namespace: JaegerNamespace, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": jaegerAppLabel},
			Ports: []corev1.ServicePort{
				{Name: "grpc-otel", Port: jaegerOTLPGRPC, TargetPort: intstr.FromInt32(jaegerOTLPGRPC), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("grpc")},
				{Name: "http-otel", Port: jaegerOTLPHTTP, TargetPort: intstr.FromInt32(jaegerOTLPHTTP), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http")},
			}}},
		{Name: "tracing", Namespace: JaegerNamespace, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": jaegerAppLabel},
			Ports: []corev1.ServicePort{
				{Name: "http-query", Port: 80, TargetPort: intstr.FromInt32(JaegerQueryPort), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http")},
			}}},
	}
	for _, s := range m.Services {
		svcs = append(svcs, &Service{Name: s.Name, Namespace: s.Namespace, Spec: *s.Spec.DeepCopy()})
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].FQDN() < svcs[j].FQDN() })
	cip := t.ServiceNet.Addr()
	for _, s := range svcs {
		cip = cip.Next()
		if !t.ServiceNet.Contains(cip) {
			return nil, fmt.Errorf("%d services do not fit in %s", len(svcs), t.ServiceNet)
		}
		s.ClusterIP = cip
		if len(t.podsBehind(s)) == 0 {
			return nil, fmt.Errorf("Service %s/%s selects no pod of deploy/ (selector %v)", s.Namespace, s.Name, s.Spec.Selector)
		}
	}
	t.Services = svcs

	nss := map[string]bool{gw.Namespace: true}
	for ns := range m.Namespaces {
		nss[ns] = true
	}
	for ns := range nss {
		t.Namespaces = append(t.Namespaces, ns)
	}
	sort.Strings(t.Namespaces)
	sas := map[string]bool{gw.Namespace + "/" + gw.ServiceAccount: true, JaegerNamespace + "/default": true}
	for k := range m.ServiceAccounts {
		sas[k] = true
	}
	for k := range sas {
		t.SAs = append(t.SAs, k)
	}
	sort.Strings(t.SAs)
	for _, w := range workloads {
		for _, c := range w.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && m.Secret(w.Namespace, r.Name) == nil {
					return nil, fmt.Errorf("%s: env %s names Secret %s/%s, which deploy/ does not render", w.Ref(), e.Name, w.Namespace, r.Name)
				}
			}
		}
	}
	t.Secrets, t.ConfigMaps = m.Secrets, m.ConfigMaps
	return t, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	bits := p.Bits()
	for i := bits; i < 32; i++ {
		a[i/8] |= 1 << (7 - uint(i%8))
	}
	return netip.AddrFrom4(a)
}

// podsBehind returns the pods a Service selects.
func (t *Topology) podsBehind(s *Service) []*Pod {
	if len(s.Spec.Selector) == 0 {
		return nil
	}
	var out []*Pod
	for _, p := range t.Pods {
		if p.Namespace == s.Namespace && model.Selects(s.Spec.Selector, p.Labels) {
			out = append(out, p)
		}
	}
	return out
}

// Hosts are the /etc/hosts lines a pod in namespace ns resolves Services with: every
// Service's FQDN, its "name.namespace[.svc]" forms, and short names within ns — what cluster DNS
// and the pod's search path give.
func (t *Topology) Hosts(ns string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, s := range t.Services {
		names := []string{s.FQDN(), s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace}
		if s.Namespace == ns {
			names = append(names, s.Name)
		}
		fmt.Fprintf(&b, "%s\t%s\n", s.ClusterIP, strings.Join(names, " "))
	}
	return b.String()
}

// KubeObjects are the objects istiod reads from the API server: Namespaces, ServiceAccounts,
// Services (with ClusterIPs), one Running and Ready Pod per replica with its IP, and the
// EndpointSlices the endpoint controller would write.
func (t *Topology) KubeObjects(m *model.Model) []kuberuntime.Object {
	var out []kuberuntime.Object
	for _, ns := range t.Namespaces {
		labels := map[string]string{"kubernetes.io/metadata.name": ns}
		if n := m.Namespaces[ns]; n != nil {
			for k, v := range n.Labels {
				labels[k] = v
			}
		}
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})
	}
	for _, sa := range t.SAs {
		ns, name, _ := strings.Cut(sa, "/")
		out = append(out, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	}
	// The node the pods run on (istiod reads its locality labels; none here).
	out = append(out, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	for _, p := range t.Pods {
		out = append(out, p.kubePod())
	}
	for _, s := range t.Services {
		spec := *s.Spec.DeepCopy()
		spec.Type = corev1.ServiceTypeClusterIP
		spec.ClusterIP = s.ClusterIP.String()
		spec.ClusterIPs = []string{s.ClusterIP.String()}
		out = append(out, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace}, Spec: spec})
		out = append(out, t.endpointSlice(s))
	}
	return out
}

func (p *Pod) kubePod() *corev1.Pod {
	containers := []corev1.Container{{Name: p.WorkloadName, Ports: p.Ports}}
	if p.Workload != nil {
		containers = append([]corev1.Container(nil), p.Workload.Template.Spec.Containers...)
	}
	if p.Sidecar {
		uid := int64(1337)
		containers = append(containers, corev1.Container{Name: "istio-proxy", Args: []string{"proxy", "sidecar"},
			SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &uid}})
	}
	ip := p.IP.String()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations,
			UID: types.UID("ordermesh-" + p.Namespace + "-" + p.Name)},
		Spec: corev1.PodSpec{ServiceAccountName: p.ServiceAccount, NodeName: nodeName, Containers: containers},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func (t *Topology) endpointSlice(s *Service) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name + "-local", Namespace: s.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: s.Name, discoveryv1.LabelManagedBy: "ordermesh-local-mesh"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	pods := t.podsBehind(s)
	for _, sp := range s.Spec.Ports {
		name, proto := sp.Name, sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		port := targetPort(sp, pods)
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	ready := true
	for _, p := range pods {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.IP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName:   ptr(nodeName),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: types.UID("ordermesh-" + p.Namespace + "-" + p.Name)},
		})
	}
	return es
}

// targetPort resolves a Service port's targetPort (a number, or a container port's name).
func targetPort(sp corev1.ServicePort, pods []*Pod) int32 {
	switch {
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, p := range pods {
			for _, cp := range p.Ports {
				if cp.Name == sp.TargetPort.StrVal {
					return cp.ContainerPort
				}
			}
		}
	}
	return sp.Port
}

// SpiffeID is the pod's workload identity.
func (p *Pod) SpiffeID(trustDomain string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, p.Namespace, p.ServiceAccount)
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+4)
	for k, v := range in {
		out[k] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// tenantOfNamespace names the tenant owning ns ("" for istio-system).
func (t *Topology) tenantOfNamespace(ns string) string {
	for tn, n := range t.Tenants.Namespaces() {
		if n == ns {
			return tn.ID
		}
	}
	return ""
}
