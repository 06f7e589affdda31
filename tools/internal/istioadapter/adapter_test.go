package istioadapter

// Golden tests: they pin the behaviour of Istio's code that check-deploy relies on. When an
// istio.io/istio upgrade changes a message code, a validation verdict or a retry default,
// these fail loudly; update the expectations only after reading what changed.

import (
	"fmt"
	"istio.io/istio/pkg/config/analysis/local"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	istiocrd "istio.io/istio/pkg/config/crd"
	"istio.io/istio/pkg/config/mesh"
	"sigs.k8s.io/yaml"
)

func moduleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Fatalf("go list -m istio.io/istio: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestCRDsComeFromThePinnedModule(t *testing.T) {
	got, err := CRDsFile()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(moduleDir(t), filepath.FromSlash(CRDsPathInModule))
	if filepath.Clean(got) != filepath.Clean(want) {
		t.Fatalf("CRDs are read from %s, want the go.mod-pinned module's %s", got, want)
	}
	if _, err := os.Stat(got); err != nil {
		t.Fatal(err)
	}
}

func docs(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, d := range strings.Split(string(data), "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// TestCRDValidatorMatchesIstio: our copy of the CRD-schema validation (crdschema.go) must give
// the same verdicts as Istio's pkg/config/crd validator on the same CRDs and objects.
func TestCRDValidatorMatchesIstio(t *testing.T) {
	theirs, err := istiocrd.NewValidatorFromFilesWithOptions([]string{filepath.Join(moduleDir(t), CRDsPathInModule)}, istiocrd.WithoutCRDValidation())
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	all := append(docs(t, "validate-bad.yaml"), docs(t, "analyze-bad.yaml")...)
	nErr := 0
	for _, d := range all {
		u := &unstructured.Unstructured{Object: d}
		if !IsIstioGroup(u.GetAPIVersion()) {
			continue
		}
		e1 := theirs.ValidateCustomResource((&unstructured.Unstructured{Object: d}).DeepCopy())
		e2 := v.crds.validate((&unstructured.Unstructured{Object: d}).DeepCopy())
		if fmt.Sprint(e1) != fmt.Sprint(e2) {
			t.Errorf("%s/%s: Istio's validator says %v, ours says %v", u.GetKind(), u.GetName(), e1, e2)
		}
		if e1 != nil {
			nErr++
		}
	}
	if nErr < 2 {
		t.Fatalf("expected at least 2 CRD-schema failures in the fixtures, got %d", nErr)
	}
}

func TestValidateIstioGolden(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"typo": {
			"CRD schema: VirtualService/typo/golden: unknown fields [spec.http[0].retries.atempts]",
			`strict decode: unknown field "atempts" in istio.networking.v1alpha3.HTTPRetry`,
		},
		"bad-enum": {
			`CRD schema: PeerAuthentication/bad-enum/golden: spec.mtls.mode: Unsupported value: "PERMISIVE": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"`,
			`strict decode: unknown value "\"PERMISIVE\"" for enum istio.security.v1beta1.PeerAuthentication.MutualTLS.Mode`,
		},
		"mixed-identities": {
			"CRD schema: AuthorizationPolicy/mixed-identities/golden: spec.rules[0].from[0].source: Invalid value: Cannot set serviceAccounts with namespaces or principals",
			"validation: invalid policy mixed-identities.golden: cannot set serviceAccounts with namespaces or principals, found at rule 0",
		},
		"bad-weight": {
			// The CRD has no minimum for weight; Istio's validation catches it.
			"validation: weight -5 < 0",
		},
		"good": nil,
	}
	got := map[string][]string{}
	for _, d := range docs(t, "validate-bad.yaml") {
		res := v.ValidateIstio(d)
		name := (&unstructured.Unstructured{Object: d}).GetName()
		got[name] = append(res.Errors, res.Warnings...)
		if name == "good" {
			if _, ok := res.Spec.(*networking.DestinationRule); !ok {
				t.Errorf("good: spec decoded as %T, want *networking.DestinationRule", res.Spec)
			}
		}
	}
	for name, w := range want {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("%s:\n got  %q\n want %q", name, got[name], w)
		}
	}

	// A kind Istio does not know is an error, not a pass.
	res := v.ValidateIstio(map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualServise",
		"metadata": map[string]any{"name": "x", "namespace": "y"}, "spec": map[string]any{}})
	if len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "unknown Istio kind") {
		t.Errorf("unknown kind: got %q", res.Errors)
	}
}

func TestAnalyzeGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/analyze-bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Analyze([]Doc{{Name: "analyze-bad.yaml", YAML: data}}, "", []Suppression{
		{AnalysisSuppression: local.AnalysisSuppression{Code: "IST0102", ResourceName: "Namespace golden-plain"}, Reason: "golden test of suppression"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, m.Code+" "+m.Level+" "+m.Resource)
	}
	sort.Strings(got)
	want := []string{
		"IST0101 Error VirtualService golden-injected/missing-things", // host not found
		"IST0101 Error VirtualService golden-injected/missing-things", // host+subset not found
		"IST0103 Warning Pod golden-injected/no-proxy",
		"IST0106 Error VirtualService golden-injected/missing-things", // two destinations, weights sum to 0
		"IST0127 Warning AuthorizationPolicy golden-injected/selects-nothing",
		"IST0144 Warning Pod golden-injected/uid-1337",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("analyzer messages changed:\n got  %q\n want %q\n all: %v", got, want, res.Messages)
	}
	if len(res.Suppressed) != 1 || res.Suppressed[0].Code != "IST0102" || !strings.Contains(res.Suppressed[0].Text, "golden test of suppression") {
		t.Errorf("suppression: got %v", res.Suppressed)
	}
	if len(res.Executed) < 40 {
		t.Errorf("only %d analyzers executed: %v", len(res.Executed), res.Executed)
	}
	for _, a := range []string{"injection.Analyzer", "applicationUID.Analyzer", "auth.AuthorizationPoliciesAnalyzer", "virtualservice.DestinationRuleAnalyzer"} {
		found := false
		for _, e := range res.Executed {
			found = found || e == a
		}
		if !found {
			t.Errorf("analyzer %s did not run (executed: %v)", a, res.Executed)
		}
	}
}

func TestParseIstioOperator(t *testing.T) {
	data, err := os.ReadFile("testdata/operator-good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mi, warns, errs := ParseIstioOperator(data)
	if len(errs) > 0 || len(warns) > 0 {
		t.Fatalf("good operator: errors %v warnings %v", errs, warns)
	}
	if mi.MeshConfig.GetAccessLogFile() != "/dev/stdout" || len(mi.MeshConfig.GetDefaultProviders().GetTracing()) != 1 {
		t.Errorf("mesh config not applied: %v", mi.MeshConfig)
	}
	names := []string{}
	for _, p := range mi.MeshConfig.GetExtensionProviders() {
		names = append(names, p.GetName())
	}
	// Istio's defaults add its own providers next to ours.
	if !strings.Contains(strings.Join(names, ","), "otel") || mi.MeshConfig.GetRootNamespace() != "istio-system" {
		t.Errorf("providers %v root %q", names, mi.MeshConfig.GetRootNamespace())
	}

	bad := strings.Replace(string(data), "accessLogFile:", "accessLogFlie:", 1)
	_, _, errs = ParseIstioOperator([]byte(bad))
	if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "accessLogFlie") {
		t.Errorf("typo in meshConfig: errors %v", errs)
	}
	bad = strings.Replace(string(data), "profile: default", "profil: default", 1)
	_, _, errs = ParseIstioOperator([]byte(bad))
	if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "profil") {
		t.Errorf("typo in spec: errors %v", errs)
	}
}

func TestEffectiveRetryGolden(t *testing.T) {
	def := mesh.DefaultMeshConfig()
	cases := []struct {
		name string
		in   *networking.HTTPRetry
		want RetryPolicy
	}{
		{"no retries block: Istio's default", nil, RetryPolicy{Enabled: true, NumRetries: 2,
			RetryOn: []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}}},
		{"attempts 0 disables", &networking.HTTPRetry{Attempts: 0, RetryOn: "5xx"}, RetryPolicy{}},
		{"retryOn empty keeps the default conditions", &networking.HTTPRetry{Attempts: 3}, RetryPolicy{Enabled: true, NumRetries: 3,
			RetryOn: []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}}},
		{"status codes", &networking.HTTPRetry{Attempts: 2, RetryOn: "connect-failure,503", PerTryTimeout: durationpb.New(2e9)},
			RetryPolicy{Enabled: true, NumRetries: 2, RetryOn: []string{"connect-failure", "retriable-status-codes"}, StatusCodes: []uint32{503}, PerTry: "2s"}},
	}
	for _, c := range cases {
		got := EffectiveRetry(c.in, def)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got  %+v\n want %+v", c.name, got, c.want)
		}
	}
	// The mesh's defaultHttpRetryPolicy replaces Istio's default for routes without retries.
	mc := mesh.DefaultMeshConfig()
	mc.DefaultHttpRetryPolicy = &networking.HTTPRetry{Attempts: 1, RetryOn: "connect-failure"}
	if got := EffectiveRetry(nil, mc); got.NumRetries != 1 || !reflect.DeepEqual(got.RetryOn, []string{"connect-failure"}) {
		t.Errorf("mesh default retry policy ignored: %+v", got)
	}
}

func TestIsIstioGroup(t *testing.T) {
	for in, want := range map[string]bool{"networking.istio.io/v1": true, "security.istio.io/v1": true,
		"telemetry.istio.io/v1": true, "apps/v1": false, "v1": false, "install.istio.io/v1alpha1": true} {
		if IsIstioGroup(in) != want {
			t.Errorf("IsIstioGroup(%q) = %v", in, !want)
		}
	}
	_ = security.AuthorizationPolicy{}
}
