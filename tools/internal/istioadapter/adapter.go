// Package istioadapter is the only package of ordermesh's tools that imports istio.io/istio.
//
// Istio's Go packages carry no compatibility promise: every call into them goes through the
// small API below (plain Go types, the public istio.io/api protos and YAML in, findings out), and
// adapter_test.go pins the behaviour this project relies on with golden fixtures, so an Istio
// upgrade that changes a message code, a validation result or a retry default fails loudly
// here rather than silently weakening `make check-deploy`.
//
// What it wraps (istio.io/istio at the commit pinned in tools/go.mod):
//   - pkg/config/schema/collections + pilot/pkg/config/kube/crd: kind lookup and (strict) spec decoding
//   - pkg/config/validation (through each schema's ValidateConfig): Istio's own validation
//   - the CRD OpenAPI/CEL schemas of manifests/charts/base/files/crd-all.gen.yaml, validated
//     like pkg/config/crd does (see crdschema.go for why not through that package)
//   - pkg/config/analysis/{analyzers,local}: the `istioctl analyze` analyzers
//   - operator/pkg/apis/validation + pkg/config/mesh: the IstioOperator and its meshConfig
//   - pilot/pkg/networking/core/route/retry: the retry policy Istio really programs into Envoy
//   - pilot/pkg/config/kube/gateway (+ pilot/pkg/status, pilot/pkg/config/kube/crdclient,
//     pkg/kube's fake client): istiod's conversion of Gateway API objects and the status it
//     writes (gatewayapi.go); the Gateway API CRD schemas come from the linked
//     sigs.k8s.io/gateway-api module (gatewayschema.go)
package istioadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ryanuber/go-glob"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/operator/pkg/apis/validation"
	"istio.io/istio/operator/pkg/values"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/networking/core/route/retry"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/analysis/analyzers"
	"istio.io/istio/pkg/config/analysis/diag"
	"istio.io/istio/pkg/config/analysis/local"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/resource"
	"istio.io/istio/pkg/config/schema/collections"
	istioresource "istio.io/istio/pkg/config/schema/resource"
	"istio.io/istio/pkg/log"
	"istio.io/istio/pkg/util/protomarshal"
)

// CRDsPathInModule is where Istio's CRDs (with their OpenAPI/CEL schemas) live inside the
// istio.io/istio module.
const CRDsPathInModule = "manifests/charts/base/files/crd-all.gen.yaml"

// CRDsFile is the CRD file of the istio.io/istio module this program was built with, read from
// the Go module cache (where building the program put it): no copy of Istio's files is kept in
// this repository. ISTIO_CRDS overrides the path.
func CRDsFile() (string, error) {
	if p := os.Getenv("ISTIO_CRDS"); p != "" {
		return p, nil
	}
	dir, err := linkedModuleDir("istio.io/istio")
	if err != nil {
		return "", fmt.Errorf("%w (or set ISTIO_CRDS)", err)
	}
	return filepath.Join(dir, filepath.FromSlash(CRDsPathInModule)), nil
}

func init() {
	// Istio's packages log through istio.io/istio/pkg/log to stdout by default; keep stdout for
	// our report and only let errors through, on stderr.
	o := log.DefaultOptions()
	o.OutputPaths = []string{"stderr"}
	o.ErrorOutputPaths = []string{"stderr"}
	o.SetDefaultOutputLevel(log.OverrideScopeName, log.ErrorLevel)
	_ = log.Configure(o)
}

// IsIstioGroup reports whether an apiVersion belongs to an Istio API group.
func IsIstioGroup(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return strings.HasSuffix(group, ".istio.io")
}

// Validator validates Istio objects with Istio's own code.
type Validator struct {
	crds *crdValidator
}

var (
	validatorOnce sync.Once
	validatorVal  *Validator
	validatorErr  error
)

// NewValidator builds (once per process) the CRD-schema validator from the pinned module's CRDs.
func NewValidator() (*Validator, error) {
	validatorOnce.Do(func() {
		validatorVal, validatorErr = newValidator()
	})
	return validatorVal, validatorErr
}

func newValidator() (*Validator, error) {
	path, err := CRDsFile()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("Istio CRD schemas: %w", err)
	}
	defer f.Close()
	v, err := newCRDValidator(f)
	if err != nil {
		return nil, fmt.Errorf("loading Istio CRD schemas from %s: %w", path, err)
	}
	return &Validator{crds: v}, nil
}

// IstioResult is the outcome of validating one Istio object.
type IstioResult struct {
	// Spec is the decoded spec as the public istio.io/api proto (e.g.
	// *networkingv1alpha3.VirtualService, *securityv1beta1.AuthorizationPolicy,
	// *telemetryv1alpha1.Telemetry), nil when the object could not be decoded.
	Spec proto.Message
	// Errors: unknown kind, strict decoding (unknown field, wrong type), CRD schema, Istio validation.
	Errors []string
	// Warnings from Istio's validation (e.g. deprecated fields).
	Warnings []string
}

