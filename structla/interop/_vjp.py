"""Vector-Jacobian products of the wrapped routines, on NumPy or CuPy arrays.

These are the analytic backward passes shared by the torch and JAX wrappers. Each one is
built from structla's public forward routines (transposed solves and products, reverse
scans, Cauchy sums, ``msign_vjp``); only elementwise chain-rule factors and reductions are
written here. Conventions are torch's: for a complex input the gradient is the conjugate
Wirtinger derivative ``∂L/∂z̄`` (so ``grad = conj(J)ᵀ · g`` for a holomorphic map), for a real
input the real part of it. Every gradient has exactly the shape of its input: broadcast
batch dimensions are summed back.

Costs match the forward passes: O(n·d·m) for the triangular solves and products, O(L) per
sequence for the scans, O(N·L) for the Cauchy and Vandermonde sums (the squared-denominator
and power sums that have no public forward routine are evaluated in blocks of
``_BLOCK`` nodes, so memory stays O(batch·N·_BLOCK)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import structla
from structla._core.namespace import array_namespace

_BLOCK = 256


def _real_input(x: Any) -> bool:
    return np.dtype(x.dtype).kind != "c"


def _fit(g: Any, like: Any, xp: Any) -> Any:
    """Sum the broadcast dimensions of ``g`` back to ``like.shape``; real part for real inputs."""
    shape = tuple(like.shape)
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (s, t) in enumerate(zip(shape, g.shape, strict=True)) if s == 1 and t != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if _real_input(like) and np.dtype(g.dtype).kind == "c":
        g = g.real
    # ascontiguousarray promotes 0-d to 1-d: reshape back (a scalar step dt has shape ())
    return xp.ascontiguousarray(g.astype(like.dtype, copy=False)).reshape(shape)


def _conj(x: Any) -> Any:
    return x.conj() if np.dtype(x.dtype).kind == "c" else x


def _ctrans(*dtypes: Any) -> str:
    """The conjugate-transpose code for tril routines ('T' suffices for real operands)."""
    return "C" if np.result_type(*dtypes).kind == "c" else "T"


# ----------------------------------------------------------------------------- tril


def _strict_matmul(q: Any, k: Any, x: Any, trans: str, log_decay: Any, xp: Any) -> Any:
    """``tril((Q Kᵀ) ⊙ Γ, -1) @ x`` (or its transpose) by :func:`structla.tril_dlr_matmul`.

    Real operands pass a zero diagonal. Complex ones pass a unit diagonal and subtract x:
    the CPU kernel of ``tril_dlr_matmul`` forms ``1/λ`` even for products, which raises
    ZeroDivisionError for a complex zero (the error this costs is eps·|x|).
    """
    dtype = np.result_type(q.dtype, k.dtype, x.dtype)
    shape = np.broadcast_shapes(q.shape[:-1], k.shape[:-1], x.shape[:-1])
    kw = {"trans": trans, "log_decay": log_decay, "check_finite": False}
    if dtype.kind != "c":
        return structla.tril_dlr_matmul(xp.zeros(shape, dtype=dtype), q, k, x, **kw)
    return structla.tril_dlr_matmul(xp.ones(shape, dtype=dtype), q, k, x, **kw) - x


def _dlr_grads(P: Any, R: Any, diag: Any, q: Any, k: Any, log_decay: Any, xp: Any):
    """Gradients of ``T = diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)``'s parameters from ``∂L/∂T̄ = P Rᴴ``.

    ``P, R`` are ``(..., n, m)``. Only the structured part of ``P Rᴴ`` is ever touched, through
    strictly-lower DLR products of rank m, so the cost is O(n·m·d), never O(n²).
    """
    Rc = _conj(R)
    gdiag = (P * Rc).sum(axis=-1)
    gq = _strict_matmul(P, Rc, _conj(k), "N", log_decay, xp)
    gk = _strict_matmul(P, Rc, _conj(q), "T", log_decay, xp)
    glog = None
    if log_decay is not None:
        # dT_ij/dg_r = T_ij for j < r <= i: the gradient is a prefix sum of (column sum - row sum)
        # of Re(∂L/∂T̄ ⊙ T̄) over the strictly lower part, both sums being DLR products.
        TR = _strict_matmul(q, k, R, "N", log_decay, xp)
        THP = _strict_matmul(q, k, P, _ctrans(q.dtype, k.dtype), log_decay, xp)
        row = (P * _conj(TR)).real.sum(axis=-1)
        col = (Rc * THP).real.sum(axis=-1)
        step = col - row
        glog = xp.concatenate([xp.zeros_like(step[..., :1]), xp.cumsum(step[..., :-1], axis=-1)], axis=-1)
    return gdiag, gq, gk, glog


def _broadcast_tril(diag: Any, q: Any, k: Any, rhs: Any, log_decay: Any, xp: Any):
    vector = rhs.ndim == diag.ndim
    r = rhs[..., None] if vector else rhs
    shapes = [diag.shape[:-1], q.shape[:-2], k.shape[:-2], r.shape[:-2]]
    if log_decay is not None:
        shapes.append(log_decay.shape[:-1])
    batch = np.broadcast_shapes(*shapes)
    n, d = q.shape[-2], q.shape[-1]
    out = {
        "diag": xp.broadcast_to(diag, (*batch, n)),
        "q": xp.broadcast_to(q, (*batch, n, d)),
        "k": xp.broadcast_to(k, (*batch, n, d)),
        "r": xp.broadcast_to(r, (*batch, n, r.shape[-1])),
        "g": None if log_decay is None else xp.broadcast_to(log_decay, (*batch, n)),
    }
    return out, vector


def _trans_code(trans: Any) -> str:
    if trans is False or trans in ("N", "n", 0):
        return "N"
    if trans is True or trans in ("T", "t", 1):
        return "T"
    if trans in ("C", "c", 2):
        return "C"
    raise ValueError(f"argument 'trans' must be False, True, 'N', 'T' or 'C'; got {trans!r}")


def tril_dlr_solve_vjp(gx: Any, x: Any, diag: Any, q: Any, k: Any, b: Any, log_decay: Any = None,
                       trans: Any = False) -> tuple[Any, Any, Any, Any, Any]:
    """Gradients ``(diag, q, k, b, log_decay)`` of ``x = tril_dlr_solve(diag, q, k, b, trans=…)``.

    The adjoint solve ``T⁻ᴴ ḡ`` (one ``tril_dlr_solve``) plus the low-rank outer-product terms
    ``−ḡ xᴴ`` restricted to T's structure (:func:`_dlr_grads`): O(n·d·m).
    """
    xp = array_namespace(gx=gx, x=x, diag=diag, q=q, k=k, b=b, log_decay=log_decay)
    a, vector = _broadcast_tril(diag, q, k, b, log_decay, xp)
    G = gx[..., None] if vector else gx
    X = x[..., None] if vector else x
    code = _trans_code(trans)
    cplx = np.dtype(np.result_type(diag.dtype, q.dtype, k.dtype, b.dtype)).kind == "c"
    solve = structla.tril_dlr_solve
    kw = {"log_decay": a["g"], "check_finite": False}
    if code == "N":
        gb = solve(a["diag"], a["q"], a["k"], G, trans="C" if cplx else "T", **kw)
        P, R = -gb, X
    elif code == "C" or not cplx:
        gb = solve(a["diag"], a["q"], a["k"], G, trans="N", **kw)
        P, R = -X, gb
    else:
        gb = _conj(solve(a["diag"], a["q"], a["k"], _conj(G), trans="N", **kw))
        P, R = -_conj(X), _conj(gb)
    gdiag, gq, gk, glog = _dlr_grads(P, R, a["diag"], a["q"], a["k"], a["g"], xp)
    gb = gb[..., 0] if vector else gb
    return (_fit(gdiag, diag, xp), _fit(gq, q, xp), _fit(gk, k, xp), _fit(gb, b, xp),
            None if log_decay is None else _fit(glog, log_decay, xp))


def tril_dlr_matmul_vjp(gy: Any, diag: Any, q: Any, k: Any, x: Any, log_decay: Any = None,
                        trans: Any = False) -> tuple[Any, Any, Any, Any, Any]:
    """Gradients ``(diag, q, k, x, log_decay)`` of ``y = tril_dlr_matmul(diag, q, k, x, trans=…)``."""
    xp = array_namespace(gy=gy, diag=diag, q=q, k=k, x=x, log_decay=log_decay)
    a, vector = _broadcast_tril(diag, q, k, x, log_decay, xp)
    G = gy[..., None] if vector else gy
    X = a["r"]
    code = _trans_code(trans)
    cplx = np.dtype(np.result_type(diag.dtype, q.dtype, k.dtype, x.dtype)).kind == "c"
    mm = structla.tril_dlr_matmul
    kw = {"log_decay": a["g"], "check_finite": False}
    if code == "N":
        gx = mm(a["diag"], a["q"], a["k"], G, trans="C" if cplx else "T", **kw)
        P, R = G, X
    elif code == "C" or not cplx:
        gx = mm(a["diag"], a["q"], a["k"], G, trans="N", **kw)
        P, R = X, G
    else:
        gx = _conj(mm(a["diag"], a["q"], a["k"], _conj(G), trans="N", **kw))
        P, R = _conj(X), _conj(G)
    gdiag, gq, gk, glog = _dlr_grads(P, R, a["diag"], a["q"], a["k"], a["g"], xp)
    gx = gx[..., 0] if vector else gx
    return (_fit(gdiag, diag, xp), _fit(gq, q, xp), _fit(gk, k, xp), _fit(gx, x, xp),
            None if log_decay is None else _fit(glog, log_decay, xp))


def ut_transform_vjp(gT: Any, Tc: Any, k: Any, beta: Any, log_decay: Any = None) -> tuple[Any, Any, Any]:
    """Gradients ``(k, beta, log_decay)`` of ``Tc = ut_transform(k, beta, log_decay=…)``.

    ``Tc = A⁻¹ diag(β)`` with ``A = I + tril((diag(β) K Kᵀ) ⊙ Γ, -1)``: ``∂L/∂Ā = −Y Tcᴴ`` with
    ``Y = A⁻ᴴ ∂L/∂T̄c`` (one transposed ``tril_dlr_solve`` with C right-hand sides), and
    ``∂L/∂β̄ = diag(Y)`` plus the chain through ``Q_A = diag(β) K``. O(C²·d) per chunk.
    """
    xp = array_namespace(gT=gT, Tc=Tc, k=k, beta=beta, log_decay=log_decay)
    shapes = [k.shape[:-2], beta.shape[:-1], Tc.shape[:-2]]
    if log_decay is not None:
        shapes.append(log_decay.shape[:-1])
    batch = np.broadcast_shapes(*shapes)
    C, d = k.shape[-2], k.shape[-1]
    kb = xp.broadcast_to(k, (*batch, C, d))
    bb = xp.broadcast_to(beta, (*batch, C))
    gb = None if log_decay is None else xp.broadcast_to(log_decay, (*batch, C))
    dtype = np.result_type(kb.dtype, bb.dtype)
    ones = xp.ones((*batch, C), dtype=dtype)
    qa = bb[..., None] * kb
    Y = structla.tril_dlr_solve(ones, qa, kb, gT, trans=_ctrans(dtype), log_decay=gb,
                                check_finite=False)
    _, gqa, gk, glog = _dlr_grads(-Y, Tc, ones, qa, kb, gb, xp)
    gbeta = xp.diagonal(Y, axis1=-2, axis2=-1) + (gqa * _conj(kb)).sum(axis=-1)
    gk = gk + _conj(bb)[..., None] * gqa
    return (_fit(gk, k, xp), _fit(gbeta, beta, xp),
            None if log_decay is None else _fit(glog, log_decay, xp))


# ----------------------------------------------------------------------------- cauchy


def _inverse_square_sums(c: Any, w: Any, z: Any, xp: Any, over: str) -> Any:
    """``Σ_j c_j/(z_j − w_i)²`` for every i (over="nodes") or ``Σ_i c_i/(z_j − w_i)²`` for every j."""
    N, L = w.shape[-1], z.shape[-1]
    batch = np.broadcast_shapes(c.shape[:-1], w.shape[:-1], z.shape[:-1])
    dtype = np.result_type(c.dtype, w.dtype, z.dtype, np.complex64)
    if over == "nodes":
        out = xp.zeros((*batch, N), dtype=dtype)
        for s in range(0, L, _BLOCK):
            diff = z[..., None, s:s + _BLOCK] - w[..., :, None]
            out = out + (c[..., None, s:s + _BLOCK] / (diff * diff)).sum(axis=-1)
        return out
    out = xp.zeros((*batch, L), dtype=dtype)
    for s in range(0, N, _BLOCK):
        diff = z[..., None, :] - w[..., s:s + _BLOCK, None]
        out = out + (c[..., s:s + _BLOCK, None] / (diff * diff)).sum(axis=-2)
    return out


def _cauchy_terms(gk: Any, v: Any, w: Any, z: Any, xp: Any) -> tuple[Any, Any, Any]:
    gkc = _conj(gk)
    gv = -_conj(structla.cauchy(gkc, z, w, check_finite=False))
    gw = _conj(v) * _conj(_inverse_square_sums(gkc, w, z, xp, "nodes"))
    gz = -gk * _conj(_inverse_square_sums(v, w, z, xp, "poles"))
    return gv, gw, gz


def cauchy_vjp(gk: Any, v: Any, w: Any, z: Any, conj_pairs: bool = False) -> tuple[Any, Any, Any]:
    """Gradients ``(v, w, z)`` of ``k = cauchy(v, w, z, conj_pairs=…)``.

    ``∂L/∂v̄ = −conj(cauchy(ḡ, z, w))`` (a Cauchy sum with poles and nodes swapped); the pole and
    node gradients need ``Σ c/(z − w)²``, evaluated in blocks. With ``conj_pairs`` the chain
    runs through the conjugated half as well.
    """
    xp = array_namespace(gk=gk, v=v, w=w, z=z)
    dtype = np.result_type(v.dtype, w.dtype, z.dtype, gk.dtype, np.complex64)
    vc, wc, zc = (x.astype(dtype, copy=False) for x in (v, w, z))
    gv, gw, gz = _cauchy_terms(gk, vc, wc, zc, xp)
    if conj_pairs:
        gv2, gw2, gz2 = _cauchy_terms(gk, vc.conj(), wc.conj(), zc, xp)
        gv, gw, gz = gv + gv2.conj(), gw + gw2.conj(), gz + gz2
    return _fit(gv, v, xp), _fit(gw, w, xp), _fit(gz, z, xp)


# ----------------------------------------------------------------------------- vandermonde


def _power_sums(c: Any, x: Any, length: int, log: bool, derivative: bool, xp: Any) -> Any:
    """``Σ_l c_l p_l(x_i)`` for every i, with ``p_l = x^l`` (``e^{l x}`` when log) or its x-derivative."""
    batch = np.broadcast_shapes(c.shape[:-1], x.shape[:-1])
    dtype = np.result_type(c.dtype, x.dtype, np.complex64)
    out = xp.zeros((*batch, x.shape[-1]), dtype=dtype)
    xe = x[..., :, None]
    for s in range(0, length, _BLOCK):
        ell = xp.arange(s, min(s + _BLOCK, length))
        if log:
            p = xp.exp(xe * ell.astype(x.dtype))
            if derivative:
                p = p * ell
        elif derivative:
            p = xp.power(xe, xp.maximum(ell - 1, 0)) * ell
        else:
            p = xp.power(xe, ell)
        out = out + (c[..., None, s:s + _BLOCK] * p).sum(axis=-1)
    return out


def vandermonde_vjp(gk: Any, v: Any, x: Any, length: int, log: bool = False,
                    conj_pairs: bool = False) -> tuple[Any, Any]:
    """Gradients ``(v, x)`` of ``k = vandermonde(v, x, length, log=…, conj_pairs=…)``.

    ``∂L/∂v̄_i = conj(Σ_l ḡ_l x_iˡ)`` and ``∂L/∂x̄_i = conj(v_i · Σ_l ḡ_l l x_iˡ⁻¹)`` (``l e^{l x_i}``
    when log): the transposed Vandermonde products, evaluated in blocks of powers. With
    ``conj_pairs`` the output is ``2·Re(…)``, whose cotangent on the complex sum is ``2g``.
    """
    xp = array_namespace(gk=gk, v=v, x=x)
    dtype = np.result_type(v.dtype, x.dtype, np.complex64)
    g = (2 * gk if conj_pairs else gk).astype(dtype)
    vc, xc = v.astype(dtype, copy=False), x.astype(dtype, copy=False)
    gc = g.conj()
    gv = _power_sums(gc, xc, length, log, False, xp).conj()
    gx = (vc * _power_sums(gc, xc, length, log, True, xp)).conj()
    return _fit(gv, v, xp), _fit(gx, x, xp)


# ----------------------------------------------------------------------------- hippo

_GBT_ALPHA = {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}


def _phi_prime(zdt: Any, Ad: Any, phi: Any, xp: Any) -> Any:
    """``φ'(z)`` for ``φ(z) = (eᶻ − 1)/z``: ``(eᶻ − φ)/z``, by its Taylor series near 0."""
    small = xp.abs(zdt) < 1e-2
    safe = xp.where(small, 1.0, zdt)
    direct = (Ad - phi) / safe
    series = 0.5 + zdt * (1 / 3 + zdt * (1 / 8 + zdt * (1 / 30 + zdt * (1 / 144 + zdt / 840))))
    return xp.where(small, series, direct)


