"""Demo cases: DeltaNet-shaped triangular systems against SciPy/NumPy on the dense matrix."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import scipy.linalg

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import TrilDLR, tril_dlr_dense, tril_dlr_inv, tril_dlr_matmul, tril_dlr_solve, ut_transform


def deltanet_problem(rng: np.random.Generator, batch: tuple[int, ...], n: int, d: int):
    """λ = 1, unit keys, Q = diag(β) K with β ∈ [0, 1), and gates log α ∈ [-0.1, 0]:
    the gated DeltaNet system, whose inverse stays bounded (MATH A6)."""
    k = rng.standard_normal((*batch, n, d))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    beta = rng.random((*batch, n))
    log_decay = -0.1 * rng.random((*batch, n))
    return np.ones((*batch, n)), beta[..., None] * k, k, beta, log_decay


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """Solve, product, inverse, UT transform and slogdet; the peers work on the dense T."""
    rng = np.random.default_rng(0)
    n, d, m = (1024, 16, 16) if quick else (4096, 64, 64)
    n_inv, d_inv = (128, 16) if quick else (2048, 32)
    blocks = 32 if quick else 1024
    diag, q, k, _, g = deltanet_problem(rng, (), n, d)
    b = rng.standard_normal((n, m))
    dd, dq, dk, db, dg = (xp.asarray(a) for a in (diag, q, k, b, g))
    dense = to_numpy(tril_dlr_dense(dd, dq, dk, log_decay=dg))

    _, qi, ki, _, gi = deltanet_problem(rng, (), n_inv, d_inv)
    di = 1 + rng.random(n_inv)  # a non-trivial determinant for slogdet
    ddi, dqi, dki, dgi = (xp.asarray(a) for a in (di, qi, ki, gi))
    dense_inv = to_numpy(tril_dlr_dense(ddi, dqi, dki, log_decay=dgi))

    _, _, kc, beta, _ = deltanet_problem(rng, (blocks,), 64, 64)
    dkc, dbeta = xp.asarray(kc.astype(np.float32)), xp.asarray(beta.astype(np.float32))
    system = np.eye(64) + np.tril(beta[..., :, None] * (kc @ np.swapaxes(kc, -1, -2)), -1)

    op = TrilDLR(ddi, dqi, dki, dgi)
    size = f"n={n} d={d} m={m} gated"
    return [
        DemoCase("tril_dlr_solve", size, lambda: tril_dlr_solve(dd, dq, dk, db, log_decay=dg),
                 lambda: scipy.linalg.solve_triangular(dense, b, lower=True),
                 "scipy solve_triangular (dense T)", tolerance=1e-11),
        DemoCase("tril_dlr_matmul", size + " trans", lambda: tril_dlr_matmul(dd, dq, dk, db, trans=True,
                                                                               log_decay=dg),
                 lambda: dense.T @ b, "NumPy dense T.T @ x", tolerance=1e-12),
        DemoCase("tril_dlr_inv", f"n={n_inv} d={d_inv} gated",
                 lambda: tril_dlr_inv(ddi, dqi, dki, log_decay=dgi),
                 lambda: scipy.linalg.lapack.dtrtri(dense_inv, lower=1)[0],
                 "LAPACK dtrtri (dense T)", tolerance=1e-11),
        DemoCase("ut_transform", f"{blocks} blocks C=64 d=64 f32", lambda: ut_transform(dkc, dbeta),
                 lambda: np.linalg.inv(system) * beta[..., None, :],
                 "numpy.linalg.inv (f64)", tolerance=1e-5),
        DemoCase("TrilDLR.slogdet", f"n={n_inv}", lambda: op.slogdet()[1],
                 lambda: np.linalg.slogdet(dense_inv)[1], "numpy.linalg.slogdet", tolerance=1e-12),
    ]
