#!/usr/bin/env python3
"""Render a Grafana dashboard's time series panels to a PNG, from a real Prometheus.

Grafana is not packaged in Debian; this draws a picture of
etc/grafana/flare-dashboard.json (or any dashboard made of Prometheus time
series panels) with matplotlib, in a dark Grafana-like style:

    python3 -m venv /tmp/render-venv
    /tmp/render-venv/bin/pip install -r scripts/render-requirements.txt
    /tmp/render-venv/bin/python scripts/render-dashboard.py \\
        --prometheus http://127.0.0.1:9090 --minutes 60 --out docs/images/dashboard.png

For every panel, in gridPos order, each target's "expr" is sent to Prometheus'
/api/v1/query_range over the last --minutes (ending at --end, default now),
with a step chosen from the window. Variables are substituted as Grafana does:
$__rate_interval (max(step + scrape interval, 4 x scrape interval), or
--rate-interval), $__interval (the step), $__range, the dashboard's datasource
variables, and its query/custom variables ("All" = their allValue, else ".*";
--var NAME=VALUE sets one). Legends come from legendFormat ({{label}}), the y
axis unit from fieldConfig.defaults.unit (s, ms, bytes, Bps, percent,
percentunit, reqps, ops, cps, short, ...), min/max/decimals and value mappings
too. Other panel types with Prometheus targets are drawn as time series. A panel whose queries return nothing shows "No data"; a query that
Prometheus rejects shows its error on the panel.

Exit status: 0 written; 1 Prometheus unreachable (one line on stderr);
2 bad arguments, unreadable dashboard, or matplotlib missing.

--self-test checks the parsing, substitution, layout and formatting parts,
and the HTTP client against a fake Prometheus on 127.0.0.1 (and, when
matplotlib is installed, renders the dashboard from it): no real Prometheus
needed. Only the standard library and matplotlib are used.
"""

import argparse
import datetime
import json
import math
import os
import re
import socket
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

PROG = "render-dashboard.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DASHBOARD = os.path.normpath(os.path.join(HERE, "..", "etc", "grafana", "flare-dashboard.json"))

# Grafana's layout: 24 columns; a grid unit is 30 px high plus an 8 px gap.
GRID_COLUMNS = 24
GRID_UNIT_PX = 38
GRID_GAP_PX = 8

# Grafana's dark theme (approximately) and its classic palette.
BG = "#111217"
PANEL_BG = "#181b1f"
PANEL_BORDER = "#2c3036"
TEXT = "#ccccdc"
TEXT_DIM = "#8e909c"
GRID = "#262930"
ERROR = "#f2495c"
PALETTE = [
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
    "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F", "#F29191", "#82B5D8", "#E5A8E2", "#AEA2E0",
]

NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200,
              10800, 21600, 43200, 86400]


class Unreachable(Exception):
    """Prometheus did not answer (connection refused, DNS, timeout, not Prometheus)."""


class QueryError(Exception):
    """Prometheus answered with an error for one query."""


# ---------------------------------------------------------------------------
# durations, steps, variables

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text):
    """'1m' -> 60.0, '1m30s' -> 90.0, '250ms' -> 0.25, '15' -> 15.0 (seconds)."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError("not a duration: %r (use e.g. 30s, 1m, 1h30m)" % text)
    return total


def format_duration(seconds):
    """A PromQL duration: 60 -> '1m', 90 -> '90s', 7200 -> '2h', 0.5 -> '500ms'."""
    ms = int(round(seconds * 1000))
    if ms <= 0:
        return "1ms"
    if ms % 1000:
        return "%dms" % ms
    s = ms // 1000
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return "%d%s" % (s // n, unit)
    return "%ds" % s


def choose_step(window, scrape_interval, points=300):
    """The smallest 'nice' step giving at most about `points` points, not below the scrape interval."""
    want = max(window / float(points), scrape_interval)
    for s in NICE_STEPS:
        if s >= want:
            return float(s)
    return float(math.ceil(want))


def rate_interval(step, scrape_interval):
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)."""
    return max(step + scrape_interval, 4 * scrape_interval)


_VAR_RE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\[\[(\w+)(?::[\w-]+)?\]\]|\$(\w+)")


def substitute(text, values, unknown=None):
    """Replace $name, ${name}, ${name:format} and [[name]] by values[name]; others stay."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        if unknown is not None:
            unknown.add(name)
        return m.group(0)
    return _VAR_RE.sub(repl, text)


def template_values(dashboard, overrides, datasource="prometheus"):
    """Values of the dashboard's own variables: --var overrides, then sensible defaults."""
    values = {}
    for v in dashboard.get("templating", {}).get("list", []):
        name = v.get("name")
        if not name:
            continue
        kind = v.get("type")
        current = v.get("current") or {}
        cur = current.get("value")
        if isinstance(cur, list):
            cur = cur[0] if len(cur) == 1 else "|".join(cur)
        if kind == "datasource":
            values[name] = datasource
        elif kind in ("query", "custom"):
            if v.get("includeAll") or v.get("multi") or cur in (None, "", "$__all"):
                values[name] = v.get("allValue") or ".*"
            else:
                values[name] = str(cur)
        elif kind == "constant":
            values[name] = str(v.get("query", ""))
        elif kind in ("textbox", "interval", "adhoc"):
            values[name] = "" if cur in (None, "$__all") else str(cur)
            if kind == "textbox" and not values[name]:
                values[name] = str(v.get("query", ""))
    values.update(overrides)
    return values


