#!/usr/bin/env python3
"""Draw the benchmark plots as plain SVG (no matplotlib) from the JSON the bench scripts write.

Usage: python3 benches/plot.py DOCS_DIR

Reads DOCS_DIR/bench-lazy.json (cold start vs image size), DOCS_DIR/bench-store.json (bytes on
disk) and DOCS_DIR/bench-gc.json (gc times), whichever exist, and writes DOCS_DIR/bench-*.svg.
Prints the names of the files it wrote.
"""
import json
import math
import os
import sys
from html import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
W, H = 760, 400
L, R, T, B = 80, 230, 40, 60  # margins: the legend goes on the right


def nice_ticks(lo, hi, n=5):
    span = hi - lo or 1
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    t, ticks = math.floor(lo / step) * step, []
    while t <= hi + step * 1e-9:
        ticks.append(t)
        t += step
    return ticks


def fmt(v):
    if v >= 1e9:
        return f"{v / 1e9:g} G"
    if v >= 1e6:
        return f"{v / 1e6:g} M"
    if v >= 1e4:
        return f"{v / 1e3:g} k"
    return f"{v:g}"


class Svg:
    def __init__(self, title):
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
            f'<rect width="{W}" height="{H}" fill="white"/>',
            f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
        ]

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor="middle", **kw):
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in kw.items())
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>')

    def line(self, x1, y1, x2, y2, color="#000", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{d}/>')

    def legend(self, names):
        for i, name in enumerate(names):
            y = T + 10 + i * 20
            self.add(f'<rect x="{W - R + 15}" y="{y - 9}" width="14" height="10" fill="{COLORS[i % len(COLORS)]}"/>')
            self.text(W - R + 35, y, name, anchor="start")

    def save(self, path):
        self.parts.append("</svg>")
        with open(path, "w") as f:
            f.write("\n".join(self.parts) + "\n")


def axes(svg, yticks, ymax, ylabel, xlabel, pw=W - L - R):
    """Grid, y ticks and labels of a plot area `pw` wide; returns the value -> y mapping."""
    ph = H - T - B
    ypos = lambda v: T + ph - v / ymax * ph
    for t in yticks:
        svg.line(L, ypos(t), L + pw, ypos(t), color="#ddd")
        svg.text(L - 6, ypos(t) + 4, fmt(t), anchor="end")
    svg.line(L, T, L, T + ph)
    svg.line(L, T + ph, L + pw, T + ph)
    svg.text(18, T + ph / 2, ylabel, transform=f"rotate(-90 18 {T + ph / 2})")
    if xlabel:
        svg.text(L + pw / 2, H - 12, xlabel)
    return ypos


def line_plot(path, title, xlabel, ylabel, xs, series, note=""):
    """series: [(name, [y per x])]; x on a log scale when it spans more than 20x."""
    svg = Svg(title)
    pw = W - L - R
    ymax_data = max(y for _, ys in series for y in ys if y is not None)
    ymin_data = min(y for _, ys in series for y in ys if y is not None)
    if ymin_data > 0 and ymax_data / ymin_data > 30:
        # log y: small and large series both stay readable
        lo_e, hi_e = math.floor(math.log10(ymin_data)), math.ceil(math.log10(ymax_data))
        yticks = [m * 10 ** e for e in range(lo_e, hi_e + 1) for m in (1, 2, 5) if m * 10 ** e <= 10 ** hi_e]
        ph = H - T - B
        ypos = lambda v: T + ph - (math.log10(v) - lo_e) / (hi_e - lo_e) * ph
        for t in yticks:
            svg.line(L, ypos(t), L + pw, ypos(t), color="#ddd")
            svg.text(L - 6, ypos(t) + 4, fmt(t), anchor="end")
        svg.line(L, T, L, T + ph)
        svg.line(L, T + ph, L + pw, T + ph)
        svg.text(18, T + ph / 2, ylabel + " (log scale)", transform=f"rotate(-90 18 {T + ph / 2})")
        svg.text(L + pw / 2, H - 12, xlabel)
    else:
        yticks = nice_ticks(0, ymax_data * 1.05)
        ymax = max(yticks[-1], ymax_data * 1.05)
        ypos = axes(svg, yticks, ymax, ylabel, xlabel)
    logx = min(xs) > 0 and max(xs) / min(xs) > 20
    f = (lambda v: math.log10(v)) if logx else (lambda v: v)
    lo, hi = f(min(xs)), f(max(xs))
    xpos = lambda v: L + 20 + (f(v) - lo) / ((hi - lo) or 1) * (pw - 40)
    for x in xs:
        svg.line(xpos(x), H - B, xpos(x), H - B + 5)
        svg.text(xpos(x), H - B + 18, fmt(x))
    for i, (name, ys) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        pts = [(xpos(x), ypos(y)) for x, y in zip(xs, ys) if y is not None]
        svg.add(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')
        for (px, py), y in zip(pts, [y for y in ys if y is not None]):
            svg.add(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{c}"><title>{escape(name)}: {y:.0f}</title></circle>')
    svg.legend([n for n, _ in series])
    if logx:
        svg.text(W - R + 15, H - B + 18, "(log scale)", anchor="start", fill="#666")
    if note:
        svg.text(W - R + 15, T + 20 * len(series) + 30, note, anchor="start", fill="#666", font_size="10")
    svg.save(path)


def bar_chart(path, title, ylabel, bars, unit_div=1, unit=""):
    """bars: [(label, value)]; value None is skipped."""
    bars = [(n, v) for n, v in bars if v is not None]
    svg = Svg(title)
    pw, ph = W - L - R + R - 20, H - T - B  # no legend: use the width
    vals = [v / unit_div for _, v in bars]
    yticks = nice_ticks(0, max(vals) * 1.1)
    ymax = max(yticks[-1], max(vals) * 1.1)
    ypos = axes(svg, yticks, ymax, ylabel, None, pw)
    slot = pw / len(bars)
    for i, ((name, _), v) in enumerate(zip(bars, vals)):
        x = L + i * slot + slot * 0.15
        c = COLORS[i % len(COLORS)]
        svg.add(f'<rect x="{x:.1f}" y="{ypos(v):.1f}" width="{slot * 0.7:.1f}" height="{T + ph - ypos(v):.1f}" fill="{c}"/>')
        svg.text(x + slot * 0.35, ypos(v) - 5, f"{v:.1f}{unit}")
        svg.text(x + slot * 0.35, H - B + 16, name)
    svg.save(path)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "docs"
    load = lambda n: json.load(open(os.path.join(d, n))) if os.path.exists(os.path.join(d, n)) else None
    wrote = []
    lazy = load("bench-lazy.json")
    if lazy and lazy.get("cold_start_ms"):
        rows = sorted(lazy["cold_start_ms"], key=lambda r: r["mb"])
        xs = [r["mb"] for r in rows]
        p = os.path.join(d, "bench-cold-start.svg")
        line_plot(p, "Cold start to /bin/true vs image size (rootfs only)", "image size (MB)", "milliseconds",
                  xs, [("lazy (FUSE)", [r["lazy"] for r in rows]),
                       ("rendered", [r["rendered"] for r in rows]),
                       ("tar -x + unshare + chroot", [r["tar"] for r in rows])],
                  note=f"mean of {lazy['runs']} runs, page cache dropped")
        wrote.append(p)
    if lazy and lazy.get("pod_start_ms"):
        rows = sorted(lazy["pod_start_ms"], key=lambda r: r["mb"])
        xs = [r["mb"] for r in rows]
        p = os.path.join(d, "bench-pod-start.svg")
        line_plot(p, "rkt run to the app's first instruction vs image size", "image size (MB)", "milliseconds",
                  xs, [("lazy, cold", [r["lazy_cold"] for r in rows]),
                       ("lazy, warm", [r["lazy_warm"] for r in rows]),
                       ("rendered, cold", [r["rendered_cold"] for r in rows]),
                       ("rendered, warm", [r["rendered_warm"] for r in rows]),
                       ("tar -x + unshare + chroot", [r["tar"] for r in rows])],
                  note=f"median of {lazy['pod_runs']} runs")
        wrote.append(p)
    store = load("bench-store.json")
    if store:
        b = store["bytes"]
        p = os.path.join(d, "bench-bytes.svg")
        bar_chart(p, "Bytes on disk: base image + 4 derived images", "MiB",
                  [("tars", b["tars"]), ("all files", b["files"]), ("unique files", b["unique_files"]),
                   ("rkt store", b["rkt_store"]), ("casync store", b.get("casync"))],
                  unit_div=1 << 20)
        wrote.append(p)
    gc = load("bench-gc.json")
    if gc:
        p = os.path.join(d, "bench-gc.svg")
        noop = sum(gc["gc_noop_ms"]) / len(gc["gc_noop_ms"])
        bar_chart(p, f"{gc['images']} images: import and gc (milliseconds)", "milliseconds",
                  [("import, mean/img", gc["import_ms"]["mean"]), ("import, p90/img", gc["import_ms"]["p90"]),
                   ("gc, nothing to do", noop), ("gc, remove all", gc["gc_all_ms"])])
        wrote.append(p)
    for p in wrote:
        print(p)


if __name__ == "__main__":
    main()
