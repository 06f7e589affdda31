#!/usr/bin/env python3
"""`make bench`: what one order costs on this machine, against the database's own ceiling measured
in the same run. Prints one table, writes the same figures as JSON and a chart (SVG) under
.local/bench/. A benchmark, not a test: it asserts nothing and prints every goal next to its
figure.

Order of the run (everything on loopback, `make up`'s platform in release; tenant-a measured,
tenant-b's four services idle beside it):

  1. `pgbench -N` on the same PostgreSQL cluster (8 and 32 clients): the ceiling, in transactions/s.
  2. Per tracing ratio (10% as the mesh samples, 100% as `make up` traces): a closed loop at 16,
     32 and 64 workers (the best is "max orders/s"), then an open loop at half that rate.
     Around each run: CPU per process from /proc (each service, PostgreSQL's whole cluster, Jaeger,
     loadgen), PostgreSQL's transaction and statement counters, RSS (idle before, peak after).
  3. Start-up: a fresh copy of each service binary, timed from exec to its first 200 on /readyz.

The tracing ratio is chosen by loadgen (`--trace-sample-ratio`): the services sample
parent-based, so they follow the caller's decision, as behind the mesh's gateway.
"""

import argparse
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = "postgres://postgres@127.0.0.1:55432"
TENANT = "tenant-a"
SERVICES = ["order", "payment", "inventory", "notify"]
PORTS = {"order": 8081, "payment": 8082, "inventory": 8083, "notify": 8084}
SKUS = [f"BENCH-{i:03d}" for i in range(1, 9)]
TICK = os.sysconf("SC_CLK_TCK")
LOADGEN = os.path.join(ROOT, "target/release/loadgen")

GOALS = {
    "services_cpu_ms_10": 0.5,
    "services_cpu_ms_100": 0.7,
    "postgres_cpu_ms": 1.0,
    "orders_per_s": 1000,
    "ceiling_ratio": 0.60,
    "p99_ms": 15.0,
    "p99_9_ms": 30.0,
    "rss_idle_mb": 15.0,
    "rss_loaded_mb": 40.0,
    "ready_ms": 200.0,
}


