"""sylvester: the matrix-sign method against SciPy's Bartels–Stewart (``solve_sylvester``,
``solve_continuous_lyapunov``), on non-normal matrices with spectra in one half-plane
(eigenvalues in [0.5, 5], eigenvector condition numbers of a few hundred).

``flops`` is a nominal count for 7 Newton steps (the typical number on these spectra):
two inverses (2n³ + 2m³) and the products A⁻¹CB⁻¹ (2n²m + 2nm²) per step; one inverse and
the products for Lyapunov. ``bytes`` is reading A, B, C and writing X once.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

import structla
from structla._core.namespace import to_numpy
from structla.sylvester._demo import half_plane_matrix

from ..case import BenchCase

STEPS = 7


def _sylvester_inputs(size, xp, dtype):
    rng = np.random.default_rng(size["n"])
    batch = (size["batch"],) if "batch" in size else ()
    n = size["n"]
    a, b = half_plane_matrix(rng, n, batch), half_plane_matrix(rng, n, batch)
    c = rng.standard_normal((*batch, n, n))
    return {k: xp.asarray(v, dtype=dtype) for k, v in (("a", a), ("b", b), ("c", c))}


def _lyapunov_inputs(size, xp, dtype):
    rng = np.random.default_rng(size["n"])
    a = half_plane_matrix(rng, size["n"], sign=-1.0)
    q = rng.standard_normal((size["n"], size["n"]))
    return {"a": xp.asarray(a, dtype=dtype), "q": xp.asarray(q @ q.T, dtype=dtype)}


def _scipy_sylvester(inputs):
    a, b, c = (to_numpy(inputs[k]) for k in ("a", "b", "c"))
    if a.ndim == 2:
        return scipy.linalg.solve_sylvester(a, b, c)
    return np.stack([scipy.linalg.solve_sylvester(a[i], b[i], c[i]) for i in range(a.shape[0])])


def _scipy_lyapunov(inputs):
    return scipy.linalg.solve_continuous_lyapunov(to_numpy(inputs["a"]), to_numpy(inputs["q"]))


def _sylvester_flops(size):
    n = size["n"]
    return size.get("batch", 1) * STEPS * (4 * n**3 + 4 * n**3)


def _lyapunov_flops(size):
    n = size["n"]
    return STEPS * (2 * n**3 + 4 * n**3)


def _bytes(size):
    return size.get("batch", 1) * 8 * 4 * size["n"] ** 2


CASES = [
    BenchCase(
        routine="solve_sylvester", peer="scipy.linalg.solve_sylvester",
        sizes=[{"n": 256}, {"n": 512}, {"n": 1024}], setup=_sylvester_inputs,
        ours=lambda a: structla.solve_sylvester(a["a"], a["b"], a["c"]),
        peer_fn=_scipy_sylvester, devices=("cpu",), flops=_sylvester_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="solve_sylvester", peer="scipy.linalg.solve_sylvester, loop over the stack",
        sizes=[{"batch": 64, "n": 16}, {"batch": 64, "n": 32}, {"batch": 64, "n": 64}],
        setup=_sylvester_inputs,
        ours=lambda a: structla.solve_sylvester(a["a"], a["b"], a["c"]),
        peer_fn=_scipy_sylvester, devices=("cpu", "gpu"), flops=_sylvester_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="solve_lyapunov", peer="scipy.linalg.solve_continuous_lyapunov",
        sizes=[{"n": 256}, {"n": 512}, {"n": 1024}], setup=_lyapunov_inputs,
        ours=lambda a: structla.solve_lyapunov(a["a"], a["q"]),
        peer_fn=_scipy_lyapunov, devices=("cpu",), flops=_lyapunov_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="solve_sylvester", peer="scipy.linalg.solve_sylvester on the host CPU",
        sizes=[{"n": 512}, {"n": 1024}, {"n": 2048}], setup=_sylvester_inputs,
        ours=lambda a: structla.solve_sylvester(a["a"], a["b"], a["c"]),
        peer_fn=_scipy_sylvester, devices=("gpu",), flops=_sylvester_flops, bytes=_bytes,
    ),
]
