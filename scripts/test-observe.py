#!/usr/bin/env python3
"""`make test-observe`: the rules and dashboards of deploy/observability on live traffic.

  --on platform (default)  make up's services (started with scripts/up.sh when none runs, and
                           stopped again at the end)
  --on mesh                the running local mesh (make mesh-up first; root), through its
                           ingress gateway

It starts a Prometheus of its own with scripts/observe.sh (its own directory and port, so a
running `make observe` is left alone), drives orders per tenant — confirmed ones, a declined
card, a price that changed, a cancel, and one left PENDING while the tenant's payment-service is
stopped (SIGSTOP: the order is answered 503) and then finished by the reconciler once it runs
again (SIGCONT) — and polls Prometheus' HTTP API until every rule and every dashboard query
evaluates without error and, when it must have data on this traffic, returns series; so must
every selector inside it (a renamed metric or label breaks this, not a demo). Which ones must:
an expression reading only the apps' metrics, on both; one reading Envoy's, on the mesh only;
one reading Istio's standard metrics, nowhere here (kind only) — those are evaluated for
errors and listed. Alerts must evaluate without error (healthy traffic fires none); their
inputs must have data. Fails (exit 1) naming every failure after the deadline."""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import observability as obs

ROOT = obs.ROOT
sys.path.insert(0, os.path.dirname(__file__))
agent = __import__("observe-agent")