def builtin_values(step, rate_iv, window):
    return {
        "__rate_interval": format_duration(rate_iv),
        "__interval": format_duration(step),
        "__interval_ms": str(int(step * 1000)),
        "__range": format_duration(window),
        "__range_s": str(int(window)),
        "__range_ms": str(int(window * 1000)),
    }


# ---------------------------------------------------------------------------
# dashboard layout

def layout(dashboard):
    """Panels in gridPos order with their place in grid units, every row expanded.

    Returns a list of dicts {panel, kind ('row'|'panel'), x, y, w, h}. Panels
    of a collapsed row (kept in the row's "panels") are laid out below it, and
    whatever follows is moved down, as Grafana does when the row is opened.
    """
    top = sorted(dashboard.get("panels", []), key=_grid_key)
    sections = []  # (row or None, [panels])
    current = (None, [])
    for p in top:
        if p.get("type") == "row":
            sections.append(current)
            current = (p, list(p.get("panels") or []))
        else:
            current[1].append(p)
    sections.append(current)

    placed = []
    cursor = 0
    for row, members in sections:
        if row is None and not members:
            continue
        if row is not None:
            placed.append({"panel": row, "kind": "row", "x": 0, "y": cursor, "w": GRID_COLUMNS, "h": 1})
            cursor += 1
        if not members:
            continue
        members = sorted(members, key=_grid_key)
        base = min(_grid(p)["y"] for p in members)
        bottom = cursor
        for p in members:
            g = _grid(p)
            y = cursor + g["y"] - base
            placed.append({"panel": p, "kind": "panel", "x": g["x"], "y": y, "w": g["w"], "h": g["h"]})
            bottom = max(bottom, y + g["h"])
        cursor = bottom
    placed.sort(key=lambda e: (e["y"], e["x"]))
    return placed


def _grid(p):
    g = p.get("gridPos") or {}
    w = int(g.get("w", 12)) or 12
    x = int(g.get("x", 0))
    return {"x": max(0, min(x, GRID_COLUMNS - 1)), "y": int(g.get("y", 0)),
            "w": max(1, min(w, GRID_COLUMNS)), "h": max(1, int(g.get("h", 8)))}


def _grid_key(p):
    g = _grid(p)
    return (g["y"], g["x"])


# ---------------------------------------------------------------------------
# Prometheus HTTP API

def _open(url, data=None, timeout=30.0):
    req = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    return urllib.request.urlopen(req, timeout=timeout)


def check_prometheus(base, timeout=10.0):
    """Raise Unreachable unless `base` answers an instant query like Prometheus."""
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": "1"})
    try:
        with _open(url, timeout=timeout) as r:
            body = json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise Unreachable("HTTP %d on /api/v1/query: is it Prometheus?" % e.code)
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(str(reason))
    except ValueError:
        raise Unreachable("no JSON answer on /api/v1/query: is it Prometheus?")
    if not isinstance(body, dict) or body.get("status") != "success":
        raise Unreachable("unexpected answer on /api/v1/query: is it Prometheus?")


def query_range(base, expr, start, end, step, timeout=30.0):
    """Run one range query; return [(labels, [timestamps], [values])]."""
    url = base.rstrip("/") + "/api/v1/query_range"
    data = urllib.parse.urlencode({"query": expr, "start": "%.3f" % start, "end": "%.3f" % end,
                                   "step": "%g" % step}).encode()
    try:
        with _open(url, data=data, timeout=timeout) as r:
            body = json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read().decode("utf-8"))
        except (ValueError, OSError):
            raise QueryError("HTTP %d" % e.code)
        raise QueryError(body.get("error") or ("HTTP %d" % e.code))
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        raise Unreachable(str(getattr(e, "reason", e)))
    except ValueError:
        raise QueryError("answer is not JSON")
    return parse_matrix(body)


def parse_matrix(body):
    """Parse a query_range answer; values are floats (NaN for NaN, +-Inf kept)."""
    if body.get("status") != "success":
        raise QueryError(body.get("error") or "query failed")
    data = body.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result") or []
    series = []
    if kind == "matrix":
        for s in result:
            ts = [float(p[0]) for p in s.get("values", [])]
            vs = [float(p[1]) for p in s.get("values", [])]
            series.append((s.get("metric") or {}, ts, vs))
    elif kind == "vector":
        for s in result:
            series.append((s.get("metric") or {}, [float(s["value"][0])], [float(s["value"][1])]))
    elif kind == "scalar":
        series.append(({}, [float(result[0])], [float(result[1])]))
    else:
        raise QueryError("unexpected result type %r" % kind)
    return series


def with_gaps(ts, vs, step):
    """Insert NaN where points are missing, so that lines break there (spanNulls off)."""
    out_t, out_v = [], []
    for i, (t, v) in enumerate(zip(ts, vs)):
        if i and t - ts[i - 1] > 1.5 * step:
            out_t.append(ts[i - 1] + step)
            out_v.append(float("nan"))
        out_t.append(t)
        out_v.append(v if math.isfinite(v) else float("nan"))
    return out_t, out_v


# ---------------------------------------------------------------------------
# legends and units

_LEGEND_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def legend_name(fmt, labels, expr=""):
    """Grafana's legendFormat: {{label}} replaced, a missing label is empty."""
    if fmt and fmt != "__auto":
        return _LEGEND_RE.sub(lambda m: str(labels.get(m.group(1), "")), fmt).strip()
    name = labels.get("__name__", "")
    rest = ", ".join('%s="%s"' % (k, v) for k, v in sorted(labels.items()) if k != "__name__")
    if rest:
        return "%s{%s}" % (name, rest)
    return name or expr.strip()


