// Loading deploy/ for the mesh: the same renderer and decoders as check-deploy, but only what
// stops istiod from turning the objects into configuration fails here (a render error, an
// object Kubernetes or Istio cannot decode, an Istio validation error, a workload or Service
// the topology cannot place). Policy choices — PERMISSIVE somewhere, a cross-tenant ALLOW — are
// check-deploy's business; the mesh runs them so the live tests can show what they do.
package mesh

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	kuberuntime "k8s.io/apimachinery/pkg/runtime"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"ordermesh.local/tools/internal/istioadapter"
	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/model"
)

// Loaded is deploy/ ready to run.
type Loaded struct {
	Model       *model.Model
	Topology    *Topology
	IstioConfig string // every Istio object, one YAML stream
	Mesh        *meshconfig.MeshConfig
	Routing     manifest.Routing     // the variant of deploy/ loaded
	GatewayAPI  []kuberuntime.Object // its Kubernetes Gateway API objects (the gateway-api variant)
}

// Network is the address plan.
type Network struct {
	Subnet     netip.Prefix
	ServiceNet netip.Prefix
}

// DefaultNetwork: pods on 10.213.0.0/24 (the bridge), ClusterIPs from 10.213.1.0/24.
var DefaultNetwork = Network{Subnet: netip.MustParsePrefix("10.213.0.0/24"), ServiceNet: netip.MustParsePrefix("10.213.1.0/24")}

// LoadError lists every object that cannot become configuration, with the reason.
type LoadError struct{ Problems []string }

