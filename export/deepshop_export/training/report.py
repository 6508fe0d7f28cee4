"""What a training run shows while it runs: a JSONL log of the loss terms, a PNG of the loss
curves (matplotlib when installed, else drawn with Pillow) and a PNG grid of the current
model's output on a few fixed images.  PNGs are written to a temp file then renamed, so a
viewer never sees half an image."""
from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from deepshop_native.core.files import atomic_write

CURVE_COLOURS = {"total": (0, 0, 0), "content": (31, 119, 180), "style": (214, 39, 40), "tv": (44, 160, 44)}


def _replace_atomically(save, path: str) -> None:
    """``save(binary_file)`` through the one atomic writer (a report is replaced each time)."""
    atomic_write(path, save, overwrite=True)


class JsonlLog:
    """Appends one JSON object per line and flushes, so the log survives a crash.  On resume,
    lines from steps at or after the resume step are dropped (they were never checkpointed)."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and os.path.exists(path):
            kept = [l for l in read_jsonl(path) if l.get("step", -1) < resume_step]

            def write(f):
                f.writelines((json.dumps(r) + "\n").encode() for r in kept)
            _replace_atomically(write, path)
        self._f = open(path, "a")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: str) -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass   # a line cut short by a crash
    return out


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (window 1 = unchanged)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_losses(records: Sequence[dict], path: str, keys=("total", "content", "style", "tv"),
                log_scale: bool = True, ylabel: str = "weighted loss") -> None:
    """Loss curves (log scale, moving average) against the step.  Terms that are zero (a
    weight of 0, the style during --style-delay) have no place on a log scale and are left out
    where they are zero.  ``log_scale=False``: a linear axis (e.g. accuracies in [0, 1])."""
    recs = [r for r in records if "step" in r and all(k in r for k in keys)]
    if not recs:
        return
    window = max(1, len(recs) // 50)
    series = {}
    for k in keys:
        pts = [(r["step"], float(r[k])) for r in recs if float(r[k]) > 0 or not log_scale]
        if pts:
            series[k] = ([s for s, _ in pts], smooth([v for _, v in pts], window))
    if not series:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        for k, (steps, vals) in series.items():
            ax.plot(steps, vals, label=k, color=np.array(CURVE_COLOURS.get(k, (0, 0, 0))) / 255)
        ax.set_yscale("log" if log_scale else "linear"); ax.set_xlabel("step"); ax.set_ylabel(ylabel); ax.legend()
        ax.grid(alpha=0.3); fig.tight_layout()
        _replace_atomically(lambda p: fig.savefig(p, format="png"), path)
        plt.close(fig)
        return
    _replace_atomically(lambda p: _draw_curves_pillow(series, p, log_scale=log_scale), path)


def _draw_curves_pillow(series, path, size=(800, 450), log_scale: bool = True) -> None:
    w, h = size
    left, right, top, bottom = 70, 110, 20, 40
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    if log_scale:
        logs = {k: (steps, [math.log10(v) for v in vals]) for k, (steps, vals) in series.items()}
        lo = math.floor(min(min(v) for _, v in logs.values()))
        hi = math.ceil(max(max(v) for _, v in logs.values()))
    else:   # linear: ten grid lines over [lo, hi] rounded to tenths
        logs = series
        lo = math.floor(10 * min(min(v) for _, v in logs.values())) / 10
        hi = math.ceil(10 * max(max(v) for _, v in logs.values())) / 10
    hi = hi if hi > lo else lo + 1
    s0 = min(st[0] for st, _ in logs.values())
    s1 = max(st[-1] for st, _ in logs.values())
    s1 = s1 if s1 > s0 else s0 + 1
    X = lambda s: left + (s - s0) / (s1 - s0) * (w - left - right)
    Y = lambda v: top + (hi - v) / (hi - lo) * (h - top - bottom)
    ticks = range(lo, hi + 1) if log_scale else [lo + (hi - lo) * i / 10 for i in range(11)]
    for e in ticks:
        y = Y(e)
        d.line([(left, y), (w - right, y)], fill=(225, 225, 225))
        d.text((5, y - 6), f"1e{e}" if log_scale else f"{e:.2f}", fill="black")
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    d.text((left, h - bottom + 8), str(s0), fill="black")
    d.text((w - right - 40, h - bottom + 8), str(s1), fill="black")
    d.text(((w - right + left) // 2 - 10, h - bottom + 8), "step", fill="black")
    for n, (k, (steps, vals)) in enumerate(logs.items()):
        col = CURVE_COLOURS.get(k, (0, 0, 0))
        pts = [(X(s), Y(v)) for s, v in zip(steps, vals)]
        if len(pts) > 1:
            d.line(pts, fill=col, width=2)
        else:
            d.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=col)
        d.line([(w - right + 10, top + 10 + 16 * n), (w - right + 30, top + 10 + 16 * n)], fill=col, width=2)
        d.text((w - right + 35, top + 4 + 16 * n), k, fill="black")
    img.save(path, format="PNG")


def rows_grid(rows: Sequence[Sequence[np.ndarray]], path: str) -> None:
    """Any number of rows of HxWx3 uint8 images (e.g. edges / target / prediction), one column per
    sample, written atomically as a PNG."""
    cell = max(a.shape[0] for row in rows for a in row)
    widths = [max(row[i].shape[1] for row in rows) for i in range(len(rows[0]))]
    grid = Image.new("RGB", (sum(widths) + 4 * (len(widths) - 1), len(rows) * (cell + 4) - 4), "white")
    for r, row in enumerate(rows):
        x = 0
        for a, wd in zip(row, widths):
            grid.paste(Image.fromarray(a), (x, r * (cell + 4)))
            x += wd + 4
    _replace_atomically(lambda p: grid.save(p, format="PNG"), path)


def output_grid(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], path: str) -> None:
    """Two rows: the fixed inputs on top, the model's outputs below (HxWx3 uint8 arrays)."""
    cell = max(a.shape[0] for a in inputs)
    widths = [a.shape[1] for a in inputs]
    grid = Image.new("RGB", (sum(widths) + 4 * (len(widths) - 1), 2 * cell + 4), "white")
    x = 0
    for a, b, wd in zip(inputs, outputs, widths):
        grid.paste(Image.fromarray(a), (x, 0))
        grid.paste(Image.fromarray(b), (x, cell + 4))
        x += wd + 4
    _replace_atomically(lambda p: grid.save(p, format="PNG"), path)