_SI = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
_SI_BITS = [(f, p + "b") for f, p in _SI]
_IEC = [(2.0 ** 50, "PiB"), (2.0 ** 40, "TiB"), (2.0 ** 30, "GiB"), (2.0 ** 20, "MiB"), (2.0 ** 10, "KiB")]
_DEC = [(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]


def _num(v, decimals):
    if decimals is not None:
        return "%.*f" % (int(decimals), v)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        s = "%.0f" % v
    elif a >= 10:
        s = "%.1f" % v
    elif a >= 1:
        s = "%.2f" % v
    else:
        s = "%.3g" % v
    if "." in s and "e" not in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _scaled(v, table, base_suffix, decimals):
    for factor, suffix in table:
        if abs(v) >= factor:
            return "%s %s" % (_num(v / factor, decimals), suffix)
    return "%s %s" % (_num(v, decimals), base_suffix)


def _si(v, decimals):
    """A plain number with an SI prefix and no space: 12000 -> '12k', 2.5e6 -> '2.5M'."""
    for factor, prefix in _SI:
        if abs(v) >= factor:
            return _num(v / factor, decimals) + prefix
    return _num(v, decimals)


def _seconds(v, decimals):
    a = abs(v)
    if a == 0:
        return "0 s"
    for limit, factor, suffix in ((1e-6, 1e-9, "ns"), (1e-3, 1e-6, "µs"), (1, 1e-3, "ms"), (60, 1, "s"),
                                  (3600, 60, "min"), (86400, 3600, "hour"), (604800, 86400, "day")):
        if a < limit:
            return "%s %s" % (_num(v / factor, decimals), suffix)
    return "%s week" % _num(v / 604800, decimals)


def format_value(v, unit=None, decimals=None, mappings=None):
    """A y axis label for value `v` in Grafana unit `unit`."""
    if mappings:
        for key, text in mappings.items():
            try:
                if float(key) == v:
                    return text
            except ValueError:
                continue
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    unit = unit or "short"
    if unit == "percentunit":
        return _num(v * 100, decimals) + "%"
    if unit == "percent":
        return _num(v, decimals) + "%"
    if unit == "s":
        return _seconds(v, decimals)
    if unit == "ms":
        return _seconds(v / 1000.0, decimals)
    if unit == "us" or unit == "µs":
        return _seconds(v / 1e6, decimals)
    if unit == "bytes":
        return _scaled(v, _IEC, "B", decimals)
    if unit == "bits":
        return _scaled(v, _SI_BITS, "b", decimals)
    if unit in ("decbytes",):
        return _scaled(v, _DEC, "B", decimals)
    if unit == "binBps":
        return _scaled(v, _IEC, "B", decimals) + "/s"
    if unit in ("Bps", "decBps"):
        return _scaled(v, _DEC, "B", decimals) + "/s"
    if unit == "bps":
        return _scaled(v, _SI_BITS, "b", decimals) + "/s"
    suffix = {"reqps": " req/s", "rps": " req/s", "ops": " ops/s", "cps": " cps", "wps": " wps",
              "iops": " io/s", "rpm": " rpm", "opm": " opm"}.get(unit)
    if suffix is not None:
        return _si(v, decimals) + suffix
    if unit in ("short", "none", ""):
        return _si(v, decimals)
    # Grafana's custom units: "suffix:X" and "prefix:X"; anything else: a plain suffix.
    if unit.startswith("suffix:"):
        return _si(v, decimals) + unit[len("suffix:"):]
    if unit.startswith("prefix:"):
        return unit[len("prefix:"):] + _si(v, decimals)
    return _si(v, decimals) + " " + unit


def panel_mappings(defaults):
    """Value mappings of type 'value' as {value: text}."""
    out = {}
    for m in defaults.get("mappings") or []:
        if m.get("type") == "value":
            for k, o in (m.get("options") or {}).items():
                if isinstance(o, dict) and o.get("text") is not None:
                    out[k] = str(o["text"])
    return out


# ---------------------------------------------------------------------------
# querying a whole dashboard

def collect(dashboard, prometheus, start, end, step, values, timeout, log=None):
    """Run every query; returns [(placed, [result])] with result = dict per target."""
    out = []
    for entry in layout(dashboard):
        results = []
        if entry["kind"] == "panel":
            for t in entry["panel"].get("targets") or []:
                if t.get("hide") or not t.get("expr"):
                    continue
                unknown = set()
                expr = substitute(t["expr"], values, unknown)
                res = {"target": t, "expr": expr, "series": [], "error": None, "step": step}
                if unknown:
                    res["error"] = "unknown variable(s): %s" % ", ".join("$" + u for u in sorted(unknown))
                else:
                    try:
                        res["series"] = query_range(prometheus, expr, start, end, step, timeout)
                    except QueryError as e:
                        res["error"] = str(e)
                if log is not None:
                    title = entry["panel"].get("title", "")
                    if res["error"]:
                        log("%s [%s]: %s" % (title, t.get("refId", "?"), res["error"]))
                    elif not res["series"]:
                        log("%s [%s]: no data" % (title, t.get("refId", "?")))
                results.append(res)
        out.append((entry, results))
    return out


# ---------------------------------------------------------------------------
# drawing

def legend_order(n, ncol):
    """Indexes (None = blank) in the order matplotlib's column-major legend needs to
    show entries 0..n-1 row by row, as Grafana does."""
    rows = int(math.ceil(n / float(ncol)))
    return [r * ncol + c if r * ncol + c < n else None for c in range(ncol) for r in range(rows)]


def unit_scale(unit, top):
    """For units shown in steps that are not powers of 10 (KiB, MiB...; ms, s, min,
    hour...): the size, in the unit's own values, of the display unit used for
    values up to `top`, so that ticks fall on round numbers of it. None otherwise."""
    top = abs(top)
    if unit in ("bytes", "binBps"):
        f = 1.0
        while top / f >= 1024:
            f *= 1024
        return f
    if unit in ("s", "ms"):
        per_second = 1.0 if unit == "s" else 1000.0
        secs = top / per_second
        factor = 604800.0
        for limit, f in ((1e-6, 1e-9), (1e-3, 1e-6), (1, 1e-3), (60, 1.0), (3600, 60.0), (86400, 3600.0),
                         (604800, 86400.0)):
            if secs < limit:
                factor = f
                break
        return factor * per_second
    return None


def _scaled_locator(nbins, unit):
    """Y ticks at round numbers of the display unit (1.5 hour, not 1.39 hour)."""
    from matplotlib.ticker import Locator, MaxNLocator

    class ScaledLocator(Locator):
        def __init__(self):
            self.inner = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10])

        def __call__(self):
            lo, hi = self.axis.get_view_interval()
            return self.tick_values(lo, hi)

        def tick_values(self, vmin, vmax):
            f = unit_scale(unit, max(abs(vmin), abs(vmax))) or 1.0
            return [t * f for t in self.inner.tick_values(vmin / f, vmax / f)]

    return ScaledLocator()


