// What runs in each pod, and how it is started: the sidecar (or gateway) Envoy as uid 1337,
// the app as the pod's non-root user with the container's environment resolved the way the
// kubelet resolves it (envFrom, secretKeyRef/configMapKeyRef, $(VAR) expansion), PostgreSQL
// from Debian's package with deploy/'s own init-databases.sh, and the Jaeger add-on.
package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"ordermesh.local/tools/internal/istioadapter/xds"
)

const (
	proxyUID = 1337
	appUser  = "65532" // the pods' runAsUser in deploy/
)

// envoyArgv is the command line of the pod's Envoy.
func envoyArgv(l Layout, p *Pod, concurrency string) []string {
	return append(inNetns(p, "--reuid="+strconv.Itoa(proxyUID), "--regid="+strconv.Itoa(proxyUID), "--clear-groups"),
		l.EnvoyBin, "-c", l.bootstrap(p), "--disable-hot-restart", "--log-level", "warning",
		"--concurrency", concurrency, "--drain-time-s", "5", "--parent-shutdown-time-s", "10")
}

// inNetns is `ip netns exec <ns> setpriv <ids> --`: the same pid becomes the program, in the
// pod's network namespace with its /etc/hosts, under the given identity.
func inNetns(p *Pod, ids ...string) []string {
	argv := []string{"ip", "netns", "exec", p.NetnsName(), "setpriv"}
	return append(append(argv, ids...), "--")
}

// writeBootstrap writes the pod's Envoy bootstrap, readable by the proxy.
func writeBootstrap(l Layout, p *Pod, proxy xds.Proxy) error {
	b, err := bootstrapJSON(l, p, proxy)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.podDir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.bootstrap(p), b, 0o644)
}

// appCommand is the app container's command and environment.
func appCommand(l Layout, t *Topology, p *Pod) ([]string, []string, error) {
	c := p.Workload.Template.Spec.Containers[0]
	env, err := containerEnv(t, p.Namespace, c)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p.Key(), err)
	}
	bin := filepath.Join(l.TargetDir, c.Name)
	if _, err := os.Stat(bin); err != nil {
		return nil, nil, fmt.Errorf("%s: the app binary %s is missing (cargo build --release)", p.Key(), bin)
	}
	argv := append(inNetns(p, "--reuid="+appUser, "--regid="+appUser, "--clear-groups"), bin)
	return argv, append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, env...), nil
}

// containerEnv resolves a container's environment as the kubelet does.
func containerEnv(t *Topology, ns string, c corev1.Container) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, ef := range c.EnvFrom {
		var data map[string]string
		switch {
		case ef.SecretRef != nil:
			data = t.Secrets[ns+"/"+ef.SecretRef.Name]
			if data == nil {
				return nil, fmt.Errorf("envFrom: Secret %s/%s not rendered", ns, ef.SecretRef.Name)
			}
		case ef.ConfigMapRef != nil:
			data = t.ConfigMaps[ns+"/"+ef.ConfigMapRef.Name]
			if data == nil {
				return nil, fmt.Errorf("envFrom: ConfigMap %s/%s not rendered", ns, ef.ConfigMapRef.Name)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, vals))
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			v, ok := t.Secrets[ns+"/"+r.Name][r.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: Secret %s/%s has no key %s", e.Name, ns, r.Name, r.Key)
			}
			set(e.Name, v)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			v, ok := t.ConfigMaps[ns+"/"+r.Name][r.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: ConfigMap %s/%s has no key %s", e.Name, ns, r.Name, r.Key)
			}
			set(e.Name, v)
		default:
			return nil, fmt.Errorf("env %s: valueFrom kind not supported by the local mesh", e.Name)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

// expand does Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $,
// anything else stays as written.
func expand(s string, vals map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// postgresBin finds Debian's PostgreSQL server binaries (the newest installed major).
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(dirs) == 0 {
		return "", errors.New("PostgreSQL is not installed (apt-get install postgresql)")
	}
	sort.Strings(dirs)
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

// PostgresSocketDir is where the pod's PostgreSQL listens on a unix socket (user postgres, trust):
// the operator's way in, e.g. to check the invariants in SQL after a demo.
func (l Layout) PostgresSocketDir(p *Pod) string { return l.postgresSocketDir(p) }

// AppEnv is the environment the pod's app container runs with, resolved as the kubelet would.
func AppEnv(t *Topology, p *Pod) ([]string, error) {
	if p.Workload == nil {
		return nil, fmt.Errorf("%s runs no workload of deploy/", p.Key())
	}
	return containerEnv(t, p.Namespace, p.Workload.Template.Spec.Containers[0])
}

// postgresSocketDir is where the pod's PostgreSQL puts its unix socket (a short path; the
// operator's "kubectl exec psql" is psql on this socket).
func (l Layout) postgresSocketDir(p *Pod) string {
	return filepath.Join(l.RunDir, fmt.Sprintf("pg-%d", p.Index))
}

// initPostgres creates the pod's cluster on first use: initdb as the postgres user, password
// authentication for TCP (what the apps use, through the sidecars), trust on the local socket.
func initPostgres(l Layout, p *Pod) (bool, error) {
	data := l.postgresData(p)
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return false, nil
	}
	bin, err := postgresBin()
	if err != nil {
		return false, err
	}
	pg, err := user.Lookup(postgresUser)
	if err != nil {
		return false, err
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	for _, d := range []string{data, l.postgresSocketDir(p)} {
		// Parents traversable (the server runs as postgres), the directory itself private.
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			return false, err
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return false, err
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return false, err
		}
	}
	out, err := exec.Command("setpriv", "--reuid="+postgresUser, "--regid="+postgresUser, "--init-groups", "--",
		filepath.Join(bin, "initdb"), "-D", data, "-U", postgresUser, "--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C.UTF-8").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("initdb for %s: %v: %s", p.Key(), err, out)
	}
	hba := "local all all trust\nhost all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return false, err
	}
	return true, os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)
}

