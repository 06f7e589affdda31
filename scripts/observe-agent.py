#!/usr/bin/env python3
"""`make observe`'s discovery: what Prometheus scrapes, found from the records `make down` and
`make mesh-down` use, so that nothing is listed by hand. Started and stopped by scripts/observe.sh.

Every two seconds it reads
  - .local/run/<tenant>-<service>.pid (scripts/up.sh): each live service's address from its own
    environment (LISTEN_ADDR), its app name (OTEL_SERVICE_NAME) and the namespace deploy/ puts
    that service in (deploy/base/tenant/*/kustomization.yaml, TENANT -> the tenant);
  - .local/mesh/state.json (tools/internal/mesh): each live "<ns>/<pod>/envoy" process, its
    network namespace (`ip netns exec <name>` in its command) and its bootstrap (`-c <file>`:
    the pod's IP, labels and Envoy's admin address), and the pod's app process (LISTEN_ADDR).

and writes Prometheus file_sd target files (targets/platform.json, targets/mesh.json) whenever
they change, labelled as a cluster's Prometheus labels a pod: namespace, app, version, pod.

The local mesh has no istio-agent, whose port 15020 serves Envoy's and the app's metrics merged
outside the mTLS capture (deploy/README.md, "Facts for tools"; the app's own port is captured
and STRICT). This process stands in for that part of it: for each mesh pod it listens on
<pod IP>:15020 inside the pod's network namespace (Istio's capture excludes 15020) and answers
GET /stats/prometheus with Envoy's /stats/prometheus followed by the app's /metrics, both read
on the pod's loopback. Only that path is served. Entering network namespaces needs root; without
it the mesh is skipped with a message.

  observe-agent.py --root DIR --dir DIR [--once] [--print]
"""

import argparse
import ctypes
import glob
import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time
import urllib.request

CLONE_NEWNET = 0x40000000
MERGED_PORT = 15020  # istio-agent's merged metrics port, excluded from the sidecar's capture
MERGED_PATH = "/stats/prometheus"


def log(msg):
    print(f"observe-agent: {msg}", file=sys.stderr, flush=True)


