"""Cauchy and Vandermonde sums written against the array namespace (NumPy or CuPy).

The oracle for the kernels and the fallback where no kernel exists. Inputs arrive
from ``_api`` flattened to one batch axis and cast to the complex compute dtype:
``v, w`` (count, N), ``z`` (count, L). The loops run over poles, so memory stays
O(count·L) instead of the O(count·N·L) of a broadcast temporary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.namespace import array_namespace

__all__ = ["cauchy", "vandermonde"]


def cauchy(v: Any, w: Any, z: Any, *, conj_pairs: bool) -> Any:
    """``k[:, j] = Σ_i v[:, i] / (z[:, j] − w[:, i])`` (+ the conjugate terms)."""
    xp = array_namespace(v=v, w=w, z=z)
    k = xp.zeros(z.shape, dtype=z.dtype)
    # A pole equal to a node gives inf/nan at that node only; that is the documented result.
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(v.shape[1]):
            vi, wi = v[:, i : i + 1], w[:, i : i + 1]
            k += vi / (z - wi)
            if conj_pairs:
                k += vi.conj() / (z - wi.conj())
    return k


def vandermonde(v: Any, x: Any, length: int, *, log: bool, conj_pairs: bool) -> Any:
    """``k[:, l] = Σ_i v[:, i] x[:, i]**l`` (``exp(l·x)`` if log); ``2·Re`` if conj_pairs."""
    xp = array_namespace(v=v, x=x)
    dtype = v.dtype
    # exp(l·x) in double precision so that the phase l·Im(x) does not lose digits as l grows.
    v, x = v.astype(xp.complex128), x.astype(xp.complex128)
    count = v.shape[0]
    k = xp.zeros((count, length), dtype=v.dtype)
    exponent = xp.arange(length, dtype=xp.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(v.shape[1]):
            vi, xi = v[:, i : i + 1], x[:, i : i + 1]
            k += vi * (xp.exp(exponent * xi) if log else _powers(xp, xi, length))
    if conj_pairs:
        return (2 * k.real).astype(np.finfo(dtype).dtype)
    return k.astype(dtype)


def _powers(xp: Any, x: Any, length: int) -> Any:
    """``x**l`` for ``l < length`` with ``0**0 = 1``, by exp/log of the exact integer exponent."""
    exponent = xp.arange(length, dtype=x.real.dtype)
    nonzero = x != 0
    safe = xp.where(nonzero, x, 1)
    powers = xp.exp(exponent * xp.log(safe))
    zero_powers = (exponent == 0).astype(x.dtype)
    return xp.where(nonzero, powers, zero_powers)
