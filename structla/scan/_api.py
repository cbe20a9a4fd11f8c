"""Linear recurrences: the associative scan, Mamba's selective scan and DEER."""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any

import numpy as np

from .._core.dispatch import implementation
from .._core.errors import NotConvergedWarning
from .._core.info import IterationInfo
from .._core.namespace import array_namespace
from .._core.validate import as_array, checks_finite, compute_dtype, result_dtype
from .._core.validate import check_finite as _check_finite

__all__ = ["deer", "linear_scan", "selective_scan"]



def _broadcast(what: str, **shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listing = ", ".join(f"{name}: {shape}" for name, shape in shapes.items())
        raise ValueError(f"{what} do not broadcast ({listing})") from None


def linear_scan(a: Any, b: Any, *, axis: int = -1, h0: Any = None, reverse: bool = False,
                check_finite: bool | None = None) -> Any:
    r"""First-order linear recurrence ``h_t = a_t · h_{t−1} + b_t`` along one axis.

    Parameters
    ----------
    a : array_like
        Decay factors (scalar, per-channel, or per step): broadcast against ``b``.
    b : array_like
        Inputs; the recurrence runs along ``axis`` of the broadcast of ``a`` and ``b``.
    axis : int, optional
        The time axis (default the last).
    h0 : array_like, optional
        State before the first step; broadcasts to the shape of ``broadcast(a, b)``
        without ``axis`` (default 0).
    reverse : bool, optional
        Run backwards: ``h_t = a_t · h_{t+1} + b_t`` from the last step, with ``h0``
        the state after it.
    check_finite : bool or None, optional
        Check the inputs for NaN and infinity. ``None`` (default) checks on the CPU
        and skips the check on the GPU, where it would force a host synchronisation.

    Returns
    -------
    h : ndarray
        The states, shape ``broadcast(a, b)``, dtype the
        promotion of ``a``, ``b`` and ``h0`` (float32, float64, complex64, complex128).
        Same array library as the inputs.

    Raises
    ------
    ValueError
        Shapes that do not broadcast, ``axis`` out of range, NaN/inf with ``check_finite``.

    Notes
    -----
    The associative scan of MATH E1: the pairs ``(a_t, b_t)`` combine as
    ``(a₂, b₂)•(a₁, b₁) = (a₂a₁, a₂b₁ + b₂)`` and ``h_t`` is the ``b``-part of the
    inclusive scan. O(L) work per sequence. On the CPU each sequence (or block of 64
    adjacent sequences when ``axis`` is not the last) runs on its own core; on the GPU
    long sequences are split into chunks scanned by separate thread blocks (three
    passes: chunk aggregates, the carry across chunks, the chunk scans), for ``L`` up
    to 2²⁰ and beyond.

    Examples
    --------
    An exponential moving average is a linear recurrence, i.e. an IIR filter:

    >>> import numpy as np, scipy.signal
    >>> import structla
    >>> x = np.random.default_rng(0).standard_normal((3, 100))
    >>> h = structla.linear_scan(0.9, 0.1 * x)
    >>> np.allclose(h, scipy.signal.lfilter([0.1], [1.0, -0.9], x, axis=-1))
    True
    """
    xp = array_namespace(a=a, b=b, h0=h0)
    dtype = result_dtype(a, b, h0)
    work = compute_dtype(dtype)
    a = as_array(a, "a", xp)
    b = as_array(b, "b", xp)
    h0 = None if h0 is None else as_array(h0, "h0", xp)
    shape = _broadcast("shapes of a and b", a=a.shape, b=b.shape)
    if not shape:
        raise ValueError("linear_scan needs at least one dimension (the time axis); a and b are scalars")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"argument 'axis' must be an integer; got {axis!r}") from None
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"argument 'axis' is {axis}, out of range for the shape {shape}")
    axis %= len(shape)
    state_shape = shape[:axis] + shape[axis + 1:]
    if h0 is not None:
        try:
            h0 = xp.broadcast_to(h0, state_shape)
        except ValueError:
            raise ValueError(f"argument 'h0' must broadcast to the state shape {state_shape} (the shape "
                             f"of a and b without the time axis); got shape {tuple(h0.shape)}") from None
    if checks_finite(check_finite, xp):
        for name, x in (("a", a), ("b", b), ("h0", h0)):
            _check_finite(x, name, xp)
    rows = math.prod(shape[:axis])
    cols = math.prod(shape[axis + 1:])
    a3 = _grouped(a.astype(work, copy=False), shape, axis, xp)
    b3 = _grouped(b.astype(work, copy=False), shape, axis, xp)
    if h0 is None:
        h03 = xp.zeros((rows, cols), dtype=work)
    else:
        h03 = xp.ascontiguousarray(h0.astype(work, copy=False)).reshape(rows, cols)
    out = implementation("scan", "linear_scan", xp)(a3, b3, h03, bool(reverse))
    return out.reshape(shape).astype(dtype, copy=False)


