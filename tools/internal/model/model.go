// Package model turns rendered objects into typed Kubernetes objects (strictly decoded) and
// Istio specs (decoded by the istioadapter), and indexes them for the promise checks.
package model

import (
	"fmt"
	"iter"
	"k8s.io/apimachinery/pkg/labels"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/manifest"
)

// kubeScheme is client-go's scheme (the built-in kinds) plus the Kubernetes Gateway API's kinds
// (gateway.networking.k8s.io v1 and v1beta1, the release Istio is built against): the kinds
// deploy/ may hold that are not Istio's.
var kubeScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, gatewayv1.Install, gatewayv1beta1.Install} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("model: building the Kubernetes scheme: %v", err))
		}
	}
	return s
}()

var strictDecoder = serializer.NewCodecFactory(kubeScheme, serializer.EnableStrict).UniversalDeserializer()

// DecodeKube decodes a built-in Kubernetes or Gateway API object strictly: unknown or
// duplicate fields and wrong types are errors, and so is a kind neither API knows.
func DecodeKube(o *manifest.Object) (runtime.Object, error) {
	js, err := jsonOf(o)
	if err != nil {
		return nil, err
	}
	obj, _, err := strictDecoder.Decode(js, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// Meta identifies an object in findings.
type Meta struct {
	Kind, Namespace, Name, Source string
	Labels                        map[string]string
	Object                        *manifest.Object
	// GeneratedFrom names the Gateway API objects ("HTTPRoute ns/name") Istio generated this
	// config from; empty for objects rendered from deploy/.
	GeneratedFrom []string
}

// Ref is "Kind namespace/name"; for a config Istio generated, the objects it came from.
func (m Meta) Ref() string {
	if len(m.GeneratedFrom) > 0 {
		return strings.Join(m.GeneratedFrom, ", ")
	}
	if m.Namespace == "" {
		return m.Kind + " " + m.Name
	}
	return fmt.Sprintf("%s %s/%s", m.Kind, m.Namespace, m.Name)
}

// Workload is a Deployment or StatefulSet (its pod template is what runs).
type Workload struct {
	Meta
	PodLabels      map[string]string
	ServiceAccount string
	Template       corev1.PodTemplateSpec
	Replicas       int32
	// GatewayName is the Gateway API Gateway this workload is the deployment of ("" otherwise):
	// policies bind to it by targetRefs.
	GatewayName string
}

// TargetedBy reports whether a policy in namespace ns with these targetRefs binds to the
// workload: a Gateway API Gateway reference (group gateway.networking.k8s.io, kind Gateway) in
// the workload's namespace naming the Gateway it runs.
func (w *Workload) TargetedBy(ns string, refs []*typev1beta1.PolicyTargetReference) bool {
	for _, r := range refs {
		refNS := r.GetNamespace()
		if refNS == "" {
			refNS = ns
		}
		if w.GatewayName != "" && r.GetGroup() == gatewayv1.GroupName && r.GetKind() == "Gateway" &&
			r.GetName() == w.GatewayName && refNS == w.Namespace {
			return true
		}
	}
	return false
}

// Service is a Kubernetes Service.
type Service struct {
	Meta
	Spec corev1.ServiceSpec
}

// Namespace is a Kubernetes Namespace.
type Namespace struct {
	Meta
	Annotations map[string]string
}

// NetworkPolicy is a Kubernetes NetworkPolicy.
type NetworkPolicy struct {
	Meta
	Spec netv1.NetworkPolicySpec
}

// Istio is an Istio object with its decoded spec.
type Istio[T proto.Message] struct {
	Meta
	Spec T
}

// GatewayAPIGateway is a gateway.networking.k8s.io Gateway.
type GatewayAPIGateway struct {
	Meta
	Annotations map[string]string
	Spec        gatewayv1.GatewaySpec
}

// HTTPRoute is a gateway.networking.k8s.io HTTPRoute.
type HTTPRoute struct {
	Meta
	Spec gatewayv1.HTTPRouteSpec
}

// Generated is one Istio config that Istio's Gateway API controller generated.
type Generated struct {
	Namespace, Name string
	From            []string // "HTTPRoute ns/name", "Gateway ns/name"
	Spec            proto.Message
}

// AddGenerated adds the VirtualServices and Gateways Istio generated from the Gateway API
// objects, so that the promises run on what Istio programs.
func (m *Model) AddGenerated(vss, gws []Generated) {
	for _, g := range vss {
		if vs, ok := g.Spec.(*networking.VirtualService); ok {
			m.VirtualServices = append(m.VirtualServices, &Istio[*networking.VirtualService]{g.meta("VirtualService"), vs})
		}
	}
	for _, g := range gws {
		if gw, ok := g.Spec.(*networking.Gateway); ok {
			m.Gateways = append(m.Gateways, &Istio[*networking.Gateway]{g.meta("Gateway"), gw})
		}
	}
}

func (g Generated) meta(kind string) Meta {
	return Meta{Kind: kind, Namespace: g.Namespace, Name: g.Name, Source: "istio's Gateway API conversion", GeneratedFrom: g.From}
}

// Tenant is one overlay.
type Tenant struct {
	Overlay    string   // overlay directory name, e.g. "tenant-a"
	ID         string   // the namespaces' `tenant` label (falls back to Overlay)
	Namespaces []string // sorted
}

// Tenants are the tenant overlays, in overlay order.
type Tenants []*Tenant

// Namespaces yields every tenant namespace with its tenant: tenant by tenant, each one's
// namespaces sorted. It is the one walk over "each namespace of each tenant".
func (ts Tenants) Namespaces() iter.Seq2[*Tenant, string] {
	return func(yield func(*Tenant, string) bool) {
		for _, t := range ts {
			for _, ns := range t.Namespaces {
				if !yield(t, ns) {
					return
				}
			}
		}
	}
}

// ByID returns the tenant whose ID (its namespaces' `tenant` label) is id, or nil.
func (ts Tenants) ByID(id string) *Tenant {
	for _, t := range ts {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// NamespaceFor returns the tenant's namespace with the given role suffix ("orders"), or "".
func (t *Tenant) NamespaceFor(role string) string {
	for _, ns := range t.Namespaces {
		if strings.HasSuffix(ns, "-"+role) {
			return ns
		}
	}
	return ""
}

// Model is the typed, indexed view of everything rendered.
type Model struct {
	Namespaces            map[string]*Namespace
	Workloads             []*Workload
	Services              []*Service
	ServiceAccounts       map[string]Meta // "ns/name"
	PeerAuthentications   []*Istio[*security.PeerAuthentication]
	AuthorizationPolicies []*Istio[*security.AuthorizationPolicy]
	DestinationRules      []*Istio[*networking.DestinationRule]
	VirtualServices       []*Istio[*networking.VirtualService]
	Gateways              []*Istio[*networking.Gateway]
	Sidecars              []*Istio[*networking.Sidecar]
	EnvoyFilters          []*Istio[*networking.EnvoyFilter]
	Telemetries           []*Istio[*telemetry.Telemetry]
	NetworkPolicies       []*NetworkPolicy
	// The Kubernetes Gateway API objects (the gateway-api variant); Istio's conversion of them
	// is in VirtualServices and Gateways, with Meta.GeneratedFrom set (AddGenerated).
	GatewayAPIGateways []*GatewayAPIGateway
	HTTPRoutes         []*HTTPRoute
	// Secrets and ConfigMaps by "ns/name": key -> value (Secret data decoded).
	Secrets    map[string]map[string]string
	ConfigMaps map[string]map[string]string

	Mesh          *meshv1alpha1.MeshConfig // effective mesh config (nil if the operator is unusable)
	RootNamespace string
	TrustDomain   string
	DomainSuffix  string

	Tenants  Tenants
	tenantOf map[string]*Tenant

	// IngressGateway is the gateway istioctl installs (not rendered from deploy/), so that
	// policies selecting it and the analyzers can see it.
	IngressGateway *Workload
}

// App is the application a workload belongs to: its pods' `app` label, else its name.
func (w *Workload) App() string {
	if a := w.PodLabels["app"]; a != "" {
		return a
	}
	return w.Name
}

// AppWorkloads returns the workloads of application app in namespace ns.
func (m *Model) AppWorkloads(ns, app string) []*Workload {
	var out []*Workload
	for _, w := range m.WorkloadsIn(ns) {
		if w.App() == app {
			out = append(out, w)
		}
	}
	return out
}

// Decoded is one object after decoding: Kube for built-in kinds, Spec for Istio kinds.
type Decoded struct {
	Object *manifest.Object
	Unit   string
	Kube   runtime.Object
	Spec   proto.Message
}

// Build indexes decoded objects. tenantUnits maps overlay name -> its objects' unit name.
func Build(decoded []Decoded, tenantOverlays []string, mesh *meshv1alpha1.MeshConfig) *Model {
	m := &Model{
		Namespaces:      map[string]*Namespace{},
		ServiceAccounts: map[string]Meta{},
		Secrets:         map[string]map[string]string{},
		ConfigMaps:      map[string]map[string]string{},
		Mesh:            mesh,
		RootNamespace:   "istio-system",
		TrustDomain:     "cluster.local",
		DomainSuffix:    "cluster.local",
		tenantOf:        map[string]*Tenant{},
	}
	m.IngressGateway = gatewayWorkload(callgraph.Gateway.Namespace, callgraph.GatewayWorkload, callgraph.Gateway.ServiceAccount, callgraph.GatewayLabels)
	if mesh != nil {
		if mesh.GetRootNamespace() != "" {
			m.RootNamespace = mesh.GetRootNamespace()
		}
		if mesh.GetTrustDomain() != "" {
			m.TrustDomain = mesh.GetTrustDomain()
		}
	}
	tenants := map[string]*Tenant{}
	for _, name := range tenantOverlays {
		tenants[name] = &Tenant{Overlay: name, ID: name}
	}
	for _, d := range decoded {
		o := d.Object
		meta := Meta{Kind: o.Kind(), Namespace: o.Namespace(), Name: o.Name(), Source: o.Source, Object: o}
		if t := tenants[d.Unit]; t != nil && o.Namespace() != "" && !slices.Contains(t.Namespaces, o.Namespace()) {
			t.Namespaces = append(t.Namespaces, o.Namespace())
		}
		switch k := d.Kube.(type) {
		case *corev1.Namespace:
			meta.Namespace = ""
			meta.Labels = k.Labels
			m.Namespaces[k.Name] = &Namespace{Meta: meta, Annotations: k.Annotations}
			if t := tenants[d.Unit]; t != nil && !slices.Contains(t.Namespaces, k.Name) {
				t.Namespaces = append(t.Namespaces, k.Name)
			}
		case *appsv1.Deployment:
			meta.Labels = k.Labels
			m.Workloads = append(m.Workloads, &Workload{Meta: meta, PodLabels: k.Spec.Template.Labels,
				ServiceAccount: k.Spec.Template.Spec.ServiceAccountName, Template: k.Spec.Template, Replicas: replicas(k.Spec.Replicas)})
		case *appsv1.StatefulSet:
			meta.Labels = k.Labels
			m.Workloads = append(m.Workloads, &Workload{Meta: meta, PodLabels: k.Spec.Template.Labels,
				ServiceAccount: k.Spec.Template.Spec.ServiceAccountName, Template: k.Spec.Template, Replicas: replicas(k.Spec.Replicas)})
		case *corev1.Service:
			meta.Labels = k.Labels
			m.Services = append(m.Services, &Service{Meta: meta, Spec: k.Spec})
		case *netv1.NetworkPolicy:
			meta.Labels = k.Labels
			m.NetworkPolicies = append(m.NetworkPolicies, &NetworkPolicy{Meta: meta, Spec: k.Spec})
		case *corev1.ServiceAccount:
			m.ServiceAccounts[k.Namespace+"/"+k.Name] = meta
		case *corev1.Secret:
			data := map[string]string{}
			for key, v := range k.Data {
				data[key] = string(v)
			}
			for key, v := range k.StringData {
				data[key] = v
			}
			m.Secrets[k.Namespace+"/"+k.Name] = data
		case *gatewayv1.Gateway:
			meta.Labels = k.Labels
			m.GatewayAPIGateways = append(m.GatewayAPIGateways, &GatewayAPIGateway{Meta: meta, Annotations: k.Annotations, Spec: k.Spec})
		case *gatewayv1.HTTPRoute:
			meta.Labels = k.Labels
			m.HTTPRoutes = append(m.HTTPRoutes, &HTTPRoute{Meta: meta, Spec: k.Spec})
		case *corev1.ConfigMap:
			data := map[string]string{}
			for key, v := range k.Data {
				data[key] = v
			}
			m.ConfigMaps[k.Namespace+"/"+k.Name] = data
		}
		switch s := d.Spec.(type) {
		case *security.PeerAuthentication:
			m.PeerAuthentications = append(m.PeerAuthentications, &Istio[*security.PeerAuthentication]{meta, s})
		case *security.AuthorizationPolicy:
			m.AuthorizationPolicies = append(m.AuthorizationPolicies, &Istio[*security.AuthorizationPolicy]{meta, s})
		case *networking.DestinationRule:
			m.DestinationRules = append(m.DestinationRules, &Istio[*networking.DestinationRule]{meta, s})
		case *networking.VirtualService:
			m.VirtualServices = append(m.VirtualServices, &Istio[*networking.VirtualService]{meta, s})
		case *networking.Gateway:
			m.Gateways = append(m.Gateways, &Istio[*networking.Gateway]{meta, s})
		case *networking.Sidecar:
			m.Sidecars = append(m.Sidecars, &Istio[*networking.Sidecar]{meta, s})
		case *networking.EnvoyFilter:
			m.EnvoyFilters = append(m.EnvoyFilters, &Istio[*networking.EnvoyFilter]{meta, s})
		case *telemetry.Telemetry:
			m.Telemetries = append(m.Telemetries, &Istio[*telemetry.Telemetry]{meta, s})
		}
	}
	for _, name := range tenantOverlays {
		t := tenants[name]
		sort.Strings(t.Namespaces)
		for _, ns := range t.Namespaces {
			if n := m.Namespaces[ns]; n != nil && n.Labels["tenant"] != "" {
				t.ID = n.Labels["tenant"]
				break
			}
		}
		m.Tenants = append(m.Tenants, t)
	}
	for t, ns := range m.Tenants.Namespaces() {
		m.tenantOf[ns] = t
	}
	if gw := m.istioClassGateway(); gw != nil {
		m.IngressGateway = gatewayAPIWorkload(gw)
	}
	return m
}

// gatewayWorkload is a gateway Deployment as Istio installs it: one proxy in router mode.
func gatewayWorkload(ns, name, sa string, labels map[string]string) *Workload {
	w := &Workload{
		Meta:           Meta{Kind: "Deployment", Namespace: ns, Name: name, Source: "mesh", Labels: labels},
		PodLabels:      labels,
		ServiceAccount: sa,
		Replicas:       1,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "istio-proxy", Args: []string{"proxy", "router"}}},
		}},
	}
	w.Template.Labels = labels
	return w
}

