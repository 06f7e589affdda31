// Reading a pod's Envoy through its admin port (127.0.0.1:15000 inside the pod, as in a
// cluster): server state, the versions of the configuration it accepted, updates it rejected
// (with Envoy's own message from its log) and active connections.
package mesh

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvoyStatus is what `make mesh-status` shows per proxy.
type EnvoyStatus struct {
	State         string // LIVE, INITIALIZING, ... ("" when unreachable)
	Rejected      int    // sum of every xDS subscription's update_rejected
	Versions      map[string]string
	Connections   int
	RejectMessage string // the last "rejected" line of Envoy's log
	Err           error
}

// ReadEnvoy reads the status of the pod's Envoy.
func ReadEnvoy(ctx context.Context, l Layout, p *Pod) EnvoyStatus {
	st := EnvoyStatus{Versions: map[string]string{}}
	c := podClient(p, 2*time.Second)
	var info struct {
		State string `json:"state"`
	}
	if err := getJSON(ctx, c, "http://127.0.0.1:15000/server_info", &info); err != nil {
		st.Err = err
		return st
	}
	st.State = info.State
	var stats struct {
		Stats []struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		} `json:"stats"`
	}
	if err := getJSON(ctx, c, "http://127.0.0.1:15000/stats?format=json&filter=(update_rejected|version_text|server.total_connections)$", &stats); err != nil {
		st.Err = err
		return st
	}
	for _, s := range stats.Stats {
		switch {
		case strings.HasSuffix(s.Name, "update_rejected"):
			if f, ok := s.Value.(float64); ok {
				st.Rejected += int(f)
			}
		case strings.HasSuffix(s.Name, "version_text"):
			if v, ok := s.Value.(string); ok && (strings.HasPrefix(s.Name, "cluster_manager.cds") || strings.HasPrefix(s.Name, "listener_manager.lds")) {
				st.Versions[strings.SplitN(s.Name, ".", 3)[1]] = v
			}
		case s.Name == "server.total_connections":
			if f, ok := s.Value.(float64); ok {
				st.Connections = int(f)
			}
		}
	}
	if st.Rejected > 0 {
		st.RejectMessage = lastLineWith(l.envoyLog(p), "rejected")
	}
	return st
}

// EnvoyStats reads the numeric stats whose names match the regular expression re from the pod's
// Envoy admin port. Istio names a cluster's stats "cluster.<cluster name>;.<stat>".
func EnvoyStats(ctx context.Context, p *Pod, re string) (map[string]float64, error) {
	var doc struct {
		Stats []struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		} `json:"stats"`
	}
	if err := getJSON(ctx, podClient(p, 5*time.Second), "http://127.0.0.1:15000/stats?format=json&filter="+url.QueryEscape(re), &doc); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range doc.Stats {
		if f, ok := s.Value.(float64); ok {
			out[s.Name] = f
		}
	}
	return out, nil
}

// HostRequests reads, from the pod's Envoy, the requests sent to each endpoint of the named
// cluster: endpoint IP -> rq_total.
func HostRequests(ctx context.Context, p *Pod, cluster string) (map[string]int, error) {
	return HostStat(ctx, p, cluster, "rq_total")
}

// HostStat reads one per-endpoint stat (rq_total, cx_active, ...) of the named cluster from the
// pod's Envoy: endpoint IP -> value.
func HostStat(ctx context.Context, p *Pod, cluster, stat string) (map[string]int, error) {
	var doc struct {
		ClusterStatuses []struct {
			Name         string `json:"name"`
			HostStatuses []struct {
				Address struct {
					SocketAddress struct {
						Address string `json:"address"`
					} `json:"socket_address"`
				} `json:"address"`
				Stats []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"stats"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := getJSON(ctx, podClient(p, 5*time.Second), "http://127.0.0.1:15000/clusters?format=json", &doc); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, c := range doc.ClusterStatuses {
		if c.Name != cluster {
			continue
		}
		for _, h := range c.HostStatuses {
			for _, s := range h.Stats {
				if s.Name == stat {
					n, _ := strconv.Atoi(s.Value)
					out[h.Address.SocketAddress.Address] += n
				}
			}
		}
	}
	return out, nil
}

// lastLineWith returns the last line of a file containing s.
func lastLineWith(path, s string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			last = sc.Text()
		}
	}
	return last
}

func (s EnvoyStatus) String() string {
	if s.Err != nil {
		return "unreachable: " + s.Err.Error()
	}
	return fmt.Sprintf("%s cds=%s lds=%s rejected=%d connections=%d", s.State, s.Versions["cds"], s.Versions["lds"], s.Rejected, s.Connections)
}

// AppCounter sums every series of one counter in the app's own /metrics (Prometheus text), read
// on the pod's loopback as Istio's metrics merging would, e.g. all
// `http_server_requests_cancelled_total{…}` lines of one pod.
func AppCounter(ctx context.Context, p *Pod, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8080/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := podClient(p, 5*time.Second).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: GET /metrics: %d", p.Key(), resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return sumSeries(string(body), name), nil
}

// sumSeries adds up the samples of metric name in a Prometheus text exposition.
func sumSeries(text, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}