def ssm_kernel_diag_vjp(gK: Any, a: Any, B: Any, C: Any, dt: Any, length: int, method: str = "zoh",
                        alpha: float | None = None, conj_pairs: bool = True) -> tuple[Any, Any, Any, Any]:
    """Gradients ``(a, B, C, dt)`` of ``ssm_kernel_diag(a, B, C, dt, length, …)``.

    The kernel is ``vandermonde(C·B̄, Δa, log=True)`` (ZOH) or ``vandermonde(C·B̄, Ā)`` (GBT):
    the Vandermonde VJP, then the derivatives of the discretisation, with ``Ā, B̄`` from
    :func:`structla.discretize_diag`. ZOH: ``∂B̄/∂a = Δ²φ'(Δa)B``, ``∂B̄/∂Δ = ĀB``.
    GBT(α): ``∂Ā/∂a = Δ/s²``, ``∂Ā/∂Δ = a/s²``, ``∂B̄/∂a = αΔ²B/s²``, ``∂B̄/∂Δ = B/s²``,
    ``s = 1 − αΔa``.
    """
    xp = array_namespace(gK=gK, a=a, B=B, C=C, dt=dt)
    dt = xp.asarray(dt)
    dtype = np.result_type(a.dtype, B.dtype, C.dtype, np.complex64)
    real = np.empty(0, dtype).real.dtype
    batch = np.broadcast_shapes(a.shape[:-1], B.shape[:-1], C.shape[:-1], dt.shape, gK.shape[:-1])
    N = a.shape[-1]
    ac = xp.broadcast_to(a.astype(dtype), (*batch, N))
    Bc = xp.broadcast_to(B.astype(dtype), (*batch, N))
    Cc = xp.broadcast_to(C.astype(dtype), (*batch, N))
    dtc = xp.broadcast_to(dt.astype(real), batch)[..., None]
    if method == "zoh":
        Ad, Phi = structla.discretize_diag(ac, xp.ones_like(ac), dtc[..., 0], method="zoh",
                                           check_finite=False)
        Bd = Phi * Bc
        v = Cc * Bd
        gv, gx = vandermonde_vjp(gK, v, dtc * ac, length, log=True, conj_pairs=conj_pairs)
        gBd = gv * Cc.conj()
        zdt = dtc * ac
        phi = xp.where(dtc == 0, 1.0, Phi / xp.where(dtc == 0, 1.0, dtc))
        dBd_da = dtc * dtc * _phi_prime(zdt, Ad, phi, xp) * Bc
        ga = gx * dtc + gBd * dBd_da.conj()
        gdt = (gx * ac.conj()).real + (gBd * (Ad * Bc).conj()).real
        gB = gBd * Phi.conj()
    else:
        al = _GBT_ALPHA[method] if method in _GBT_ALPHA else float(alpha)
        Ad, Bd1 = structla.discretize_diag(ac, xp.ones_like(ac), dtc[..., 0], method="gbt", alpha=al,
                                           check_finite=False)
        Bd = Bd1 * Bc
        v = Cc * Bd
        gv, gx = vandermonde_vjp(gK, v, Ad, length, log=False, conj_pairs=conj_pairs)
        gBd = gv * Cc.conj()
        s = 1 - al * dtc * ac
        s2 = s * s
        ga = gx * (dtc / s2).conj() + gBd * (al * dtc * dtc * Bc / s2).conj()
        gdt = (gx * (ac / s2).conj()).real + (gBd * (Bc / s2).conj()).real
        gB = gBd * Bd1.conj()
    gC = gv * Bd.conj()
    gdt = gdt.sum(axis=-1)
    return _fit(ga, a, xp), _fit(gB, B, xp), _fit(gC, C, xp), _fit(gdt, dt, xp)


