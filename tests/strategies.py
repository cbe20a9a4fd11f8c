"""Hypothesis strategies and random test data shared by every family's tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = ("float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
ALL_DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES

#: Edge sizes every family should survive.
EDGE_SIZES = (0, 1, 2, 7, 64, 65)


def eps(dtype) -> float:
    """Machine epsilon of ``dtype``'s real part."""
    return float(np.finfo(np.dtype(dtype)).eps)


def random_array(rng: np.random.Generator, shape, dtype="float64", scale=1.0) -> np.ndarray:
    """Standard normal data (complex: independent real/imaginary parts); never all zero."""
    dtype = np.dtype(dtype)
    x = rng.standard_normal(shape)
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return (scale * x).astype(dtype)


def matrix_with_condition(rng: np.random.Generator, n: int, cond: float, dtype="float64",
                          m: int | None = None) -> np.ndarray:
    """An ``n × m`` matrix with singular values log-spaced from 1 to ``1/cond``."""
    m = n if m is None else m
    k = min(n, m)
    u, _ = np.linalg.qr(random_array(rng, (n, k), dtype))
    v, _ = np.linalg.qr(random_array(rng, (m, k), dtype))
    s = np.logspace(0, -np.log10(cond), k) if k > 1 else np.ones(k)
    return ((u * s) @ v.conj().T).astype(dtype)


@st.composite
def batch_shapes(draw, max_dims: int = 2, max_side: int = 3):
    """Two batch shapes that broadcast together (e.g. ``(3, 1)`` and ``(2,)``)."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims,
                                                    min_side=1, max_side=max_side))
    return shapes.input_shapes


def seeds():
    """Integer seeds for ``numpy.random.default_rng``."""
    return st.integers(0, 2**32 - 1)


# ---- sylvester


def matrix_with_spectrum(rng: np.random.Generator, n: int, lo: float, hi: float, dtype="float64",
                         nonnormal: float = 0.3, both_sides: bool = False) -> np.ndarray:
    """An ``n × n`` non-normal matrix whose eigenvalues have real parts in ``[lo, hi]``.

    ``Q (D + N) Qᴴ`` with Q unitary, D the eigenvalues (real for real dtypes, with
    imaginary parts in [−1, 1] for complex ones) and N strictly upper triangular with
    entries of size ``nonnormal / √n``. ``both_sides`` negates a random half of the
    eigenvalues (real parts in ``[−hi, −lo] ∪ [lo, hi]``).
    """
    dtype = np.dtype(dtype)
    q, _ = np.linalg.qr(random_array(rng, (n, n), dtype))
    lam = rng.uniform(lo, hi, n)
    if both_sides:
        lam = lam * rng.choice([-1.0, 1.0], n)
    if dtype.kind == "c":
        lam = lam + 1j * rng.uniform(-1, 1, n)
    t = np.diag(lam).astype(dtype) + np.triu(random_array(rng, (n, n), dtype), 1) * (
        nonnormal / np.sqrt(max(n, 1)))
    return (q @ t @ q.conj().T).astype(dtype)


# ---- scan


def extreme_selective_inputs(rng: np.random.Generator, batch: int, dim: int, nstate: int,
                             length: int, dtype) -> tuple[np.ndarray, ...]:
    """``u, delta, A, B, C, z`` with Δ up to 1e3, A down to −1e3 and gates z of size 1e3."""
    u = rng.standard_normal((batch, dim, length)).astype(dtype)
    delta = np.exp(rng.uniform(np.log(1e-4), np.log(1e3), (batch, dim, length))).astype(dtype)
    A = -np.logspace(-3, 3, dim * nstate).reshape(dim, nstate).astype(dtype)
    B = rng.standard_normal((batch, nstate, length)).astype(dtype)
    C = rng.standard_normal((batch, nstate, length)).astype(dtype)
    z = (1e3 * rng.standard_normal((batch, dim, length))).astype(dtype)
    return u, delta, A, B, C, z
