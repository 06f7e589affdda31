"""What scripts/check-observability.py (make test-rules) and scripts/test-observe.py
(make test-observe) share: the rules and dashboards of deploy/observability read as PromQL
expressions, the vector selectors inside an expression, and where every metric name comes from
(a recording rule, the apps' code, Envoy, Istio's standard metrics)."""

import glob
import json
import os
import re
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RULES = os.path.join(ROOT, "deploy/observability/prometheus/rules.yaml")
DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "deploy/observability/grafana/*.json")))

# Grafana's variables as the live test and the parse check substitute them: every tenant, the
# rate interval Grafana would pick at a 15 s scrape.
GRAFANA_VARS = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h", "tenant": ".+"}


class Expr:
    """One PromQL expression and where it comes from."""

    def __init__(self, where, expr, record=None, alert=None):
        self.where, self.expr, self.record, self.alert = where, expr, record, alert

    def __repr__(self):
        return self.where


def rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    out = []
    for g in doc["groups"]:
        for r in g["rules"]:
            name = r.get("record") or r.get("alert")
            out.append(Expr(f"rules.yaml {g['name']}/{name}", r["expr"].strip(),
                            record=r.get("record"), alert=r.get("alert")))
    return out


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARS[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def _panels(panels):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def dashboards():
    """Every panel target's expression and every query variable's metric, per dashboard."""
    out = []
    for path in DASHBOARDS:
        with open(path) as f:
            d = json.load(f)
        name = os.path.basename(path)
        for p in _panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(Expr(f"{name} '{p.get('title')}' {t.get('refId')}", substitute(t["expr"])))
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
                if not m:
                    raise ValueError(f"{name}: variable {v['name']}: only label_values(<selector>, <label>) is supported: {q}")
                out.append(Expr(f"{name} variable {v['name']}", substitute(m.group(1))))
    return out


# ------------------------------------------------------------------------------ PromQL
_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<num>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:ms|[smhdwy])?(?:[0-9]+(?:ms|[smhdwy]))*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@:])
""", re.X)
_AGGREGATORS = {"sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group", "limitk", "limit_ratio"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "atan2", "inf", "nan"}


def _tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def selectors(expr):
    """The vector selectors of a (valid) expression: [(metric name, '{matchers}' or '')]."""
    toks = _tokens(expr)
    out, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "op" and text == "[":  # a range or subquery: durations only
            while toks[i][1] != "]":
                i += 1
        elif kind == "ident" and text.lower() in ("by", "without", "on", "ignoring", "group_left", "group_right") and nxt == "(":
            while toks[i][1] != ")":  # a label list
                i += 1
        elif kind == "ident" and (nxt == "(" or text.lower() in _KEYWORDS or (text in _AGGREGATORS and nxt in ("by", "without"))):
            pass  # a function, an aggregation or a keyword
        elif kind == "ident":
            matchers = ""
            if nxt == "{":
                j = i + 1
                while toks[j][1] != "}":
                    j += 1
                matchers = "{" + ", ".join(
                    "".join(t for _, t in toks[k:k + 3]) for k in range(i + 2, j, 4)) + "}"
                i = j
            out.append((text, matchers))
        elif kind == "op" and text == "{":
            raise ValueError(f"a selector without a metric name in {expr!r}")
        i += 1
    return out


# ---------------------------------------------------------------------- metric families
def histogram_series(name):
    return {name + "_bucket", name + "_sum", name + "_count"}


def app_metrics():
    """Every metric name the apps register, read from their code (crates/, services/): the
    first argument of metrics::counter!/gauge!/histogram! — a string or a `const NAME: &str`, maybe
    path-qualified —
    with a histogram's _bucket/_sum/_count series."""
    consts, uses = {}, []
    for path in glob.glob(os.path.join(ROOT, "crates/**/*.rs"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "services/**/*.rs"), recursive=True):
        with open(path) as f:
            src = f.read()
        consts.update(re.findall(r'const\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([^"]+)"', src))
        uses += re.findall(r'metrics::(counter|gauge|histogram)!\(\s*(?:"([^"]+)"|(?:\w+::)*([A-Z][A-Z0-9_]*)\b)', src)
    names = set()
    for kind, literal, const in uses:
        name = literal or consts.get(const)
        if not name:
            raise ValueError(f"metrics::{kind}!({const}): no such const &str in crates/ or services/")
        names |= histogram_series(name) if kind == "histogram" else {name}
    return names


def istio_module():
    out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio"], cwd=os.path.join(ROOT, "tools"),
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def istio_metrics():
    """Istio's standard metrics (istio_<name>), from the pinned module's Telemetry code: the
    names its stats filter is configured with (histograms are the ones not ending in _total)."""
    with open(os.path.join(istio_module(), "pilot/pkg/model/telemetry.go")) as f:
        src = f.read()
    table = re.search(r"metricToPrometheusMetric = map\[string\]string\{(.*?)\n\}", src, re.S).group(1)
    names = set()
    for short in re.findall(r':\s*"([a-z_]+)"', table):
        name = "istio_" + short
        names |= {name} if name.endswith("_total") else histogram_series(name)
    return names


def istio_stats_tags(module):
    """The static stats_tags of Istio's sidecar bootstrap template (what the local mesh's
    bootstrap copies, tools/internal/mesh/bootstrap.go)."""
    with open(os.path.join(module, "tools/packaging/common/envoy_bootstrap.json")) as f:
        s = f.read()
    start = s.index('"stats_tags": [')
    s = s[start:s.index("\n    ]", start)]
    string = r'"(?:[^"\\]|\\.)*"'
    obj = re.compile(r'\{\s*"(?:tag_name|regex)"\s*:\s*' + string + r'\s*,\s*"(?:tag_name|regex)"\s*:\s*' + string + r'\s*\}')
    return [json.loads(o) for o in obj.findall(s) if "{{" not in o]


def istio_stats_matcher(module, inclusion_regexps):
    """Istio's default stats inclusion list (pkg/bootstrap/config.go and its template) plus the
    mesh config's proxyStatsMatcher regexps: what a kind sidecar exports."""
    with open(os.path.join(module, "pkg/bootstrap/config.go")) as f:
        src = f.read()
    consts = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', src))
    consts.update(re.findall(r'(\w+)\s*=\s*`([^`]*)`', src))
    prefixes = consts["requiredEnvoyStatsMatcherInclusionPrefixes"].split(",") + ["reporter=", "component", "istio"]
    suffixes = consts["rbacEnvoyStatsMatcherInclusionSuffix"].split(",") + ["downstream_cx_active"]
    regexps = [consts["requiredEnvoyStatsMatcherInclusionRegexes"]] + list(inclusion_regexps)
    return {"inclusion_list": {"patterns": [{"prefix": p} for p in prefixes] + [{"suffix": s} for s in suffixes]
                               + [{"safe_regex": {"regex": r}} for r in regexps]}}


def family(name, records, apps, envoy, istio):
    """Where a metric name comes from: record, app, envoy, istio (None: nowhere)."""
    for fam, names in (("record", records), ("app", apps), ("envoy", envoy), ("istio", istio)):
        if name in names:
            return fam
    return None