// postgresArgv runs the pod's PostgreSQL on 0.0.0.0:5432 inside the pod's namespace.
func postgresArgv(l Layout, p *Pod) ([]string, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.postgresSocketDir(p), 0o700); err != nil {
		return nil, err
	}
	if pg, err := user.Lookup(postgresUser); err == nil {
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		_ = os.Chown(l.postgresSocketDir(p), uid, gid)
	}
	return append(inNetns(p, "--reuid="+postgresUser, "--regid="+postgresUser, "--init-groups"),
		filepath.Join(bin, "postgres"), "-D", l.postgresData(p), "-c", "listen_addresses=*", "-c", "port=5432",
		"-c", "unix_socket_directories="+l.postgresSocketDir(p),
		// A development database, as `make up`'s: durability off, speed on.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=64MB"), nil
}

// runInitDatabases runs deploy/'s own init-databases.sh against the pod's fresh cluster, with
// the StatefulSet's environment (ORDERMESH_DATABASES, the role passwords).
func runInitDatabases(l Layout, t *Topology, p *Pod) error {
	env, err := containerEnv(t, p.Namespace, p.Workload.Template.Spec.Containers[0])
	if err != nil {
		return err
	}
	script := filepath.Join(l.DeployDir, "base", "postgres", "init-databases.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PGHOST=" + l.postgresSocketDir(p), "PGPORT=5432",
		"POSTGRES_USER=" + postgresUser}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: init-databases.sh: %v: %s", p.Key(), err, out)
	}
	return nil
}

// postgresReady reports whether the pod's PostgreSQL accepts connections on its socket.
func postgresReady(l Layout, p *Pod) bool {
	bin, err := postgresBin()
	if err != nil {
		return false
	}
	return exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-U", postgresUser, "-h", l.postgresSocketDir(p), "-p", "5432").Run() == nil
}

// jaegerArgv runs the Jaeger add-on with the project's config, listening on the pod's address.
func jaegerArgv(l Layout, p *Pod) ([]string, []string) {
	argv := append(inNetns(p, "--reuid=65534", "--regid=65534", "--clear-groups"),
		l.JaegerBin, "--config", filepath.Join(l.Root, "scripts", "jaeger.yaml"))
	return argv, []string{"PATH=/usr/bin:/bin", "JAEGER_HOST=0.0.0.0", "JAEGER_LOG_LEVEL=warn"}
}

// PodClient is an HTTP client whose connections start inside the pod's network namespace, as
// the pod's app: to 127.0.0.1 they reach the pod itself, to anything else they are captured by
// the pod's sidecar and leave with the pod's identity.
func PodClient(p *Pod, timeout time.Duration) *http.Client { return podClient(p, timeout) }

func podClient(p *Pod, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: DialContextIn(p.NetnsPath()), DisableKeepAlives: true}}
}

// getJSON fetches a JSON document from inside the pod.
func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// appReady asks the app's /readyz on the pod's loopback (as the kubelet's probe would).
func appReady(ctx context.Context, p *Pod) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8080/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := podClient(p, 2*time.Second).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return nil
}
