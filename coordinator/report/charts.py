"""Inline SVG charts for the HTML report: no script, no network, escaped labels."""
from html import escape
import math
from typing import List, Optional, Sequence, Tuple

WIDTH, BAR, GAP, LABEL = 720, 22, 8, 170
LABEL_CHARS = 24  # what fits in LABEL pixels at 12 px
COLORS = {"ok": "#2f7ed8", "reference": "#7a7a7a"}


def latency_bars(rows: Sequence[Tuple[str, float, float, float]], title: str) -> str:
    """p50 bars with whiskers to p90 and p99, one per (label, p50, p90, p99), in ms."""
    if not rows:
        return ""
    top = max(r[3] for r in rows) * 1.1 or 1.0
    scale = (WIDTH - LABEL - 90) / top
    height = len(rows) * (BAR + GAP) + 40
    parts = [_title(title)]
    for i, (label, p50, p90, p99) in enumerate(rows):
        y = 30 + i * (BAR + GAP)
        mid = y + BAR / 2
        parts += [
            _label(label, y),
            f'<rect x="{LABEL}" y="{y}" width="{p50 * scale:.1f}" height="{BAR}" fill="{COLORS["ok"]}"/>',
            f'<line x1="{LABEL + p90 * scale:.1f}" x2="{LABEL + p99 * scale:.1f}" y1="{mid}" y2="{mid}" stroke="#333"/>',
            f'<line x1="{LABEL + p90 * scale:.1f}" x2="{LABEL + p90 * scale:.1f}" y1="{y + 5}" y2="{y + BAR - 5}" stroke="#333"/>',
            f'<line x1="{LABEL + p99 * scale:.1f}" x2="{LABEL + p99 * scale:.1f}" y1="{y + 3}" y2="{y + BAR - 3}" stroke="#333"/>',
            f'<text x="{LABEL + p99 * scale + 6:.1f}" y="{mid + 4}" font-size="12">{_ms(p50)}</text>',
        ]
    return _svg(height, parts, f"{title}: p50 bars, whiskers from p90 to p99")


def distribution(rows: Sequence[Tuple[str, Sequence[float]]], title: str) -> str:
    """A box per row from its (min, p50, p90, p95, p99, max), in ms: the shape of the latencies."""
    if not rows:
        return ""
    top = max(r[1][-1] for r in rows) * 1.05 or 1.0
    bottom = min(r[1][0] for r in rows) * 0.95
    scale = (WIDTH - LABEL - 30) / max(top - bottom, 1e-9)
    height = len(rows) * (BAR + GAP) + 50
    parts = [_title(title)]
    for i, (label, (lo, p50, p90, p95, p99, hi)) in enumerate(rows):
        y = 30 + i * (BAR + GAP)
        mid = y + BAR / 2

        def x(v: float) -> str:
            return f"{LABEL + (v - bottom) * scale:.1f}"

        parts += [
            _label(label, y),
            f'<line x1="{x(lo)}" x2="{x(hi)}" y1="{mid}" y2="{mid}" stroke="#333"/>',
            f'<rect x="{x(p50)}" y="{y + 3}" width="{(p90 - p50) * scale:.1f}" height="{BAR - 6}" fill="#9cc3ee" stroke="#333"/>',
            f'<line x1="{x(p50)}" x2="{x(p50)}" y1="{y}" y2="{y + BAR}" stroke="#000" stroke-width="2"/>',
            f'<circle cx="{x(p95)}" cy="{mid}" r="3" fill="#e67e22"/>',
            f'<circle cx="{x(p99)}" cy="{mid}" r="3" fill="#c0392b"/>',
        ]
    parts.append(f'<text x="{LABEL}" y="{height - 6}" font-size="11">{_ms(bottom)}</text>'
                 f'<text x="{WIDTH - 30}" y="{height - 6}" font-size="11" text-anchor="end">{_ms(top)}</text>')
    return _svg(height, parts, f"{title}: min-max line, box p50 to p90, dots p95 and p99")


