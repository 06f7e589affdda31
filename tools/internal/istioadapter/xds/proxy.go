package xds

import (
	"encoding/json"
	"fmt"
	"strconv"

	meshconfig "istio.io/api/mesh/v1alpha1"
	pilotmodel "istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/model"
)

// IstioVersion is what every proxy reports as ISTIO_VERSION: the version of the pinned
// istio.io/istio commit (its VERSION file says 1.31). A proxy without a version makes istiod
// take old code paths, so it is always set (xds_test.go checks it against the module).
const IstioVersion = "1.31.0"

// Proxy describes one Envoy as istio-agent would announce it.
type Proxy struct {
	Router         bool // the ingress gateway (router~ node); a sidecar otherwise
	Pod, Namespace string
	IP             string
	ServiceAccount string
	Workload       string // Deployment name
	Labels         map[string]string
	Ports          []Port // the pod's container ports
	ProxyConfig    *meshconfig.ProxyConfig
}

// Port is one container port.
type Port struct {
	Name     string
	Number   int
	Protocol string
}

// NodeID is the Envoy node id istiod parses: type~ip~pod.namespace~namespace.svc.cluster.local.
func (p Proxy) NodeID() string {
	kind := pilotmodel.SidecarProxy
	if p.Router {
		kind = pilotmodel.Router
	}
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", kind, p.IP, p.Pod, p.Namespace, p.Namespace)
}

// NodeMetadataJSON is the node metadata of the proxy's bootstrap, as JSON (Istio's own
// NodeMetadata type, serialised by its own ToStruct).
func (p Proxy) NodeMetadataJSON() (json.RawMessage, error) {
	ports := model.PodPortList{}
	for _, port := range p.Ports {
		ports = append(ports, model.PodPort{Name: port.Name, ContainerPort: port.Number, Protocol: port.Protocol})
	}
	md := model.NodeMetadata{
		IstioVersion:        IstioVersion,
		Namespace:           p.Namespace,
		ClusterID:           "Kubernetes",
		ServiceAccount:      p.ServiceAccount,
		Labels:              p.Labels,
		InstanceIPs:         []string{p.IP},
		InterceptionMode:    model.TrafficInterceptionMode(pilotmodel.InterceptionRedirect),
		WorkloadName:        p.Workload,
		MeshID:              "cluster.local",
		PodPorts:            ports,
		ProxyConfig:         (*model.NodeMetaProxyConfig)(p.ProxyConfig),
		EnvoyStatusPort:     15021,
		EnvoyPrometheusPort: 15090,
		PlatformMetadata:    map[string]string{},
	}
	if p.Router {
		md.InterceptionMode = model.TrafficInterceptionMode(pilotmodel.InterceptionNone)
	}
	// Istio's own serialisation (ToStruct is json.Marshal of the same type), plus the pod's
	// name and owner that istio-agent adds from the downward API.
	b, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("node metadata of %s.%s: %w", p.Pod, p.Namespace, err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	fields["NAME"] = p.Pod
	fields["OWNER"] = "kubernetes://apis/apps/v1/namespaces/" + p.Namespace + "/deployments/" + p.Workload
	return json.Marshal(fields)
}

// SpiffeID is the workload identity of a service account: what the SDS `default` certificate
// carries as its URI SAN.
func SpiffeID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Concurrency is the number of Envoy worker threads the proxy config asks for (Istio's
// default is 2; 0 means one per core).
func Concurrency(pc *meshconfig.ProxyConfig) string {
	if pc == nil || pc.GetConcurrency() == nil {
		return "2"
	}
	return strconv.Itoa(int(pc.GetConcurrency().GetValue()))
}
