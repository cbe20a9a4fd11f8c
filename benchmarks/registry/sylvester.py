"""sylvester: the matrix-sign method against SciPy's Bartels–Stewart (``solve_sylvester``,
``solve_continuous_lyapunov``), on non-normal matrices with spectra in one half-plane
(eigenvalues in [0.5, 5], eigenvector condition numbers of a few hundred).

``flops`` is a nominal count for 7 Newton steps (the typical number on these spectra):
two inverses (2n³ + 2m³) and the products A⁻¹CB⁻¹ (2n²m + 2nm²) per step; one inverse and
the products for Lyapunov. ``bytes`` is reading A, B, C and writing X once.
"""

from __future__ import annotations

import sys

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
        peer_fn=_scipy_sylvester, devices=("cpu",), flops=_sylvester_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="solve_lyapunov", peer="scipy.linalg.solve_continuous_lyapunov",
        sizes=[{"n": 256}, {"n": 512}, {"n": 1024}], setup=_lyapunov_inputs,
        ours=lambda a: structla.solve_lyapunov(a["a"], a["q"]),
        peer_fn=_scipy_lyapunov, devices=("cpu",), flops=_lyapunov_flops, bytes=_bytes,
    ),
    # GPU: the goal size and one smaller one. SciPy takes tens of seconds at
    # n = 2048 even on many cores, and time_call runs a slow peer exactly twice (the
    # first call and one timed sample), so this case is the bulk of the GPU run.
    BenchCase(
        routine="solve_sylvester", peer="scipy.linalg.solve_sylvester on the host CPU",
        sizes=[{"n": 512}, {"n": 2048}], setup=_sylvester_inputs,
        ours=lambda a: structla.solve_sylvester(a["a"], a["b"], a["c"]),
        peer_fn=_scipy_sylvester, devices=("gpu",), flops=_sylvester_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="solve_sylvester", peer="scipy.linalg.solve_sylvester on the host CPU, loop over the stack",
        sizes=[{"batch": 64, "n": 64}], setup=_sylvester_inputs,
        ours=lambda a: structla.solve_sylvester(a["a"], a["b"], a["c"]),
        peer_fn=_scipy_sylvester, devices=("gpu",), flops=_sylvester_flops, bytes=_bytes,
    ),
]


def _goal_report(n: int) -> None:
    """Issue 7's GPU goal in one pass: structla on the GPU (median of 5 after the first
    call and a warm-up, CUDA events) against SciPy on the host, called once; backward
    errors of both."""
    import time

    import cupy

    from structla._core.timing import time_call

    host = _sylvester_inputs({"n": n}, np, "float64")
    device = {k: cupy.asarray(v) for k, v in host.items()}
    ours = time_call(lambda: structla.solve_sylvester(device["a"], device["b"], device["c"]),
                     gpu=True, repeats=5)
    x = cupy.asnumpy(structla.solve_sylvester(device["a"], device["b"], device["c"]))
    t0 = time.perf_counter()
    x_scipy = _scipy_sylvester(host)
    peer = time.perf_counter() - t0
    a, b, c = host["a"], host["b"], host["c"]

    def backward(x):
        r = np.linalg.norm(a @ x + x @ b - c)
        return r / ((np.linalg.norm(a) + np.linalg.norm(b)) * np.linalg.norm(x) + np.linalg.norm(c))

    sys.stdout.write(
        f"solve_sylvester n = m = {n}, float64\n"
        f"  structla GPU: first call {ours.first:.3f} s, median of {ours.repeats} "
        f"{ours.median:.4f} s, backward error {backward(x):.2e}\n"
        f"  SciPy on the host CPU: {peer:.2f} s (one call), backward error {backward(x_scipy):.2e}\n"
        f"  speed-up {peer / ours.median:.0f}x; relative difference of the two X "
        f"{np.linalg.norm(x - x_scipy) / np.linalg.norm(x_scipy):.1e}\n")


if __name__ == "__main__":
    _goal_report(512 if "--quick" in sys.argv else 2048)