def proc_start(pid):
    """(start time, state) of a process from /proc/<pid>/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2 :].split()
    return int(fields[19]), fields[0]


def alive(pid, start_time=None):
    st = proc_start(pid)
    if st is None or st[1] in ("Z", "X"):
        return False
    return start_time is None or st[0] == start_time


def environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def loopback(listen_addr):
    """A LISTEN_ADDR as an address to connect to: 0.0.0.0 means the loopback."""
    host, _, port = listen_addr.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def service_namespaces(root):
    """service app name -> namespace template (TENANT-orders, ...) from deploy/base/tenant."""
    out = {}
    for path in glob.glob(os.path.join(root, "deploy/base/tenant/*/kustomization.yaml")):
        with open(path) as f:
            text = f.read()
        ns = re.search(r"^namespace:\s*(\S+)", text, re.M)
        if not ns:
            continue
        for svc in re.findall(r"^\s*-\s*\.\./\.\./([a-z0-9-]+)\s*$", text, re.M):
            out[svc] = ns.group(1)
    return out


def platform_targets(root):
    """`make up`'s live services (scripts/up.sh's pidfiles) as file_sd groups."""
    namespaces = service_namespaces(root)
    groups = []
    for pidfile in sorted(glob.glob(os.path.join(root, ".local/run/*.pid"))):
        try:
            pid = int(open(pidfile).read().strip())
        except (OSError, ValueError):
            continue
        if not alive(pid):
            continue
        env = environ(pid)
        app, tenant, listen = env.get("OTEL_SERVICE_NAME"), env.get("TENANT_ID"), env.get("LISTEN_ADDR")
        if not (app and tenant and listen):
            continue  # not one of the services (Jaeger)
        labels = {"app": app, "pod": os.path.basename(pidfile)[: -len(".pid")]}
        if app in namespaces:
            labels["namespace"] = namespaces[app].replace("TENANT", tenant)
        if env.get("SERVICE_VERSION"):
            labels["version"] = env["SERVICE_VERSION"]
        groups.append({"targets": [loopback(listen)], "labels": labels})
    return groups


class MeshPod:
    """One mesh pod as recorded by tools/internal/mesh: where its metrics are."""

    def __init__(self, key, netns, ip, labels, namespace, name, admin, app_metrics, envoy_start):
        self.key, self.netns, self.ip = key, netns, ip
        self.labels, self.namespace, self.name = labels, namespace, name
        self.admin, self.app_metrics, self.envoy_start = admin, app_metrics, envoy_start

    def identity(self):
        return (self.key, self.netns, self.ip, self.admin, self.app_metrics, self.envoy_start)

    def target(self):
        labels = {"namespace": self.namespace, "pod": self.name}
        for k in ("app", "version"):
            if self.labels.get(k):
                labels[k] = self.labels[k]
        return {"targets": [f"{self.ip}:{MERGED_PORT}"], "labels": labels}


def mesh_pods(root):
    """The local mesh's live proxies (its state.json and each one's bootstrap)."""
    state_path = os.path.join(root, ".local/mesh/state.json")
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return []
    procs = state.get("procs") or {}
    pods = []
    for key, proc in sorted(procs.items()):
        if not key.endswith("/envoy") or not alive(proc.get("pid", 0), proc.get("start_time")):
            continue
        argv = proc.get("command", "").split()
        try:
            netns = argv[argv.index("netns") + 2]  # ip netns exec <name> ...
            bootstrap = argv[argv.index("-c") + 1]
            with open(bootstrap) as f:
                boot = json.load(f)
        except (ValueError, IndexError, OSError) as e:
            log(f"{key}: cannot read its netns/bootstrap from the record: {e}")
            continue
        md = boot.get("node", {}).get("metadata", {})
        sa = boot.get("admin", {}).get("address", {}).get("socket_address", {})
        pod_key = key[: -len("/envoy")]
        app_metrics = None
        app = procs.get(pod_key + "/app")
        if app and alive(app.get("pid", 0), app.get("start_time")):
            listen = environ(app["pid"]).get("LISTEN_ADDR")
            if listen:
                app_metrics = f"http://{loopback(listen)}/metrics"
        ns, _, name = pod_key.partition("/")
        pods.append(MeshPod(
            key=pod_key, netns=netns, ip=md.get("INSTANCE_IPS", "").split(",")[0],
            labels=md.get("LABELS") or {}, namespace=md.get("NAMESPACE", ns), name=md.get("NAME", name),
            admin=f"http://{sa.get('address', '127.0.0.1')}:{sa.get('port_value', 15000)}",
            app_metrics=app_metrics, envoy_start=proc.get("start_time")))
    return pods


_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def enter_netns(name):
    """Moves the calling thread (and the threads it starts) into network namespace `name`."""
    fd = os.open(os.path.join("/var/run/netns", name), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


class MergedMetrics(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pod):
        self.pod = pod
        super().__init__((pod.ip, MERGED_PORT), MergedHandler)

    def server_bind(self):
        # HTTPServer's own looks the address up in DNS (socket.getfqdn), which in a mesh pod's
        # namespace asks a resolver that is not there and waits out its timeouts: bind only.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.pod.ip, MERGED_PORT


class MergedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        pod = self.server.pod
        if self.path.split("?")[0] != MERGED_PATH:
            self.send_error(404, f"only {MERGED_PATH} is served here")
            return
        # Runs in a thread started by the server's, so in the pod's network namespace.
        try:
            parts = [fetch(pod.admin + "/stats/prometheus")]
            if pod.app_metrics:
                parts.append(fetch(pod.app_metrics))
        except OSError as e:
            self.send_error(503, f"{pod.key}: {e}")
            return
        body = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Agent:
    def __init__(self, root, out_dir):
        self.root, self.out_dir = root, out_dir
        self.servers = {}  # pod key -> (identity, server)
        self.warned_root = False

    def serve(self, pod):
        started = threading.Event()
        holder = {}

        def run():
            try:
                enter_netns(pod.netns)
                holder["server"] = MergedMetrics(pod)
            except Exception as e:  # noqa: BLE001 - reported to the caller, whatever it is
                holder["error"] = e if isinstance(e, OSError) else OSError(f"{type(e).__name__}: {e}")
                started.set()
                return
            started.set()
            holder["server"].serve_forever(poll_interval=0.5)

        threading.Thread(target=run, name=pod.key, daemon=True).start()
        if not started.wait(10):
            raise OSError(f"no server for {pod.key} after 10 s")
        if "error" in holder:
            raise holder["error"]
        return holder["server"]

    def sync_mesh(self):
        pods = mesh_pods(self.root)
        if pods and os.geteuid() != 0:
            if not self.warned_root:
                log("the local mesh runs, but entering its pods' network namespaces needs root: not scraped")
                self.warned_root = True
            return []
        live = {}
        for pod in pods:
            have = self.servers.get(pod.key)
            if have and have[0] == pod.identity():
                live[pod.key] = have
                continue
            if have:
                have[1].shutdown()
                have[1].server_close()
            try:
                live[pod.key] = (pod.identity(), self.serve(pod))
            except OSError as e:
                log(f"{pod.key}: cannot serve {pod.ip}:{MERGED_PORT} in {pod.netns}: {e}")
        for key, (_, srv) in self.servers.items():
            if key not in live:
                srv.shutdown()
                srv.server_close()
        self.servers = live
        return [p.target() for p in pods if p.key in live]

    def write(self, name, groups):
        path = os.path.join(self.out_dir, "targets", name)
        text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
        try:
            if open(path).read() == text:
                return
        except OSError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def once(self):
        self.write("platform.json", platform_targets(self.root))
        self.write("mesh.json", self.sync_mesh())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="the repository (its .local/ records)")
    ap.add_argument("--dir", help="where targets/*.json are written (scripts/observe.sh's)")
    ap.add_argument("--once", action="store_true", help="one pass, then exit")
    ap.add_argument("--print", action="store_true",
                    help="print what would be scraped (the records only: no file written, nothing served)")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    if args.print:
        print(json.dumps({"platform": platform_targets(root),
                          "mesh": [dict(p.target(), admin=p.admin, app_metrics=p.app_metrics, netns=p.netns)
                                   for p in mesh_pods(root)]}, indent=1, sort_keys=True))
        return
    if not args.dir:
        ap.error("--dir is required")
    agent = Agent(root, os.path.abspath(args.dir))
    while True:
        agent.once()
        if args.once:
            return
        time.sleep(2)  # the records are polled; Prometheus re-reads a target file when it changes


if __name__ == "__main__":
    main()
