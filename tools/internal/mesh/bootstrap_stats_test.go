// The local mesh's Envoys tag their stats as Istio's do, so Prometheus sees the same metric
// names and labels from them as from a cluster's sidecars (deploy/observability reads both).
package mesh

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ordermesh.local/tools/internal/istioadapter/xds"
)

// TestStatsTagsAreIstios compares the bootstrap's stats tags with the static ones of Istio's
// bootstrap template in the pinned istio.io/istio module, in order.
func TestStatsTagsAreIstios(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Fatalf("go list -m istio.io/istio: %v", err)
	}
	tmpl, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "tools", "packaging", "common", "envoy_bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(tmpl)
	start := strings.Index(s, `"stats_tags": [`)
	end := strings.Index(s[start:], "\n    ]")
	if start < 0 || end < 0 {
		t.Fatal("no stats_tags list in Istio's bootstrap template")
	}
	var want []map[string]string
	str := `"(?:[^"\\]|\\.)*"`
	obj := regexp.MustCompile(`\{\s*"(?:tag_name|regex)"\s*:\s*` + str + `\s*,\s*"(?:tag_name|regex)"\s*:\s*` + str + `\s*\}`)
	for _, o := range obj.FindAllString(s[start:start+end], -1) {
		if strings.Contains(o, "{{") || strings.Contains(o, "$tag") {
			continue // extraStatTags: per-proxy, templated
		}
		var tag map[string]string
		if err := json.Unmarshal([]byte(o), &tag); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		want = append(want, tag)
	}
	got, _ := json.Marshal(istioStatsTags)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("stats tags differ from Istio's template:\n got  %s\n want %s", got, wantJSON)
	}
	b, err := bootstrapJSON(NewLayout(t.TempDir()), &Pod{Name: "p-0", Namespace: "ns"}, xds.Proxy{Pod: "p-0", Namespace: "ns", IP: "10.0.0.10", ServiceAccount: "sa", Workload: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"use_all_default_tags": false`) {
		t.Errorf("the bootstrap does not turn Envoy's default tags off:\n%s", b)
	}
}
