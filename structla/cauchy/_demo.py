"""Demo cases: S4-sized Cauchy and S4D-sized Vandermonde sums against NumPy float64 broadcasting."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import cauchy, vandermonde


def _problem(batch: int, n: int, length: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))
    w = -0.5 + 1j * np.pi * np.arange(n)  # S4D-Lin poles
    dt = 0.01
    z = 1j * (2 / dt) * np.tan(np.pi * np.arange(length) / (2 * length + 2))  # S4's nodes g(ω)
    return v, w, z, dt * w


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """complex64 sums with conjugate pairs; the peer is NumPy float64 broadcasting."""
    batch, n, length = (8, 32, 1024) if quick else (64, 32, 4096)
    v, w, z, x = _problem(batch, n, length)
    dv, dw, dz, dx = (xp.asarray(a, dtype=np.complex64) for a in (v, w, z, x))
    hv, hw, hz, hx = (to_numpy(a).astype(np.complex128) for a in (dv, dw, dz, dx))

    def peer_cauchy() -> np.ndarray:
        vv = np.concatenate([hv, hv.conj()], axis=-1)
        ww = np.concatenate([hw, hw.conj()])
        return (vv[:, :, None] / (hz - ww[:, None])).sum(axis=1)

    def peer_vandermonde() -> np.ndarray:
        return 2 * (hv[:, :, None] * np.exp(hx[:, None] * np.arange(length))).sum(axis=1).real

    size = f"batch={batch} N={n} pairs L={length} c64"
    return [
        DemoCase("cauchy", size, lambda: cauchy(dv, dw, dz, conj_pairs=True), peer_cauchy,
                 "NumPy broadcast (f64)", tolerance=1e-5),
        DemoCase("vandermonde", size + " log",
                 lambda: vandermonde(dv, dx, length, log=True, conj_pairs=True),
                 peer_vandermonde, "NumPy exp(outer) (f64)", tolerance=1e-5),
    ]