def _legend_width_px(label):
    return 26 + 5.2 * len(label)


def render(collected, out_path, width_px, title, subtitle, start, end, use_utc, dpi=100):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    tz = datetime.timezone.utc if use_utc else None
    header_px = 64
    pad = 10
    unit_w = (width_px - 2 * pad) / float(GRID_COLUMNS)
    rows_total = max([e["y"] + e["h"] for e, _ in collected] or [1])
    height_px = int(header_px + rows_total * GRID_UNIT_PX + pad)

    # (+0.01: matplotlib truncates the size in pixels)
    fig = plt.figure(figsize=((width_px + 0.01) / dpi, (height_px + 0.01) / dpi), dpi=dpi, facecolor=BG)
    W, H = float(width_px), float(height_px)

    def frac(x, y, w, h):  # px from the top left -> figure fraction rectangle
        return (x / W, 1 - (y + h) / H, w / W, h / H)

    fig.text(pad / W, 1 - 14 / H, title, color=TEXT, fontsize=15, fontweight="bold", va="top")
    fig.text(pad / W, 1 - 42 / H, subtitle, color=TEXT_DIM, fontsize=8.5, va="top")

    t0 = datetime.datetime.fromtimestamp(start, tz)
    t1 = datetime.datetime.fromtimestamp(end, tz)
    span = end - start
    date_fmt = "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    # Every panel uses the same locator: with ticks less than a minute apart
    # (windows of up to about 3.5 minutes), "%H:%M" would repeat labels.
    ticks = mdates.AutoDateLocator(minticks=3, maxticks=7, tz=tz).tick_values(t0, t1)
    if len(ticks) > 1 and (ticks[1] - ticks[0]) * 86400 < 59.5:
        date_fmt = "%H:%M:%S"

    for entry, results in collected:
        panel = entry["panel"]
        px = pad + entry["x"] * unit_w + GRID_GAP_PX / 2.0
        py = header_px + entry["y"] * GRID_UNIT_PX
        pw = entry["w"] * unit_w - GRID_GAP_PX
        ph = entry["h"] * GRID_UNIT_PX - GRID_GAP_PX

        if entry["kind"] == "row":
            fig.text(px / W, 1 - (py + 20) / H, panel.get("title", ""), color=TEXT, fontsize=11,
                     fontweight="bold", va="baseline")
            continue

        fig.patches.append(Rectangle((px / W, 1 - (py + ph) / H), pw / W, ph / H, transform=fig.transFigure,
                                     facecolor=PANEL_BG, edgecolor=PANEL_BORDER, linewidth=0.8, zorder=-1))
        fig.text((px + 8) / W, 1 - (py + 7) / H, panel.get("title", ""), color=TEXT, fontsize=9.5,
                 fontweight="bold", va="top", clip_on=True)

        defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
        custom = defaults.get("custom") or {}
        unit = defaults.get("unit")
        decimals = defaults.get("decimals")
        mappings = panel_mappings(defaults)
        step_style = custom.get("lineInterpolation") in ("stepAfter", "stepBefore")
        fill = float(custom.get("fillOpacity", 0) or 0) / 100.0
        points_only = custom.get("drawStyle") == "points"
        line_width = float(custom.get("lineWidth", 1) or 1) * 1.1

        lines = []  # (label, ts, vs)
        errors = []
        for res in results:
            if res["error"]:
                errors.append(res["error"])
                continue
            fmt = res["target"].get("legendFormat")
            for labels, ts, vs in res["series"]:
                gt, gv = with_gaps(ts, vs, res["step"])
                lines.append((legend_name(fmt, labels, res["expr"]), gt, gv))
        lines.sort(key=lambda l: l[0])

        title_h, xtick_h, pad_l, pad_r, pad_b = 26, 16, 66, 10, 6
        legend_rows, legend_items = 0, []
        show_legend = ((panel.get("options") or {}).get("legend") or {}).get("showLegend", True)
        if lines and show_legend:
            col_w = max(_legend_width_px(l[0]) for l in lines) + 10
            ncol = max(1, int((pw - 16) // col_w))
            max_rows = max(1, int(entry["h"] // 3))
            need = int(math.ceil(len(lines) / float(ncol)))
            legend_rows = min(need, max_rows)
            capacity = legend_rows * ncol
            legend_items = list(range(len(lines)))
            if len(lines) > capacity:  # the last place says "… +N more"
                legend_items = legend_items[:capacity - 1]
        legend_h = legend_rows * 13 + (4 if legend_rows else 0)

        ax_x, ax_y = px + pad_l, py + title_h
        ax_w = pw - pad_l - pad_r
        ax_h = ph - title_h - xtick_h - legend_h - pad_b
        if ax_h < 20:
            legend_rows, legend_h, legend_items = 0, 0, []
            ax_h = ph - title_h - xtick_h - pad_b
        ax = fig.add_axes(frac(ax_x, ax_y, ax_w, ax_h))
        ax.set_facecolor(PANEL_BG)
        for s in ax.spines.values():
            s.set_visible(False)
        ax.tick_params(colors=TEXT_DIM, labelsize=7, length=0, pad=3)
        ax.grid(True, color=GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        ax.set_xlim(t0, t1)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7, tz=tz)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter(date_fmt, tz=tz))

        if errors and not lines:
            msg = "Query error: " + errors[0]
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(msg, max(20, int(ax_w / 6)))[:4]), transform=ax.transAxes,
                    ha="center", va="center", color=ERROR, fontsize=8)
            ax.set_yticks([])
            continue
        if not lines:
            ax.text(0.5, 0.55, "No data", transform=ax.transAxes, ha="center", va="center",
                    color=TEXT_DIM, fontsize=11)
            ax.text(0.5, 0.35, "(the queries returned no series in this window)", transform=ax.transAxes,
                    ha="center", va="center", color=TEXT_DIM, fontsize=7)
            ax.set_yticks([])
            continue

        handles = []
        finite = []
        for i, (label, ts, vs) in enumerate(lines):
            color = PALETTE[i % len(PALETTE)]
            x = [datetime.datetime.fromtimestamp(t, tz) for t in ts]
            if points_only:
                h, = ax.plot(x, vs, linestyle="none", marker="o", markersize=2, color=color)
            else:
                h, = ax.plot(x, vs, color=color, linewidth=line_width,
                             drawstyle="steps-post" if step_style else "default")
                if fill > 0:
                    ax.fill_between(x, vs, 0, color=color, alpha=min(fill, 1.0), linewidth=0,
                                    step="post" if step_style else None)
            handles.append(h)
            finite.extend(v for v in vs if math.isfinite(v))

        lo = min(finite) if finite else 0.0
        hi = max(finite) if finite else 1.0
        ymin = defaults.get("min")
        ymax = defaults.get("max")
        if ymin is None:
            soft = custom.get("axisSoftMin")
            ymin = min(lo, soft) if soft is not None else lo
        if ymax is None:
            soft = custom.get("axisSoftMax")
            ymax = max(hi, soft) if soft is not None else hi
        if ymax <= ymin:
            ymax = ymin + (abs(ymin) or 1.0)
        elif defaults.get("max") is None:
            ymax += (ymax - ymin) * 0.05
        ax.set_ylim(ymin, ymax)
        integer = bool(mappings) or decimals == 0
        nbins = max(2, int(ax_h // 28))
        if unit_scale(unit, 1) is not None and not integer:
            ax.yaxis.set_major_locator(_scaled_locator(nbins, unit))
        else:
            ax.yaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=integer, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, pos, u=unit, d=decimals, m=mappings:
                                                   format_value(v, u, d, m)))

        if legend_rows:
            hs = [handles[i] for i in legend_items]
            ls = [lines[i][0] for i in legend_items]
            if len(legend_items) < len(lines):
                hs.append(Line2D([], [], color="none"))
                ls.append("… +%d more" % (len(lines) - len(legend_items)))
            col_w = max(_legend_width_px(l) for l in ls) + 10
            ncol = max(1, min(len(ls), int((pw - 16) // col_w)))
            order = legend_order(len(ls), ncol)
            hs = [hs[i] if i is not None else Line2D([], [], color="none") for i in order]
            ls = [ls[i] if i is not None else "" for i in order]
            leg = ax.legend(hs, ls, loc="upper left", ncol=ncol, frameon=False, fontsize=7,
                            handlelength=1.4, handletextpad=0.5, columnspacing=1.2, borderaxespad=0,
                            labelspacing=0.35,
                            bbox_to_anchor=(-(pad_l - 8) / ax_w, -(xtick_h + 2) / ax_h))
            for t in leg.get_texts():
                t.set_color(TEXT)

        if errors:
            ax.text(1.0, 1.02, "query error: " + errors[0][:80], transform=ax.transAxes, ha="right",
                    va="bottom", color=ERROR, fontsize=6.5)

    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, facecolor=BG)
    plt.close(fig)
    return width_px, height_px


# ---------------------------------------------------------------------------
# command line

def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="dashboard JSON (default: %(default)s)")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=60, help="time window in minutes (default: %(default)s)")
    p.add_argument("--end", default="now", help="end of the window: 'now' or a Unix time (default: now)")
    p.add_argument("--step", help="query step (e.g. 15s); default: from the window, about 300 points")
    p.add_argument("--scrape-interval", default="15s",
                   help="Prometheus' scrape interval, for $__rate_interval and the smallest step (default: %(default)s)")
    p.add_argument("--rate-interval", help="value of $__rate_interval (e.g. 1m); default: max(step + scrape, 4 x scrape)")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a dashboard variable (default: its 'All' value, else .*); repeatable")
    p.add_argument("--out", default="docs/images/dashboard.png", help="PNG to write (default: %(default)s)")
    p.add_argument("--width", type=int, default=1800, help="picture width in pixels (default: %(default)s)")
    p.add_argument("--utc", action="store_true", help="time axis in UTC (default: local time)")
    p.add_argument("--timeout", type=float, default=30, help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="do not list empty or failing queries")
    p.add_argument("--self-test", action="store_true", help="test this script without a real Prometheus, then exit")
    return p.parse_args(argv)


def fail(code, message):
    sys.stderr.write("%s: %s\n" % (PROG, message))
    return code


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        return self_test(args.dashboard)
    try:
        with open(args.dashboard, encoding="utf-8") as f:
            dashboard = json.load(f)
        if isinstance(dashboard.get("dashboard"), dict):  # an API export {"dashboard": {...}, "meta": ...}
            dashboard = dashboard["dashboard"]
    except (OSError, ValueError) as e:
        return fail(2, "cannot read dashboard %s: %s" % (args.dashboard, e))
    try:
        scrape = parse_duration(args.scrape_interval)
        window = args.minutes * 60.0
        if window <= 0:
            raise ValueError("--minutes must be positive")
        step = parse_duration(args.step) if args.step else choose_step(window, scrape)
        rate_iv = parse_duration(args.rate_interval) if args.rate_interval else rate_interval(step, scrape)
        end = time.time() if args.end == "now" else float(args.end)
        overrides = {}
        for kv in args.var:
            if "=" not in kv:
                raise ValueError("--var needs NAME=VALUE, not %r" % kv)
            k, v = kv.split("=", 1)
            overrides[k] = v
    except ValueError as e:
        return fail(2, str(e))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return fail(2, "matplotlib is missing: pip install -r scripts/render-requirements.txt")

    start = end - window
    try:
        check_prometheus(args.prometheus, timeout=min(args.timeout, 10))
    except Unreachable as e:
        return fail(1, "cannot reach Prometheus at %s: %s" % (args.prometheus, e))

    values = template_values(dashboard, overrides)
    values.update(builtin_values(step, rate_iv, window))
    log = None if args.quiet else (lambda m: sys.stderr.write("%s: note: %s\n" % (PROG, m)))
    try:
        collected = collect(dashboard, args.prometheus, start, end, step, values, args.timeout, log)
    except Unreachable as e:
        return fail(1, "cannot reach Prometheus at %s: %s" % (args.prometheus, e))
    fmt = "%Y-%m-%d %H:%M" + (" UTC" if args.utc else "")
    tz = datetime.timezone.utc if args.utc else None
    shown_vars = ", ".join("%s=%s" % (k, v) for k, v in sorted(template_values(dashboard, overrides).items())
                           if k != "datasource")
    subtitle = "%s – %s   ·   step %s   ·   $__rate_interval %s   ·   %s%s" % (
        datetime.datetime.fromtimestamp(start, tz).strftime(fmt),
        datetime.datetime.fromtimestamp(end, tz).strftime(fmt),
        format_duration(step), format_duration(rate_iv), args.prometheus,
        ("   ·   " + shown_vars) if shown_vars else "")
    w, h = render(collected, args.out, args.width, dashboard.get("title") or "dashboard", subtitle,
                  start, end, args.utc)
    panels = sum(1 for e, _ in collected if e["kind"] == "panel")
    empty = sum(1 for e, rs in collected if e["kind"] == "panel" and not any(r["series"] for r in rs))
    print("%s: wrote %s (%dx%d px, %d panels, %d without data)" % (PROG, args.out, w, h, panels, empty))
    return 0


# ---------------------------------------------------------------------------
# self-test

def _fake_prometheus():
    """A tiny HTTP server answering /api/v1/query and /api/v1/query_range with made-up series."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _params(self):
            q = urllib.parse.urlsplit(self.path).query
            params = dict(urllib.parse.parse_qsl(q))
            if self.command == "POST":
                n = int(self.headers.get("Content-Length") or 0)
                params.update(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
            return params

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def _answer(self):
            path = urllib.parse.urlsplit(self.path).path
            p = self._params()
            self.server.queries.append(p.get("query", ""))
            if path == "/api/v1/query":
                return self._send(200, {"status": "success", "data": {"resultType": "scalar",
                                                                      "result": [time.time(), "1"]}})
            if path != "/api/v1/query_range":
                return self._send(404, {"status": "error", "error": "not found"})
            q = p["query"]
            if "$" in q:
                return self._send(400, {"status": "error", "errorType": "bad_data", "error": "unsubstituted: " + q})
            if "flare_reconstruction_bytes" in q:
                return self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})
            if "flare_forward_in_flight" in q:
                return self._send(400, {"status": "error", "errorType": "bad_data",
                                        "error": "1:1: parse error: made up by the fake Prometheus"})
            start, end, step = float(p["start"]), float(p["end"]), float(p["step"])
            result = []
            for k in range(3):
                labels = {"instance": "node%d:9122" % (k + 1), "job": "flare-nodes", "slave": "node%d:12121" % (k + 2),
                          "peer": "node%d:12121" % (k + 2), "node": "node%d:12121" % (k + 1), "class": "local_read",
                          "command": ["get", "set", "delete"][k], "outcome": "server_error", "role": "master",
                          "state": "active", "version": "1.3.4"}
                vals = []
                t = math.ceil(start / step) * step
                while t <= end:
                    if not (k == 2 and start + (end - start) * 0.4 < t < start + (end - start) * 0.5):  # a gap
                        v = (k + 1) * (1.5 + math.sin(t / 600.0 + k))
                        if "histogram_quantile" in q:
                            v /= 1000.0
                        elif "/" in q:
                            v = 0.9 + 0.03 * math.sin(t / 300.0 + k)
                        elif "bytes" in q:
                            v *= 2 ** 20
                        vals.append([t, repr(v)])
                    t += step
                result.append({"metric": labels, "values": vals})
            return self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.queries = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def self_test(dashboard_path):
    passed, failed = [0], [0]

    def check(name, cond, detail=""):
        if cond:
            passed[0] += 1
        else:
            failed[0] += 1
            print("FAIL %s %s" % (name, detail))

    def eq(name, got, want):
        check(name, got == want, "got %r, want %r" % (got, want))

    # durations, steps, $__rate_interval
    eq("parse 1m", parse_duration("1m"), 60.0)
    eq("parse 1m30s", parse_duration("1m30s"), 90.0)
    eq("parse 250ms", parse_duration("250ms"), 0.25)
    eq("parse 15", parse_duration("15"), 15.0)
    for bad in ("", "1x", "m1", "1m 2s"):
        try:
            parse_duration(bad)
            check("parse %r fails" % bad, False)
        except ValueError:
            check("parse %r fails" % bad, True)
    eq("format 60", format_duration(60), "1m")
    eq("format 90", format_duration(90), "90s")
    eq("format 7200", format_duration(7200), "2h")
    eq("format 0.5", format_duration(0.5), "500ms")
    eq("step 1h/15s", choose_step(3600, 15), 15.0)
    eq("step 6h/15s", choose_step(6 * 3600, 15), 120.0)
    eq("step 5m/1s", choose_step(300, 1), 1.0)
    eq("step 30d", choose_step(30 * 86400, 15), 10800.0)
    eq("rate interval 15s/15s", rate_interval(15, 15), 60)
    eq("rate interval 120s/15s", rate_interval(120, 15), 135)

    # variables
    vals = {"__rate_interval": "1m", "instance": ".*", "datasource": "prometheus"}
    eq("subst $", substitute('rate(x{instance=~"$instance"}[$__rate_interval])', vals),
       'rate(x{instance=~".*"}[1m])')
    eq("subst ${}", substitute("${instance} ${instance:regex} [[instance]]", vals), ".* .* .*")
    unknown = set()
    eq("subst unknown", substitute("a $nope b", vals, unknown), "a $nope b")
    eq("subst unknown set", unknown, {"nope"})
    dash = {"templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus"},
        {"name": "instance", "type": "query", "multi": True, "includeAll": True, "allValue": ".*",
         "current": {"value": ["$__all"]}},
        {"name": "job", "type": "custom", "current": {"value": "flare-nodes"}},
        {"name": "env", "type": "constant", "query": "prod"},
        {"name": "re", "type": "query", "includeAll": True, "current": {"value": "$__all"}}]}}
    tv = template_values(dash, {"job": "flare-index"})
    eq("template values", tv, {"datasource": "prometheus", "instance": ".*", "job": "flare-index", "env": "prod",
                               "re": ".*"})
    eq("builtins", builtin_values(15, 60, 3600)["__rate_interval"], "1m")
    eq("builtins interval", builtin_values(15, 60, 3600)["__interval"], "15s")

    # legends
    lab = {"instance": "node1:9122", "slave": "node2:12121", "__name__": "x"}
    eq("legend", legend_name("{{instance}} → {{ slave }}", lab), "node1:9122 → node2:12121")
    eq("legend missing label", legend_name("{{nope}} x", lab), "x")
    eq("legend auto", legend_name("__auto", lab), 'x{instance="node1:9122", slave="node2:12121"}')
    eq("legend none", legend_name("", {}, "sum(x)"), "sum(x)")

    # units
    eq("unit s ms", format_value(0.0123, "s"), "12.3 ms")
    eq("unit s µs", format_value(0.00025, "s"), "250 µs")
    eq("unit s", format_value(2.5, "s"), "2.5 s")
    eq("unit s min", format_value(120, "s"), "2 min")
    eq("unit s 0", format_value(0, "s"), "0 s")
    eq("unit bytes", format_value(3 * 2 ** 30, "bytes"), "3 GiB")
    eq("unit bytes small", format_value(512, "bytes"), "512 B")
    eq("unit Bps", format_value(1500, "Bps"), "1.5 kB/s")
    eq("unit percentunit", format_value(0.25, "percentunit"), "25%")
    eq("unit percent", format_value(99.5, "percent"), "99.5%")
    eq("unit reqps", format_value(12000, "reqps"), "12k req/s")
    eq("unit ops", format_value(3, "ops"), "3 ops/s")
    eq("unit ops small", format_value(0.015, "ops"), "0.015 ops/s")
    eq("unit ops 0.125", format_value(0.125, "ops"), "0.125 ops/s")
    eq("unit short", format_value(2500000, "short"), "2.5M")
    eq("unit bps", format_value(2000, "bps"), "2 kb/s")
    eq("unit bps small", format_value(20, "bps"), "20 b/s")
    eq("unit none", format_value(7, None), "7")
    eq("unit decimals", format_value(2, "short", 0), "2")
    eq("scale bytes", unit_scale("bytes", 3 * 2 ** 20), 2.0 ** 20)
    eq("scale bytes small", unit_scale("bytes", 100), 1.0)
    eq("scale s hours", unit_scale("s", 10000), 3600.0)
    eq("scale s ms", unit_scale("s", 0.02), 1e-3)
    eq("scale ms seconds", unit_scale("ms", 2500), 1000.0)
    eq("scale short", unit_scale("short", 5000), None)
    eq("mapping", format_value(3.0, "short", 0, {"3": "failed"}), "failed")
    eq("mappings parsed", panel_mappings({"mappings": [{"type": "value", "options": {
        "0": {"text": "idle"}, "1": {"text": "running"}}}]}), {"0": "idle", "1": "running"})

    eq("legend order 5x3", legend_order(5, 3), [0, 3, 1, 4, 2, None])
    eq("legend order 2x2", legend_order(2, 2), [0, 1])
    eq("legend order 4x2", legend_order(4, 2), [0, 2, 1, 3])

    # layout: gridPos order, a collapsed row's panels below it, the rest moved down
    d = {"panels": [
        {"type": "timeseries", "title": "b", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8}},
        {"type": "row", "title": "r1", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
        {"type": "timeseries", "title": "a", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8}},
        {"type": "row", "title": "r2", "collapsed": True, "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1},
         "panels": [{"type": "timeseries", "title": "c", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 6}}]},
        {"type": "row", "title": "r3", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 1}},
        {"type": "timeseries", "title": "d", "gridPos": {"x": 0, "y": 11, "w": 8, "h": 4}}]}
    got = [(e["panel"]["title"], e["x"], e["y"], e["w"], e["h"]) for e in layout(d)]
    eq("layout", got, [("r1", 0, 0, 24, 1), ("a", 0, 1, 12, 8), ("b", 12, 1, 12, 8), ("r2", 0, 9, 24, 1),
                       ("c", 0, 10, 24, 6), ("r3", 0, 16, 24, 1), ("d", 0, 17, 8, 4)])

    # Prometheus answers
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"instance": "a"}, "values": [[100, "1"], [115, "NaN"], [130, "+Inf"], [175, "4"]]}]}}
    s = parse_matrix(body)
    eq("matrix labels", s[0][0], {"instance": "a"})
    eq("matrix ts", s[0][1], [100.0, 115.0, 130.0, 175.0])
    check("matrix NaN", math.isnan(s[0][2][1]))
    check("matrix Inf", s[0][2][2] == float("inf"))
    gt, gv = with_gaps(s[0][1], s[0][2], 15)
    eq("gaps ts", gt, [100.0, 115.0, 130.0, 145.0, 175.0])
    check("gaps values", gv[0] == 1 and all(math.isnan(v) for v in gv[1:4]) and gv[4] == 4, repr(gv))
    try:
        parse_matrix({"status": "error", "error": "bad"})
        check("error answer", False)
    except QueryError as e:
        eq("error answer", str(e), "bad")

    # HTTP: an unreachable Prometheus, then the fake one
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = "http://127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()
    try:
        check_prometheus(closed, timeout=2)
        check("unreachable detected", False)
    except Unreachable:
        check("unreachable detected", True)
    import io
    err, sys.stderr = sys.stderr, io.StringIO()
    try:
        code = main(["--prometheus", closed, "--dashboard", dashboard_path, "--out", os.devnull])
        said = sys.stderr.getvalue()
    finally:
        sys.stderr = err
    if _has_matplotlib():
        eq("unreachable exit status", code, 1)
        check("unreachable: one line", said.count("\n") == 1 and "cannot reach Prometheus at " + closed in said, said)
    else:
        eq("no matplotlib exit status", code, 2)

    srv = _fake_prometheus()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        check_prometheus(base, timeout=5)
        check("fake reachable", True)
        now = time.time()
        res = query_range(base, "sum(rate(flare_requests_total[1m]))", now - 600, now, 15)
        eq("fake series", len(res), 3)
        try:
            query_range(base, "flare_forward_in_flight", now - 600, now, 15)
            check("fake query error", False)
        except QueryError as e:
            check("fake query error", "parse error" in str(e), str(e))

        if os.path.exists(dashboard_path):
            with open(dashboard_path, encoding="utf-8") as f:
                dashboard = json.load(f)
            placed = layout(dashboard)
            check("dashboard has panels", any(e["kind"] == "panel" for e in placed))
            xs = [(e["y"], e["x"]) for e in placed]
            eq("dashboard in gridPos order", xs, sorted(xs))
            for e in placed:
                check("panel fits the grid: %s" % e["panel"].get("title"), e["x"] + e["w"] <= GRID_COLUMNS)
            values = template_values(dashboard, {})
            values.update(builtin_values(15, 60, 3600))
            for e in placed:
                for t in e["panel"].get("targets") or []:
                    unknown = set()
                    substitute(t.get("expr", ""), values, unknown)
                    check("variables known in %s" % e["panel"].get("title"), not unknown, repr(unknown))
            if _has_matplotlib():
                import shutil
                import tempfile
                tmp = tempfile.mkdtemp(prefix="render-dashboard-")
                out = os.path.join(tmp, "sub", "dash.png")  # "sub" does not exist yet
                del srv.queries[:]
                code = main(["--prometheus", base, "--dashboard", dashboard_path, "--out", out, "--minutes", "30",
                             "--quiet"])
                eq("render exit status", code, 0)
                with open(out, "rb") as f:
                    head = f.read(24)
                check("render wrote a PNG", head[:8] == b"\x89PNG\r\n\x1a\n")
                width = int.from_bytes(head[16:20], "big")
                eq("render width", width, 1800)
                nexpr = sum(1 for e in placed for t in e["panel"].get("targets") or [] if t.get("expr"))
                eq("render queried every target", len([q for q in srv.queries if q != "1"]), nexpr)
                check("render substituted everything", all("$" not in q for q in srv.queries))
                shutil.rmtree(tmp)
            else:
                print("note: matplotlib is not installed: rendering not tested")
    finally:
        srv.shutdown()
        srv.server_close()

    print("%d passed, %d failed" % (passed[0], failed[0]))
    return 1 if failed[0] else 0


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