def _grouped(x: Any, shape: tuple[int, ...], axis: int, xp: Any) -> Any:
    """``x`` as a contiguous ``(P, L, Q)`` array (dims before, at, after ``axis``), where a
    group of dimensions that ``x`` broadcasts entirely (e.g. a decay shared over time)
    keeps size 1 instead of being materialised."""
    full = (1,) * (len(shape) - x.ndim) + tuple(x.shape)
    groups = (range(axis), range(axis, axis + 1), range(axis + 1, len(shape)))
    target = list(shape)
    sizes = []
    for group in groups:
        if all(full[i] == 1 for i in group):
            for i in group:
                target[i] = 1
            sizes.append(1)
        else:
            sizes.append(math.prod(shape[i] for i in group))
    return xp.ascontiguousarray(xp.broadcast_to(x.reshape(full), tuple(target))).reshape(tuple(sizes))


def _real_of(dtype: np.dtype) -> np.dtype:
    return np.empty(0, dtype).real.dtype


def _canonical_bc(M: Any, name: str, batch: int, dim: int, nstate: int, length: int,
                  state: np.dtype, xp: Any) -> Any:
    """``B``/``C`` in any of mamba_ssm's layouts → ``(bB, G, N, LB)`` of dtype ``state``."""
    if state.kind == "c" and M.dtype.kind != "c" and M.ndim in (3, 4) and length > 0 \
            and M.shape[-1] == 2 * length:
        # mamba_ssm passes complex B/C of real models as real arrays with (re, im) interleaved in time.
        M = xp.ascontiguousarray(M.astype(_real_of(state), copy=False)).view(state)
    if M.dtype.kind == "c" and state.kind != "c":
        raise TypeError(f"argument {name!r} is complex but A is real; make A complex for a complex model")
    expected = {2: "(D, N)", 3: "(batch, N, L)", 4: "(batch, G, N, L)"}
    if M.ndim not in expected:
        raise ValueError(f"argument {name!r} must have shape (D, N), (batch, N, L) or (batch, G, N, L); "
                         f"got shape {tuple(M.shape)}")
    if M.ndim == 2:
        if tuple(M.shape) != (dim, nstate):
            raise ValueError(f"argument {name!r} (time-invariant) must have shape (D, N) = "
                             f"{(dim, nstate)}; got {tuple(M.shape)}")
        M = M.reshape(1, dim, nstate, 1)
    elif M.ndim == 3:
        M = M[:, None]
    groups = M.shape[1]
    if M.shape[0] not in (1, batch) or M.shape[2] != nstate or M.shape[3] not in (1, length) \
            or groups == 0 or dim % groups:
        raise ValueError(f"argument {name!r} must have shape {expected[3]} = {(batch, nstate, length)} "
                         f"or {expected[4]} with G dividing D = {dim}; got {tuple(M.shape)}")
    return M.astype(state, copy=False)


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any = None, z: Any = None, *,
                   delta_bias: Any = None, delta_softplus: bool = False, h0: Any = None,
                   return_state: bool = False, check_finite: bool | None = None) -> Any:
    r"""Mamba's selective scan (S6), with mamba_ssm's shapes and semantics.

    For each batch ``b``, channel ``d`` and state ``n``::

        Δ = softplus(delta + delta_bias)             (softplus only if delta_softplus)
        h[t] = exp(Δ[t]·A[d, n]) · h[t−1] + Δ[t]·B[n, t]·u[t]
        y[t] = Σ_n C[n, t]·h[t] + D[d]·u[t]          (2·Re(Σ_n …) when A is complex)
        out  = y · silu(z)                           (if z is given)

    Parameters
    ----------
    u : (batch, D, L) array_like
        Input sequence of each channel.
    delta : (batch, D, L) array_like
        Step sizes Δ before ``delta_bias`` and softplus.
    A : (D, N) array_like
        Diagonal state matrix of each channel, real (Mamba: ``−exp(A_log)``) or complex
        (each mode stands for a conjugate pair; the output is then ``2·Re``).
    B, C : array_like
        Input and output projections: ``(batch, N, L)`` selective (one per step, shared
        by the channels), ``(batch, G, N, L)`` grouped (channel ``d`` uses group
        ``d // (D // G)``), or ``(D, N)`` time-invariant. With complex ``A`` they may
        be complex ``(…, L)`` or real ``(…, 2L)`` with real/imaginary parts interleaved
        in time (mamba_ssm's layout). A batch size of 1 broadcasts.
    D : (D,) array_like, optional
        Skip connection.
    z : (batch, D, L) array_like, optional
        Gate: the output is multiplied by ``silu(z) = z·sigmoid(z)``.
    delta_bias : (D,) array_like, optional
        Added to ``delta`` before the softplus.
    delta_softplus : bool, optional
        Apply ``softplus(x) = log(1 + eˣ)`` to the biased ``delta``.
    h0 : (batch, D, N) array_like, optional
        Initial state (default 0).
    return_state : bool, optional
        Also return the state after the last step.
    check_finite : bool or None, optional
        Check the inputs for NaN and infinity. ``None`` (default) checks on the CPU
        and skips the check on the GPU.

    Returns
    -------
    out : (batch, D, L) ndarray
        Real; dtype the promotion of the inputs' real dtypes (float16 computes in float32).
    last_state : (batch, D, N) ndarray
        Only with ``return_state``; complex when ``A`` is complex.

    Raises
    ------
    ValueError
        Shapes that disagree (the message names the argument and the expected shape),
        NaN/inf with ``check_finite``.
    TypeError
        Complex ``u``, ``delta``, ``z``, ``D`` or ``delta_bias``, or complex ``B``/``C``/``h0``
        with real ``A``.

    Notes
    -----
    MATH E2: ZOH for ``A`` and Euler for ``B`` (``B̄ = Δ·B``), exactly as mamba_ssm's
    ``selective_scan_ref``; ``exp(ΔA)`` is evaluated in the compute precision (float32
    or float64), and underflows cleanly to 0 for very negative ``ΔA`` (e.g. Δ = 10³,
    A = −10³). Any N (no limit of 256). O(batch·D·L·N) work, O(batch·D·N) extra memory:
    the ``(batch, D, L, N)`` tensors of the reference are never formed. CPU: one task
    per (batch, channel) streaming over time with its N states; GPU: a block per
    (batch, channel group), time processed in chunks with warp-level scans inside a
    chunk and the state carried between chunks, or, with many channels (batch·D ≥ 8192),
    real states, 9 ≤ N ≤ 16 and time-varying B, C, four lanes per channel each walking the
    whole sequence with 4 of its states in registers.

    Examples
    --------
    With constant Δ and time-invariant B, C every state is an IIR filter of ``u``:

    >>> import numpy as np, scipy.signal
    >>> import structla
    >>> rng = np.random.default_rng(0)
    >>> u = rng.standard_normal((1, 2, 50))
    >>> delta = np.full((1, 2, 50), 0.1)
    >>> A = -np.array([[1.0, 2.0], [0.5, 3.0]])
    >>> B, C = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    >>> y = structla.selective_scan(u, delta, A, B, C)
    >>> def iir(d, n):  # h[t] = exp(0.1·A) h[t−1] + 0.1·B·u[t], weighted by C
    ...     return C[d, n] * scipy.signal.lfilter([0.1 * B[d, n]], [1.0, -np.exp(0.1 * A[d, n])], u[0, d])
    >>> ref = np.stack([iir(d, 0) + iir(d, 1) for d in range(2)])
    >>> np.allclose(y[0], ref)
    True
    """
    xp = array_namespace(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, h0=h0)
    for name, x in (("u", u), ("delta", delta), ("z", z), ("D", D), ("delta_bias", delta_bias)):
        if x is not None and np.dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).kind == "c":
            raise TypeError(f"argument {name!r} must be real; got a complex array")
    dtype = result_dtype(u, delta, A, B, C, D, z, delta_bias, h0)
    real = compute_dtype(_real_of(dtype))
    out_real = _real_of(dtype)
    A = as_array(A, "A", xp)
    complex_model = A.dtype.kind == "c"
    state = np.result_type(real, np.complex64) if complex_model else real
    u = as_array(u, "u", xp, real)
    delta = as_array(delta, "delta", xp, real)
    if u.ndim != 3:
        raise ValueError(f"argument 'u' must have shape (batch, D, L); got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"argument 'delta' must have the shape of u {tuple(u.shape)}; "
                         f"got {tuple(delta.shape)}")
    if A.ndim != 2 or A.shape[0] != dim:
        raise ValueError(f"argument 'A' must have shape (D, N) with D = {dim}; got shape {tuple(A.shape)}")
    nstate = A.shape[1]
    A = A.astype(state, copy=False)
    B = _canonical_bc(as_array(B, "B", xp), "B", batch, dim, nstate, length, state, xp)
    C = _canonical_bc(as_array(C, "C", xp), "C", batch, dim, nstate, length, state, xp)
    if D is not None:
        D = as_array(D, "D", xp, real)
        if D.shape != (dim,):
            raise ValueError(f"argument 'D' must have shape (D,) = ({dim},); got {tuple(D.shape)}")
    if delta_bias is not None:
        delta_bias = as_array(delta_bias, "delta_bias", xp, real)
        if delta_bias.shape != (dim,):
            raise ValueError(f"argument 'delta_bias' must have shape (D,) = ({dim},); "
                             f"got {tuple(delta_bias.shape)}")
    if z is not None:
        z = as_array(z, "z", xp, real)
        if z.shape != u.shape:
            raise ValueError(f"argument 'z' must have the shape of u {tuple(u.shape)}; got {tuple(z.shape)}")
    if h0 is not None:
        h0 = as_array(h0, "h0", xp)
        if h0.dtype.kind == "c" and not complex_model:
            raise TypeError("argument 'h0' is complex but A is real")
        if h0.shape != (batch, dim, nstate):
            raise ValueError(f"argument 'h0' must have shape (batch, D, N) = {(batch, dim, nstate)}; "
                             f"got {tuple(h0.shape)}")
        h0 = h0.astype(state, copy=False)
    if checks_finite(check_finite, xp):
        for name, x in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z),
                        ("delta_bias", delta_bias), ("h0", h0)):
            _check_finite(x, name, xp)
    y, h = implementation("scan", "selective_scan", xp)(
        u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), h0)
    y = y.astype(out_real, copy=False)
    if not return_state:
        return y
    return y, h.astype(np.result_type(out_real, np.complex64) if complex_model else out_real, copy=False)


