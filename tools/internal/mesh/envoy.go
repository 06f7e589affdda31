// Reading a pod's Envoy through its admin port (127.0.0.1:15000 inside the pod, as in a
// cluster): server state, the versions of the configuration it accepted, updates it rejected
// (with Envoy's own message from its log) and active connections.
package mesh

import (
	"bufio"
	"context"
	"fmt"
	"os"
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
