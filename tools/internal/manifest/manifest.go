// Package manifest renders deploy/ with the kustomize Go API (krusty, no kustomize binary)
// and holds the rendered objects in unstructured form, so that tests can mutate them before
// they are checked.
package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object.
type Object struct {
	// Source names where it came from: "overlays/tenant-a", "mesh", ...
	Source string
	// Obj is the object as JSON-compatible values (strings, bool, int64, float64, maps, slices).
	Obj map[string]any
}

func (o *Object) str(path ...string) string {
	var cur any = o.Obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func (o *Object) APIVersion() string { return o.str("apiVersion") }
func (o *Object) Kind() string       { return o.str("kind") }
func (o *Object) Name() string       { return o.str("metadata", "name") }
func (o *Object) Namespace() string  { return o.str("metadata", "namespace") }

// Group is the API group ("" for core).
func (o *Object) Group() string {
	g, _, ok := strings.Cut(o.APIVersion(), "/")
	if !ok {
		return ""
	}
	return g
}

// Ref is a human reference: "Kind namespace/name (source)".
func (o *Object) Ref() string {
	n := o.Name()
	if ns := o.Namespace(); ns != "" {
		n = ns + "/" + n
	}
	return fmt.Sprintf("%s %s", o.Kind(), n)
}

// YAML renders the object.
func (o *Object) YAML() ([]byte, error) { return yaml.Marshal(o.Obj) }

// Clone deep-copies the object.
func (o *Object) Clone() *Object {
	return &Object{Source: o.Source, Obj: DeepCopy(o.Obj).(map[string]any)}
}

// DeepCopy copies a decoded YAML value: its maps and lists are new, so a change to the copy
// never reaches the original.
func DeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = DeepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = DeepCopy(x)
		}
		return s
	default:
		return v
	}
}

// Unit is one rendered kustomization.
type Unit struct {
	Name    string // "tenant-a" for overlays, "mesh" for the mesh-wide kustomization
	Dir     string // path relative to the deploy dir
	Objects []*Object
	Err     error // render error (the unit then has no objects)
}

// Bundle is everything check-deploy looks at.
type Bundle struct {
	DeployDir    string
	Routing      Routing // which variant was rendered
	Mesh         *Unit   // deploy/mesh
	Overlays     []*Unit // deploy/overlays/<tenant>, sorted by name
	OperatorPath string  // deploy/mesh/istio-operator.yaml (relative to DeployDir)
	Operator     []byte  // its content (nil when missing)
	OperatorErr  error
}

// Units returns the mesh unit followed by the overlays.
func (b *Bundle) Units() []*Unit {
	out := []*Unit{}
	if b.Mesh != nil {
		out = append(out, b.Mesh)
	}
	return append(out, b.Overlays...)
}

// Objects returns every rendered object of every unit.
func (b *Bundle) Objects() []*Object {
	var out []*Object
	for _, u := range b.Units() {
		out = append(out, u.Objects...)
	}
	return out
}

// Clone deep-copies the bundle (for tests that mutate it).
func (b *Bundle) Clone() *Bundle {
	c := *b
	cu := func(u *Unit) *Unit {
		if u == nil {
			return nil
		}
		n := *u
		n.Objects = make([]*Object, len(u.Objects))
		for i, o := range u.Objects {
			n.Objects[i] = o.Clone()
		}
		return &n
	}
	c.Mesh = cu(b.Mesh)
	c.Overlays = nil
	for _, u := range b.Overlays {
		c.Overlays = append(c.Overlays, cu(u))
	}
	c.Operator = append([]byte(nil), b.Operator...)
	return &c
}

// Layout of deploy/ (the contract with the manifests).
const (
	OverlaysDir  = "overlays"
	MeshDir      = "mesh"
	OperatorFile = "mesh/istio-operator.yaml"
)

// Routing is which API deploy/ routes traffic with: the two variants share everything else
// (deploy/README.md, "Two routing variants").
type Routing string

const (
	// RoutingIstio: VirtualServices and the Istio Gateway (deploy/mesh, deploy/overlays/<tenant>).
	RoutingIstio Routing = "istio"
	// RoutingGatewayAPI: HTTPRoutes and a Gateway API Gateway (deploy/mesh-gateway-api,
	// deploy/overlays/<tenant>/gateway-api).
	RoutingGatewayAPI Routing = "gateway-api"
)