def deer(f: Any, x0: Any, u: Any, *, jac: Any = None, max_iter: int | None = None,
         tol: float | None = None, return_info: bool = False, check_finite: bool | None = None) -> Any:
    r"""Solve the nonlinear recurrence ``x_t = f(x_{t−1}, u_t)`` by Newton iterations of scans (DEER).

    Parameters
    ----------
    f : callable
        ``f(x, u)`` evaluated for all steps at once: ``x`` ``(..., L, d)`` holds
        ``x_{t−1}``, ``u`` ``(..., L, m)`` holds ``u_t``; returns ``(..., L, d)``.
    x0 : (..., d) array_like
        The state before the first step (``x_{−1}``).
    u : (..., L, m) array_like
        Inputs; batch dimensions broadcast with those of ``x0``.
    jac : callable, optional
        ``jac(x, u)`` → ``∂f/∂x`` at every step: ``(..., L, d)`` for a diagonal Jacobian
        (elementwise ``f``; each iteration is one :func:`linear_scan`) or
        ``(..., L, d, d)`` dense (each iteration an associative scan of d×d matrices).
        Arrays that broadcast are fine, e.g. a constant ``W[None]`` of shape
        ``(1, d, d)`` (the "perturbative" variant). Default: dense forward differences
        (d extra evaluations of ``f`` per iteration).
    max_iter : int, optional
        Iteration limit (default ``L``: enough for the exact answer, see Notes).
    tol : float, optional
        Stop when ``max|x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾| ≤ tol · max(1, max|x⁽ᵏ⁾|)``; default ``eps**0.8``
        of the dtype (3e-13 in float64, 3e-6 in float32).
    return_info : bool, optional
        Also return an :class:`~structla.IterationInfo`.
    check_finite : bool or None, optional
        Check ``x0`` and ``u`` for NaN and infinity (default on the CPU).

    Returns
    -------
    x : (..., L, d) ndarray
        ``x_0 … x_{L−1}``; dtype the promotion of ``x0`` and ``u``.
    info : IterationInfo
        Only with ``return_info``: iterations, the last update as error estimate,
        whether the tolerance was met, the method.

    Warns
    -----
    NotConvergedWarning
        ``max_iter`` < L iterations did not meet ``tol``, or the iteration produced NaN/inf.

    Notes
    -----
    MATH F5. Iteration k solves the linearisation around the previous trajectory,
    ``x_t = J_t x_{t−1} + f(x̂_{t−1}, u_t) − J_t x̂_{t−1}``, a linear recurrence (a scan).
    With the exact Jacobian this is Newton's method (quadratic convergence: a
    contractive tanh RNN, d = 4, needs 8–9 iterations for L = 10² … 10⁴, the last one
    confirming an update at rounding level). For any
    ``J`` the first k states are exact after k iterations, so the iteration ends
    after at most ``L`` iterations with the sequential answer (finite termination).
    Cost per iteration: one evaluation of ``f`` and ``jac`` and a scan, O(L·d)
    (diagonal) or O(L·log L·d³) (dense).

    Examples
    --------
    >>> import numpy as np
    >>> import structla
    >>> rng = np.random.default_rng(0)
    >>> W = 0.5 * rng.standard_normal((4, 4)) / 2
    >>> u = rng.standard_normal((200, 4))
    >>> f = lambda x, u: np.tanh(x @ W.T + u)
    >>> jac = lambda x, u: (1 - np.tanh(x @ W.T + u) ** 2)[..., :, None] * W
    >>> x, info = structla.deer(f, np.zeros(4), u, jac=jac, return_info=True)
    >>> loop = [np.zeros(4)]
    >>> for t in range(200):
    ...     loop.append(np.tanh(W @ loop[-1] + u[t]))
    >>> np.allclose(x, loop[1:], rtol=0, atol=1e-12), info.iterations <= 10
    (True, True)
    """
    if not callable(f):
        raise TypeError("argument 'f' must be callable as f(x, u)")
    if jac is not None and not callable(jac):
        raise TypeError("argument 'jac' must be callable as jac(x, u) (or None for finite differences)")
    xp = array_namespace(x0=x0, u=u)
    dtype = compute_dtype(result_dtype(x0, u))
    x0 = as_array(x0, "x0", xp, dtype)
    u = as_array(u, "u", xp)
    if x0.ndim < 1:
        raise ValueError(f"argument 'x0' must have shape (..., d); got shape {tuple(x0.shape)}")
    if u.ndim < 2:
        raise ValueError(f"argument 'u' must have shape (..., L, m); got shape {tuple(u.shape)}")
    _broadcast("batch shapes of x0 and u", x0=tuple(x0.shape[:-1]), u=tuple(u.shape[:-2]))
    length = u.shape[-2]
    if max_iter is None:
        max_iter = length
    max_iter = operator.index(max_iter)
    if max_iter < 0:
        raise ValueError(f"argument 'max_iter' must be non-negative; got {max_iter}")
    if tol is None:
        tol = float(np.finfo(dtype).eps) ** 0.8
    if checks_finite(check_finite, xp):
        _check_finite(x0, "x0", xp)
        _check_finite(u, "u", xp)
    x, (iterations, update, converged, method) = implementation("scan", "deer", xp)(
        f, x0, u, jac, max_iter, float(tol))
    if not converged:
        warnings.warn(
            f"deer stopped after {iterations} iteration(s) with last update {update:.2e} "
            f"(tol {tol:.1e}); L = {length} iterations always reach the sequential answer",
            NotConvergedWarning, stacklevel=2)
    if return_info:
        return x, IterationInfo(iterations=iterations, error_estimate=update, converged=converged,
                                method=method)
    return x