def say(msg=""):
    print(msg, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def psql(db, sql):
    return run(["psql", f"{PG_URL}/{db}", "-tAXq", "-v", "ON_ERROR_STOP=1", "-c", sql]).strip()


# --- processes and /proc -------------------------------------------------------------------------


def pidfile(name):
    with open(os.path.join(ROOT, ".local/run", name + ".pid")) as f:
        return int(f.read().strip())


def stat_fields(pid):
    """utime, stime, cutime, cstime in ticks (fields 14-17 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2 :].split()
    return [int(x) for x in rest[11:15]]


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def postmaster_pid():
    with open(os.path.join(ROOT, ".local/pg/data/postmaster.pid")) as f:
        return int(f.readline())


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            if int(s[s.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(d))
    return out


class Processes:
    """The processes whose CPU the bench splits: tenant-a's services by name, PostgreSQL as its
    whole cluster (the postmaster, its live children, and the reaped children's ticks the
    postmaster has collected), Jaeger, and loadgen (added per run)."""

    def __init__(self):
        self.services = {s: pidfile(f"{TENANT}-{s}") for s in SERVICES}
        self.jaeger = pidfile("jaeger")
        self.postmaster = postmaster_pid()

    def ticks(self):
        t = {}
        for name, pid in self.services.items():
            f = stat_fields(pid)
            t[name] = (f[0] + f[1]) if f else 0
        f = stat_fields(self.jaeger)
        t["jaeger"] = (f[0] + f[1]) if f else 0
        pm = stat_fields(self.postmaster) or [0, 0, 0, 0]
        pg = sum(pm)
        for c in children(self.postmaster):
            f = stat_fields(c)
            if f:
                pg += f[0] + f[1]
        t["postgres"] = pg
        return t

    def rss_mb(self, key):
        return {s: status_kib(p, key) / 1024 for s, p in self.services.items()}


def machine_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


# --- PostgreSQL counters ---------------------------------------------------------------------------


def tenant_dbs():
    return [f"{TENANT.replace('-', '_')}_{s}" for s in SERVICES]


def has_statements():
    try:
        psql("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        psql("postgres", "SELECT count(*) FROM pg_stat_statements")
        return True
    except subprocess.CalledProcessError:
        return False


def pg_counters(statements):
    names = ",".join(f"'{d}'" for d in tenant_dbs())
    xacts = int(psql("postgres", f"SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname IN ({names})"))
    stmts = None
    if statements:
        stmts = int(
            psql(
                "postgres",
                "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
                f"JOIN pg_database d ON d.oid = s.dbid WHERE d.datname IN ({names})",
            )
        )
    return xacts, stmts


# --- loadgen ------------------------------------------------------------------------------------


def loadgen(args, progress=False):
    cmd = [LOADGEN, "--target", f"{TENANT}=http://127.0.0.1:{PORTS['order']}", "--skus", ",".join(SKUS), "--json"] + args
    if progress:
        cmd.append("--progress")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p


def measured(procs, statements, args, progress=False):
    """Runs loadgen and returns its summary with the CPU, PostgreSQL and machine counters of the
    run (warm-up excluded: the caller warms up separately)."""
    t0, x0 = procs.ticks(), pg_counters(statements)
    b0 = machine_busy_ticks()
    c0 = reaped_children_ticks()
    p = loadgen(args, progress)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"loadgen {' '.join(args)} failed:\n{err}")
    loadgen_s = (reaped_children_ticks() - c0) / TICK
    # The notifications an order queues are delivered after its answer: wait for the outbox to
    # drain, so their cost counts, and report what was still pending when the load stopped.
    backlog = outbox_backlog()
    drained = drain_outbox()
    t1, x1 = procs.ticks(), pg_counters(statements)
    b1 = machine_busy_ticks()
    summary = json.loads(out)
    orders = max(summary["requests"], 1)
    cpu = {k: (t1[k] - t0[k]) / TICK for k in t0}
    cpu["loadgen"] = loadgen_s
    summary["cpu_us_per_order"] = {k: 1e6 * v / orders for k, v in cpu.items()}
    summary["cpu_us_per_order"]["services"] = sum(summary["cpu_us_per_order"][s] for s in SERVICES)
    summary["xacts_per_order"] = (x1[0] - x0[0]) / orders
    summary["statements_per_order"] = None if x0[1] is None else (x1[1] - x0[1]) / orders
    busy, total = b1[0] - b0[0], b1[1] - b0[1]
    summary["machine_busy"] = busy / max(total, 1)
    summary["outbox_backlog"] = backlog
    summary["outbox_drained"] = drained
    summary["progress"] = [parse_progress(l) for l in err.splitlines() if l.startswith("progress ")]
    return summary


def outbox_backlog():
    return int(psql(f"{TENANT.replace('-', '_')}_order", "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"))


def drain_outbox(limit_s=60):
    """Waits (at most `limit_s`) until order-service has delivered every queued notification;
    False if it did not."""
    deadline = time.monotonic() + limit_s
    while outbox_backlog() > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def reaped_children_ticks():
    """This process's reaped children's CPU (loadgen, once `communicate` has waited for it)."""
    f = stat_fields(os.getpid())
    return f[2] + f[3]


def parse_progress(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)s?", line)}


def warm_up(ratio):
    p = loadgen(["--concurrency", "32", "--duration", "3s", "--trace-sample-ratio", str(ratio)])
    p.communicate()


# --- phases ---------------------------------------------------------------------------------------


def ensure_platform():
    """`make up` in release; a running debug platform is restarted in release."""
    for s in SERVICES:
        try:
            exe = os.readlink(f"/proc/{pidfile(f'{TENANT}-{s}')}/exe")
        except (OSError, ValueError):
            continue
        if "/target/release/" not in exe:
            say(f"bench: {exe} is not a release build: `make down`, then `make up` in release")
            subprocess.run(["make", "--no-print-directory", "down"], cwd=ROOT, check=True)
            break
    env = dict(os.environ, PROFILE="release")
    subprocess.run(["make", "--no-print-directory", "up"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "loadgen"], cwd=ROOT, check=True)
    subprocess.run(["make", "--no-print-directory", "bench-seed"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def pgbench(clients, seconds):
    if psql("postgres", "SELECT 1 FROM pg_database WHERE datname = 'pgbench'") != "1":
        psql("postgres", "CREATE DATABASE pgbench")
    if psql("pgbench", "SELECT to_regclass('pgbench_accounts') IS NOT NULL") != "t":
        run(["pgbench", "-i", "-q", "-s", "10", f"{PG_URL}/pgbench"])
    out = run(["pgbench", "-N", "-c", str(clients), "-j", "2", "-T", str(seconds), f"{PG_URL}/pgbench"])
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    return float(m.group(1)) if m else 0.0


def service_env(svc, port):
    db = f"{TENANT.replace('-', '_')}_{svc}"
    return {
        "PATH": "/usr/bin:/bin",
        "TENANT_ID": TENANT,
        "LISTEN_ADDR": f"127.0.0.1:{port}",
        "DATABASE_URL": f"{PG_URL}/{db}",
        "PAYMENT_SERVICE_URL": f"http://127.0.0.1:{PORTS['payment']}",
        "NOTIFY_SERVICE_URL": f"http://127.0.0.1:{PORTS['notify']}",
        "INVENTORY_SERVICE_URL": f"http://127.0.0.1:{PORTS['inventory']}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_SERVICE_NAME": f"{svc}-service",
        "LOG_FORMAT": "json",
        "RUST_LOG": "info,sqlx=warn",
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready_ms(svc):
    """Starts a second copy of `svc` on a free port and times exec → first 200 on /readyz."""
    port = free_port()
    exe = os.path.join(ROOT, f"target/release/{svc}-service")
    t0 = time.monotonic()
    p = subprocess.Popen([exe], env=service_env(svc, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < 10:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return 1000 * (time.monotonic() - t0)
            except OSError:
                pass
            time.sleep(0.002)
        return None
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)


def trace_phase(procs, statements, ratio, seconds):
    say(f"\n==> tracing at {ratio:.0%}: warm-up, closed loop at 16/32/64 workers, open loop at half the best")
    warm_up(ratio)
    closed = []
    for workers in (16, 32, 64):
        r = measured(procs, statements, ["--concurrency", str(workers), "--duration", f"{seconds}s", "--trace-sample-ratio", str(ratio)])
        r["workers"] = workers
        say(f"    closed loop {workers:3d} workers: {r['throughput_rps']:7.1f} orders/s, p99 {r['latency_ms']['p99']:.1f} ms, status {r['status']}, notifications pending at its end {r['outbox_backlog']}")
        closed.append(r)
    best = max(closed, key=lambda r: r["throughput_rps"])
    rate = max(int(best["throughput_rps"] / 2), 1)
    open_loop = measured(
        procs, statements, ["--rate", str(rate), "--duration", f"{seconds}s", "--trace-sample-ratio", str(ratio)], progress=True
    )
    open_loop["rate"] = rate
    lat = open_loop["latency_ms"]
    say(f"    open loop {rate} orders/s: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, p99.9 {lat['p99_9']:.1f} ms, status {open_loop['status']}")
    return {"ratio": ratio, "closed": closed, "best": best, "open": open_loop}


# --- report ---------------------------------------------------------------------------------------


def verdict(value, goal, lower_is_better=True):
    if value is None:
        return "n/a"
    ok = value <= goal if lower_is_better else value >= goal
    return "met" if ok else "NOT met"


def report(res):
    rows = []

    def row(name, value, fmt, goal=None, lower=True):
        shown = "n/a" if value is None else fmt.format(value)
        rows.append((name, shown, "" if goal is None else ("≤ " if lower else "≥ ") + str(goal), "" if goal is None else verdict(value, goal, lower)))

    p10, p100 = res["phases"]["0.1"], res["phases"]["1.0"]
    row("pgbench -N, 8 clients (tps)", res["pgbench_tps"]["8"], "{:,.0f}")
    row("pgbench -N, 32 clients (tps)", res["pgbench_tps"]["32"], "{:,.0f}")
    for label, ph in (("10%", p10), ("100%", p100)):
        b = ph["best"]
        row(f"max orders/s, tracing {label} ({b['workers']} workers)", b["throughput_rps"], "{:,.0f}", GOALS["orders_per_s"] if label == "10%" else None, lower=False)
        row(f"  transactions per order", b["xacts_per_order"], "{:.2f}")
        row(f"  statements per order", b["statements_per_order"], "{:.2f}")
        ratio = b["throughput_rps"] * b["xacts_per_order"] / max(res["pgbench_tps"]["8"], 1)
        ph["ceiling_ratio"] = ratio
        row(f"  orders/s × transactions / pgbench", ratio, "{:.0%}", GOALS["ceiling_ratio"] if label == "10%" else None, lower=False)
        cpu = b["cpu_us_per_order"]
        goal = GOALS["services_cpu_ms_10"] if label == "10%" else GOALS["services_cpu_ms_100"]
        row(f"  CPU ms per order, four services", cpu["services"] / 1000, "{:.3f}", goal)
        for s in SERVICES:
            row(f"    {s}-service", cpu[s] / 1000, "{:.3f}")
        row(f"  CPU ms per order, PostgreSQL", cpu["postgres"] / 1000, "{:.3f}", GOALS["postgres_cpu_ms"])
        row(f"  CPU ms per order, Jaeger", cpu["jaeger"] / 1000, "{:.3f}")
        row(f"  CPU ms per order, loadgen", cpu["loadgen"] / 1000, "{:.3f}")
        row(f"  machine busy during the run", b["machine_busy"], "{:.0%}")
        row(f"  notifications pending when the load stopped", b["outbox_backlog"], "{:,}")
        o = ph["open"]
        row(f"open loop {o['rate']} orders/s (half), tracing {label}: p50 ms", o["latency_ms"]["p50"], "{:.1f}")
        row(f"  p99 ms", o["latency_ms"]["p99"], "{:.1f}", GOALS["p99_ms"])
        row(f"  p99.9 ms", o["latency_ms"]["p99_9"], "{:.1f}", GOALS["p99_9_ms"])
    row("RSS idle, largest service (MB)", max(res["rss_idle_mb"].values()), "{:.1f}", GOALS["rss_idle_mb"])
    row("RSS peak under max load, largest (MB)", max(res["rss_peak_mb"].values()), "{:.1f}", GOALS["rss_loaded_mb"])
    row("ready after start, slowest service (ms)", max((v for v in res["ready_ms"].values() if v is not None), default=None), "{:.0f}", GOALS["ready_ms"])
    w = max(len(r[0]) for r in rows)
    say(f"\n{'figure':<{w}}  {'value':>10}  {'goal':>8}  verdict")
    for name, value, goal, v in rows:
        say(f"{name:<{w}}  {value:>10}  {goal:>8}  {v}")
    say(f"\nper service, idle → peak RSS (MB): " + ", ".join(f"{s} {res['rss_idle_mb'][s]:.1f} → {res['rss_peak_mb'][s]:.1f}" for s in SERVICES))
    say("ready after start (ms): " + ", ".join(f"{s} {v:.0f}" if v else f"{s} n/a" for s, v in res["ready_ms"].items()))


def svg_chart(res, path):
    """Latency of the open loop over time (both tracing ratios), and the CPU split per order."""
    W, H = 900, 560
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="20" y="24" font-size="15">ordermesh make bench — {res["started"]} ({res["cores"]} cores)</text>']
    # Panel 1: p50/p99 per second, open loop.
    x0, y0, pw, ph = 60, 50, 800, 220
    series = []
    for key, color in (("0.1", "#1f77b4"), ("1.0", "#d62728")):
        pr = res["phases"][key]["open"]["progress"]
        series.append((key, color, pr))
    ymax = max([p.get("p99_ms", 0) for _, _, pr in series for p in pr] + [1])
    tmax = max([p.get("t", 0) for _, _, pr in series for p in pr] + [1])
    parts.append(f'<text x="{x0}" y="{y0 - 8}">open loop at half of max: latency per second (solid p50, dashed p99), ms</text>')
    parts.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for frac in (0, 0.5, 1):
        y = y0 + ph - frac * ph
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.0f}" text-anchor="end">{frac * ymax:.0f}</text>')
    for key, color, pr in series:
        for field, dash in (("p50_ms", ""), ("p99_ms", ' stroke-dasharray="5,4"')):
            pts = " ".join(f"{x0 + pw * p['t'] / tmax:.1f},{y0 + ph - ph * p.get(field, 0) / ymax:.1f}" for p in pr)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        ly = y0 + 16 + (0 if key == "0.1" else 16)
        parts.append(f'<text x="{x0 + pw - 150}" y="{ly}" fill="{color}">tracing {float(key):.0%}, {res["phases"][key]["open"]["rate"]} orders/s</text>')
    parts.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 16}" text-anchor="middle">seconds</text>')
    # Panel 2: CPU µs per order, stacked, per tracing ratio.
    y1 = y0 + ph + 60
    parts.append(f'<text x="{x0}" y="{y1 - 8}">CPU per order at the closed-loop maximum, µs (by process)</text>')
    colors = {"order": "#1f77b4", "payment": "#ff7f0e", "inventory": "#2ca02c", "notify": "#9467bd", "postgres": "#8c564b", "jaeger": "#e377c2", "loadgen": "#7f7f7f"}
    total_max = max(sum(res["phases"][k]["best"]["cpu_us_per_order"][c] for c in colors) for k in ("0.1", "1.0"))
    for i, key in enumerate(("0.1", "1.0")):
        cpu = res["phases"][key]["best"]["cpu_us_per_order"]
        x, y = x0, y1 + i * 50
        parts.append(f'<text x="{x0 - 6}" y="{y + 22}" text-anchor="end">{float(key):.0%}</text>')
        for c, color in colors.items():
            w = pw * cpu[c] / total_max
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="34" fill="{color}"><title>{c} {cpu[c]:.0f} µs</title></rect>')
            if w > 40:
                parts.append(f'<text x="{x + 3:.1f}" y="{y + 21}" fill="white">{c} {cpu[c]:.0f}</text>')
            x += w
    ly = y1 + 110
    for j, (c, color) in enumerate(colors.items()):
        parts.append(f'<rect x="{x0 + j * 110}" y="{ly}" width="12" height="12" fill="{color}"/><text x="{x0 + j * 110 + 16}" y="{ly + 11}">{c}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15, help="length of each measured loadgen run")
    ap.add_argument("--out", default=os.path.join(ROOT, ".local/bench"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ensure_platform()
    procs = Processes()
    statements = has_statements()
    if not statements:
        say("note: pg_stat_statements is not loaded (restart PostgreSQL: make db-down db-up); statements per order n/a")
    res = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(), "seconds": a.seconds}
    say(f"bench: {res['cores']} cores, {a.seconds} s per run, tenant {TENANT} on make up's platform (release)")
    res["rss_idle_mb"] = procs.rss_mb("VmRSS")
    say("==> pgbench -N on the same cluster (scale 10)")
    res["pgbench_tps"] = {str(c): pgbench(c, a.seconds) for c in (8, 32)}
    say(f"    {res['pgbench_tps']['8']:,.0f} tps (8 clients), {res['pgbench_tps']['32']:,.0f} tps (32 clients)")
    res["phases"] = {str(r): trace_phase(procs, statements, r, a.seconds) for r in (0.1, 1.0)}
    res["rss_peak_mb"] = procs.rss_mb("VmHWM")
    res["ready_ms"] = {s: ready_ms(s) for s in SERVICES}
    report(res)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(a.out, f"bench-{stamp}.json"), "w") as f:
        json.dump(res, f, indent=1)
    svg_chart(res, os.path.join(a.out, f"bench-{stamp}.svg"))
    for ext in ("json", "svg"):
        link = os.path.join(a.out, f"latest.{ext}")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(f"bench-{stamp}.{ext}", link)
    say(f"\nwritten: {a.out}/bench-{stamp}.json and .svg (latest.json, latest.svg)")


if __name__ == "__main__":
    sys.exit(main())