// IstioGatewayClass is the GatewayClass whose Gateways istiod deploys and programs.
const IstioGatewayClass = "istio"

// Labels and annotation of the gateway Deployment istiod creates for a Gateway API Gateway.
const (
	GatewayNameLabel                = "gateway.networking.k8s.io/gateway-name"
	GatewayServiceAccountAnnotation = "gateway.istio.io/service-account"
)

func (m *Model) istioClassGateway() *GatewayAPIGateway {
	for _, gw := range m.GatewayAPIGateways {
		if gw.Spec.GatewayClassName == IstioGatewayClass {
			return gw
		}
	}
	return nil
}

// gatewayAPIWorkload is the Deployment istiod's gateway controller creates for a Gateway of
// class istio: named <gateway>-istio, its pods labelled with the Gateway's infrastructure labels
// and gateway-name, running as the ServiceAccount the gateway.istio.io/service-account
// annotation names (else <gateway>-istio).
func gatewayAPIWorkload(gw *GatewayAPIGateway) *Workload {
	name := gw.Name + "-" + IstioGatewayClass
	labels := map[string]string{}
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Labels {
			labels[string(k)] = string(v)
		}
	}
	labels[GatewayNameLabel] = gw.Name
	sa := gw.Annotations[GatewayServiceAccountAnnotation]
	if sa == "" {
		sa = name
	}
	w := gatewayWorkload(gw.Namespace, name, sa, labels)
	w.Source = gw.Source
	w.GatewayName = gw.Name
	return w
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// Secret returns the data of Secret ns/name, or nil.
func (m *Model) Secret(ns, name string) map[string]string { return m.Secrets[ns+"/"+name] }