def _woodbury_cotangents(k: Any, rho: Any, rank: int, xp: Any) -> Any:
    """``∂L/∂k̄`` of the (r+1)² Cauchy sums from ``ρ = ∂L/∂res̄``, ``res = k₀₀ − k₀₁(I + k₁₁)⁻¹k₁₀``.

    With ``a = (I + k₁₁)⁻¹k₁₀`` and ``b = (I + k₁₁ᵀ)⁻¹k₀₁``:
    ``d res = dk₀₀ − dk₀₁·a − bᵀ·dk₁₀ + bᵀ dk₁₁ a``, the outer product of ``(1, −b)`` and
    ``(1, −a)``; ``k`` is ``(..., r+1, r+1, M)``, the result too.
    """
    ones = xp.ones_like(rho)[..., None, :]
    if rank == 0:
        e = f = ones
    else:
        k11 = xp.moveaxis(k[..., 1:, 1:, :], -1, -3)                    # (..., M, r, r)
        system = k11 + xp.eye(rank, dtype=k.dtype)
        a = xp.linalg.solve(system, xp.moveaxis(k[..., 1:, 0, :], -1, -2)[..., None])[..., 0]
        b = xp.linalg.solve(xp.swapaxes(system, -1, -2),
                            xp.moveaxis(k[..., 0, 1:, :], -1, -2)[..., None])[..., 0]
        e = xp.concatenate([ones, -xp.moveaxis(b, -2, -1)], axis=-2)     # (..., r+1, M)
        f = xp.concatenate([ones, -xp.moveaxis(a, -2, -1)], axis=-2)
    return (e[..., :, None, :] * f[..., None, :, :]).conj() * rho[..., None, None, :]


