"""Diagonal + low-rank triangular matrices ``T = diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` (MATH A, F3–F4).

Public routines: :func:`tril_dlr_solve`, :func:`tril_dlr_matmul`, :func:`tril_dlr_inv`,
:func:`tril_dlr_dense`, :func:`ut_transform` and the operator class :class:`TrilDLR`.
This module checks and broadcasts the arguments and picks the implementation; the maths
lives in ``_reference.py`` (readable, any array library), ``_numba.py`` (CPU) and
``_cupy.py`` with ``tril.cu`` (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._core.batch import Batch, broadcast_batch, parse_signature
from .._core.dispatch import implementation
from .._core.errors import LinAlgError
from .._core.namespace import array_namespace, is_cupy_namespace
from .._core.validate import as_array, check_ndim, checks_finite, compute_dtype, result_dtype
from .._core.validate import check_finite as _check_finite

__all__ = ["TrilDLR", "tril_dlr_dense", "tril_dlr_inv", "tril_dlr_matmul", "tril_dlr_solve", "ut_transform"]

#: Log-decays below this act as this value: its exponential is exactly 0 in every dtype,
#: and clamping keeps -inf (a full reset) from turning differences of sums into NaN.
LOG_DECAY_FLOOR = -1.0e4

_TRANS = {False: "N", "N": "N", "n": "N", True: "T", "T": "T", "t": "T", 2: "C", "C": "C", "c": "C"}


def _trans_code(trans: Any) -> str:
    try:
        return _TRANS[trans]
    except (KeyError, TypeError):
        raise ValueError(f"argument 'trans' must be False, True, 'N', 'T' or 'C'; got {trans!r}") from None


@dataclass(frozen=True)
class _Problem:
    """Flattened, contiguous, one-dtype operands of a lower-triangular problem."""

    xp: ModuleType
    batch: Batch
    dtype: np.dtype  # output dtype
    work: np.dtype  # compute dtype
    diag: Any
    q: Any
    k: Any
    log_decay: Any  # real, (B, n), first entry 0, clamped; or None

    def reversed(self, conjugate: bool) -> _Problem:
        """The lower-triangular ``P Tᵀ P`` (P reverses the order): ``Tᵀ`` solved forwards.

        ``(Tᵀ)_ji = q_iᵀk_j Γ_ij`` for ``i > j``; reversing the index order makes it lower
        triangular with the roles of Q and K swapped and the decays shifted by one step.
        """
        xp = self.xp
        diag, q, k = self.diag[:, ::-1], self.k[:, ::-1], self.q[:, ::-1]
        if conjugate:
            diag, q, k = diag.conj(), q.conj(), k.conj()
        log_decay = None
        if self.log_decay is not None:
            log_decay = xp.roll(self.log_decay[:, ::-1], 1, axis=1)
            if log_decay.shape[1]:
                log_decay[:, 0] = 0
        return _Problem(self.xp, self.batch, self.dtype, self.work, xp.ascontiguousarray(diag),
                        xp.ascontiguousarray(q), xp.ascontiguousarray(k), log_decay)


def _check_log_decay(log_decay: Any, xp: ModuleType) -> None:
    if log_decay is None or log_decay.size == 0:
        return
    if bool(xp.isnan(log_decay).any()) or bool((log_decay == xp.inf).any()):
        raise ValueError("argument 'log_decay' must not contain NaN or +inf "
                         "(-inf is allowed: a full reset; pass check_finite=False to skip this check)")


def _check_diagonal(diag: Any, xp: ModuleType) -> None:
    zero = diag == 0
    if diag.size and bool(zero.any()):
        index = tuple(int(i) for i in xp.argwhere(zero)[0])
        raise LinAlgError(f"T is singular: diag{list(index)} is zero (diagonal entry {index[-1]})")


def _prepare(diag: Any, q: Any, k: Any, log_decay: Any, check: bool | None, *,
             extra: dict[str, Any] | None = None, extra_core: str = "",
             singular_check: bool = True) -> tuple[_Problem, dict[str, Any]]:
    """Validate, promote, broadcast and flatten; ``extra`` operands share the batch."""
    extra = extra or {}
    xp = array_namespace(diag=diag, q=q, k=k, log_decay=log_decay, **extra)
    diag = as_array(diag, "diag", xp)
    q = as_array(q, "q", xp)
    k = as_array(k, "k", xp)
    extra = {name: as_array(v, name, xp) for name, v in extra.items()}
    check_ndim(diag, "diag", 1, "(..., n)")
    check_ndim(q, "q", 2, "(..., n, d)")
    check_ndim(k, "k", 2, "(..., n, d)")
    if log_decay is not None:
        log_decay = as_array(log_decay, "log_decay", xp)
        check_ndim(log_decay, "log_decay", 1, "(..., n)")
        if log_decay.dtype.kind == "c":
            raise TypeError("argument 'log_decay' must be real (log-decays of a real Γ); got "
                            f"dtype {log_decay.dtype}")
    dtype = result_dtype(diag, q, k, *extra.values())
    result_dtype(log_decay)  # rejects non-numeric dtypes with a clear message
    work = compute_dtype(dtype)
    real = np.empty(0, dtype=work).real.dtype
    signature = "(n),(n,d),(n,d),(n)" + extra_core
    batch = broadcast_batch(signature, diag=diag, q=q, k=k, log_decay=log_decay, **extra)
    if checks_finite(check, xp):
        for name, value in (("diag", diag), ("q", q), ("k", k), *extra.items()):
            _check_finite(value, name, xp)
        _check_log_decay(log_decay, xp)
    if singular_check and (checks_finite(check, xp) or not is_cupy_namespace(xp)):
        _check_diagonal(diag, xp)

    def flat(x: Any, core: int, dt: np.dtype) -> Any:
        return xp.ascontiguousarray(batch.flatten(x, core, xp), dtype=dt)

    g = None
    if log_decay is not None:
        g = flat(log_decay, 1, real).copy()
        if g.size:
            g[:, 0] = 0  # Γ never uses the first log-decay
        g = xp.maximum(g, real.type(LOG_DECAY_FLOOR))
    problem = _Problem(xp, batch, dtype, work, flat(diag, 1, work), flat(q, 2, work), flat(k, 2, work), g)
    cores = parse_signature(extra_core) if extra else []
    flats = {name: flat(v, len(core), work) for (name, v), core in zip(extra.items(), cores, strict=True)}
    return problem, flats


def _columns(b: Any, diag: Any, name: str) -> tuple[Any, bool]:
    """``b`` as a block of columns, and whether it was a vector (``b.ndim == diag.ndim``)."""
    vector = np.ndim(b) == np.ndim(diag)
    if vector:
        return b[..., None], True
    if np.ndim(b) < 2:
        raise ValueError(f"argument {name!r} must have shape (..., n) or (..., n, m); "
                         f"got shape {np.shape(b)}")
    return b, False


def _finish(problem: _Problem, out: Any, vector: bool) -> Any:
    out = problem.batch.unflatten(out)
    if vector:
        out = out[..., 0]
    return out.astype(problem.dtype, copy=False)


def _apply(name: str, diag: Any, q: Any, k: Any, rhs: Any, trans: Any, log_decay: Any,
           check_finite: bool | None, rhs_name: str, singular_check: bool) -> Any:
    code = _trans_code(trans)
    xp = array_namespace(diag=diag, q=q, k=k, log_decay=log_decay, **{rhs_name: rhs})
    diag_arr = as_array(diag, "diag", xp)
    rhs, vector = _columns(as_array(rhs, rhs_name, xp), diag_arr, rhs_name)
    problem, flats = _prepare(diag_arr, q, k, log_decay, check_finite, extra={rhs_name: rhs},
                              extra_core=",(n,m)", singular_check=singular_check)
    src = flats[rhs_name]
    fn = implementation("tril", name, problem.xp)
    if code == "N":
        out = fn(problem.diag, problem.q, problem.k, src, problem.log_decay)
    else:
        rev = problem.reversed(conjugate=code == "C")
        out = fn(rev.diag, rev.q, rev.k, xp.ascontiguousarray(src[:, ::-1]), rev.log_decay)[:, ::-1]
    return _finish(problem, out, vector)


def tril_dlr_solve(diag: Any, q: Any, k: Any, b: Any, *, trans: Any = False, log_decay: Any = None,
                   check_finite: bool | None = None) -> Any:
    """Solve ``T x = b`` for ``T = diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` in O(n·d·m).

    Parameters
    ----------
    diag : (..., n) array_like
        The diagonal λ; every entry must be non-zero.
    q, k : (..., n, d) array_like
        Low-rank factors: ``T[i, j] = q_iᵀ k_j Γ_ij`` below the diagonal (no conjugation).
    b : (..., n) or (..., n, m) array_like
        Right-hand side: a vector when ``b.ndim == diag.ndim``, else a block of m columns.
    trans : {False, True, 'N', 'T', 'C'}, optional
        Solve ``T x = b`` (False/'N'), ``Tᵀ x = b`` (True/'T') or ``Tᴴ x = b`` ('C').
    log_decay : (..., n) array_like of real, optional
        Per-step log-decays g: ``Γ_ij = exp(g_{j+1} + … + g_i)`` (Γ ≡ 1 when omitted). ``g_0``
        does not enter T. Values below -10⁴ (also -inf, a full reset) act as -10⁴.
    check_finite : bool, optional
        Check that the inputs hold no NaN/Inf (``log_decay`` may hold -inf). Default True
        for NumPy, False for CuPy (the check needs a host synchronisation); on CuPy it also
        governs the zero-diagonal check.

    Returns
    -------
    x : (..., n) or (..., n, m) ndarray
        Same array library as the inputs; dtype is the promotion of the inputs (integers
        become float64); batch dimensions broadcast between all operands.

    Raises
    ------
    ValueError
        Shapes that do not match or broadcast, NaN/Inf with ``check_finite``, a bad ``trans``.
    LinAlgError
        A zero on the diagonal (the index is named).
    TypeError
        Mixed array libraries, complex ``log_decay``.

    Notes
    -----
    Forward substitution with the running state ``z = Σ_{j<i} Γ_ij k_j x_jᵀ ∈ K^{d×m}``
    (MATH A1): ``x_i = (b_i − q_iᵀ z)/λ_i``, then ``z ← e^{g_{i+1}} (z + k_i x_iᵀ)``, so
    decays enter one step at a time and never as ``exp(±cumsum)``. ``Tᵀ`` is solved as
    the lower-triangular problem of the reversed sequence with Q and K swapped (A3).
    Cost O(n·d·m) time, O(d·m) extra memory; on the CPU the row recursion runs in
    parallel over batch entries and blocks of columns, and for large ``d·m`` a chunked
    form (A2) spends its time in BLAS products. On the GPU the chunked form is used
    (F3–F4). Error grows like ‖Π (I − k_m q_mᵀ/λ_m)‖, as for any substitution.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> import structla
    >>> rng = np.random.default_rng(0)
    >>> n, d = 6, 2
    >>> diag, q, k = 1 + rng.random(n), rng.standard_normal((n, d)), rng.standard_normal((n, d))
    >>> b = rng.standard_normal(n)
    >>> x = structla.tril_dlr_solve(diag, q, k, b)
    >>> T = np.diag(diag) + np.tril(q @ k.T, -1)
    >>> np.allclose(x, scipy.linalg.solve_triangular(T, b, lower=True))
    True
    >>> g = -rng.random(n)
    >>> y = structla.tril_dlr_solve(diag, q, k, b, trans=True, log_decay=g)
    >>> np.allclose(structla.tril_dlr_dense(diag, q, k, log_decay=g).T @ y, b)
    True
    """
    return _apply("tril_dlr_solve", diag, q, k, b, trans, log_decay, check_finite, "b", True)


def tril_dlr_matmul(diag: Any, q: Any, k: Any, x: Any, *, trans: Any = False, log_decay: Any = None,
                    check_finite: bool | None = None) -> Any:
    """The product ``T @ x`` (or ``Tᵀ @ x``, ``Tᴴ @ x``) in O(n·d·m), never forming T.

    Parameters
    ----------
    diag : (..., n) array_like
    q, k : (..., n, d) array_like
    x : (..., n) or (..., n, m) array_like
        A vector when ``x.ndim == diag.ndim``, else a block of m columns.
    trans : {False, True, 'N', 'T', 'C'}, optional
    log_decay : (..., n) array_like of real, optional
    check_finite : bool, optional
        As in :func:`tril_dlr_solve` (a zero diagonal is allowed here).

    Returns
    -------
    y : (..., n) or (..., n, m) ndarray

    Notes
    -----
    ``y_i = λ_i x_i + q_iᵀ z`` with the same running state ``z = Σ_{j<i} Γ_ij k_j x_jᵀ`` as
    the solve (MATH A1, F1 with decay). O(n·d·m) time, O(d·m) memory.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> rng = np.random.default_rng(1)
    >>> diag, q, k = rng.random(5), rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    >>> x = rng.standard_normal((5, 2))
    >>> T = np.diag(diag) + np.tril(q @ k.T, -1)
    >>> np.allclose(structla.tril_dlr_matmul(diag, q, k, x), T @ x)
    True
    >>> np.allclose(structla.tril_dlr_matmul(diag, q, k, x, trans=True), T.T @ x)
    True
    """
    return _apply("tril_dlr_matmul", diag, q, k, x, trans, log_decay, check_finite, "x", False)


def tril_dlr_inv(diag: Any, q: Any, k: Any, *, log_decay: Any = None,
                 check_finite: bool | None = None) -> Any:
    """The explicit inverse ``T⁻¹`` in Θ(n²·d) (MATH A5).

    Parameters
    ----------
    diag : (..., n) array_like
    q, k : (..., n, d) array_like
    log_decay : (..., n) array_like of real, optional
    check_finite : bool, optional
        As in :func:`tril_dlr_solve`.

    Returns
    -------
    Y : (..., n, n) ndarray
        Lower triangular.

    Raises
    ------
    LinAlgError
        A zero on the diagonal.

    Notes
    -----
    Block recursion ``[[A, 0], [C, B]]⁻¹ = [[A⁻¹, 0], [−B⁻¹CA⁻¹,
    B⁻¹]]`` with C = T_BA of rank d: ``Y_BA = −(Y_BB diag(a) Q_B)((diag(b) K_A)ᵀ Y_AA)``.
    On the CPU it is applied bottom-up to neighbouring blocks (a merge tree over leaves of 64
    rows from the row recursion), each block carrying its two d-column factors and a d×d
    transition, so the work is ``d·n²`` flops in BLAS products plus O(n·d²) per tree level.
    Θ(n²·d), not O(n²) independently of d. Small n use the row recursion, parallel over the batch.
    ``T⁻¹`` is quasiseparable of order d but in general *not* again diagonal + low-rank
    (MATH A6); prefer :func:`tril_dlr_solve` when only ``T⁻¹ B`` is needed.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> rng = np.random.default_rng(2)
    >>> diag, q, k = 1 + rng.random(7), rng.standard_normal((7, 2)), rng.standard_normal((7, 2))
    >>> Y = structla.tril_dlr_inv(diag, q, k)
    >>> np.allclose(Y, np.linalg.inv(structla.tril_dlr_dense(diag, q, k)))
    True
    """
    problem, _ = _prepare(diag, q, k, log_decay, check_finite)
    fn = implementation("tril", "tril_dlr_inv", problem.xp)
    out = fn(problem.diag, problem.q, problem.k, problem.log_decay)
    return _finish(problem, out, False)


def tril_dlr_dense(diag: Any, q: Any, k: Any, *, log_decay: Any = None) -> Any:
    """The dense matrix ``diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` (for tests and small problems).

    Parameters
    ----------
    diag : (..., n) array_like
    q, k : (..., n, d) array_like
    log_decay : (..., n) array_like of real, optional

    Returns
    -------
    T : (..., n, n) ndarray

    Notes
    -----
    ``Γ_ij = exp(G_i − G_j)`` from one float64 cumulative sum G of the log-decays; only
    differences with i > j are exponentiated. O(n²·d) time, O(n²) memory.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> T = structla.tril_dlr_dense([1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]], [[1.0], [1.0], [1.0]],
    ...                             log_decay=np.log([1.0, 0.5, 0.5]))
    >>> np.allclose(T, [[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.75, 1.5, 3.0]])
    True
    """
    problem, _ = _prepare(diag, q, k, log_decay, False, singular_check=False)
    fn = implementation("tril", "tril_dlr_dense", problem.xp)
    return _finish(problem, fn(problem.diag, problem.q, problem.k, problem.log_decay), False)


def ut_transform(k: Any, beta: Any, *, log_decay: Any = None, check_finite: bool | None = None) -> Any:
    """DeltaNet's UT transform ``(I + tril((diag(β) K Kᵀ) ⊙ Γ, -1))⁻¹ diag(β)`` per chunk.

    Parameters
    ----------
    k : (..., C, d) array_like
        Keys of each chunk.
    beta : (..., C) array_like
        Learning rates β.
    log_decay : (..., C) array_like of real, optional
        Gated DeltaNet's per-step log-gates (Γ as in :func:`tril_dlr_solve`, chunk-local).
    check_finite : bool, optional

    Returns
    -------
    T_c : (..., C, C) ndarray
        Lower triangular, ``W = T_c K`` and ``U = T_c V`` are the WY factors (MATH F3).

    Notes
    -----
    The inverse of MATH A with λ = 1, Q = diag(β) K, K = K, times diag(β) on the right;
    the matrix ``I + …`` has determinant 1, so it is always invertible, but for keys that are
    not normalised or β outside [0, 2] the entries can grow exponentially in C (A6). Many
    small blocks: parallel over the batch on the CPU, one thread block per chunk on the GPU.
    O(C²·d) per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> rng = np.random.default_rng(3)
    >>> k = rng.standard_normal((4, 16, 8))
    >>> k /= np.linalg.norm(k, axis=-1, keepdims=True)
    >>> beta = rng.random((4, 16))
    >>> Tc = structla.ut_transform(k, beta)
    >>> A = np.tril(beta[..., :, None] * (k @ np.swapaxes(k, -1, -2)), -1)
    >>> np.allclose(Tc, np.linalg.inv(np.eye(16) + A) * beta[..., None, :])
    True
    """
    xp = array_namespace(k=k, beta=beta, log_decay=log_decay)
    k = as_array(k, "k", xp)
    beta = as_array(beta, "beta", xp)
    check_ndim(k, "k", 2, "(..., C, d)")
    check_ndim(beta, "beta", 1, "(..., C)")
    ones = xp.ones(k.shape[-2:-1], dtype=result_dtype(k, beta))
    problem, flats = _prepare(ones, k, k, log_decay, check_finite, extra={"beta": beta},
                              extra_core=",(n)", singular_check=False)
    fn = implementation("tril", "ut_transform", problem.xp)
    return _finish(problem, fn(problem.k, flats["beta"], problem.log_decay), False)


class TrilDLR:
    """The operator ``T = diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` (or its transpose), never formed densely.

    Parameters
    ----------
    diag : (..., n) array_like
    q, k : (..., n, d) array_like
    log_decay : (..., n) array_like of real, optional

    Attributes
    ----------
    shape : tuple
        ``batch + (n, n)``.
    dtype : numpy.dtype
        The promoted dtype of diag, q, k.

    Notes
    -----
    ``solve`` and ``@`` cost O(n·d·m), ``inv`` Θ(n²·d), ``todense`` O(n²·d), ``slogdet`` O(n)
    (``log|det T| = Σ log|λ_i|``, MATH A4). ``.T`` and ``.H`` are views with the roles of
    Q and K swapped at solve time.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> import structla
    >>> rng = np.random.default_rng(4)
    >>> op = structla.TrilDLR(1 + rng.random(5), rng.standard_normal((5, 2)), rng.standard_normal((5, 2)))
    >>> b = rng.standard_normal(5)
    >>> np.allclose(op @ op.solve(b), b), np.allclose(op.T.todense(), op.todense().T)
    (True, True)
    >>> np.allclose(op.slogdet()[1], np.linalg.slogdet(op.todense())[1])
    True
    >>> x, info = scipy.sparse.linalg.gmres(op.aslinearoperator(), b, rtol=1e-12)
    >>> np.allclose(x, op.solve(b))
    True
    """

    __array_priority__ = 1000

    def __init__(self, diag: Any, q: Any, k: Any, log_decay: Any = None, *, _trans: str = "N") -> None:
        xp = array_namespace(diag=diag, q=q, k=k, log_decay=log_decay)
        self._xp = xp
        self.diag = as_array(diag, "diag", xp)
        self.q = as_array(q, "q", xp)
        self.k = as_array(k, "k", xp)
        self.log_decay = None if log_decay is None else as_array(log_decay, "log_decay", xp)
        check_ndim(self.diag, "diag", 1, "(..., n)")
        check_ndim(self.q, "q", 2, "(..., n, d)")
        check_ndim(self.k, "k", 2, "(..., n, d)")
        batch = broadcast_batch("(n),(n,d),(n,d),(n)", diag=self.diag, q=self.q, k=self.k,
                                log_decay=self.log_decay)
        n = batch.sizes["n"]
        self.shape = (*batch.shape, n, n)
        self.dtype = result_dtype(self.diag, self.q, self.k)
        self._trans = _trans

    def __repr__(self) -> str:
        kind = {"N": "", "T": ".T"}[self._trans]
        rank = self.q.shape[-1]
        return f"TrilDLR(shape={self.shape}, rank={rank}, dtype={self.dtype}){kind}"

    def _params(self) -> dict[str, Any]:
        return {"log_decay": self.log_decay}

    @property
    def T(self) -> TrilDLR:
        """The transpose (a view: solves and products use the transposed recursions)."""
        return TrilDLR(self.diag, self.q, self.k, self.log_decay, _trans="T" if self._trans == "N" else "N")

    @property
    def H(self) -> TrilDLR:
        """The conjugate transpose."""
        conj = TrilDLR(self.diag.conj(), self.q.conj(), self.k.conj(), self.log_decay, _trans=self._trans)
        return conj.T

    def _code(self, trans: Any) -> str:
        code = _trans_code(trans)
        if self._trans == "N":
            return code
        return {"N": "T", "T": "N", "C": "conj"}[code]

    def solve(self, b: Any, trans: Any = False, *, check_finite: bool | None = None) -> Any:
        """``x`` with ``op x = b`` (``opᵀ x = b`` if trans, ``opᴴ`` for 'C'); see :func:`tril_dlr_solve`."""
        code = self._code(trans)
        if code == "conj":
            return tril_dlr_solve(self.diag.conj(), self.q.conj(), self.k.conj(), b,
                                  check_finite=check_finite, **self._params())
        return tril_dlr_solve(self.diag, self.q, self.k, b, trans=code, check_finite=check_finite,
                              **self._params())

    def matmul(self, x: Any, trans: Any = False) -> Any:
        """``op @ x`` (``opᵀ @ x`` if trans, ``opᴴ`` for 'C'); see :func:`tril_dlr_matmul`."""
        code = self._code(trans)
        if code == "conj":
            return tril_dlr_matmul(self.diag.conj(), self.q.conj(), self.k.conj(), x, **self._params())
        return tril_dlr_matmul(self.diag, self.q, self.k, x, trans=code, **self._params())

    def __matmul__(self, x: Any) -> Any:
        if isinstance(x, TrilDLR):
            return NotImplemented
        return self.matmul(x)

    def todense(self) -> Any:
        """The dense ``(..., n, n)`` matrix."""
        dense = tril_dlr_dense(self.diag, self.q, self.k, **self._params())
        return dense if self._trans == "N" else self._xp.swapaxes(dense, -1, -2)

    def inv(self) -> Any:
        """The dense inverse ``(..., n, n)``; see :func:`tril_dlr_inv`."""
        inverse = tril_dlr_inv(self.diag, self.q, self.k, **self._params())
        return inverse if self._trans == "N" else self._xp.swapaxes(inverse, -1, -2)

    def slogdet(self) -> tuple[Any, Any]:
        """``(sign, log|det|)`` like :func:`numpy.linalg.slogdet`, in O(n) from the diagonal."""
        xp = self._xp
        diag = xp.broadcast_to(self.diag, self.shape[:-1]).astype(self.dtype)
        magnitude = xp.abs(diag)
        logabs = xp.sum(xp.log(magnitude), axis=-1)
        if self.dtype.kind == "c":
            unit = xp.where(magnitude == 0, 0, diag / xp.where(magnitude == 0, 1, magnitude))
            sign = xp.prod(unit, axis=-1)
        else:
            sign = xp.prod(xp.sign(diag), axis=-1)
        return sign, logabs

    def aslinearoperator(self) -> Any:
        """A :class:`scipy.sparse.linalg.LinearOperator` (NumPy, no batch dimensions)."""
        from scipy.sparse.linalg import LinearOperator

        if len(self.shape) != 2 or self._xp is not np:
            raise ValueError("aslinearoperator needs a single (unbatched) NumPy operator; "
                             f"this one has shape {self.shape} on {self._xp.__name__}")
        return LinearOperator(
            self.shape, dtype=self.dtype,
            matvec=lambda v: self.matmul(np.reshape(v, -1)),
            rmatvec=lambda v: self.matmul(np.reshape(v, -1), trans="C"),
            matmat=lambda v: self.matmul(v),
            rmatmat=lambda v: self.matmul(v, trans="C"),
        )