// ConfigMap returns the data of ConfigMap ns/name, or nil.
func (m *Model) ConfigMap(ns, name string) map[string]string { return m.ConfigMaps[ns+"/"+name] }

// TenantOf returns the tenant owning a namespace, or nil.
func (m *Model) TenantOf(ns string) *Tenant { return m.tenantOf[ns] }

// WorkloadsIn returns the workloads of a namespace.
func (m *Model) WorkloadsIn(ns string) []*Workload {
	var out []*Workload
	for _, w := range m.Workloads {
		if w.Namespace == ns {
			out = append(out, w)
		}
	}
	return out
}

// Workload finds a workload by namespace and name.
func (m *Model) Workload(ns, name string) *Workload {
	for _, w := range m.Workloads {
		if w.Namespace == ns && w.Name == name {
			return w
		}
	}
	return nil
}

// Selects reports whether matchLabels (empty = everything) selects podLabels.
func Selects(matchLabels, podLabels map[string]string) bool {
	return labels.SelectorFromSet(matchLabels).Matches(labels.Set(podLabels))
}

// FQDN resolves a host written in namespace ns the way Istio does for short names.
func (m *Model) FQDN(host, ns string) string {
	if host == "" || strings.Contains(host, "*") {
		return host
	}
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 1:
		return fmt.Sprintf("%s.%s.svc.%s", host, ns, m.DomainSuffix)
	case len(parts) == 2:
		return fmt.Sprintf("%s.svc.%s", host, m.DomainSuffix)
	case len(parts) == 3 && parts[2] == "svc":
		return host + "." + m.DomainSuffix
	}
	return host
}

// ServiceByFQDN finds the Service named by a cluster-local host name.
func (m *Model) ServiceByFQDN(fqdn string) *Service {
	for _, s := range m.Services {
		if fqdn == fmt.Sprintf("%s.%s.svc.%s", s.Name, s.Namespace, m.DomainSuffix) {
			return s
		}
	}
	return nil
}

// WorkloadsBehind returns the workloads whose pods a Service selects.
func (m *Model) WorkloadsBehind(s *Service) []*Workload {
	if len(s.Spec.Selector) == 0 {
		return nil
	}
	var out []*Workload
	for _, w := range m.WorkloadsIn(s.Namespace) {
		if Selects(s.Spec.Selector, w.PodLabels) {
			out = append(out, w)
		}
	}
	return out
}
