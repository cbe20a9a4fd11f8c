"""Readable linear-recurrence maths on any array namespace (NumPy or CuPy).

These are the fallbacks and the cross-checks of the fast kernels. Inputs arrive
normalised by ``_api.py``:

* ``linear_scan``: ``a``, ``b`` contiguous ``(P, L, Q)`` of the result dtype, each
  axis either full or 1 (broadcast), ``h0`` ``(P, Q)``; the recurrence runs along the
  middle axis.
* ``selective_scan``: ``u``, ``delta``, ``z`` ``(batch, D, L)`` real; ``A`` ``(D, N)``;
  ``B``, ``C`` in the canonical 4-D form ``(bB, G, N, LB)``: ``bB`` is ``batch``
  or 1 (shared), ``G`` divides ``D`` (channel ``d`` uses group ``d // (D // G)``),
  ``LB`` is ``L`` or 1 (time-invariant). Mamba's ``(batch, N, L)`` is
  ``(batch, 1, N, L)`` and the time-invariant ``(D, N)`` is ``(1, D, N, 1)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.namespace import array_namespace

__all__ = ["deer", "dense_scan", "linear_scan", "selective_scan", "softplus"]


def linear_scan(a: Any, b: Any, h0: Any, reverse: bool) -> Any:
    """``h_t = a_t h_{t-1} + b_t`` along axis 1 of ``(P, L, Q)`` arrays (MATH E1)."""
    xp = array_namespace(a=a, b=b, h0=h0)
    shape = tuple(n if m == 1 else m for m, n in zip(a.shape, b.shape, strict=True))
    a, b = xp.broadcast_to(a, shape), xp.broadcast_to(b, shape)
    out = xp.empty_like(b)
    h = h0
    steps = range(b.shape[1] - 1, -1, -1) if reverse else range(b.shape[1])
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    xp = array_namespace(x=x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _expand_groups(M: Any, D: int) -> Any:
    """``(bB, G, N, LB)`` → ``(bB, D, N, LB)``: each channel's own copy of its group."""
    xp = array_namespace(M=M)
    return xp.repeat(M, D // M.shape[1], axis=1)


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any, z: Any,
                   delta_bias: Any, delta_softplus: bool, h0: Any) -> tuple[Any, Any]:
    """Mamba's selective scan (MATH E2) as a loop over time, vectorised over (batch, D, N).

    Returns ``(y, h_last)``. ``y`` is real; with complex ``A`` the output is
    ``2·Re(C·h)`` (each mode stands for a conjugate pair, as in mamba_ssm).
    """
    xp = array_namespace(u=u, delta=delta, A=A, B=B, C=C)
    batch, dim, length = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = softplus(delta)
    Bx = _expand_groups(B, dim)
    Cx = _expand_groups(C, dim)
    h = xp.zeros((batch, dim, A.shape[1]), dtype=A.dtype) if h0 is None else h0.astype(A.dtype)
    y = xp.empty(u.shape, dtype=u.dtype)
    for t in range(length):
        dt = delta[:, :, t, None]
        tb = t if Bx.shape[3] > 1 else 0
        tc = t if Cx.shape[3] > 1 else 0
        h = xp.exp(dt * A) * h + (dt * u[:, :, t, None]) * Bx[:, :, :, tb]
        yt = (h * Cx[:, :, :, tc]).sum(axis=-1)
        y[:, :, t] = 2 * yt.real if xp.iscomplexobj(yt) else yt
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * (z * (0.5 + 0.5 * xp.tanh(0.5 * z)))  # silu without overflow in exp(-z)
    return y, h