def http(method, url, body=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


SEED_PRICE = 1999  # minor units; the price every seeded item has


def overloaded(answer):
    """Whether an answer is the problem a request refused at the door carries."""
    return isinstance(answer, dict) and str(answer.get("type", "")).endswith("/overloaded")


class Tenant:
    """Where a tenant's orders go, the processes of its payment-service, and how to set an item
    of its catalog (`set_item(sku, body)`: inventory's operator API, from the host for make up,
    from inside an inventory pod for the mesh)."""

    def __init__(self, name, base, host, payment_pids, set_item):
        self.name, self.base, self.host, self.payment_pids = name, base, host, payment_pids
        self.set_item = set_item

    def seed(self, sku, available):
        code, body = self.set_item(sku, {"available": available, "unit_price": SEED_PRICE, "currency": "EUR"})
        if code != 200:
            sys.exit(f"test-observe: seeding {sku} in {self.name}: {code} {body}")

    def call(self, method, path, body=None, key=None, patience=60):
        """The answer to one request. A 503 `overloaded` (refused at the door — the server's
        connection cap or the gateway's admission window — before anything was stored) is
        repeated after its Retry-After (1 s), with the same Idempotency-Key, for up to patience
        seconds: a platform loaded by something else (make bench beside make test) sheds load."""
        h = {"x-tenant-id": self.name}
        if self.host:
            h["Host"] = self.host
        if key:
            h["Idempotency-Key"] = key
        give_up = time.monotonic() + patience
        while True:
            code, answer = http(method, self.base + path, body, h)
            if not (code == 503 and overloaded(answer)) or time.monotonic() > give_up:
                return code, answer
            time.sleep(1)

    def order(self, items, method="card", key=None):
        return self.call("POST", "/api/v1/orders", {"customer_id": "observe-test", "currency": "EUR",
                                                    "payment_method": method, "items": items}, key or str(uuid.uuid4()))


def platform_tenants():
    groups = agent.platform_targets(ROOT)
    out = []
    for g in groups:
        if g["labels"]["app"] != "order-service":
            continue
        tenant = g["labels"]["namespace"].rsplit("-", 1)[0]
        pidfile = os.path.join(ROOT, ".local/run", f"{tenant}-payment.pid")
        inventory = next(i["targets"][0] for i in groups
                         if i["labels"]["app"] == "inventory-service" and i["labels"]["namespace"] == g["labels"]["namespace"])

        def set_item(sku, body, tenant=tenant, inventory=inventory):
            return http("PUT", f"http://{inventory}/api/v1/items/{sku}", body, {"x-tenant-id": tenant})
        out.append(Tenant(tenant, "http://" + g["targets"][0], None, [int(open(pidfile).read())], set_item))
    return sorted(out, key=lambda t: t.name)


def set_item_in_pod(pod, tenant):
    """An item set through inventory's operator API from inside the pod (no sidecar in between,
    as an operator's kubectl exec would)."""
    def set_item(sku, body):
        r = subprocess.run(["ip", "netns", "exec", pod.netns, "curl", "-sS", "-X", "PUT", "-w", "\n%{http_code}",
                            f"http://127.0.0.1:8080/api/v1/items/{sku}", "-H", f"x-tenant-id: {tenant}",
                            "-H", "content-type: application/json", "-d", json.dumps(body)],
                           capture_output=True, text=True, timeout=30)
        text, _, code = r.stdout.rpartition("\n")
        return int(code or 0), text or r.stderr
    return set_item


def mesh_tenants():
    pods = agent.mesh_pods(ROOT)
    gw = next((p for p in pods if p.labels.get("app") == "istio-ingressgateway"), None)
    if gw is None:
        sys.exit("test-observe --on mesh: the local mesh is not running (make mesh-up)")
    with open(gw_bootstrap(gw)) as f:
        ports = json.loads(json.load(f)["node"]["metadata"]["POD_PORTS"])
    port = next(p["containerPort"] for p in ports if p["name"] == "http2")
    hosts = {}  # tenant -> gateway host, from deploy/mesh's Gateway ("<ns>/<host>")
    for path in glob.glob(os.path.join(ROOT, "deploy/mesh/*.yaml")):
        for ns, host in re.findall(r"^\s*-\s*['\"]?([a-z0-9-]+)-orders/([a-z0-9.-]+)", open(path).read(), re.M):
            hosts[ns] = host
    state = json.load(open(os.path.join(ROOT, ".local/mesh/state.json")))
    out = []
    for tenant, host in sorted(hosts.items()):
        pids = [p["pid"] for k, p in state["procs"].items()
                if k.startswith(f"{tenant}-payments/payment-service") and k.endswith("/app") and agent.alive(p["pid"], p["start_time"])]
        inventory = next(p for p in pods if p.namespace == f"{tenant}-orders" and p.labels.get("app") == "inventory-service")
        out.append(Tenant(tenant, f"http://{gw.ip}:{port}", host, pids, set_item_in_pod(inventory, tenant)))
    return out


def gw_bootstrap(pod):
    state = json.load(open(os.path.join(ROOT, ".local/mesh/state.json")))
    argv = state["procs"][pod.key + "/envoy"]["command"].split()
    return argv[argv.index("-c") + 1]


def drive(tenants, deadline):
    """Orders through every outcome the rules and dashboards show; returns what went wrong."""
    problems = []
    # SKUs of this run's own, so that no earlier run or demo can have drained what it orders.
    run = uuid.uuid4().hex[:8].upper()
    ok_sku, declined_sku, repriced_sku = f"OBSERVE-{run}-A", f"OBSERVE-{run}-B", f"OBSERVE-{run}-C"
    for t in tenants:
        for sku in (ok_sku, declined_sku, repriced_sku):
            t.seed(sku, 1000)
    for t in tenants:
        for i in range(3):
            code, o = t.order([{"sku": ok_sku, "quantity": 1}])
            if code != 201 or o.get("status") != "CONFIRMED":
                problems.append(f"{t.name}: order {i}: {code} {o}")
        code, o = t.order([{"sku": declined_sku, "quantity": 1}], method="card_declined")
        if code != 201 or o.get("failure_reason") != "payment_declined":
            problems.append(f"{t.name}: declined card: {code} {o}")
        code, o = t.order([{"sku": repriced_sku, "quantity": 1, "unit_price": SEED_PRICE - 1}])
        if code != 201 or o.get("failure_reason") != "price_changed":
            problems.append(f"{t.name}: changed price: {code} {o}")
        code, o = t.order([{"sku": ok_sku, "quantity": 1}])
        if code == 201:
            code, o = t.call("POST", f"/api/v1/orders/{o['id']}/cancel")
        if code != 200 or o.get("status") != "CANCELLED":
            problems.append(f"{t.name}: cancel: {code} {o}")
    # The reconciler: an order left PENDING while payment-service does not answer. Repeating the
    # request would settle it too; only the reconciler may here, so it is found by listing.
    t = tenants[0]
    for pid in t.payment_pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        code, o = t.call("POST", "/api/v1/orders", {"customer_id": "observe-reconciled", "currency": "EUR",
                                                    "items": [{"sku": ok_sku, "quantity": 1}]}, str(uuid.uuid4()))
    finally:
        for pid in t.payment_pids:
            os.kill(pid, signal.SIGCONT)
    if code != 503:
        problems.append(f"{t.name}: order with payment-service stopped: {code} {o}, want 503")
        return problems
    pending = pending_orders_of(t, "observe-reconciled")
    if not pending:
        problems.append(f"{t.name}: the order answered 503 is not PENDING")
        return problems
    while time.monotonic() < deadline:
        _, o = t.call("GET", f"/api/v1/orders/{pending[0]}")
        if o.get("status") == "CONFIRMED":
            print(f"{t.name}: the order left PENDING while payment-service was stopped was CONFIRMED by the reconciler")
            return problems
        time.sleep(1)
    problems.append(f"{t.name}: the PENDING order {pending[0]} was not settled by the reconciler in time")
    return problems


def pending_orders_of(t, customer):
    """The ids of customer's PENDING orders, every page of the listing read (newest first: other
    traffic on the same tenant, e.g. make bench beside make test, may have left many newer ones)."""
    found, cursor = [], ""
    for _ in range(1000):
        code, listing = t.call("GET", "/api/v1/orders?status=PENDING&limit=100" + (f"&cursor={cursor}" if cursor else ""))
        if code != 200:
            break
        found += [i["id"] for i in listing.get("items", []) if i.get("customer_id") == customer]
        cursor = listing.get("next_cursor")
        if found or not cursor:
            break
    return found


class Prom:
    def __init__(self, url):
        self.url = url

    def get(self, path, **params):
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=30) as r:
            return json.loads(r.read())

    def query(self, expr):
        """(series, error)"""
        try:
            d = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as e:
            return None, json.loads(e.read()).get("error", str(e))
        if d["status"] != "success":
            return None, d.get("error")
        return d["data"]["result"], None