def _generating_vjp(gK: Any, Lam: Any, P: Any, B: Any, Ct: Any, dt: Any, length: int, conj_pairs: bool,
                    real: bool, xp: Any) -> tuple[Any, Any, Any, Any, Any]:
    """Gradients ``(Λ, P, B, C̃, Δ)`` of S4's truncated generating function and its inverse FFT.

    Forward (MATH B2, recomputed here from :func:`structla.cauchy`): at the nodes
    ``g_l = (2i/Δ)·tan(πl/L)``, the (r+1)² Cauchy sums ``k_uv = Σ_i u_i v_i/(g_l − λ_i)`` of
    ``u ∈ (C̃, P̄)``, ``v ∈ (B, P)``, the Woodbury resolvent ``res_l``, ``K̂_l = e^{iθ/2}/cos(θ/2)·res_l``
    (the Nyquist node: ``(Δ/2)·C̃ᵀB``), ``K = irfft(K̂)`` (``ifft`` for complex kernels).
    Backward, stage by stage: the adjoint of the inverse FFT is a forward FFT of ``gK`` (rfft
    bins other than 0 and L/2 count twice), the prefactor conjugated, the Woodbury step by
    :func:`_woodbury_cotangents`, the Cauchy sums by :func:`cauchy_vjp` (one Cauchy sum plus two
    squared-denominator sums per numerator row), and ``∂g/∂Δ = −g/Δ``. All inputs are
    broadcast to one batch shape ``(..., N)`` / ``(..., r, N)`` / ``(...)``. O((r+1)²·N·L).
    """
    N, rank, L = Lam.shape[-1], P.shape[-2], length
    dtype = Lam.dtype
    real_dtype = Lam.real.dtype
    nodes = L // 2 + 1 if real else L
    nyquist = L % 2 == 0
    regular = np.arange(nodes)
    if nyquist:
        regular = regular[regular != L // 2]
    if real:
        weights = np.full(nodes, 2.0 / L)
        weights[0] = 1.0 / L
        if nyquist:
            weights[-1] = 1.0 / L
        gamma = xp.fft.rfft(gK.real, n=L, axis=-1) * xp.asarray(weights, dtype=real_dtype)
    else:
        gamma = xp.fft.fft(gK, n=L, axis=-1) / L
    gamma = gamma.astype(dtype, copy=False)
    half_angle = xp.asarray(np.pi * regular / L, dtype=real_dtype)
    dtc = dt[..., None]
    g = (1j * (2 / dtc) * xp.tan(half_angle)).astype(dtype)
    prefactor = (xp.exp(1j * half_angle) / xp.cos(half_angle)).astype(dtype)
    rho = prefactor.conj() * gamma[..., xp.asarray(regular)]

    left = xp.concatenate([Ct[..., None, :], P.conj()], axis=-2)          # (..., r+1, N)
    right = xp.concatenate([B[..., None, :], P], axis=-2)
    batch = Lam.shape[:-1]
    numerators = (left[..., :, None, :] * right[..., None, :, :]).reshape(*batch, (rank + 1) ** 2, N)
    poles, nodes_g = Lam[..., None, :], g[..., None, :]
    k = structla.cauchy(numerators, poles, nodes_g, conj_pairs=conj_pairs, check_finite=False)
    gk = _woodbury_cotangents(k.reshape(*batch, rank + 1, rank + 1, -1), rho, rank, xp)
    gnum, gLam, gg = cauchy_vjp(gk.reshape(k.shape), numerators, poles, nodes_g, conj_pairs)
    gnum = gnum.reshape(*batch, rank + 1, rank + 1, N)
    gleft = (gnum * right.conj()[..., None, :, :]).sum(axis=-2)
    gright = (gnum * left.conj()[..., :, None, :]).sum(axis=-3)
    gCt, gB = gleft[..., 0, :], gright[..., 0, :]
    gP = gleft[..., 1:, :].conj() + gright[..., 1:, :]
    gdt = -(g.conj() * gg[..., 0, :]).real.sum(axis=-1) / dt
    if nyquist:
        gn = gamma[..., L // 2]
        sigma = (Ct * B).sum(axis=-1)
        if conj_pairs:  # K̂(−1) = Δ·Re σ: a real function of σ
            gsigma = dt * gn.real
            gdt = gdt + gn.real * sigma.real
        else:
            gsigma = dt / 2 * gn
            gdt = gdt + (sigma.conj() / 2 * gn).real
        gCt = gCt + B.conj() * gsigma[..., None]
        gB = gB + Ct.conj() * gsigma[..., None]
    return gLam[..., 0, :], gP, gB, gCt, gdt


def _full(x: Any, conj_pairs: bool, xp: Any) -> Any:
    return xp.concatenate([x, x.conj()], axis=-1) if conj_pairs else x


def _fold(g: Any, n: int, conj_pairs: bool) -> Any:
    """Gradient of the stored modes from that of ``[x, conj(x)]``."""
    return g[..., :n] + g[..., n:].conj() if conj_pairs else g


def _correction_vjp(gCt: Any, Lam: Any, P: Any, C: Any, dt: Any, length: int, conj_pairs: bool,
                    xp: Any, forward_only: bool = False) -> Any:
    """``C Āᴸ`` (stored modes) of the bilinear DPLR system, or the gradients through ``C̃ = C − C Āᴸ``.

    ``Ā = (I − ΔD/2)⁻¹(I + ΔD/2)``, ``D = diag(Λ) − PᵀP̄`` of the whole system, is formed densely
    and ``C Āᴸ`` is applied as a row vector to the repeated squares ``Ā^{2^t}`` (log₂L of
    them). Backward: ``∂L/∂S̄ = v̄ ⊗ ḡ`` for each applied square ``v ← v S``, then down the
    squaring chain (``S' = S S``: ``ḡ_S += ḡ_{S'} Sᴴ + Sᴴ ḡ_{S'}``), then through the solve
    (``ḡ_N = M⁻ᴴ ḡ_Ā``, ``ḡ_M = −ḡ_N Āᴴ``) to ``D``: ``∂Λ = diag(ḡ_D)``,
    ``∂P = −P(ḡ_Dᵀ + conj(ḡ_D))``. O(N³·log L) per channel, like the GPU forward; no
    N×L temporary. Returns ``(∂Λ, ∂P, ∂C, ∂Δ)`` (the C̃ cotangent already subtracted).
    """
    N = Lam.shape[-1]
    Lf, Pf, Cf = _full(Lam, conj_pairs, xp), _full(P, conj_pairs, xp), _full(C, conj_pairs, xp)
    n = Lf.shape[-1]
    D = -xp.matmul(xp.swapaxes(Pf, -1, -2), Pf.conj())
    D = D + Lf[..., None] * xp.eye(n, dtype=D.dtype)
    h = (dt / 2)[..., None, None]
    eye = xp.eye(n, dtype=D.dtype)
    M = eye - h * D
    Ad = xp.linalg.solve(M, eye + h * D) if n else xp.broadcast_to(eye, D.shape)
    squares = [Ad]
    while 2 ** len(squares) <= length:
        squares.append(xp.matmul(squares[-1], squares[-1]))
    v, applied = Cf, []
    for t, S in enumerate(squares):
        if length >> t & 1:
            applied.append((t, v))
            v = xp.matmul(v[..., None, :], S)[..., 0, :]
    if forward_only:
        return v[..., :N]
    gv = xp.concatenate([-gCt, xp.zeros_like(gCt)], axis=-1) if conj_pairs else -gCt
    gS = [xp.zeros_like(S) for S in squares]
    for t, before in reversed(applied):
        gS[t] = gS[t] + before.conj()[..., :, None] * gv[..., None, :]
        gv = xp.matmul(squares[t].conj(), gv[..., None])[..., 0]
    for t in range(len(squares) - 1, 0, -1):
        S = squares[t - 1]
        SH = xp.swapaxes(S, -1, -2).conj()
        gS[t - 1] = gS[t - 1] + xp.matmul(gS[t], SH) + xp.matmul(SH, gS[t])
    gN = xp.linalg.solve(xp.swapaxes(M, -1, -2).conj(), gS[0]) if n else gS[0]
    gdiff = gN + xp.matmul(gN, xp.swapaxes(Ad, -1, -2).conj())           # ḡ_N − ḡ_M
    gD = h * gdiff
    gLf = xp.diagonal(gD, axis1=-2, axis2=-1)
    gPf = -xp.matmul(Pf, xp.swapaxes(gD, -1, -2) + gD.conj())
    gdt = (D.conj() * gdiff).real.sum(axis=(-2, -1)) / 2
    return (_fold(gLf, N, conj_pairs), _fold(gPf, N, conj_pairs), gCt + _fold(gv, N, conj_pairs), gdt)


def ssm_kernel_dplr_vjp(gK: Any, Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int,
                        conj_pairs: bool = True, c_tilde: bool = False) -> tuple[Any, Any, Any, Any, Any]:
    """Gradients ``(Lambda, P, B, C, dt)`` of ``ssm_kernel_dplr(Lambda, P, B, C, dt, length, …)``.

    The generating-function stage (Cauchy sums, Woodbury, bilinear prefactor, Nyquist node,
    inverse FFT) is differentiated by :func:`_generating_vjp`: O((r+1)²·N·L) time, memory
    O(batch·(r+1)²·N·256) for the blocked squared-denominator sums. With ``c_tilde=False``
    the chain continues through ``C̃ = C − C Āᴸ`` (:func:`_correction_vjp`, dense N×N).
    """
    xp = array_namespace(gK=gK, Lambda=Lambda, P=P, B=B, C=C, dt=dt)
    dt = xp.asarray(dt)
    base = np.result_type(Lambda.dtype, P.dtype, B.dtype, C.dtype, dt.dtype)
    real = bool(conj_pairs) or base.kind == "f"
    dtype = np.result_type(base, np.complex64)
    real_dtype = np.empty(0, dtype).real.dtype
    batch = np.broadcast_shapes(Lambda.shape[:-1], P.shape[:-2], B.shape[:-1], C.shape[:-1], dt.shape,
                                gK.shape[:-1])
    N, rank = Lambda.shape[-1], P.shape[-2]
    Lam = xp.broadcast_to(Lambda.astype(dtype), (*batch, N))
    Pm = xp.broadcast_to(P.astype(dtype), (*batch, rank, N))
    Bv = xp.broadcast_to(B.astype(dtype), (*batch, N))
    Cv = xp.broadcast_to(C.astype(dtype), (*batch, N))
    dtb = xp.broadcast_to(dt.astype(real_dtype), batch)
    gK = xp.broadcast_to(gK, (*batch, length))
    if length == 0:
        zeros = [xp.zeros_like(x) for x in (Lam, Pm, Bv, Cv, dtb)]
        return tuple(_fit(z, x, xp) for z, x in zip(zeros, (Lambda, P, B, C, dt), strict=True))
    Ct = Cv if c_tilde else Cv - _correction_vjp(None, Lam, Pm, Cv, dtb, length, conj_pairs, xp,
                                                 forward_only=True)
    gLam, gP, gB, gC, gdt = _generating_vjp(gK, Lam, Pm, Bv, Ct, dtb, length, conj_pairs, real, xp)
    if not c_tilde:
        hLam, hP, gC, hdt = _correction_vjp(gC, Lam, Pm, Cv, dtb, length, conj_pairs, xp)
        gLam, gP, gdt = gLam + hLam, gP + hP, gdt + hdt
    return _fit(gLam, Lambda, xp), _fit(gP, P, xp), _fit(gB, B, xp), _fit(gC, C, xp), _fit(gdt, dt, xp)


# ----------------------------------------------------------------------------- matfun


def msign_vjp(gX: Any, M: Any) -> Any:
    """Gradient of ``X = msign(M)``: :func:`structla.msign_vjp` (MATH D5)."""
    xp = array_namespace(gX=gX, M=M)
    return _fit(structla.msign_vjp(M, gX, check_finite=False), M, xp)


# ----------------------------------------------------------------------------- scan


def _shift_next(a: Any, axis: int, xp: Any) -> Any:
    """``a_{t+1}`` along ``axis`` (0 after the last step): the coefficients of the adjoint scan."""
    a = xp.moveaxis(a, axis, -1)
    out = xp.concatenate([a[..., 1:], xp.zeros_like(a[..., :1])], axis=-1)
    return xp.moveaxis(out, -1, axis)


def _shift_prev(h: Any, h0: Any, axis: int, xp: Any) -> Any:
    """``h_{t−1}`` along ``axis`` with ``h_{−1} = h0``."""
    h = xp.moveaxis(h, axis, -1)
    first = xp.zeros_like(h[..., :1]) if h0 is None else xp.broadcast_to(h0, h.shape[:-1])[..., None]
    out = xp.concatenate([first.astype(h.dtype), h[..., :-1]], axis=-1)
    return xp.moveaxis(out, -1, axis)


def linear_scan_vjp(gh: Any, h: Any, a: Any, b: Any, h0: Any = None, axis: int = -1,
                    reverse: bool = False) -> tuple[Any, Any, Any]:
    """Gradients ``(a, b, h0)`` of ``h = linear_scan(a, b, h0=…, axis=…)``: one reverse scan.

    ``ḡ_t = g_t + ā_{t+1} ḡ_{t+1}`` is ``∂L/∂b̄_t``; then ``∂L/∂ā_t = ḡ_t h̄_{t−1}`` and
    ``∂L/∂h̄₀ = ā₀ ḡ₀`` (mirrored when ``reverse``).
    """
    xp = array_namespace(gh=gh, h=h, a=a, b=b, h0=h0)
    axis %= h.ndim
    af = xp.broadcast_to(a, h.shape).astype(h.dtype, copy=False)
    if reverse:
        af, gh_, h_ = xp.flip(af, axis), xp.flip(gh, axis), xp.flip(h, axis)
    else:
        gh_, h_ = gh, h
    coef = _conj(_shift_next(af, axis, xp))
    gb = structla.linear_scan(coef, gh_, axis=axis, reverse=True, check_finite=False)
    ga = gb * _conj(_shift_prev(h_, h0, axis, xp))
    gh0 = xp.take(_conj(af) * gb, 0, axis=axis)
    if reverse:
        gb, ga = xp.flip(gb, axis), xp.flip(ga, axis)
    return (_fit(ga, a, xp), _fit(gb, b, xp), None if h0 is None else _fit(gh0, h0, xp))


def _expand_bc(M: Any, batch: int, dim: int, length: int, xp: Any) -> Any:
    """``B``/``C`` of a real model in any mamba_ssm layout as ``(batch|1, D, N, L|1)``."""
    if M.ndim == 2:
        return M[None, :, :, None]
    if M.ndim == 3:
        M = M[:, None]
    return xp.repeat(M, dim // M.shape[1], axis=1)


def _fold_bc(g: Any, M: Any, dim: int, xp: Any) -> Any:
    """Sum a ``(batch, D, N, L)`` gradient back to ``M``'s layout."""
    if M.ndim == 2:
        return g.sum(axis=(0, 3))
    groups = 1 if M.ndim == 3 else M.shape[1]
    g = g.reshape(g.shape[0], groups, dim // groups, *g.shape[2:]).sum(axis=2)
    if M.shape[-1] == 1:
        g = g.sum(axis=-1, keepdims=True)
    if M.shape[0] == 1:
        g = g.sum(axis=0, keepdims=True)
    return g if M.ndim == 4 else g[:, 0]


def selective_scan_vjp(gout: Any, u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any = None, z: Any = None,
                       delta_bias: Any = None, delta_softplus: bool = False, h0: Any = None):
    """Gradients ``(u, delta, A, B, C, D, z, delta_bias, h0)`` of :func:`structla.selective_scan`.

    Real A. The states are recomputed with one :func:`structla.linear_scan` and the adjoint
    states with one reverse scan, ``ḡ_t = C_t g_t + e^{Δ_{t+1}A} ḡ_{t+1}``; the parameter
    gradients are then elementwise products summed over the broadcast axes. Memory
    O(batch·D·N·L) (the states of the backward pass, as mamba_ssm's reference).
    """
    xp = array_namespace(gout=gout, u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, h0=h0)
    if np.dtype(A.dtype).kind == "c":
        raise NotImplementedError("gradients of selective_scan with a complex A are not implemented")
    batch, dim, length = u.shape
    dtype = gout.dtype
    pre = delta if delta_bias is None else delta + delta_bias[:, None]
    dlt = xp.logaddexp(0, pre) if delta_softplus else pre
    Bx, Cx = _expand_bc(B, batch, dim, length, xp), _expand_bc(C, batch, dim, length, xp)
    dA = xp.exp(dlt[:, :, None, :] * A[None, :, :, None])             # (b, D, N, L)
    x = (dlt * u)[:, :, None, :] * Bx
    h = structla.linear_scan(dA, x, axis=-1, h0=None if h0 is None else h0.astype(dtype),
                             check_finite=False)
    y = (Cx * h).sum(axis=2)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        sig = 1 / (1 + xp.exp(-z))
        gy = gout * z * sig
        gz = gout * y * sig * (1 + z * (1 - sig))
    else:
        gy, gz = gout, None
    gh = Cx * gy[:, :, None, :]
    gx = structla.linear_scan(_shift_next(dA, -1, xp), gh, axis=-1, reverse=True, check_finite=False)
    gdA = gx * _shift_prev(h, h0, -1, xp) * dA
    gdlt = (gdA * A[None, :, :, None]).sum(axis=2) + (gx * Bx).sum(axis=2) * u
    gA = (gdA * dlt[:, :, None, :]).sum(axis=(0, 3))
    gu = (gx * Bx).sum(axis=2) * dlt
    gB = _fold_bc(gx * (dlt * u)[:, :, None, :], B, dim, xp)
    gC = _fold_bc(gy[:, :, None, :] * h, C, dim, xp)
    gD = None
    if D is not None:
        gu = gu + gy * D[:, None]
        gD = (gy * u).sum(axis=(0, 2))
    gpre = gdlt / (1 + xp.exp(-pre)) if delta_softplus else gdlt
    gbias = None if delta_bias is None else gpre.sum(axis=(0, 2))
    gh0 = None if h0 is None else dA[..., 0] * gx[..., 0]
    return (_fit(gu, u, xp), _fit(gpre, delta, xp), _fit(gA, A, xp), _fit(gB, B, xp), _fit(gC, C, xp),
            None if D is None else _fit(gD, D, xp), None if z is None else _fit(gz, z, xp),
            None if gbias is None else _fit(gbias, delta_bias, xp),
            None if h0 is None else _fit(gh0, h0, xp))


# ----------------------------------------------------------------------------- models


def delta_rule_vjp(gO: Any, gS: Any, q: Any, k: Any, v: Any, beta: Any, h0: Any = None):
    """Gradients ``(q, k, v, beta, h0)`` of DeltaNet ``O, S = delta_rule(q, k, v, beta, h0=…)``.

    Through the full-sequence form of MATH F3 with Λ = I, ``Q_A = diag(β)K``:
    ``A U = diag(β)(V − K h0ᵀ)``, ``O = Q h0ᵀ + ((QKᵀ) ⊙ M) U``, ``S = h0 + Uᵀ K``, where
    ``A = I + tril(diag(β) K Kᵀ, -1)``. U is recomputed by one ``tril_dlr_solve`` and every
    product with ``(QKᵀ) ⊙ M`` or A is a ``tril_dlr_matmul``/``tril_dlr_solve``, so the cost is
    O(T·d_k·d_v) time and O(T·(d_k + d_v)) memory: no T×T matrix is formed.
    ``gS`` (the cotangent of the final state) may be None.
    """
    xp = array_namespace(gO=gO, gS=gS, q=q, k=k, v=v, beta=beta, h0=h0)
    if any(np.dtype(x.dtype).kind == "c" for x in (q, k, v, beta)):
        raise NotImplementedError("gradients of delta_rule are implemented for real inputs")
    shapes = [q.shape[:-2], k.shape[:-2], v.shape[:-2], beta.shape[:-1], gO.shape[:-2]]
    if h0 is not None:
        shapes.append(h0.shape[:-2])
    batch = np.broadcast_shapes(*shapes)
    T, dk, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    Q = xp.broadcast_to(q, (*batch, T, dk))
    K = xp.broadcast_to(k, (*batch, T, dk))
    V = xp.broadcast_to(v, (*batch, T, dv))
    bt = xp.broadcast_to(beta, (*batch, T))
    H0 = None if h0 is None else xp.broadcast_to(h0, (*batch, dv, dk))
    ones = xp.ones((*batch, T), dtype=gO.dtype)
    zero = xp.zeros((*batch, T), dtype=gO.dtype)
    qa = bt[..., None] * K
    rhs = V if H0 is None else V - K @ xp.swapaxes(H0, -1, -2)
    kw = {"check_finite": False}
    U = structla.tril_dlr_solve(ones, qa, K, bt[..., None] * rhs, **kw)
    qk = (Q * K).sum(axis=-1)
    mm = structla.tril_dlr_matmul
    # O = L U with L = (Q Kᵀ) ⊙ M (diagonal included): ∂L/∂U = Lᵀ gO, and L's parameter gradients
    gU = mm(qk, Q, K, gO, trans=True, **kw)
    gOU = (gO * U).sum(axis=-1)
    gq = mm(zero, gO, U, K, **kw) + gOU[..., None] * K
    gk = mm(zero, gO, U, Q, trans=True, **kw) + gOU[..., None] * Q
    gh0 = None
    if gS is not None:
        gSb = xp.broadcast_to(gS, (*batch, dv, dk))
        gU = gU + K @ xp.swapaxes(gSb, -1, -2)
        gk = gk + U @ gSb
    if H0 is not None:
        gq = gq + gO @ H0
        gh0 = xp.swapaxes(gO, -1, -2) @ Q
        if gS is not None:
            gh0 = gh0 + gSb
    # A U = β ⊙ rhs: the adjoint solve, then A's parameters (Q_A = βK, K_A = K) from −gR Uᵀ
    gR = structla.tril_dlr_solve(ones, qa, K, gU, trans=True, **kw)
    gqa = -mm(zero, gR, U, K, **kw)
    gk = gk - mm(zero, gR, U, qa, trans=True, **kw) + bt[..., None] * gqa
    gbeta = (gqa * K).sum(axis=-1) + (gR * rhs).sum(axis=-1)
    gRb = bt[..., None] * gR
    gv = gRb
    if H0 is not None:
        gk = gk - gRb @ H0
        gh0 = gh0 - xp.swapaxes(gRb, -1, -2) @ K
    return (_fit(gq, q, xp), _fit(gk, k, xp), _fit(gv, v, xp), _fit(gbeta, beta, xp),
            None if h0 is None else _fit(gh0, h0, xp))