def speedup(rows: Sequence[Tuple[str, float]], title: str) -> str:
    """Bars of speed-up against the reference (1.0 marked)."""
    if not rows:
        return ""
    top = max(max(r[1] for r in rows), 1.0) * 1.15
    scale = (WIDTH - LABEL - 60) / top
    height = len(rows) * (BAR + GAP) + 40
    parts = [_title(title)]
    for i, (label, value) in enumerate(rows):
        y = 30 + i * (BAR + GAP)
        color = "#27ae60" if value >= 1 else "#c0392b"
        parts += [_label(label, y),
                  f'<rect x="{LABEL}" y="{y}" width="{value * scale:.1f}" height="{BAR}" fill="{color}"/>',
                  f'<text x="{LABEL + value * scale + 6:.1f}" y="{y + BAR / 2 + 4}" font-size="12">{value:.2f}x</text>']
    parts.append(f'<line x1="{LABEL + scale:.1f}" x2="{LABEL + scale:.1f}" y1="24" y2="{height - 10}" '
                 'stroke="#555" stroke-dasharray="4 3"/>')
    return _svg(height, parts, f"{title}: 1.0 is the reference")


def ranked_speedup(rows: Sequence[Tuple[str, float, Optional[Tuple[float, float]]]], title: str) -> str:
    """The decision's chart: a bar per (label, speed-up, (low, high) or None), in the order given
    (fastest first), the 95% interval as a whisker where it is known, the reference at 1.0 dashed."""
    if not rows:
        return ""
    top = max([1.0] + [max(v, ci[1]) if ci else v for _, v, ci in rows]) * 1.1
    scale = (WIDTH - LABEL - 130) / top  # room on the right for "2.38x [1.87–2.40]"
    height = len(rows) * (BAR + GAP) + 40
    parts = [_title(title)]
    for i, (label, value, ci) in enumerate(rows):
        y = 30 + i * (BAR + GAP)
        mid = y + BAR / 2
        color = "#1e7d32" if i == 0 else "#27ae60" if value >= 1 else "#c0392b"
        end = value * scale
        parts += [_label(label, y),
                  f'<rect x="{LABEL}" y="{y}" width="{end:.1f}" height="{BAR}" fill="{color}"/>']
        text = f"{value:.2f}x"
        if ci is not None:
            low, high = LABEL + ci[0] * scale, LABEL + ci[1] * scale
            parts += [f'<line x1="{low:.1f}" x2="{high:.1f}" y1="{mid}" y2="{mid}" stroke="#333"/>'] + [
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 4}" y2="{y + BAR - 4}" stroke="#333"/>' for x in (low, high)]
            end, text = max(end, ci[1] * scale), f"{text} [{ci[0]:.2f}–{ci[1]:.2f}]"
        parts.append(f'<text x="{LABEL + end + 6:.1f}" y="{mid + 4}" font-size="12">{text}</text>')
    parts.append(f'<line x1="{LABEL + scale:.1f}" x2="{LABEL + scale:.1f}" y1="24" y2="{height - 10}" '
                 'stroke="#555" stroke-dasharray="4 3"/>'
                 f'<text x="{LABEL + scale:.1f}" y="{height - 1}" font-size="11" text-anchor="middle">PyTorch 1.0x</text>')
    return _svg(height, parts, f"{title}: speed-up against PyTorch, fastest first; whiskers are 95% intervals "
                               "paired within rounds; the dashed line is PyTorch")


