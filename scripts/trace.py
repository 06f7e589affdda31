#!/usr/bin/env python3
"""Prints one trace from Jaeger's query API as a tree: service, operation, duration and the
tenant / order_id / service_type tags. `make trace ID=<trace_id>` (the id is in every order).

The Jaeger that `make up` builds from its Go module serves the query API but not the web UI
(its compiled assets are not published to a package registry), so this is the local way to
look at a trace; docker-compose and kind run the released Jaeger images, UI included."""
import json
import sys
import urllib.request


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: trace.py TRACE_ID [JAEGER_QUERY_URL]", file=sys.stderr)
        return 2
    trace_id = sys.argv[1]
    base = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:16686"
    try:
        with urllib.request.urlopen(f"{base}/api/traces/{trace_id}", timeout=5) as response:
            data = json.load(response)["data"]
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way
        print(f"no trace {trace_id} at {base}: {error}", file=sys.stderr)
        return 1
    if not data:
        print(f"no trace {trace_id} (yet: spans are exported in batches)", file=sys.stderr)
        return 1
    trace = data[0]
    processes = trace["processes"]
    spans = {s["spanID"]: s for s in trace["spans"]}
    children: dict = {}
    roots = []
    for span in sorted(trace["spans"], key=lambda s: s["startTime"]):
        parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        if parents and parents[0] in spans:
            children.setdefault(parents[0], []).append(span)
        else:
            roots.append(span)
    services = {processes[s["processID"]]["serviceName"] for s in trace["spans"]}
    print(f"trace {trace_id}: {len(spans)} spans from {len(services)} services")

    def show(span: dict, depth: int) -> None:
        tags = {t["key"]: t["value"] for t in span["tags"]}
        service = processes[span["processID"]]["serviceName"]
        keys = ("tenant", "order_id", "service_type", "http.response.status_code")
        shown = " ".join(f"{k}={tags[k]}" for k in keys if k in tags)
        print(f"{'  ' * depth}{service:18} {span['operationName']:48} {span['duration'] / 1000:8.2f} ms  {shown}")
        for child in children.get(span["spanID"], []):
            show(child, depth + 1)

    for root in roots:
        show(root, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