// ValidateIstio decodes one Istio object strictly and validates it with the CRD schema and
// Istio's validation. obj is the unstructured object (it is not modified).
func (v *Validator) ValidateIstio(obj map[string]any) IstioResult {
	var res IstioResult
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	gvk := u.GroupVersionKind()
	schema, ok := collections.Pilot.FindByGroupVersionAliasesKind(config.GroupVersionKind{
		Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
	})
	if !ok {
		res.Errors = append(res.Errors, fmt.Sprintf("unknown Istio kind %s", gvk.String()))
		return res
	}

	// 1. CRD structural schema: types, enums, unknown fields (pruning), CEL rules.
	if err := v.crds.validate(u); err != nil {
		res.Errors = append(res.Errors, "CRD schema: "+err.Error())
	}

	// 2. Strict proto decoding of the spec and Istio's semantic validation.
	js, err := json.Marshal(obj)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	var kind crd.IstioKind
	if err := json.Unmarshal(js, &kind); err != nil {
		res.Errors = append(res.Errors, "decode: "+err.Error())
		return res
	}
	if kind.Spec == nil {
		kind.Spec = json.RawMessage("{}")
	}
	cfg, err := crd.ConvertObjectInternal(schema, &kind, "", strictFromJSON)
	if err != nil {
		res.Errors = append(res.Errors, "strict decode: "+err.Error())
		return res
	}
	res.Spec, _ = cfg.Spec.(proto.Message)
	warn, verr := schema.ValidateConfig(*cfg)
	res.Errors = append(res.Errors, splitMulti("validation", verr)...)
	res.Warnings = append(res.Warnings, splitMulti("validation", warn)...)
	return res
}

func strictFromJSON(s istioresource.Schema, js string) (config.Spec, error) {
	c, err := s.NewInstance()
	if err != nil {
		return nil, err
	}
	if err := config.ApplyJSONStrict(c, js); err != nil {
		return nil, err
	}
	return c, nil
}

func splitMulti(prefix string, err error) []string {
	if err == nil {
		return nil
	}
	var me *multierror.Error
	var out []string
	if errors.As(err, &me) {
		for _, e := range me.Errors {
			out = append(out, splitMulti(prefix, e)...)
		}
		return out
	}
	return []string{prefix + ": " + err.Error()}
}

// MeshInstall is what check-deploy needs from the IstioOperator used by `istioctl install`.
type MeshInstall struct {
	// MeshConfig is spec.meshConfig with Istio's defaults applied (what istiod would run with).
	MeshConfig *meshv1alpha1.MeshConfig
	// MeshConfigYAML is spec.meshConfig as written.
	MeshConfigYAML string
}

// ParseIstioOperator validates an IstioOperator the way `istioctl install` does (strict decoding
// of the operator spec, values and meshConfig validation), additionally decodes spec.meshConfig
// strictly (an unknown mesh config field is an error, not a silently ignored key), and returns
// the effective mesh config.
func ParseIstioOperator(data []byte) (*MeshInstall, []string, []string) {
	var errs, warns []string
	m, err := values.MapFromYaml(data)
	if err != nil {
		return nil, nil, []string{"IstioOperator: " + err.Error()}
	}
	if k := m.GetPathString("kind"); k != "IstioOperator" {
		errs = append(errs, fmt.Sprintf("kind is %q, want IstioOperator", k))
	}
	w, e := validation.ParseAndValidateIstioOperator(m, nil)
	for _, x := range w {
		warns = append(warns, "IstioOperator: "+x.Error())
	}
	for _, x := range e {
		errs = append(errs, "IstioOperator: "+x.Error())
	}
	mc, _ := m.GetPathMap("spec.meshConfig")
	mcYAML := ""
	if mc != nil {
		mcYAML = mc.YAML()
		if err := protomarshal.ApplyYAMLStrict(mcYAML, &meshv1alpha1.MeshConfig{}); err != nil {
			errs = append(errs, "spec.meshConfig (strict): "+err.Error())
		}
	}
	eff, err := mesh.ApplyMeshConfigDefaults(mcYAML)
	if err != nil {
		errs = append(errs, "spec.meshConfig: "+err.Error())
		return nil, warns, errs
	}
	return &MeshInstall{MeshConfig: eff, MeshConfigYAML: mcYAML}, warns, errs
}

// Doc is one YAML document handed to the analyzers; Name identifies its origin in messages.
type Doc struct {
	Name string
	YAML []byte
}

// Suppression silences one analyzer message code on resources matching a glob, in Istio's own
// terms (local.AnalysisSuppression, what istioctl analyze --suppress builds): ResourceName as
// the analyzer prints it ("VirtualService tenant-a-orders/order-service", "Namespace
// tenant-a-orders"), matched with the glob Istio's analyzer uses. Reason is mandatory: it is
// printed in the report, with the suppressed message (Istio's SetSuppressions would drop it
// unseen).
type Suppression struct {
	local.AnalysisSuppression
	Reason string
}

// Message is one analyzer message.
type Message struct {
	Code     string `json:"code"`
	Level    string `json:"level"` // Error, Warning, Info
	Resource string `json:"resource,omitempty"`
	Text     string `json:"message"`
}

