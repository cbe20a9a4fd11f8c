"""Demo cases: Sylvester and Lyapunov equations with right/left half-plane spectra vs SciPy."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import solve_lyapunov, solve_sylvester


def half_plane_matrix(rng: np.random.Generator, n: int, batch: tuple[int, ...] = (),
                      sign: float = 1.0) -> np.ndarray:
    """Non-normal ``Q(D + N)Qᵀ``: eigenvalues ``sign·[0.5, 5]``, N strictly upper, entries ~ 1/√n.

    The benchmark matrices: spectra in one half-plane (where the sign method applies),
    a departure from normality ‖N‖_F ≈ √(n/2) comparable to ‖D‖_F.
    """
    count = int(np.prod(batch))
    out = np.empty((count, n, n))
    for i in range(count):
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        t = np.diag(sign * rng.uniform(0.5, 5.0, n)) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
        out[i] = q @ t @ q.T
    return out.reshape(*batch, n, n)


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """float64 problems; the peers are scipy.linalg.solve_sylvester / solve_continuous_lyapunov."""
    import scipy.linalg

    rng = np.random.default_rng(0)
    n = 96 if quick else 512
    stack, k = ((4, 32) if quick else (64, 64))
    a, b = half_plane_matrix(rng, n), half_plane_matrix(rng, n)
    c = rng.standard_normal((n, n))
    sa, sb = half_plane_matrix(rng, k, (stack,)), half_plane_matrix(rng, k, (stack,))
    sc = rng.standard_normal((stack, k, k))
    stable = half_plane_matrix(rng, n, sign=-1.0)
    q = rng.standard_normal((n, n))
    q = q @ q.T
    d = {name: xp.asarray(v) for name, v in
         (("a", a), ("b", b), ("c", c), ("sa", sa), ("sb", sb), ("sc", sc), ("stable", stable),
          ("q", q))}
    h = {name: to_numpy(v) for name, v in d.items()}

    def peer_stack() -> np.ndarray:
        return np.stack([scipy.linalg.solve_sylvester(h["sa"][i], h["sb"][i], h["sc"][i])
                         for i in range(stack)])

    return [
        DemoCase("solve_sylvester", f"n=m={n} RHP", lambda: solve_sylvester(d["a"], d["b"], d["c"]),
                 lambda: scipy.linalg.solve_sylvester(h["a"], h["b"], h["c"]),
                 "scipy solve_sylvester", tolerance=1e-10),
        DemoCase("solve_sylvester", f"{stack}x n=m={k} RHP",
                 lambda: solve_sylvester(d["sa"], d["sb"], d["sc"]), peer_stack,
                 "scipy solve_sylvester loop", tolerance=1e-10),
        DemoCase("solve_lyapunov", f"n={n} stable",
                 lambda: solve_lyapunov(d["stable"], d["q"]),
                 lambda: scipy.linalg.solve_continuous_lyapunov(h["stable"], h["q"]),
                 "scipy solve_continuous_lyapunov", tolerance=1e-10),
    ]
