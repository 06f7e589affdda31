#!/usr/bin/env python3
"""The check a person makes during `make mesh-demo NAME=canary`: open the Prometheus graph URL the
demo prints and see the split. Part of `make test-observe-mesh` (the local mesh must be up; root).

It starts a Prometheus of its own with scripts/observe.sh (own directory and port, so a running
`make observe` is left alone), runs the canary demo with OBSERVE_PORT pointing at it, and once
Prometheus shows the split moved — both subsets' request rates, the canary's at 30% or more
once the demo applied 50/50 (polled through its HTTP API: a condition, not a pause) — loads the URL the demo printed in headless Chromium (Debian's chromium-headless-shell):
once for the DOM after the page's scripts ran, once for a PNG under
.local/observe-screenshot/canary.png. The page must have rendered the series — a drawn line and a
legend entry for the stable and the canary cluster — not merely answered 200. The demo itself
must end well (its invariants check included). Exit 1 naming what failed."""

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
test_observe = __import__("test-observe")

ROOT = test_observe.ROOT
BROWSER = "chromium-headless-shell"
CLUSTERS = ("stable", "canary")


def browser(args, url, timeout=90):
    """Runs headless Chromium on url; its standard output."""
    cmd = [BROWSER, "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1000",
           # Virtual time runs the page's scripts and waits for its requests (the graph's
           # query_range) before the DOM or the picture is taken.
           "--virtual-time-budget=20000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout


def demo_url(line, port):
    m = re.search(rf"http://127\.0\.0\.1:{port}/graph\?\S+", line)
    return m.group(0) if m else None


def wait_for_split(prom, query, at_least, deadline):
    """Polls until the demo's query has a rate for each subset and the canary's share of the two
    is at least at_least; the share."""
    while True:
        series, err = prom.query(query)
        rates = {c: float(s["value"][1]) for s in (series or []) for c in CLUSTERS
                 if f"|{c}|" in s["metric"].get("cluster_name", "")}
        total = sum(rates.values())
        share = rates.get("canary", 0) / total if total else 0
        if all(rates.get(c, 0) > 0 for c in CLUSTERS) and share >= at_least:
            return share
        if time.monotonic() > deadline:
            raise SystemExit(f"Prometheus never showed a canary share of {at_least:.0%} "
                             f"(rates {rates}, error {err})")
        time.sleep(1)


def rendered(dom):
    """What failed to render on the graph page, as messages (empty: the series are drawn)."""
    failures = []
    text = html.unescape(dom)
    if not re.search(r'<svg[^>]*>.*?<path[^>]+d="M', dom, re.S):
        failures.append("the graph has no drawn line (no <svg> path)")
    for c in CLUSTERS:
        if not re.search(rf'class="legend[^"]*".*?\|{c}\|payment-service', text, re.S):
            failures.append(f"the legend has no {c} series")
    if "error" in text.lower() and re.search(r'class="alert alert-danger"[^>]*>\s*\S', dom):
        failures.append("the page shows an error")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mesh", default=os.path.join(ROOT, ".local/bin/mesh"), help="the mesh tool")
    ap.add_argument("--timeout", type=int, default=120, help="seconds for the series to appear")
    args = ap.parse_args()
    if shutil.which(BROWSER) is None:
        sys.exit(f"{BROWSER} is missing: apt-get install chromium-headless-shell (make test-observe-mesh installs it)")

    port = test_observe.free_port()
    out_dir = os.path.join(ROOT, ".local/observe-screenshot")
    env = dict(os.environ, OBSERVE_DIR=out_dir, OBSERVE_PORT=str(port))
    shutil.rmtree(out_dir, ignore_errors=True)
    observe = os.path.join(ROOT, "scripts/observe.sh")
    failures = []
    demo = None
    try:
        subprocess.run([observe, "start"], env=env, check=True, stdout=subprocess.DEVNULL)
        prom = test_observe.Prom(f"http://127.0.0.1:{port}")
        demo = subprocess.Popen([args.mesh, "demo", "-root", ROOT, "-name", "canary"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url, said = None, []
        for line in demo.stdout:
            said.append(line)
            url = url or demo_url(line, port)
            if url:
                break
        if not url:
            demo.wait()
            raise SystemExit("the canary demo printed no Prometheus graph URL:\n" + "".join(said[-20:]))
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["g0.expr"][0]
        print(f"the demo's graph: {url}")
        # deploy/'s 10%, then the demo's 50/50: the picture is taken once the move shows.
        share = wait_for_split(prom, query, 0.3, time.monotonic() + args.timeout)
        print(f"Prometheus shows the canary at {share:.0%} of payment calls")
        dom = browser(["--dump-dom"], url)
        failures += rendered(dom)
        png = os.path.join(out_dir, "canary.png")
        browser([f"--screenshot={png}"], url)
        size = os.path.getsize(png) if os.path.exists(png) else 0
        if size < 10_000:
            failures.append(f"the screenshot is {size} bytes: nothing drawn")
        else:
            print(f"screenshot: {png} ({size} bytes)")
        said += demo.stdout.readlines()
        if demo.wait() != 0:
            failures.append("the canary demo failed:\n" + "".join(said[-20:]))
    finally:
        if demo and demo.poll() is None:
            demo.terminate()
            demo.wait()
        subprocess.run([observe, "stop"], env=env, stdout=subprocess.DEVNULL)
    for f in failures:
        print("FAIL " + f)
    if failures:
        sys.exit(1)
    print("the canary split is drawn on the demo's Prometheus graph: both subsets in the legend and a line")


if __name__ == "__main__":
    main()
