"""Output shapes and dtypes of the wrapped routines, computed from input shapes and dtypes only.

torch needs them for the fake (meta) kernels that let ``torch.compile`` trace the custom
ops, JAX for ``pure_callback``'s result specification. Dtypes here are NumPy dtypes, and
float16/bfloat16 have already been mapped to float32 (the compute dtype of the bridges).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Shape = Sequence[int]


def _batch(*shapes: Shape) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def promote(*dtypes: np.dtype) -> np.dtype:
    """structla's promotion: integers and booleans become float64."""
    present = [np.dtype(d) for d in dtypes if d is not None]
    return np.result_type(*(np.dtype(np.float64) if d.kind in "biu" else d for d in present))


def complex_of(dtype: np.dtype) -> np.dtype:
    return np.result_type(dtype, np.complex64)


def real_of(dtype: np.dtype) -> np.dtype:
    return np.empty(0, dtype).real.dtype


def tril(diag: Shape, q: Shape, k: Shape, rhs: Shape, log_decay: Shape | None) -> tuple[int, ...]:
    vector = len(rhs) == len(diag)
    core = tuple(rhs[-1:]) if vector else tuple(rhs[-2:])
    rhs_batch = rhs[:-1] if vector else rhs[:-2]
    shapes = [diag[:-1], q[:-2], k[:-2], rhs_batch] + ([] if log_decay is None else [log_decay[:-1]])
    return _batch(*shapes) + core


def ut_transform(k: Shape, beta: Shape, log_decay: Shape | None) -> tuple[int, ...]:
    shapes = [k[:-2], beta[:-1]] + ([] if log_decay is None else [log_decay[:-1]])
    return (*_batch(*shapes), k[-2], k[-2])


def cauchy(v: Shape, w: Shape, z: Shape) -> tuple[int, ...]:
    return (*_batch(v[:-1], w[:-1], z[:-1]), z[-1])


def vandermonde(v: Shape, x: Shape, length: int) -> tuple[int, ...]:
    return (*_batch(v[:-1], x[:-1]), length)


def ssm_kernel_diag(a: Shape, B: Shape, C: Shape, dt: Shape, length: int) -> tuple[int, ...]:
    return (*_batch(a[:-1], B[:-1], C[:-1], dt), length)


def ssm_kernel_diag_dtype(a: np.dtype, B: np.dtype, C: np.dtype, dt: np.dtype, conj_pairs: bool) -> np.dtype:
    dtype = promote(a, B, C, dt)
    return real_of(dtype) if conj_pairs or dtype.kind == "f" else complex_of(dtype)


def ssm_kernel_dplr(Lambda: Shape, P: Shape, B: Shape, C: Shape, dt: Shape, length: int) -> tuple[int, ...]:
    return (*_batch(Lambda[:-1], P[:-2], B[:-1], C[:-1], dt), length)


def linear_scan(a: Shape, b: Shape) -> tuple[int, ...]:
    return _batch(a, b)


def delta_rule(q: Shape, k: Shape, v: Shape, beta: Shape, h0: Shape | None) -> tuple[tuple[int, ...], ...]:
    shapes = [q[:-2], k[:-2], v[:-2], beta[:-1]] + ([] if h0 is None else [h0[:-2]])
    batch = _batch(*shapes)
    return (*batch, q[-2], v[-1]), (*batch, v[-1], q[-1])
