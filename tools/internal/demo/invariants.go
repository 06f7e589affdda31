// The end of every demo: DESIGN.md's invariants checked in SQL on each tenant's databases in
// the mesh's PostgreSQL pods, over their unix sockets as the operator (user postgres), by
// check-invariants — tests/src/invariants.rs, the same checks as the end-to-end tests.
package demo

import (
	"fmt"
	"os"
	"os/exec"

	"ordermesh.local/tools/internal/mesh"
	"ordermesh.local/tools/internal/model"
)

// dbURL is a database of the PostgreSQL pod of namespace ns, over its unix socket.
func (e *Env) dbURL(ns, db string) (string, error) {
	for _, p := range e.Loaded.Topology.Pods {
		if p.Namespace == ns && p.Role == mesh.RolePostgres {
			return fmt.Sprintf("postgres://postgres@localhost/%s?host=%s", db, e.Layout.PostgresSocketDir(p)), nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL pod in %s", ns)
}

// invariantArgs are check-invariants' arguments for a tenant.
func (e *Env) invariantArgs(tn *model.Tenant) ([]string, error) {
	var args []string
	for _, d := range []struct{ flag, role, db string }{
		{"--orders", "orders", "orders"}, {"--inventory", "orders", "inventory"}, {"--notify", "orders", "notify"}, {"--payments", "payments", "payments"},
	} {
		u, err := e.dbURL(tn.NamespaceFor(d.role), d.db)
		if err != nil {
			return nil, err
		}
		args = append(args, d.flag, u)
	}
	for _, s := range e.seeded {
		if s.tenant == tn.ID {
			args = append(args, "--stock", fmt.Sprintf("%s=%d", s.sku, s.stock))
		}
	}
	return append(args, "--settle-within", "90"), nil
}

func (e *Env) checkInvariants() error {
	e.say("\nDESIGN.md's invariants, in SQL on the mesh's databases (check-invariants):")
	failed := 0
	for _, tn := range e.Loaded.Model.Tenants {
		args, err := e.invariantArgs(tn)
		if err != nil {
			return err
		}
		e.say("[%s]", tn.ID)
		cmd := exec.Command(e.Checker, args...)
		out, err := cmd.CombinedOutput()
		e.say("%s", indent(string(out)))
		if err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("invariants violated in %d tenant(s)", failed)
	}
	_ = os.Stdout.Sync()
	return nil
}