func (e *LoadError) Error() string {
	return "deploy/ cannot become mesh configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Load renders and checks deploy/, and lays out the topology. Istio objects in extraDir (YAML
// files, applied in name order; "" for none) are applied on top, as `kubectl apply` would: an
// object with the kind, namespace and name of one of deploy/'s replaces it. The live tests use
// this for test-only configuration (Istio fault injection); deploy/ itself is never edited.
// Load is the default (istio) routing variant; LoadRouting picks one.
func Load(deployDir, extraDir string, nw Network) (*Loaded, error) {
	return LoadRouting(deployDir, extraDir, nw, manifest.RoutingIstio)
}

// LoadRouting is Load of one routing variant of deploy/. Extras may then also be Gateway API
// objects (an HTTPRoute with other weights).
func LoadRouting(deployDir, extraDir string, nw Network, routing manifest.Routing) (*Loaded, error) {
	b, err := manifest.Load(deployDir, routing)
	if err != nil {
		return nil, err
	}
	extras, err := readExtras(extraDir)
	if err != nil {
		return nil, &LoadError{Problems: []string{err.Error()}}
	}
	applyExtras(b, extras)
	v, err := istioadapter.NewValidator()
	if err != nil {
		return nil, err
	}
	stored, err := gatewayAPIStorer(deployDir)
	if err != nil {
		return nil, err
	}
	var problems []string
	var decoded []model.Decoded
	var overlays []string
	var istio bytes.Buffer
	var gatewayAPI []kuberuntime.Object
	for _, u := range b.Overlays {
		overlays = append(overlays, u.Name)
	}
	for _, u := range b.Units() {
		if u.Err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", u.Dir, u.Err))
			continue
		}
		for _, o := range u.Objects {
			d := model.Decoded{Object: o, Unit: u.Name}
			if istioadapter.IsIstioGroup(o.APIVersion()) {
				res := v.ValidateIstio(o.Obj)
				for _, e := range res.Errors {
					problems = append(problems, fmt.Sprintf("%s (%s): %s", o.Ref(), u.Dir, e))
				}
				if len(res.Errors) > 0 {
					continue
				}
				d.Spec = res.Spec
				y, err := o.YAML()
				if err != nil {
					return nil, err
				}
				istio.WriteString("---\n")
				istio.Write(y)
			} else {
				obj, err := model.DecodeKube(o)
				if err == nil && o.Group() == gatewayAPIGroup {
					obj, err = stored(o)
				}
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s (%s): %v", o.Ref(), u.Dir, err))
					continue
				}
				d.Kube = obj
				if o.Group() == gatewayAPIGroup {
					gatewayAPI = append(gatewayAPI, obj)
				}
			}
			decoded = append(decoded, d)
		}
	}
	if b.OperatorErr != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", b.OperatorPath, b.OperatorErr))
	}
	var meshYAML string
	if b.OperatorErr == nil {
		mi, _, errs := istioadapter.ParseIstioOperator(b.Operator)
		for _, e := range errs {
			problems = append(problems, b.OperatorPath+": "+e)
		}
		if mi != nil {
			meshYAML = mi.MeshConfigYAML
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	mc, err := xds.MeshConfig(meshYAML)
	if err != nil {
		return nil, &LoadError{Problems: []string{b.OperatorPath + ": " + err.Error()}}
	}
	m := model.Build(decoded, overlays, mc)
	gw, err := gatewayPlanFor(m, gatewayAPI)
	if err != nil {
		return nil, &LoadError{Problems: []string{err.Error()}}
	}
	t, err := BuildTopology(m, nw.Subnet, nw.ServiceNet, gw)
	if err != nil {
		return nil, &LoadError{Problems: []string{err.Error()}}
	}
	if refs := unresolvedHosts(m, t); len(refs) > 0 {
		return nil, &LoadError{Problems: refs}
	}
	if _, err := xds.ParseConfig(istio.String()); err != nil {
		return nil, &LoadError{Problems: []string{"Istio objects: " + err.Error()}}
	}
	return &Loaded{Model: m, Topology: t, IstioConfig: istio.String(), Mesh: mc, Routing: routing, GatewayAPI: gatewayAPI}, nil
}

// gatewayAPIStorer returns what turns a Gateway API object into the object a cluster's API
// server would store: checked against the CRD schemas of the channel deploy/versions.env
// installs, with their defaults applied (istiod's controller reads some of those defaults, e.g.
// a match's path, without a fallback), as check-deploy does.
func gatewayAPIStorer(deployDir string) (func(*manifest.Object) (kuberuntime.Object, error), error) {
	channel, err := manifest.GatewayAPIChannel(deployDir)
	if err != nil {
		return nil, err
	}
	return func(o *manifest.Object) (kuberuntime.Object, error) {
		v, err := istioadapter.NewGatewayAPIValidator(channel)
		if err != nil {
			return nil, err
		}
		// The API server ignores a status written with the object (the status subresource):
		// an extra marshalled from a Go object carries an empty one.
		obj, _ := manifest.DeepCopy(o.Obj).(map[string]any)
		delete(obj, "status")
		if err := v.Validate(obj); err != nil {
			return nil, fmt.Errorf("CRD schema (%s channel): %w", channel, err)
		}
		return model.DecodeKube(&manifest.Object{Source: o.Source, Obj: v.Default(obj)})
	}, nil
}

func objectKey(o *manifest.Object) string {
	return o.Group() + "/" + o.Kind() + "/" + o.Namespace() + "/" + o.Name()
}

// gatewayAPIGroup is the Kubernetes Gateway API's group.
const gatewayAPIGroup = "gateway.networking.k8s.io"

// readExtras reads the Istio and Gateway API objects of extraDir's *.yaml files.
func readExtras(dir string) ([]*manifest.Object, error) {
	if dir == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*manifest.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := manifest.ParseDocs(b, "extra/"+filepath.Base(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range objs {
			if !istioadapter.IsIstioGroup(o.APIVersion()) && o.Group() != gatewayAPIGroup {
				return nil, fmt.Errorf("%s: %s: only Istio and Gateway API objects may be applied on top of deploy/", f, o.Ref())
			}
		}
		out = append(out, objs...)
	}
	return out, nil
}

// applyExtras replaces deploy/'s objects by the extras with the same key and adds the others to
// the mesh unit.
func applyExtras(b *manifest.Bundle, extras []*manifest.Object) {
	if len(extras) == 0 {
		return
	}
	byKey := map[string]*manifest.Object{}
	for _, o := range extras {
		byKey[objectKey(o)] = o
	}
	for _, u := range b.Units() {
		for i, o := range u.Objects {
			if x, ok := byKey[objectKey(o)]; ok {
				u.Objects[i] = x
				delete(byKey, objectKey(o))
			}
		}
	}
	for _, o := range extras {
		if _, left := byKey[objectKey(o)]; left && b.Mesh != nil {
			b.Mesh.Objects = append(b.Mesh.Objects, o)
		}
	}
}

// ProxyOf describes a pod's Envoy for istiod.
func (ld *Loaded) ProxyOf(p *Pod) xds.Proxy {
	var ports []xds.Port
	for _, cp := range p.Ports {
		ports = append(ports, xds.Port{Name: cp.Name, Number: int(cp.ContainerPort), Protocol: string(cp.Protocol)})
	}
	return xds.Proxy{
		Router: p.Role == RoleGateway, Pod: p.Name, Namespace: p.Namespace, IP: p.IP.String(),
		ServiceAccount: p.ServiceAccount, Workload: p.WorkloadName, Labels: p.Labels, Ports: ports,
		ProxyConfig: ld.Mesh.GetDefaultConfig(),
	}
}

// unresolvedHosts finds routes and apps that name a cluster-local host no Service provides: in a
// cluster they would fail at run time (503 NR, or a DNS error in the app).
func unresolvedHosts(m *model.Model, t *Topology) []string {
	known := map[string]bool{}
	for _, s := range t.Services {
		known[s.FQDN()] = true
	}
	var out []string
	for _, vs := range m.VirtualServices {
		for _, h := range vs.Spec.GetHttp() {
			for _, r := range h.GetRoute() {
				host := m.FQDN(r.GetDestination().GetHost(), vs.Namespace)
				if strings.HasSuffix(host, ".svc."+clusterDomain) && !known[host] {
					out = append(out, fmt.Sprintf("%s: routes to %s, which no Service of deploy/ provides", vs.Ref(), host))
				}
			}
		}
	}
	for _, w := range m.Workloads {
		for _, c := range w.Template.Spec.Containers {
			for _, e := range c.Env {
				for _, host := range clusterHosts(e.Value) {
					if !known[host] {
						out = append(out, fmt.Sprintf("%s: env %s names %s, which no Service of deploy/ provides", w.Ref(), e.Name, host))
					}
				}
			}
		}
	}
	return out
}

// clusterHosts extracts "<name>.<ns>.svc.cluster.local" host names from a URL-ish value.
func clusterHosts(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == '/' || r == '@' || r == ':' || r == ' ' }) {
		if strings.HasSuffix(f, ".svc."+clusterDomain) {
			out = append(out, f)
		}
	}
	return out
}
