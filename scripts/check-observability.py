#!/usr/bin/env python3
"""`make test-rules`' static check of deploy/observability (after promtool's own checks):

  1. every rule's and every Grafana panel's PromQL parses — each expression, Grafana's variables
     substituted, is checked by `promtool check rules` as a recording rule of its own;
  2. every metric name they use is a recording rule of rules.yaml, or a metric that something
     really exports, derived rather than listed:
       - the apps: their code (crates/, services/: metrics::counter!/gauge!/histogram!);
       - Envoy: a real Envoy (the pinned one, .local/mesh/bin/envoy from `make mesh-deps`) with
         Istio's stats tags and the stats matcher kind's sidecars get (Istio's defaults plus
         deploy/mesh/istio-operator.yaml's proxyStatsMatcher), a listener, RBAC, retries,
         outlier detection and a circuit breaker, driven with a 200, a 503 and a 403, then
         scraped — so a stat kind's proxies would drop fails here;
       - Istio's standard metrics: the pinned istio.io/istio module's Telemetry code;
  3. the dashboards are the three the kind install provisions, each with a unique uid.
Exits non-zero naming every failure."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

import observability as obs

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def promtool_parses(exprs):
    """The expressions promtool refuses to parse: {index: message}."""
    def check(batch):
        doc = {"groups": [{"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": e.expr} for i, e in batch]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(doc, f)
            f.flush()
            r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        return r.returncode == 0, (r.stdout + r.stderr).strip()
    indexed = list(enumerate(exprs))
    ok, _ = check(indexed)
    if ok:
        return {}
    bad = {}
    for i, e in indexed:  # name each one that fails
        ok, msg = check([(i, e)])
        if not ok:
            bad[i] = msg
    return bad


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_config(module, front, backend):
    with open(os.path.join(obs.ROOT, "deploy/mesh/istio-operator.yaml")) as f:
        mesh = yaml.safe_load(f)["spec"]["meshConfig"]
    regexps = mesh.get("defaultConfig", {}).get("proxyStatsMatcher", {}).get("inclusionRegexps", [])

    def cluster(name, port):
        return {"name": name, "alt_stat_name": name + ";", "type": "STATIC", "connect_timeout": "1s",
                "outlier_detection": {"consecutive_gateway_failure": 5, "interval": "5s", "base_ejection_time": "30s"},
                "circuit_breakers": {"thresholds": [{"max_pending_requests": 64, "max_requests": 64}]},
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}

    def hcm(prefix, routes, filters):
        return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": prefix, "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}

    stable = "outbound|8080|stable|payment-service.tenant-a-payments.svc.cluster.local"
    canary = "outbound|8080|canary|payment-service.tenant-a-payments.svc.cluster.local"
    rbac = {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "DENY", "policies": {"deny": {"permissions": [{"url_path": {"path": {"exact": "/deny"}}}],
                                                          "principals": [{"any": True}]}}}}}
    retry = {"retry_on": "connect-failure", "num_retries": 1}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "stats_config": {"use_all_default_tags": False, "stats_tags": obs.istio_stats_tags(module),
                         "stats_matcher": obs.istio_stats_matcher(module, regexps)},
        "static_resources": {
            # Istio's inbound HTTP chain prefix (listener_inbound.go: "inbound_<ip>_<port>;").
            "listeners": [{"name": "inbound", "address": {"socket_address": {"address": "127.0.0.1", "port_value": front}},
                           "filter_chains": [{"filters": [hcm("inbound_0.0.0.0_8080;", [
                               {"match": {"path": "/ok"}, "route": {"cluster": stable, "retry_policy": retry}},
                               {"match": {"prefix": "/"}, "route": {"cluster": canary, "timeout": "2s", "retry_policy": retry}}],
                               [rbac])]}]},
                          {"name": "backend", "address": {"socket_address": {"address": "127.0.0.1", "port_value": backend}},
                           "filter_chains": [{"filters": [hcm("backend;", [
                               {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}], [])]}]}],
            "clusters": [cluster(stable, backend), cluster(canary, 1)]}}  # canary: nothing listens on port 1


def envoy_metrics(module):
    envoy = os.path.join(obs.ROOT, ".local/mesh/bin/envoy")
    front, backend = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "envoy.json")
        with open(cfg, "w") as f:
            json.dump(envoy_config(module, front, backend), f)
        admin_file = os.path.join(tmp, "admin")
        log = open(os.path.join(tmp, "envoy.log"), "w")
        p = subprocess.Popen([envoy, "-c", cfg, "--admin-address-path", admin_file, "--disable-hot-restart",
                              "--base-id", str(os.getpid() % 60000 + 1000), "--log-level", "warning"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:  # Envoy is up when its admin address is written and its listener answers
                try:
                    admin = open(admin_file).read().strip()
                    if admin and urllib.request.urlopen(f"http://{admin}/ready", timeout=2).status == 200:
                        break
                except OSError:
                    pass
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Envoy did not start:\n" + open(os.path.join(tmp, "envoy.log")).read()[-2000:])
                time.sleep(0.05)
            for path, want in (("/ok", 200), ("/fail", 503), ("/deny", 403)):
                try:
                    code = urllib.request.urlopen(f"http://127.0.0.1:{front}{path}", timeout=5).status
                except urllib.error.HTTPError as e:
                    code = e.code
                if code != want:
                    raise RuntimeError(f"Envoy answered {path} with {code}, not {want}")
            text = urllib.request.urlopen(f"http://{admin}/stats/prometheus", timeout=5).read().decode()
        finally:
            p.terminate()
            p.wait(10)
            log.close()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def main():
    rules, panels = obs.rules(), obs.dashboards()
    exprs = rules + panels
    print(f"{len(rules)} rules, {len(panels)} dashboard queries ({len(obs.DASHBOARDS)} dashboards)")

    # 1. parse
    for i, msg in promtool_parses(exprs).items():
        fail(f"{exprs[i]}: promtool cannot parse it:\n    {exprs[i].expr}\n    {msg}")

    # 2. names
    module = obs.istio_module()
    records = {e.record for e in rules if e.record}
    apps, istio = obs.app_metrics(), obs.istio_metrics()
    envoy = envoy_metrics(module)
    print(f"known: {len(records)} recording rules, {len(apps)} app metrics (code), "
          f"{len(envoy)} Envoy metrics (a real Envoy as kind's sidecars), {len(istio)} Istio standard metrics (module)")
    used = 0
    for e in exprs:
        try:
            sels = obs.selectors(e.expr)
        except ValueError as err:
            fail(f"{e}: {err}")
            continue
        if not sels:
            fail(f"{e}: reads no metric")
        for name, _ in sels:
            used += 1
            if obs.family(name, records, apps, envoy, istio) is None:
                fail(f"{e}: {name} is no recording rule and no metric the apps, Envoy or Istio export")
            if e.record and name == e.record:
                fail(f"{e}: reads itself")
    print(f"{used} metric references checked")

    # 3. the dashboards kind provisions
    uids = {}
    for path in obs.DASHBOARDS:
        with open(path) as f:
            uid = json.load(f).get("uid")
        if not uid or uid in uids:
            fail(f"{os.path.basename(path)}: uid {uid!r} missing or not unique")
        uids[uid] = path
    names = sorted(os.path.basename(p) for p in obs.DASHBOARDS)
    if names != ["mesh.json", "saga.json", "slo.json"]:
        fail(f"the dashboards are {names}, want mesh.json, saga.json, slo.json")

    if failures:
        print(f"{len(failures)} failed")
        sys.exit(1)
    print("observability check: every expression parses, every metric name is known")


if __name__ == "__main__":
    main()
