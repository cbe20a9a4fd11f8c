"""Cauchy and Vandermonde sums: the inner loops of S4 (DPLR) and S4D (diagonal) kernels."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .._core.batch import broadcast_batch
from .._core.dispatch import implementation
from .._core.namespace import array_namespace
from .._core.validate import as_array, checks_finite, result_dtype
from .._core.validate import check_finite as _check_finite

__all__ = ["cauchy", "vandermonde"]


def _complex_dtype(*arrays: Any) -> np.dtype:
    """complex64 for single-precision inputs, complex128 otherwise (ints count as float64)."""
    return np.result_type(result_dtype(*arrays), np.complex64)



def cauchy(v: Any, w: Any, z: Any, *, conj_pairs: bool = False,
           check_finite: bool | None = None) -> Any:
    r"""Cauchy sum ``k_j = Σ_i v_i / (z_j − w_i)`` over a batch of pole sets and node sets.

    Parameters
    ----------
    v : (..., N) array_like
        Residues (weights) of the poles.
    w : (..., N) array_like
        Poles.
    z : (..., L) array_like
        Nodes at which the sum is evaluated.
    conj_pairs : bool, optional
        If True, every pole stands for a conjugate pair: the terms
        ``conj(v_i) / (z_j − conj(w_i))`` are added as well (S4's half-size storage).
        The result stays complex (``z`` is arbitrary).
    check_finite : bool or None, optional
        Check the inputs for NaN and infinity. ``None`` (default) checks on the CPU
        and skips the check on the GPU, where it would force a host synchronisation.

    Returns
    -------
    k : (..., L) ndarray
        complex64 if every input is float32/complex64, else complex128 (real and
        integer inputs promote; integers count as float64). The batch shape is the
        broadcast of the batch shapes of ``v``, ``w`` and ``z``. Same array library as
        the inputs (NumPy or CuPy).

    Raises
    ------
    ValueError
        ``v`` and ``w`` disagree in N, batch shapes do not broadcast, or an input
        holds NaN/inf while ``check_finite``.
    TypeError
        Inputs from different array libraries, or an unsupported dtype.

    Notes
    -----
    MATH.md B1. With ``conj_pairs`` each pole contributes
    ``v/(z − w) + v̄/(z − w̄)``, the S4 form for a real system stored by half.

    The sum is never formed through an ``N × L`` temporary: the CPU kernel streams
    over the poles for a block of nodes held in registers/L1 (parallel over batch
    rows × blocks of nodes), the GPU kernel keeps the poles in shared memory and
    gives each thread its own nodes. Time O(batch·N·L), extra memory O(batch·L)
    at most (the output).

    *Accuracy.* Forming ``z_j − w_i`` rounds with a relative error of an ulp of
    ``(|z_j| + |w_i|) / |z_j − w_i|``, the condition of the difference; everything
    after that adds a few ulps. The error at node ``j`` is therefore a few ulps of
    ``Σ_i |v_i| (|z_j| + |w_i|) / |z_j − w_i|²``. Nodes far from every pole (S4 on the
    imaginary axis with ``Re w = −½``) are well conditioned; a node within a relative
    distance δ of a pole loses about ``log10(1/δ)`` digits, which is inherent in the
    data, not in the algorithm.

    *A pole equal to a node.* The sum has a pole there: the entry at that node is
    ``inf`` or ``nan`` (the IEEE result of dividing by zero), every other node is
    computed as usual, and no error or warning is raised. Use it as a marker, e.g.
    ``numpy.isfinite(k)``; S4's Nyquist node is handled by its caller for this reason.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> rng = np.random.default_rng(0)
    >>> v = rng.standard_normal(8) + 1j * rng.standard_normal(8)
    >>> w = -0.5 + 1j * np.pi * np.arange(8)
    >>> z = 1j * np.linspace(-3.0, 3.0, 5)
    >>> k = structla.cauchy(v, w, z)
    >>> np.allclose(k, (v / (z[:, None] - w)).sum(axis=1))
    True
    >>> k2 = structla.cauchy(v, w, z, conj_pairs=True)
    >>> full = (v / (z[:, None] - w) + v.conj() / (z[:, None] - w.conj())).sum(axis=1)
    >>> np.allclose(k2, full)
    True

    Batches broadcast like NumPy: 3 pole sets against one node set.

    >>> structla.cauchy(np.ones((3, 8)), w, z).shape
    (3, 5)
    """
    xp = array_namespace(v=v, w=w, z=z)
    v, w, z = as_array(v, "v", xp), as_array(w, "w", xp), as_array(z, "z", xp)
    batch = broadcast_batch("(n),(n),(l)", v=v, w=w, z=z)
    dtype = _complex_dtype(v, w, z)
    if checks_finite(check_finite, xp):
        for name, x in (("v", v), ("w", w), ("z", z)):
            _check_finite(x, name, xp)
    length = batch.sizes["l"]
    if batch.count == 0 or length == 0:
        return xp.zeros((*batch.shape, length), dtype=dtype)
    fn = implementation("cauchy", "cauchy", xp)
    out = fn(
        batch.flatten(v.astype(dtype, copy=False), 1, xp),
        batch.flatten(w.astype(dtype, copy=False), 1, xp),
        batch.flatten(z.astype(dtype, copy=False), 1, xp),
        conj_pairs=bool(conj_pairs),
    )
    return batch.unflatten(out)


def vandermonde(v: Any, x: Any, length: int, *, log: bool = False, conj_pairs: bool = False,
                check_finite: bool | None = None) -> Any:
    r"""Vandermonde sum ``k_l = Σ_i v_i x_i^l`` for ``l < length`` (S4D kernels).

    Parameters
    ----------
    v : (..., N) array_like
        Weights (S4D: ``C_n · B̄_n``).
    x : (..., N) array_like
        Nodes ``x_i`` (S4D: ``Ā_n``), or their logarithms when ``log`` (S4D: ``Δ·a_n``).
    length : int
        Number of terms ``L ≥ 0`` of the output.
    log : bool, optional
        If True, evaluate ``Σ_i v_i exp(l · x_i)``: exact for any ``x`` (no
        precision is lost forming ``exp(x)`` first), and what S4D's ZOH kernel needs.
    conj_pairs : bool, optional
        If True, every node stands for a conjugate pair and the result is the real
        ``2·Re(Σ_i v_i x_i^l)``, of the real dtype matching the precision.
    check_finite : bool or None, optional
        Check the inputs for NaN and infinity. ``None`` (default) checks on the CPU
        and skips the check on the GPU.

    Returns
    -------
    k : (..., length) ndarray
        complex64/complex128 (float32/float64 when ``conj_pairs``): single precision
        if every input is float32/complex64, else double. Batch shape is the broadcast
        of those of ``v`` and ``x``.

    Raises
    ------
    ValueError
        ``v`` and ``x`` disagree in N, batch shapes do not broadcast, ``length`` is
        negative, or an input holds NaN/inf while ``check_finite``.
    TypeError
        ``length`` is not an integer; inputs from different array libraries.

    Notes
    -----
    MATH.md B3. ``x^0 = 1`` for every ``x`` (also ``x = 0``), ``exp(0·x) = 1``.

    The powers are never formed by repeated multiplication, whose error grows like
    ``l·eps``. The CPU kernel splits ``l = l₀ + j`` into blocks: a table of
    ``exp(j·s_i)`` (``s_i = x_i`` when ``log``, else ``log x_i``) for the ``j`` of one
    block is built once per pole, and each block re-anchors at ``exp(l₀·s_i)``, both
    evaluated directly in double precision (magnitude ``exp(l·Re s)``, angle
    ``l·Im s`` reduced in double). Every term is one complex product of two
    correctly rounded factors, so the error does not grow with ``l``: a few ulps of
    ``Σ_i |v_i| |x_i|^l`` in complex64. In complex128 add ``eps·l·|s_i|``, the condition of
    ``exp(l·s)`` with respect to ``s`` (NumPy's ``exp(l * x)`` has the same error). The GPU
    kernel re-anchors each thread at its first node and multiplies by ``exp(128·s_i)`` for its
    other three nodes (at most 4 factors). Time O(batch·N·length), extra memory O(N·block) per
    thread.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> x = np.array([0.9, -0.5 + 0.5j, 0.3j])
    >>> v = np.array([1.0, 2.0 - 1.0j, 0.5])
    >>> k = structla.vandermonde(v, x, 6)
    >>> np.allclose(k, (v[:, None] * x[:, None] ** np.arange(6)).sum(axis=0))
    True

    S4D: ``log=True`` with ``Δ·a`` and conjugate pairs gives the real kernel.

    >>> dta = 0.01 * (-0.5 + 1j * np.pi * np.arange(4))
    >>> c = np.array([1.0, 1j, -0.5, 2.0 + 1j])
    >>> kr = structla.vandermonde(c, dta, 16, log=True, conj_pairs=True)
    >>> np.allclose(kr, 2 * (c[:, None] * np.exp(np.outer(dta, np.arange(16)))).sum(axis=0).real)
    True
    """
    try:
        length = operator.index(length)
    except TypeError:
        raise TypeError(f"argument 'length' must be an integer; got {length!r}") from None
    if length < 0:
        raise ValueError(f"argument 'length' must be non-negative; got {length}")
    xp = array_namespace(v=v, x=x)
    v, x = as_array(v, "v", xp), as_array(x, "x", xp)
    batch = broadcast_batch("(n),(n)", v=v, x=x)
    dtype = _complex_dtype(v, x)
    out_dtype = np.finfo(dtype).dtype if conj_pairs else dtype
    if checks_finite(check_finite, xp):
        _check_finite(v, "v", xp)
        _check_finite(x, "x", xp)
    if batch.count == 0 or length == 0:
        return xp.zeros((*batch.shape, length), dtype=out_dtype)
    fn = implementation("cauchy", "vandermonde", xp)
    out = fn(
        batch.flatten(v.astype(dtype, copy=False), 1, xp),
        batch.flatten(x.astype(dtype, copy=False), 1, xp),
        length,
        log=bool(log),
        conj_pairs=bool(conj_pairs),
    )
    return batch.unflatten(out)
