"""HiPPO memory in pictures: a signal, its LegS and LegT reconstructions from the state, and S4 kernels.

LegS (``x' = (Ax + Bu)/t``) is run with the step-size-free bilinear recurrence of MATH C5,
``x_{k+1} = (I − A/(2(k+1)))⁻¹ [(I + A/(2k)) x_k + B u_k / k]``, using the O(N) helpers
``legs_matvec`` and ``legs_solve``; LegT (sliding window) with the exact ZOH step of
``discretize``. With ``scaling="su"`` the state is the coefficient vector in the orthonormal
Legendre basis, so the reconstruction is ``Σ_n x_n √((2n+1)/2) P_n(s)``. The last panel shows
S4 kernels ``ssm_kernel_dplr`` of the LegS NPLR system for three steps Δ.

Run ``python examples/hippo_reconstruction.py [output.png]``; the docs use
``docs/families/hippo_reconstruction.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.polynomial import legendre

import structla


def signal(t):
    return np.sin(8 * t) * np.exp(-t) + 0.5 * np.sin(29 * t) * (t > 0.45) + 0.3 * (t > 0.75)


def legendre_series(coefficients, s):
    """``Σ_n c_n √((2n+1)/2) P_n(s)``."""
    n = np.arange(len(coefficients))
    return legendre.legval(s, coefficients * np.sqrt((2 * n + 1) / 2))


def legs_state(u, N):
    """LegS state after len(u) steps by the bilinear recurrence (k = 1, 2, ...)."""
    B = structla.hippo("legs", N, scaling="su")[1]
    x = B * u[0]  # the projection of a constant on [0, Δ]
    for k in range(1, len(u)):
        rhs = x + structla.legs_matvec(x) / (2 * k) + B * u[k] / k
        x = structla.legs_solve(rhs, 1 / (2 * (k + 1)))
    return x


def legt_state(u, dt, N, window):
    A, B = structla.hippo("legt", N, scaling="su", window=window)
    Ad, Bd = structla.discretize(A, B, dt)
    x = np.zeros(N)
    for uk in u:
        x = Ad @ x + Bd * uk
    return x


def main(path: Path) -> None:
    steps = 4000
    t = (np.arange(steps) + 0.5) / steps
    u = signal(t)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))

    ax = axes[0]
    ax.plot(t, u, color="0.6", lw=2, label="signal u")
    for N in (16, 64):
        s = np.linspace(-1, 1, 800)
        ax.plot((s + 1) / 2, legendre_series(legs_state(u, N), s), lw=1, label=f"LegS, N={N}")
    ax.set_title("LegS: the whole history [0, t] at t = 1")
    ax.set_xlabel("time")
    ax.legend(fontsize=8)

    ax = axes[1]
    window = 0.3
    recent = t > 1 - window - 0.05
    ax.plot(t[recent], u[recent], color="0.6", lw=2, label="signal u")
    for N in (8, 32):
        s = np.linspace(-1, 1, 400)
        state = legt_state(u, 1 / steps, N, window)
        ax.plot(1 - window + (s + 1) * window / 2, legendre_series(state, s), lw=1,
                label=f"LegT, N={N}")
    ax.set_title(f"LegT: the window [t − {window}, t] at t = 1")
    ax.set_xlabel("time")
    ax.legend(fontsize=8)

    ax = axes[2]
    N, L = 64, 1024
    Lambda, P, B, V = structla.nplr("legs", N, conj_pairs=True)
    C = np.random.default_rng(0).standard_normal(N) @ V
    dts = np.array([1e-3, 1e-2, 1e-1])
    K = structla.ssm_kernel_dplr(Lambda, P, B, np.broadcast_to(C, (3, N // 2)), dts, L)
    for k, dt in zip(K, dts):
        ax.plot(np.arange(L), k / np.abs(k).max(), lw=1, label=f"Δ = {dt:g}")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_title(f"S4 kernels of LegS (N={N}, DPLR, L={L})")
    ax.set_xlabel("lag k")
    ax.set_ylabel("K_k / max|K|")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "docs" / "families" / "hippo_reconstruction.png"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
