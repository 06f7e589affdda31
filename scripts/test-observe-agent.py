#!/usr/bin/env python3
"""`make test-observe`'s test of scripts/observe-agent.py's mesh half, without the local mesh (a
machine-wide singleton): a pod of its own — a network namespace joined to the host by a veth
pair, a real Envoy inside it as the pod's sidecar (the pinned one, admin on the pod's
127.0.0.1:15000, with the local mesh's bootstrap stats tags) and a stand-in app serving /metrics
on the pod's loopback — recorded in a state.json and bootstrap of the local mesh's format in a
scratch root. The agent, started on that root, must list the pod as a target with the pod's
labels, and answer on <pod IP>:15020 from the host with Envoy's metrics followed by the app's
(nothing else is served); when the recorded Envoy dies, the target and the listener go.
Needs root; removes the namespace, the veth and every process it started."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NETNS = f"obsagent-{os.getpid()}"
HOST_IF, POD_IF = f"oah{os.getpid() % 100000}", f"oap{os.getpid() % 100000}"
HOST_IP, POD_IP = "10.254.77.1", "10.254.77.2"
APP_METRICS = "# TYPE stand_in_app_requests_total counter\nstand_in_app_requests_total 7\n"

failures = []
checks = []


def check(what, ok, detail=""):
    checks.append(what)
    print(f"    {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


def sh(*argv):
    subprocess.run(argv, check=True)


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return int(s[s.rindex(")") + 2:].split()[19])


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def wait(cond, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def main():
    if os.geteuid() != 0:
        sys.exit("test-observe-agent: needs root (a network namespace)")
    envoy = os.path.join(ROOT, ".local/mesh/bin/envoy")
    tmp = tempfile.mkdtemp(prefix="observe-agent-")
    procs = []
    try:
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", POD_IF)
        sh("ip", "link", "set", POD_IF, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
        sh("ip", "link", "set", HOST_IF, "up")
        # Like a mesh pod's: a default route via the host, so a DNS lookup from inside (to the
        # host's resolver, which answers no pod) waits out its timeouts instead of failing at once.
        for cmd in (["ip", "addr", "add", f"{POD_IP}/30", "dev", POD_IF], ["ip", "link", "set", POD_IF, "up"],
                    ["ip", "link", "set", "lo", "up"], ["ip", "route", "add", "default", "via", HOST_IP]):
            sh("ip", "netns", "exec", NETNS, *cmd)

        # The pod's sidecar: a real Envoy with the local mesh's stats tags, admin on 127.0.0.1:15000.
        src = open(os.path.join(ROOT, "tools/internal/mesh/bootstrap.go")).read()
        tags = [{"tag_name": a, "regex": b} for a, b in re.findall(r'\{"tag_name": "([^"]+)", "regex": `([^`]+)`\}', src)]
        pod_dir = os.path.join(tmp, ".local/mesh/pods/tenant-z-orders/order-service-0")
        os.makedirs(pod_dir)
        bootstrap = os.path.join(pod_dir, "envoy-bootstrap.json")
        with open(bootstrap, "w") as f:
            json.dump({"node": {"id": "sidecar~test", "cluster": "order-service.tenant-z-orders", "metadata": {
                "INSTANCE_IPS": POD_IP, "NAMESPACE": "tenant-z-orders", "NAME": "order-service-0",
                "LABELS": {"app": "order-service", "version": "stable"}}},
                "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
                "stats_config": {"use_all_default_tags": False, "stats_tags": tags}}, f)
        envoy_argv = ["ip", "netns", "exec", NETNS, envoy, "-c", bootstrap, "--disable-hot-restart",
                      "--base-id", str(os.getpid() % 60000 + 2000), "--log-level", "warning"]
        envoy_p = subprocess.Popen(envoy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(envoy_p)
        # The app: a stand-in serving /metrics on the pod's loopback (LISTEN_ADDR, as the apps read it).
        app_src = os.path.join(tmp, "app.py")
        with open(app_src, "w") as f:
            f.write("import http.server\nclass H(http.server.BaseHTTPRequestHandler):\n"
                    "    def do_GET(self):\n        b = %r.encode()\n        self.send_response(200)\n"
                    "        self.send_header('Content-Length', str(len(b)))\n        self.end_headers()\n"
                    "        self.wfile.write(b)\n    def log_message(self, *a):\n        pass\n"
                    "http.server.HTTPServer(('127.0.0.1', 8080), H).serve_forever()\n" % APP_METRICS)
        app_p = subprocess.Popen(["ip", "netns", "exec", NETNS, sys.executable, app_src],
                                 env={"LISTEN_ADDR": "0.0.0.0:8080", "PATH": "/usr/bin:/bin"})
        procs.append(app_p)

        def in_pod_ready():
            return subprocess.run(["ip", "netns", "exec", NETNS, "curl", "-fsS", "-o", "/dev/null",
                                   "http://127.0.0.1:15000/ready"], capture_output=True).returncode == 0 and \
                subprocess.run(["ip", "netns", "exec", NETNS, "curl", "-fsS", "-o", "/dev/null",
                                "http://127.0.0.1:8080/metrics"], capture_output=True).returncode == 0
        wait(in_pod_ready, "the pod's Envoy and app")

        state = {"netns": [NETNS], "procs": {
            "tenant-z-orders/order-service-0/envoy": {"pid": envoy_p.pid, "start_time": start_time(envoy_p.pid),
                                                     "command": " ".join(envoy_argv), "log": ""},
            "tenant-z-orders/order-service-0/app": {"pid": app_p.pid, "start_time": start_time(app_p.pid),
                                                   "command": f"ip netns exec {NETNS} app", "log": ""}}}
        with open(os.path.join(tmp, ".local/mesh/state.json"), "w") as f:
            json.dump(state, f)

        out = os.path.join(tmp, "observe")
        agent = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/observe-agent.py"), "--root", tmp, "--dir", out])
        procs.append(agent)
        mesh_json = os.path.join(out, "targets/mesh.json")

        def targets():
            try:
                return json.load(open(mesh_json))
            except (OSError, ValueError):
                return None
        wait(lambda: targets(), "the agent's mesh targets")
        print("observe-agent on a pod of its own (network namespace, real Envoy, stand-in app)")
        check("the pod is a target on its IP:15020 with its namespace, app, version and pod labels",
              targets() == [{"targets": [f"{POD_IP}:15020"], "labels": {"namespace": "tenant-z-orders", "app": "order-service",
                                                                        "version": "stable", "pod": "order-service-0"}}], targets())
        code, body = get(f"http://{POD_IP}:15020/stats/prometheus")
        check("the host reads <pod IP>:15020/stats/prometheus (200)", code == 200, code)
        check("... Envoy's metrics, named as Istio's sidecars name them", "envoy_server_live" in body and
              re.search(r"^envoy_cluster_manager_active_clusters\b", body, re.M) is not None, body[:300])
        check("... followed by the app's /metrics", body.rstrip().endswith(APP_METRICS.rstrip()), body[-300:])
        code, _ = get(f"http://{POD_IP}:15020/quitquitquit")
        check("nothing but /stats/prometheus is served (Envoy's admin stays in the pod)", code == 404, code)
        envoy_p.terminate()
        envoy_p.wait(10)
        wait(lambda: targets() == [], "the dead Envoy's target to go", 10)
        check("the recorded Envoy dead: its target is gone", targets() == [], targets())
        try:
            urllib.request.urlopen(f"http://{POD_IP}:15020/stats/prometheus", timeout=3)
            gone = False
        except (urllib.error.URLError, OSError):
            gone = True
        check("... and so is its listener", gone)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["ip", "link", "delete", HOST_IF], capture_output=True)
        subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test-observe-agent: {len(checks) - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
