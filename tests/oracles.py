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