def families(exprs):
    """expr -> the metric families it reads, through recording rules (app, envoy, istio)."""
    records = {e.record: e for e in exprs if e.record}
    memo = {}

    def of(name, seen=()):
        if name in records:
            if name not in memo:
                memo[name] = set().union(*(of(n, seen + (name,)) for n, _ in obs.selectors(records[name].expr)))
            return memo[name]
        if name.startswith("envoy_"):
            return {"envoy"}
        if name.startswith("istio_"):
            return {"istio"}
        return {"app"}
    return {e.where: set().union(*(of(n) for n, _ in obs.selectors(e.expr))) for e in exprs}


def evaluate(prom, exprs, fams, env):
    """Failures of one pass, and the expressions not required here."""
    failures, not_required = [], []
    rules = {r["name"]: r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]}
    for e in exprs:
        required = fams[e.where] <= ({"app"} if env == "platform" else {"app", "envoy"})
        if not required:
            not_required.append(e)
        name = e.record or e.alert
        if name:
            r = rules.get(name)
            if r is None:
                failures.append(f"{e}: not loaded by Prometheus")
                continue
            if r.get("health") == "err" or r.get("lastError"):
                failures.append(f"{e}: evaluation failed: {r.get('lastError')}")
        series, err = prom.query(e.expr)
        if err:
            failures.append(f"{e}: {err}")
            continue
        if not required:
            continue
        if not e.alert and not series:
            failures.append(f"{e}: no series")
        for sel, matchers in obs.selectors(e.expr):
            got, err = prom.query(sel + matchers)
            if err or not got:
                failures.append(f"{e}: {sel}{matchers}: {err or 'no series'}")
    return failures, not_required


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--on", choices=("platform", "mesh"), default="platform")
    ap.add_argument("--timeout", type=int, default=300, help="seconds for the orders and the series")
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout

    started_platform = False
    if args.on == "platform":
        tenants = platform_tenants()
        if not tenants:
            print("test-observe: no make up platform runs: starting it (scripts/up.sh)")
            subprocess.run([os.path.join(ROOT, "scripts/up.sh")], check=True, stdout=subprocess.DEVNULL)
            started_platform = True
            tenants = platform_tenants()
    else:
        if os.geteuid() != 0:
            sys.exit("test-observe --on mesh needs root (the pods' network namespaces)")
        running = os.path.join(ROOT, ".local/observe/agent.pid")
        if os.path.exists(running) and agent.alive(int(open(running).read().strip())):
            sys.exit("test-observe --on mesh: make observe runs, and its agent already serves the pods' :15020: "
                     "make observe-down first")
        tenants = mesh_tenants()
    print("tenants: " + ", ".join(f"{t.name} via {t.base}" + (f" (Host {t.host})" if t.host else "") for t in tenants))

    env = dict(os.environ, OBSERVE_DIR=os.path.join(ROOT, ".local/observe-test"), OBSERVE_PORT=str(free_port()))
    shutil.rmtree(env["OBSERVE_DIR"], ignore_errors=True)
    observe = os.path.join(ROOT, "scripts/observe.sh")
    failures = []
    try:
        subprocess.run([observe, "start"], env=env, check=True)
        prom = Prom(f"http://127.0.0.1:{env['OBSERVE_PORT']}")
        failures += drive(tenants, deadline)
        exprs = obs.rules() + obs.dashboards()
        fams = families(exprs)
        while True:  # Prometheus scrapes every 5 s and records every 30 s: poll until all is there
            pass_failures, not_required = evaluate(prom, exprs, fams, args.on)
            if not pass_failures or time.monotonic() > deadline:
                break
            time.sleep(2)
        failures += pass_failures
        print(f"{len(exprs)} expressions ({len(obs.rules())} rules, {len(exprs) - len(obs.rules())} dashboard queries) "
              f"evaluated on {args.on} traffic; {len(exprs) - len(not_required)} had to return data here")
        for e in not_required:
            print(f"  not required here ({'+'.join(sorted(fams[e.where]))}): {e} — evaluated without error only")
    finally:
        log_path = os.path.join(env["OBSERVE_DIR"], "agent.log")
        if failures and os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                log = f.read().strip()
            if log:
                print("the discovery agent said:\n" + log[-3000:])
        subprocess.run([observe, "stop"], env=env)
        if started_platform:
            subprocess.run([os.path.join(ROOT, "scripts/down.sh")])
    for f in failures:
        print("FAIL " + f)
    # Counted per expression (an expression failing several ways fails once); a problem driving
    # the orders counts as one more failure.
    exprs = obs.rules() + obs.dashboards()
    failed = {e.where for e in exprs if any(f.startswith(f"{e.where}: ") for f in failures)}
    other = [f for f in failures if not any(f.startswith(f"{e.where}: ") for e in exprs)]
    print(f"test-observe ({args.on}): {len(exprs) - len(failed)} passed, {len(failed) + len(other)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
