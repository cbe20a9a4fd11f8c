"""Demo cases: the matrix sign family against SciPy/NumPy float64 (SVD, Schur, solve_sylvester)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import scipy.linalg

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import inv_sqrtm, mclip, mcsgn, msign, msign_vjp, polar, sqrtm


def _with_singular_values(rng: np.random.Generator, n: int, m: int, low: float) -> np.ndarray:
    k = min(n, m)
    U, _ = np.linalg.qr(rng.standard_normal((n, k)))
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return (U * np.logspace(0, np.log10(low), k)) @ V.T


def _svd_polar(M: np.ndarray) -> np.ndarray:
    U, _, Vh = np.linalg.svd(M, full_matrices=False)
    return U @ Vh


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """One case per routine; msign also in float32 to 1e-3 (the Muon use) at full size."""
    rng = np.random.default_rng(0)
    n, m = (96, 192) if quick else (384, 768)
    k = 64 if quick else 192
    M = _with_singular_values(rng, n, m, 1e-3)
    P = _with_singular_values(rng, k, k, 0.1)
    # eigenvalues ±[0.5, 2]: scipy's signm loses accuracy when one is near 0 (for
    # linspace(−2, 2) + 0.01 it is off by 0.38 relative where mcsgn is exact to 1e-14)
    S = P @ np.diag(np.linspace(0.5, 2.0, k) * np.resize([1.0, -1.0], k)) @ np.linalg.inv(P)
    C = _with_singular_values(rng, k, k, 1e-4)
    C = C @ C.T
    Q = rng.standard_normal((k, k))
    G = rng.standard_normal((k, k))
    dM, dS, dC, dQ, dG = (xp.asarray(a) for a in (M, S, C, Q, G))

    def peer_clip() -> np.ndarray:
        U, s, Vh = np.linalg.svd(M, full_matrices=False)
        return (U * np.clip(s, 0.0, 0.1)) @ Vh

    def peer_vjp() -> np.ndarray:
        O = scipy.linalg.polar(Q)[0]
        A, B = Q @ O.T, O.T @ Q
        X = scipy.linalg.solve_sylvester(A, B, G)
        return X - O @ X.T @ O

    cases = [
        DemoCase("msign", f"{n}x{m} cond=1e3", lambda: msign(dM), lambda: _svd_polar(M),
                 "NumPy SVD U@Vh", tolerance=1e-11),
        DemoCase("mcsgn", f"{k}x{k} real spectrum", lambda: mcsgn(dS), lambda: scipy.linalg.signm(S),
                 "scipy.linalg.signm", tolerance=1e-8),
        DemoCase("mclip", f"{n}x{m} to [0, 0.1]", lambda: mclip(dM, 0.0, 0.1), peer_clip,
                 "NumPy SVD + clip", tolerance=1e-9),
        DemoCase("polar", f"{k}x{k}", lambda: polar(dQ)[1], lambda: scipy.linalg.polar(Q)[1],
                 "scipy.linalg.polar (H)", tolerance=1e-11),
        DemoCase("sqrtm", f"{k}x{k} SPD cond=1e8", lambda: sqrtm(dC), lambda: scipy.linalg.sqrtm(C),
                 "scipy.linalg.sqrtm", tolerance=1e-9),
        DemoCase("inv_sqrtm", f"{k}x{k} SPD cond=1e8", lambda: inv_sqrtm(dC) @ dC,
                 lambda: scipy.linalg.sqrtm(C), "scipy.linalg.sqrtm", tolerance=1e-7),
        DemoCase("msign_vjp", f"{k}x{k}", lambda: msign_vjp(dQ, dG), peer_vjp,
                 "solve_sylvester formula", tolerance=1e-8),
    ]
    if not quick:
        W = rng.standard_normal((512, 2048)).astype(np.float32)
        dW = xp.asarray(W)

        def deviation(ours, peer) -> float:
            s = np.linalg.svd(to_numpy(ours).astype(np.float64), compute_uv=False)
            return float(np.abs(s - 1).max())

        cases.append(DemoCase("msign", "512x2048 f32 tol=1e-3", lambda: msign(dW, tol=1e-3),
                              lambda: _svd_polar(W), "NumPy SVD U@Vh (f32)", tolerance=1e-3,
                              error=deviation))
    return cases