// Routings are both variants, the default first.
var Routings = []Routing{RoutingIstio, RoutingGatewayAPI}

// ParseRouting accepts "istio" or "gateway-api" ("" is istio, the default).
func ParseRouting(s string) (Routing, error) {
	switch Routing(s) {
	case "", RoutingIstio:
		return RoutingIstio, nil
	case RoutingGatewayAPI:
		return RoutingGatewayAPI, nil
	}
	return "", fmt.Errorf("routing %q: want %q or %q", s, RoutingIstio, RoutingGatewayAPI)
}

// MeshDir is the variant's mesh-wide kustomization, relative to the deploy dir.
func (r Routing) MeshDir() string {
	if r == RoutingGatewayAPI {
		return "mesh-gateway-api"
	}
	return MeshDir
}

// OverlayDir is the variant's kustomization of a tenant, relative to the deploy dir.
func (r Routing) OverlayDir(tenant string) string {
	if r == RoutingGatewayAPI {
		return filepath.Join(OverlaysDir, tenant, "gateway-api")
	}
	return filepath.Join(OverlaysDir, tenant)
}

// VersionsFile pins, among others, the Gateway API CRDs' channel deploy/ installs.
const VersionsFile = "versions.env"

// GatewayAPIChannel reads GATEWAY_API_CHANNEL from deploy/versions.env: the channel whose CRD
// schemas Gateway API objects are validated and defaulted with, as the cluster's API server does.
func GatewayAPIChannel(deployDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(deployDir, VersionsFile))
	if err != nil {
		return "", fmt.Errorf("the Gateway API channel: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "GATEWAY_API_CHANNEL="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s has no GATEWAY_API_CHANNEL", VersionsFile)
}

// Load renders one routing variant of deploy/: its mesh kustomization and every
// deploy/overlays/<name> holding a kustomization.yaml (in that variant). Render errors are
// kept per unit; an error is returned only when the directory has no overlays at all.
func Load(deployDir string, routing Routing) (*Bundle, error) {
	b := &Bundle{DeployDir: deployDir, Routing: routing, OperatorPath: OperatorFile}
	entries, err := os.ReadDir(filepath.Join(deployDir, OverlaysDir))
	if err != nil {
		return nil, fmt.Errorf("reading overlays: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && hasKustomization(filepath.Join(deployDir, OverlaysDir, e.Name())) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no overlay with a kustomization.yaml under %s", filepath.Join(deployDir, OverlaysDir))
	}
	for _, n := range names {
		b.Overlays = append(b.Overlays, renderUnit(deployDir, n, routing.OverlayDir(n)))
	}
	b.Mesh = renderUnit(deployDir, "mesh", routing.MeshDir())
	b.Operator, b.OperatorErr = os.ReadFile(filepath.Join(deployDir, OperatorFile))
	return b, nil
}

func hasKustomization(dir string) bool {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

func renderUnit(deployDir, name, rel string) *Unit {
	u := &Unit{Name: name, Dir: rel}
	objs, err := Render(filepath.Join(deployDir, rel), rel)
	if err != nil {
		u.Err = err
		return u
	}
	u.Objects = objs
	return u
}

// Render runs kustomize (krusty, default options: load restrictions root-only, no plugins,
// no helm) on dir and returns the objects in output order.
func Render(dir, source string) ([]*Object, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", source, err)
	}
	var out []*Object
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", source, err)
		}
		o, err := parseObject(y)
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", source, err)
		}
		out = append(out, &Object{Source: source, Obj: o})
	}
	return out, nil
}

func parseObject(y []byte) (map[string]any, error) {
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	// k8s.io/apimachinery's json keeps integers as int64 (unstructured-compatible).
	if err := utiljson.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseDocs parses a multi-document YAML stream into objects (used for fixtures in tests).
func ParseDocs(data []byte, source string) ([]*Object, error) {
	var out []*Object
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		m, err := parseObject(doc)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		out = append(out, &Object{Source: source, Obj: m})
	}
	return out, nil
}
