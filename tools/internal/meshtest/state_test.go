//go:build mesh

// What the tests order, and the check that they need nothing a demo, a benchmark or a user's curl
// left behind. The mesh's PostgreSQL keeps its data across mesh-down/mesh-up and mesh-up keeps the
// stock orders have left (tools/internal/mesh seedStock), so a test that ordered from the demo
// catalog passed on a fresh clone and failed after `make bench-mesh` had sold SKU-001 out.
//
// So each pass of the suite seeds an SKU of its own in every tenant, with stock for every order
// the pass places, and orders only that. TestMain runs the suite twice (MESHTEST_PASSES, 2 by
// default; the first on the istio routing variant, the second on gateway-api, the mesh brought
// down and up again in between, its databases kept) and, between the passes, drains the demo catalog in every tenant as a load demo
// would: a test that leans on the catalog, or on anything an earlier run changed and did not put
// back, fails in the second pass. The catalog's stock is put back afterwards — also by the next run
// when this one was killed before it could (the snapshot stays in the mesh's state directory).
package meshtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ordermesh.local/tools/internal/manifest"
	"ordermesh.local/tools/internal/mesh"
)

// testSKU is the SKU this pass orders; testPrice its unit price in every tenant.
var testSKU string

const (
	testPrice = 1999
	// testStock covers every order of a pass (TestTracingSampling's 2,000, a handful elsewhere)
	// many times over.
	testStock = 100_000
)

// catalogSnapshot is each tenant's available stock of each demo-catalog SKU before the drain.
type catalogSnapshot map[string]map[string]int64

// runPasses runs the suite passes times, each on the routing variant passRouting names (up
// brings the mesh up in it), draining the demo catalog before every pass after the first and
// putting it back at the end. It returns the first failing pass's exit code.
func runPasses(m *testing.M, passes int, up func(manifest.Routing) error) int {
	catalog, err := mesh.ReadCatalog(filepath.Join(layout.Root, "scripts", "demo-catalog.txt"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for pass := 1; pass <= passes; pass++ {
		routing, err := passRouting(pass)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if pass == 1 || loaded.Routing != routing {
			if err := up(routing); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if pass == 1 {
			if err := restoreCatalog(catalog); err != nil { // a killed earlier run's drain
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if pass > 1 {
			if err := drainCatalog(catalog); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := seedTestSKU(pass); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("=== meshtest pass %d of %d, routing %s: orders %s (%d units in every tenant)\n", pass, passes, routing, testSKU, testStock)
		t0 := time.Now()
		code := m.Run()
		fmt.Printf("=== meshtest pass %d (routing %s) took %s\n", pass, routing, time.Since(t0).Round(time.Second))
		if code != 0 {
			_ = restoreCatalog(catalog)
			return code
		}
	}
	if err := restoreCatalog(catalog); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// passRouting is the routing variant pass runs on: MESHTEST_ROUTING when set, else istio (the
// default) on odd passes and gateway-api on even ones, so `make test-mesh`'s two passes cover
// both variants with every test, at the cost of one mesh down/up between them.
func passRouting(pass int) (manifest.Routing, error) {
	if v := os.Getenv("MESHTEST_ROUTING"); v != "" {
		return manifest.ParseRouting(v)
	}
	if pass%2 == 0 {
		return manifest.RoutingGatewayAPI, nil
	}
	return manifest.RoutingIstio, nil
}

// testPasses reads MESHTEST_PASSES (default 2; scripts/mesh-breaks.sh runs one).
func testPasses() (int, error) {
	v := os.Getenv("MESHTEST_PASSES")
	if v == "" {
		return 2, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("MESHTEST_PASSES=%q: want a whole number ≥ 1", v)
	}
	return n, nil
}

// seedTestSKU gives every tenant a new SKU for this pass.
func seedTestSKU(pass int) error {
	testSKU = fmt.Sprintf("MESHTEST-%d-%s", pass, strings.ToUpper(randomHex(4)))
	for _, p := range loaded.Topology.InventoryPods() {
		if err := mesh.SetStock(loaded.Topology, p, testSKU, testStock, testPrice); err != nil {
			return err
		}
	}
	return nil
}

// drainCatalog sets every demo-catalog SKU to 0 units in every tenant, after saving what each had
// in the snapshot file.
func drainCatalog(catalog []mesh.CatalogItem) error {
	snap := catalogSnapshot{}
	for _, p := range loaded.Topology.InventoryPods() {
		snap[p.Namespace] = map[string]int64{}
		for _, item := range catalog {
			have, found, err := mesh.Stock(loaded.Topology, p, item.SKU)
			if err != nil {
				return err
			}
			if found {
				snap[p.Namespace][item.SKU] = have
			}
		}
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := os.WriteFile(snapshotPath(), raw, 0o644); err != nil {
		return err
	}
	for _, p := range loaded.Topology.InventoryPods() {
		for _, item := range catalog {
			if err := mesh.SetStock(loaded.Topology, p, item.SKU, 0, item.UnitPrice); err != nil {
				return err
			}
		}
	}
	fmt.Printf("=== meshtest: demo catalog drained (%d SKUs at 0 in %d namespaces); put back after the last pass\n",
		len(catalog), len(snap))
	return nil
}

// restoreCatalog puts back the stock the snapshot file holds, if there is one, and removes it.
func restoreCatalog(catalog []mesh.CatalogItem) error {
	raw, err := os.ReadFile(snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var snap catalogSnapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return fmt.Errorf("%s: %w", snapshotPath(), err)
	}
	for _, p := range loaded.Topology.InventoryPods() {
		for _, item := range catalog {
			if have, ok := snap[p.Namespace][item.SKU]; ok {
				if err := mesh.SetStock(loaded.Topology, p, item.SKU, have, item.UnitPrice); err != nil {
					return err
				}
			}
		}
	}
	fmt.Printf("=== meshtest: demo catalog stock put back from %s\n", snapshotPath())
	return os.Remove(snapshotPath())
}

func snapshotPath() string {
	return filepath.Join(layout.StateDir, "meshtest-catalog-before-drain.json")
}