def dense_scan(J: Any, c: Any, h0: Any) -> Any:
    """``h_t = J_t h_{t-1} + c_t`` with dense ``J`` ``(..., L, d, d)``, ``c`` ``(..., L, d)``.

    Hillis–Steele associative scan over the pairs ``(J_t, c_t)`` with the
    combination ``(J₂, c₂)•(J₁, c₁) = (J₂J₁, J₂c₁ + c₂)`` (MATH E1): ⌈log₂ L⌉
    rounds of batched matrix products, O(L log L · d³) work, no loop over time.
    """
    length = c.shape[-2]
    # Fold the initial state into the first step: h_0 = J_0 h0 + c_0.
    c = c.copy()
    c[..., 0, :] = c[..., 0, :] + (J[..., 0, :, :] @ h0[..., :, None])[..., 0]
    J = J.copy()
    shift = 1
    while shift < length:
        Jn = J.copy()
        cn = c.copy()
        Jn[..., shift:, :, :] = J[..., shift:, :, :] @ J[..., :-shift, :, :]
        cn[..., shift:, :] = (J[..., shift:, :, :] @ c[..., :-shift, :, None])[..., 0] + c[..., shift:, :]
        J, c = Jn, cn
        shift *= 2
    return c


def _finite_difference_jacobian(f: Any, x: Any, u: Any, fx: Any) -> Any:
    """Dense forward-difference Jacobian ``∂f/∂x`` ``(..., L, d, d)``, one evaluation per column."""
    xp = array_namespace(x=x, fx=fx)
    step = float(np.sqrt(np.finfo(x.dtype).eps))
    columns = []
    for j in range(x.shape[-1]):
        h = step * xp.maximum(1.0, xp.abs(x[..., j]))
        xj = x.copy()
        xj[..., j] = xj[..., j] + h
        columns.append((xp.asarray(f(xj, u), dtype=x.dtype) - fx) / h[..., None])
    return xp.stack(columns, axis=-1)


def deer(f: Any, x0: Any, u: Any, jac: Any, max_iter: int, tol: float) -> tuple[Any, Any]:
    """DEER / quasi-Newton fixed-point iteration for ``x_t = f(x_{t-1}, u_t)`` (MATH F5).

    Each iteration linearises ``f`` around the previous trajectory and solves the
    linear recurrence ``x_t = J_t x_{t-1} + (f(x̂_{t-1}, u_t) − J_t x̂_{t-1})`` with a
    scan (diagonal ``J``: :func:`structla.linear_scan`; dense: :func:`dense_scan`).
    Returns ``(x, (iterations, last_update, converged, method))``.
    """
    from ._api import linear_scan as fast_linear_scan

    xp = array_namespace(x0=x0, u=u)
    length, dim = u.shape[-2], x0.shape[-1]
    shape = (*np.broadcast_shapes(x0.shape[:-1], u.shape[:-2]), length, dim)
    x = xp.broadcast_to(x0[..., None, :], shape).astype(x0.dtype, copy=True)
    first = xp.broadcast_to(x0[..., None, :], (*shape[:-2], 1, dim))
    method = "newton-fd-dense" if jac is None else "newton-dense"
    update, converged, iterations = float("inf"), False, 0
    while iterations < max_iter and length > 0:
        iterations += 1
        previous = xp.concatenate([first, x[..., :-1, :]], axis=-2)
        fx = xp.asarray(f(previous, u), dtype=x.dtype)
        if fx.shape != previous.shape:
            raise ValueError(f"f(x, u) must return an array of shape {previous.shape} (the shape of x); "
                             f"got {fx.shape}")
        J = _finite_difference_jacobian(f, previous, u, fx) if jac is None else jac(previous, u)
        J = xp.asarray(J, dtype=x.dtype)
        if J.ndim == previous.ndim + 1:
            c = fx - (J @ previous[..., None])[..., 0]
            J = xp.broadcast_to(J, (*c.shape, dim))
            new = dense_scan(J, c, xp.broadcast_to(x0, (*shape[:-2], dim)))
            method = "newton-fd-dense" if jac is None else "newton-dense"
        else:
            c = fx - J * previous
            new = fast_linear_scan(J, c, axis=-2, h0=x0, check_finite=False)
            method = "newton-diagonal"
        update = float(xp.abs(new - x).max())
        scale = max(1.0, float(xp.abs(new).max()))
        x = new
        if not np.isfinite(update):
            break
        # After k iterations the first k states are exact (MATH F5): k = L ends the iteration.
        if update <= tol * scale or iterations >= length:
            converged = True
            break
    if length == 0:
        converged, update = True, 0.0
    return x, (iterations, update, converged, method)