func (m Message) String() string {
	if m.Resource == "" {
		return fmt.Sprintf("%s [%s] %s", m.Level, m.Code, m.Text)
	}
	return fmt.Sprintf("%s [%s] (%s) %s", m.Level, m.Code, m.Resource, m.Text)
}

// AnalyzeResult holds the analyzer output.
type AnalyzeResult struct {
	Messages   []Message // after suppressions
	Suppressed []Message // matched a Suppression
	Executed   []string
	Skipped    []string
}

// Analyze runs every `istioctl analyze` analyzer (analyzers.AllCombined) over docs, the way
// `istioctl analyze --use-kube=false -m mesh.yaml files...` does, except that Pods, Services
// and Namespaces in the input are kept (istioctl drops them from files; we synthesize Pods from
// the workloads so the pod-based analyzers run). meshConfigYAML is spec.meshConfig of the
// IstioOperator ("" for Istio's defaults).
func Analyze(docs []Doc, meshConfigYAML string, suppressions []Suppression) (*AnalyzeResult, error) {
	sa := local.NewSourceAnalyzer(analyzers.AllCombined(), "", resource.Namespace("istio-system"), nil)

	if meshConfigYAML != "" {
		f, err := os.CreateTemp("", "meshconfig-*.yaml")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(meshConfigYAML); err != nil {
			f.Close()
			return nil, err
		}
		f.Close()
		if err := sa.AddFileKubeMeshConfig(f.Name()); err != nil {
			return nil, fmt.Errorf("mesh config: %w", err)
		}
	}

	readers := make([]local.ReaderSource, 0, len(docs))
	for _, d := range docs {
		readers = append(readers, local.ReaderSource{Name: d.Name, Reader: bytes.NewReader(d.YAML)})
	}
	// The test variant keeps Pods/Services/Namespaces; it must come first so that the default
	// resources below are added to the same (runtime-resource-keeping) file source.
	if err := sa.AddTestReaderKubeSource(readers); err != nil {
		return nil, fmt.Errorf("analyzer input: %w", err)
	}
	// Like istioctl without a cluster: a stand-in ingress gateway pod and service in
	// istio-system (installed by istioctl, not part of deploy/).
	if err := sa.AddDefaultResources(); err != nil {
		return nil, fmt.Errorf("analyzer default resources: %w", err)
	}

	cancel := make(chan struct{})
	defer close(cancel)
	res, err := sa.Analyze(cancel)
	if err != nil {
		return nil, err
	}

	out := &AnalyzeResult{Executed: res.ExecutedAnalyzers, Skipped: res.SkippedAnalyzers}
	for _, m := range res.Messages {
		msg := convertMessage(m)
		if s, ok := matchSuppression(m, suppressions); ok {
			msg.Text += " [suppressed: " + s.Reason + "]"
			out.Suppressed = append(out.Suppressed, msg)
			continue
		}
		out.Messages = append(out.Messages, msg)
	}
	sort.Strings(out.Executed)
	return out, nil
}

func convertMessage(m diag.Message) Message {
	msg := Message{
		Code:  m.Type.Code(),
		Level: m.Type.Level().String(),
		Text:  fmt.Sprintf(m.Type.Template(), m.Parameters...),
	}
	if m.Resource != nil {
		msg.Resource = m.Resource.Origin.FriendlyName()
	}
	return msg
}

func matchSuppression(m diag.Message, sups []Suppression) (Suppression, bool) {
	if m.Resource == nil {
		return Suppression{}, false
	}
	name := m.Resource.Origin.FriendlyName()
	for _, s := range sups {
		if s.Code == m.Type.Code() && glob.Glob(s.ResourceName, name) {
			return s, true
		}
	}
	return Suppression{}, false
}

// RetryPolicy is the retry policy Envoy gets for an HTTP route.
type RetryPolicy struct {
	Enabled     bool
	NumRetries  uint32
	RetryOn     []string // Envoy retry_on conditions
	StatusCodes []uint32 // retriable status codes
	PerTry      string   // per-try timeout ("" when unset)
}

// EffectiveRetry returns what Istio programs for a route whose VirtualService `retries` is
// routeRetries (nil when absent), using the mesh's defaultHttpRetryPolicy when the route has
// none (exactly as pilot's route builder does).
func EffectiveRetry(routeRetries *networking.HTTPRetry, m *meshv1alpha1.MeshConfig) RetryPolicy {
	in := routeRetries
	if in == nil && m != nil {
		in = m.GetDefaultHttpRetryPolicy()
	}
	p := retry.ConvertPolicy(in, false)
	if p == nil {
		return RetryPolicy{}
	}
	out := RetryPolicy{Enabled: p.GetNumRetries().GetValue() > 0, NumRetries: p.GetNumRetries().GetValue()}
	for _, c := range strings.Split(p.GetRetryOn(), ",") {
		if c = strings.TrimSpace(c); c != "" {
			out.RetryOn = append(out.RetryOn, c)
		}
	}
	out.StatusCodes = append(out.StatusCodes, p.GetRetriableStatusCodes()...)
	if p.GetPerTryTimeout() != nil {
		out.PerTry = p.GetPerTryTimeout().AsDuration().String()
	}
	return out
}