def error_by_depth(points: Sequence[Tuple[int, Optional[float]]], first: Optional[int], title: str) -> str:
    """Per depth of the graph, the worst tensor's error as a multiple of the tolerance, on a log
    scale, with the tolerance (1x) and the first divergent node's depth marked; None (shapes
    differ, non-finite values) is drawn at the top."""
    if not points:
        return ""
    low, high, height, left, top = -6.0, 4.0, 220, 60, 30
    plot_w, plot_h = WIDTH - left - 20, height - top - 40
    deepest = max(max(d for d, _ in points), 1)

    def x(depth: float) -> float:
        return left + depth / deepest * plot_w

    def y(ratio: Optional[float]) -> float:
        value = high if ratio is None else min(max(math.log10(max(ratio, 1e-300)), low), high)
        return top + (high - value) / (high - low) * plot_h

    line = " ".join(f"{x(d):.1f},{y(r):.1f}" for d, r in points)
    parts = [_title(title), f'<polyline points="{line}" fill="none" stroke="{COLORS["ok"]}" stroke-width="1.5"/>']
    parts += [f'<circle cx="{x(d):.1f}" cy="{y(r):.1f}" r="2.5" fill="{"#c0392b" if r is None or r > 1 else COLORS["ok"]}"/>'
              for d, r in points]
    for exponent in range(int(low), int(high) + 1, 2):
        parts.append(f'<text x="{left - 6}" y="{y(10.0 ** exponent) + 4:.1f}" font-size="11" text-anchor="end">'
                     f'1e{exponent}</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(1.0):.1f}" y2="{y(1.0):.1f}" stroke="#c0392b" '
                 'stroke-dasharray="4 3"/>')
    if first is not None:
        parts.append(f'<line x1="{x(first):.1f}" x2="{x(first):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#555" '
                     f'stroke-dasharray="2 2"/><text x="{x(first) + 4:.1f}" y="{top + 10}" font-size="11">first divergent</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">depth 0</text>'
                 f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">depth {deepest}</text>')
    return _svg(height, parts, f"{title}: the worst error per depth as a multiple of the tolerance (log scale); "
                               "the dashed red line is the tolerance")


def _svg(height: float, parts: List[str], description: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" role="img" '
            f'font-family="sans-serif"><desc>{escape(description)}</desc>{"".join(parts)}</svg>')


def _title(text: str) -> str:
    return f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(text)}</text>'


def _label(text: str, y: float) -> str:
    """A row's label, right-aligned before its bar; a long one is cut (it would run off the left
    edge) and whole in a tooltip."""
    shown = escape(text) if len(text) <= LABEL_CHARS else \
        f"<title>{escape(text)}</title>{escape(text[:LABEL_CHARS - 1])}…"
    return f'<text x="{LABEL - 8}" y="{y + BAR / 2 + 4}" font-size="12" text-anchor="end">{shown}</text>'


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


PALETTE = ("#2f7ed8", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d35400")


def latency_throughput(series: Sequence[Tuple[str, Sequence[Tuple[float, float, str]]]],
                       front: Sequence[Tuple[float, float]], title: str) -> str:
    """A latency-throughput curve per series (label, [(samples/s, p50 ms, point label)]), points
    joined in order of throughput, and the Pareto front of all of them as a dashed line with
    ringed points: the configurations no other beats on both axes."""
    every = [(x, y) for _, pts in series for x, y, _ in pts]
    if not every:
        return ""
    height, left, top, bottom = 320, 70, 30, 40
    legend = LABEL
    plot_w, plot_h = WIDTH - left - legend - 10, height - top - bottom
    x_top, y_top = max(x for x, _ in every) * 1.1, max(y for _, y in every) * 1.1

    def x(v: float) -> float:
        return left + v / x_top * plot_w

    def y(v: float) -> float:
        return top + plot_h - v / y_top * plot_h

    parts = [_title(title),
             f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>',
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>',
             f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">samples/s '
             f'(0 to {x_top:,.3g})</text>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{_ms(y_top)}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>',
             f'<text x="4" y="{top + plot_h / 2}" font-size="11">p50</text>']
    for i, (label, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(pts)
        parts.append(f'<polyline points="{" ".join(f"{x(a):.1f},{y(b):.1f}" for a, b, _ in ordered)}" fill="none" '
                     f'stroke="{color}" stroke-width="1.5"/>')
        parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3.5" fill="{color}"><title>{escape(label)} '
                  f'{escape(name)}: {a:,.1f}/s, p50 {_ms(b)}</title></circle>' for a, b, name in ordered]
        ly = top + 10 + i * 18
        parts.append(f'<rect x="{WIDTH - legend + 4}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{WIDTH - legend + 18}" y="{ly}" font-size="12">{escape(label)}</text>')
    ordered_front = sorted(front)
    if ordered_front:
        parts.append(f'<polyline points="{" ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in ordered_front)}" fill="none" '
                     'stroke="#333" stroke-dasharray="5 3"/>')
        parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="7" fill="none" stroke="#333"/>' for a, b in ordered_front]
    return _svg(height, parts, f"{title}: p50 latency against samples/s per engine; the dashed line and rings "
                               "mark the Pareto front (no other point has more samples/s at a lower latency)")
