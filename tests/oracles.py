"""Dense float64 oracles (SciPy/NumPy) shared by every family's tests.

Slow and obviously right: each builds the dense object and calls a LAPACK-backed
routine. Families add their oracles here rather than inside their test files.
"""

from __future__ import annotations

import numpy as np

from structla._core.namespace import to_numpy


def as_host(x) -> np.ndarray:
    """``x`` as a NumPy array promoted to float64/complex128."""
    x = np.asarray(to_numpy(x))
    return x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)


def max_relative_error(ours, reference) -> float:
    """``max|ours − reference| / max(max|reference|, tiny)``."""
    ours, reference = as_host(ours), as_host(reference)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    if reference.size == 0:
        return 0.0
    scale = max(float(np.abs(reference).max()), np.finfo(np.float64).tiny)
    return float(np.abs(ours - reference).max()) / scale


def loop_batch(fn, *arrays, core_ndims):
    """Apply ``fn`` to each batch slice of broadcast ``arrays`` (batched == loop oracle)."""
    batch = np.broadcast_shapes(*(a.shape[: a.ndim - c] for a, c in zip(arrays, core_ndims)))
    results = []
    for index in np.ndindex(*batch):
        parts = [np.broadcast_to(a, batch + a.shape[a.ndim - c :])[index]
                 for a, c in zip(arrays, core_ndims)]
        results.append(fn(*parts))
    if not results:
        return None
    return np.stack(results).reshape(batch + results[0].shape)


# ---- cauchy
def cauchy_dense(v, w, z, conj_pairs=False):
    """``Σ_i v_i / (z_j − w_i)`` by float64 broadcasting over a ``(..., N, L)`` temporary.

    Returns ``(k, scale)``: ``scale[..., j] = Σ_i |v_i| (|z_j| + |w_i|) / |z_j − w_i|²`` is the
    componentwise condition of the sum (the error bound of ``cauchy`` is a few ulps of it).
    """
    v, w, z = as_host(v)[..., :, None], as_host(w)[..., :, None], as_host(z)[..., None, :]
    if conj_pairs:
        v, w = np.concatenate([v, v.conj()], axis=-2), np.concatenate([w, w.conj()], axis=-2)
    d = z - w
    k = (v / d).sum(axis=-2)
    scale = (np.abs(v) * (np.abs(z) + np.abs(w)) / np.abs(d) ** 2).sum(axis=-2)
    return k, scale


def vandermonde_dense(v, x, length, log=False, conj_pairs=False):
    """``Σ_i v_i x_i**l`` (``exp(l·x_i)`` if log) by float64 powers of a ``(..., N, L)`` array.

    Returns ``(k, scale)`` with ``scale[..., l] = Σ_i |v_i| |x_i^l| (1 + l·σ_i)``, ``σ = |x|``
    (log) or ``|log x| + 1``: the condition of the terms, including that of the power itself.
    """
    v, x = as_host(v).astype(np.complex128), as_host(x).astype(np.complex128)
    exponent = np.arange(length)
    if log:
        terms = np.exp(x[..., :, None] * exponent)
        s = np.abs(x)
    else:
        terms = x[..., :, None] ** exponent
        with np.errstate(divide="ignore"):
            s = np.where(x == 0, 0.0, np.abs(np.log(np.where(x == 0, 1, x))) + 1)
    k = (v[..., :, None] * terms).sum(axis=-2)
    scale = (np.abs(v[..., :, None] * terms) * (1 + exponent * s[..., :, None])).sum(axis=-2)
    if conj_pairs:
        k, scale = 2 * k.real, 2 * scale
    return k, scale
