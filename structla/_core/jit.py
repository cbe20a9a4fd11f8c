"""The one Numba decorator every CPU kernel uses.

Only ``<family>/_numba.py`` modules import this file, and dispatch imports those
on first use, so ``import structla`` never imports Numba.

Policy
------
``kernel`` = ``numba.njit(cache=True, nogil=True, fastmath=FASTMATH)``.
FASTMATH allows reassociation, contraction (FMA), reciprocal and approximate
functions and ignores the sign of zero, but leaves out ``nnan``/``ninf``: NaN and
Inf still propagate, so a bad input gives a visible NaN, never a silent number.
``parallel=True`` is for independent outer loops over ``prange`` only.

Set ``STRUCTLA_DISABLE_JIT=1`` to run kernels as plain Python (coverage, pdb).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["FASTMATH", "JIT_DISABLED", "kernel", "prange"]

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
JIT_DISABLED = os.environ.get("STRUCTLA_DISABLE_JIT", "0") not in ("", "0")

if JIT_DISABLED:
    prange = range
else:
    import numba

    prange = numba.prange


def kernel(fn: Callable[..., Any] | None = None, *, parallel: bool = False) -> Any:
    """Compile ``fn`` with structla's Numba settings (see the module docstring).

    Use as ``@kernel`` or ``@kernel(parallel=True)``.
    """

    def decorate(f: Callable[..., Any]) -> Any:
        if JIT_DISABLED:
            return f
        return numba.njit(cache=True, nogil=True, fastmath=set(FASTMATH), parallel=parallel)(f)

    return decorate if fn is None else decorate(fn)
