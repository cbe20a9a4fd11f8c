"""Plot the scalar maps σ ↦ p_T(…p_1(σ)) of each Newton–Schulz coefficient family (MATH D2).

Every msign step maps each singular value by the same odd polynomial, so the composed scalar map
over [1e-3, 1] shows exactly where a family sends the spectrum of ``M / ‖M‖_F``. Writes
``docs/families/matfun_scalar_maps.png`` (or the path given as the first argument).

    python examples/matfun_scalar_maps.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from structla import ns_coefficients

FAMILIES = [("polar_express", 5), ("polar_express", 7), ("muon", 5), ("su", 5), ("jiacheng", 6),
            ("cubic", 10)]


def composed_map(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    for a, b, c in table:
        x = x * (a + x * x * (b + c * x * x))
    return x


def main(out: Path) -> None:
    x = np.logspace(-3, 0, 2000)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, steps in FAMILIES:
        y = composed_map(ns_coefficients(name, steps), x)
        ax.semilogx(x, y, label=f"{name}, {steps} steps: [{y.min():.3f}, {y.max():.3f}]")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("σ / ‖M‖_F before the iteration")
    ax.set_ylabel("σ after T steps")
    ax.set_ylim(0, 1.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Scalar maps of the msign coefficient families")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else root / "docs" / "families" / "matfun_scalar_maps.png")
