package istioadapter

// The Kubernetes Gateway API CRD schemas (OpenAPI + CEL) of the sigs.k8s.io/gateway-api module
// this program is built with, in the channel deploy/ installs (config/crd/<channel>), validated
// with the same apiextensions machinery as Istio's CRDs (crdschema.go).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// GatewayAPIModule is the Go module holding the Gateway API CRDs.
const GatewayAPIModule = "sigs.k8s.io/gateway-api"

// IsGatewayAPIGroup reports whether an apiVersion belongs to the Kubernetes Gateway API.
func IsGatewayAPIGroup(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return group == "gateway.networking.k8s.io" || group == "gateway.networking.x-k8s.io"
}

// GatewayAPICRDsDir is config/crd/<channel> ("standard" or "experimental") of the linked
// sigs.k8s.io/gateway-api module in the Go module cache.
func GatewayAPICRDsDir(channel string) (string, error) {
	if channel != "standard" && channel != "experimental" {
		return "", fmt.Errorf("Gateway API channel %q: want standard or experimental", channel)
	}
	dir, err := linkedModuleDir(GatewayAPIModule)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "config", "crd", channel), nil
}

// linkedModuleDir locates a dependency of this binary in the module cache (or, for test binaries,
// asks the go command inside the tools module).
func linkedModuleDir(path string) (string, error) {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path != path {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			cache := os.Getenv("GOMODCACHE")
			if cache == "" {
				out, err := exec.Command("go", "env", "GOMODCACHE").Output()
				if err != nil {
					return "", fmt.Errorf("locating the Go module cache (set GOMODCACHE): %w", err)
				}
				cache = strings.TrimSpace(string(out))
			}
			return filepath.Join(cache, filepath.FromSlash(dep.Path)+"@"+dep.Version), nil
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("%s is not a dependency of this binary and `go list -m` does not know it", path)
	}
	return strings.TrimSpace(string(out)), nil
}

// GatewayAPIValidator validates Gateway API objects against one channel's CRD schemas.
type GatewayAPIValidator struct {
	Dir  string
	crds *crdValidator
}

var gatewayAPIValidators sync.Map // channel -> func() (*GatewayAPIValidator, error)

// NewGatewayAPIValidator loads (once per process and channel) the channel's CRD schemas.
func NewGatewayAPIValidator(channel string) (*GatewayAPIValidator, error) {
	f, _ := gatewayAPIValidators.LoadOrStore(channel, sync.OnceValues(func() (*GatewayAPIValidator, error) {
		return newGatewayAPIValidator(channel)
	}))
	return f.(func() (*GatewayAPIValidator, error))()
}

func newGatewayAPIValidator(channel string) (*GatewayAPIValidator, error) {
	dir, err := GatewayAPICRDsDir(channel)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no Gateway API CRDs in %s", dir)
	}
	var all bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		all.WriteString("\n---\n")
		all.Write(b)
	}
	v, err := newCRDValidator(&all)
	if err != nil {
		return nil, fmt.Errorf("loading Gateway API CRD schemas from %s: %w", dir, err)
	}
	return &GatewayAPIValidator{Dir: dir, crds: v}, nil
}

// Validate checks one Gateway API object (not modified) against its CRD schema: types, enums,
// unknown fields (fields the channel's CRD would prune), list rules and CEL rules.
func (v *GatewayAPIValidator) Validate(obj map[string]any) error {
	return v.crds.validate((&unstructured.Unstructured{Object: obj}).DeepCopy())
}

// Default returns a copy of obj with its CRD schema's defaults applied, as the API server
// stores it (e.g. an HTTPRoute match without a path gets PathPrefix "/"); Istio's controller
// reads objects only in that form. An object of an unknown kind is returned copied unchanged.
func (v *GatewayAPIValidator) Default(obj map[string]any) map[string]any {
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	if st := v.crds.structural[u.GroupVersionKind()]; st != nil {
		structuraldefaulting.Default(u.Object, st)
	}
	return u.Object
}
