"""Grouped bar chart as a standalone SVG, python3 stdlib only (no matplotlib).

plot(panels, path, title): one panel per input (replay, memory, memif), side by side; in
each, one group per packet size and one bar per program, the bar at the median, a whisker
from min to max, the median printed above. Every panel has its own y scale (the inputs differ
by an order of magnitude) starting at 0.

panels: [{"title": str, "groups": [{"label": str, "bars": [{"series": str, "value": float,
          "lo": float, "hi": float}]}]}]
"""

import math
from xml.sax.saxutils import escape

COLORS = {"sluice": "#1f77b4", "testpmd": "#ff7f0e"}
FALLBACK = ["#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def nice_max(v):
    """A round axis maximum >= v and its tick step."""
    if v <= 0:
        return 1.0, 0.2
    exp = math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = m * 10 ** exp
        if top >= v * 1.05:
            break
    step = top / 5
    return top, step


def fmt(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def plot(panels, path, title, subtitle=""):
    panels = [p for p in panels if p["groups"]]
    series = []
    for p in panels:
        for g in p["groups"]:
            for b in g["bars"]:
                if b["series"] not in series:
                    series.append(b["series"])
    color = {}
    for i, s in enumerate(series):
        color[s] = COLORS.get(s, FALLBACK[i % len(FALLBACK)])

    bar_w, bar_gap, group_gap = 26, 4, 22
    ph, top_m, bot_m, left_m = 300, 90, 60, 60
    widths = []
    for p in panels:
        n = max(len(g["bars"]) for g in p["groups"])
        widths.append(len(p["groups"]) * (n * (bar_w + bar_gap) + group_gap) + group_gap)
    panel_gap = 70
    W = left_m + sum(widths) + panel_gap * max(0, len(panels) - 1) + 30
    W = max(W, 520)
    H = top_m + ph + bot_m
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{escape(title)}</text>']
    if subtitle:
        out.append(f'<text x="{W / 2}" y="38" text-anchor="middle" fill="#444">'
                   f'{escape(subtitle)}</text>')
    # Legend.
    lx = left_m
    for s in series:
        out.append(f'<rect x="{lx}" y="50" width="12" height="12" fill="{color[s]}"/>')
        out.append(f'<text x="{lx + 16}" y="60">{escape(s)}</text>')
        lx += 30 + 7 * len(s)
    out.append(f'<text x="{lx + 10}" y="60" fill="#444">bar = median, whisker = min..max</text>')

    x0 = left_m
    for p, pw in zip(panels, widths):
        vmax = max((b["hi"] if b.get("hi") is not None else b["value"])
                   for g in p["groups"] for b in g["bars"])
        top, step = nice_max(vmax)
        y_of = lambda v: top_m + ph - (v / top) * ph  # noqa: E731
        # Axes, grid, ticks.
        t = 0.0
        while t <= top + 1e-9:
            y = y_of(t)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" '
                       f'stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
            t = round(t + step, 9)
        out.append(f'<line x1="{x0}" y1="{top_m}" x2="{x0}" y2="{top_m + ph}" stroke="#000"/>')
        out.append(f'<line x1="{x0}" y1="{top_m + ph}" x2="{x0 + pw}" y2="{top_m + ph}" '
                   f'stroke="#000"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top_m - 10}" text-anchor="middle" '
                   f'font-weight="bold">{escape(p["title"])}</text>')
        out.append(f'<text transform="translate({x0 - 42},{top_m + ph / 2}) rotate(-90)" '
                   f'text-anchor="middle">Mpps</text>')
        gx = x0 + group_gap
        for g in p["groups"]:
            n = len(g["bars"])
            for i, b in enumerate(g["bars"]):
                bx = gx + i * (bar_w + bar_gap)
                y = y_of(b["value"])
                out.append(f'<rect x="{bx}" y="{y:.1f}" width="{bar_w}" '
                           f'height="{top_m + ph - y:.1f}" fill="{color[b["series"]]}">'
                           f'<title>{escape(b["series"])} {escape(g["label"])}: '
                           f'{fmt(b["value"])} Mpps</title></rect>')
                if b.get("lo") is not None and b.get("hi") is not None:
                    cx = bx + bar_w / 2
                    y1, y2 = y_of(b["lo"]), y_of(b["hi"])
                    out.append(f'<line x1="{cx}" y1="{y1:.1f}" x2="{cx}" y2="{y2:.1f}" '
                               f'stroke="#000"/>')
                    for yy in (y1, y2):
                        out.append(f'<line x1="{cx - 4}" y1="{yy:.1f}" x2="{cx + 4}" '
                                   f'y2="{yy:.1f}" stroke="#000"/>')
                    y = min(y, y2)
                out.append(f'<text x="{bx + bar_w / 2}" y="{y - 4:.1f}" text-anchor="middle" '
                           f'font-size="9">{fmt(b["value"])}</text>')
            gw = n * (bar_w + bar_gap)
            out.append(f'<text x="{gx + gw / 2 - bar_gap / 2}" y="{top_m + ph + 16}" '
                       f'text-anchor="middle">{escape(g["label"])}</text>')
            gx += gw + group_gap
        out.append(f'<text x="{x0 + pw / 2}" y="{top_m + ph + 36}" text-anchor="middle" '
                   f'fill="#444">frame size (bytes on the wire)</text>')
        x0 += pw + panel_gap
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
