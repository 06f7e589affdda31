package promises

// The apps' caller tables against deploy/'s AuthorizationPolicies, request by request.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/mesh"
)

// appCallersFile is what the services' caller tables say for tenant-a, one line per route and
// caller ("service METHOD route namespace/account", "-" for no mesh identity); the platform
// crate's unit test keeps it equal to the tables the Rust code builds from callgraph.json.
var appCallersFile = filepath.Join("..", "callgraph", "testdata", "app-callers-tenant-a.txt")

// TestPoliciesAdmitExactlyTheAppsCallers: for every route of every service, in every tenant
// (tenant-a's table with the tenant's namespaces), deploy/'s policies — as check-deploy reads
// them — admit the identities the app's table names and no other: none of the other workload
// identities of either tenant, not the gateway unless named, not a caller without an identity;
// on an operator route, no one.
func TestPoliciesAdmitExactlyTheAppsCallers(t *testing.T) {
	ld, err := mesh.Load(filepath.Join("..", "..", "..", "deploy"), "", mesh.DefaultNetwork)
	if err != nil {
		t.Fatal(err)
	}
	m := ld.Model
	raw, err := os.ReadFile(appCallersFile)
	if err != nil {
		t.Fatal(err)
	}
	identities := []string{"", callgraph.Gateway.Namespace + "/" + callgraph.Gateway.ServiceAccount}
	for _, w := range m.Workloads {
		identities = append(identities, w.Namespace+"/"+w.ServiceAccount)
	}
	template := regexp.MustCompile(`\{[^}]+\}`)
	checked := 0
	for _, tn := range m.Tenants {
		callers := map[string]map[string]bool{} // "service METHOD route" -> callers
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") {
				continue
			}
			if len(f) != 4 {
				t.Fatalf("%s: %q is not `service METHOD route caller`", appCallersFile, line)
			}
			key := strings.Join(f[:3], " ")
			if callers[key] == nil {
				callers[key] = map[string]bool{}
			}
			if f[3] != "-" {
				callers[key][strings.Replace(f[3], "tenant-a-", tn.ID+"-", 1)] = true
			}
		}
		for key, allowed := range callers {
			f := strings.Fields(key)
			svc, method, path := f[0], f[1], template.ReplaceAllString(f[2], "0192d6a0-0000-7000-8000-000000000001")
			ns := tn.NamespaceFor(roleOf(t, svc))
			for _, id := range identities {
				if got := Allows(m, id, ns, svc, method, path); got != allowed[id] {
					t.Errorf("%s: %q → %s/%s %s %s: deploy/ allows %v, the app's table %v", tn.ID, id, ns, svc, method, path, got, allowed[id])
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing compared")
	}
	t.Logf("%d (identity, route) pairs: deploy/'s policies decide as the apps' tables", checked)
}

// roleOf is the namespace role callgraph.json gives service svc.
func roleOf(t *testing.T, svc string) string {
	t.Helper()
	for _, s := range callgraph.Services {
		if s.Name == svc {
			return s.Role
		}
	}
	t.Fatalf("%s is not a service of the call graph", svc)
	return ""
}
