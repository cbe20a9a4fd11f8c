"""Log-log plots of time against size, with O(n), O(n²), O(n³) guide slopes."""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from pathlib import Path


def plot_csv(path: Path) -> Path | None:
    """Draw ``path`` (a runner CSV) next to it as PNG; ``None`` if matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["routine"], row["dtype"])
            series[key].append((float(row["x"]), float(row["ours_median_s"]),
                                float(row["peer_median_s"])))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    xs_all: list[float] = []
    for (routine, dtype), points in sorted(series.items()):
        points.sort()
        xs = [p[0] for p in points]
        xs_all += xs
        line = ax.loglog(xs, [p[1] for p in points], "o-", label=f"{routine} {dtype}")[0]
        peer = [(x, p) for x, _, p in points if p == p]  # NaN: peer skipped
        if peer:
            ax.loglog(*zip(*peer, strict=True), "x--", color=line.get_color(),
                      label=f"peer of {routine}")
    lo, hi = min(xs_all), max(xs_all)
    if hi > lo:
        t0 = min(p[1] for pts in series.values() for p in pts)
        for power, style in ((1, ":"), (2, "-."), (3, "--")):
            ax.loglog([lo, hi], [t0, t0 * (hi / lo) ** power], style, color="grey", lw=0.8,
                      label=f"O(n^{power}) guide")
    ax.set_xlabel("size")
    ax.set_ylabel("median time [s]")
    ax.set_title(path.stem)
    ax.legend(fontsize=7)
    fig.tight_layout()
    image = path.with_suffix(".png")
    fig.savefig(image, dpi=110)
    plt.close(fig)
    return image
