"""Chunkwise and whole-sequence forms of the linear-attention family (MATH F1, F3, F4).

Every product here is a call to a public routine of another family (``ut_transform``,
``tril_dlr_dense``, ``tril_dlr_solve``, ``tril_dlr_matmul``, ``linear_scan``) or an array
product; the only loop is the one over chunks that carries DeltaNet's state, whose
transition is a d_k×d_k matrix (no elementwise scan applies); on the GPU that loop is one
kernel (``_cupy.delta_chunked``, ``models.cu``) for chunks ≤ 64 and d_k ≤ 128. Inputs are what
``_api.py`` prepared: ``(B, T, d)`` arrays of one compute dtype, log-gates floored, ``h0``
``(B, d_v, d_k)``.
"""

from __future__ import annotations

from typing import Any

from .._core.dispatch import implementation
from .._core.namespace import array_namespace, is_cupy_namespace
from ..scan._api import linear_scan
from ..tril._api import tril_dlr_dense, tril_dlr_matmul, tril_dlr_solve, ut_transform

# GLA's in-chunk scores keep one C×C block per key feature; blocks of chunks bound that memory.
_GLA_BLOCK_ELEMENTS = 1 << 22
# Bounds of the fused GPU carry (DELTA_CMAX and DELTA_ROWS of models.cu).
_GPU_MAX_CHUNK = 64
_GPU_MAX_KEY = 128


def _pad_chunks(x: Any, chunk: int, xp: Any) -> Any:
    """``(B, T, …)`` → ``(B, n, chunk, …)``, zero-padded at the end (padded steps are no-ops)."""
    length = x.shape[1]
    n = -(-length // chunk)
    pad = n * chunk - length
    if pad:
        widths = [(0, 0)] * x.ndim
        widths[1] = (0, pad)
        x = xp.pad(x, widths)
    return x.reshape(x.shape[0], n, chunk, *x.shape[2:])


def _chunk_decays(lc: Any, shape: tuple[int, ...], xp: Any, dtype: Any) -> tuple[Any, Any, Any]:
    """In-chunk cumulative log-gates g (float64, so differences stay exact) →
    ``e^{g}``, ``e^{g_last − g}`` (both ≤ 1 for decays) and ``e^{g_last}``; ones when
    ungated (``lc is None``; ``shape`` is then ``(B, n, C)``)."""
    if lc is None:
        ones = xp.ones(shape, dtype=dtype)
        return ones, ones, ones[:, :, 0]
    g = xp.cumsum(lc.astype(xp.float64), axis=2)
    last = g[:, :, -1:]
    return xp.exp(g).astype(dtype), xp.exp(last - g).astype(dtype), xp.exp(last[:, :, 0]).astype(dtype)


def delta_chunked(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, h0: Any, chunk: int) -> tuple[Any, Any]:
    """Chunkwise WY/UT form of (gated) DeltaNet (MATH F3–F4).

    Per chunk, with in-chunk ``g = cumsum(log α)`` and the state S entering the chunk:
    ``T_c = ut_transform(K, β, log α)``, ``W = T_c diag(e^{g}) K``, ``Ũ = T_c V``;
    ``U = Ũ − W Sᵀ``; ``O = diag(e^{g}) Q Sᵀ + A U`` with ``A = (QKᵀ) ⊙ Γ`` (diagonal
    included); ``S ← e^{g_last} S + Uᵀ diag(e^{g_last − g}) K``. Everything except the
    state is batched over all chunks; the state then moves by one product per chunk,
    ``S ← S M_c + B_c`` with ``M_c = e^{g_last} I − Wᵀ diag(e^{g_last − g}) K`` and
    ``B_c = Ũᵀ diag(e^{g_last − g}) K``, and ``O = A Ũ + (diag(e^{g})Q − A W) Sᵀ``.
    """
    xp = array_namespace(q=q, k=k, v=v, beta=beta, log_alpha=log_alpha, h0=h0)
    count, length, dk = q.shape
    if is_cupy_namespace(xp) and chunk <= _GPU_MAX_CHUNK and dk <= _GPU_MAX_KEY:
        fused = implementation("models", "delta_chunked", xp, backend="cuda")
        return fused(q, k, v, beta, log_alpha, h0, chunk)
    dv = v.shape[2]
    dtype = q.dtype
    qc, kc, vc, bc = (_pad_chunks(x, chunk, xp) for x in (q, k, v, beta))
    lc = None if log_alpha is None else _pad_chunks(log_alpha, chunk, xp)
    nchunks = qc.shape[1]
    tc = ut_transform(kc, bc, log_decay=lc, check_finite=False)
    eg, ed, el = _chunk_decays(lc, bc.shape, xp, dtype)
    w = tc @ (eg[..., None] * kc)
    u_tilde = tc @ vc
    a = tril_dlr_dense(xp.sum(qc * kc, axis=-1), qc, kc, log_decay=lc)
    kd = ed[..., None] * kc
    # S ← S M_c + B_c: the d_k×d_k transition of a whole chunk and its input.
    m = -(xp.swapaxes(w, -1, -2) @ kd)
    diag = xp.arange(dk)
    m[..., diag, diag] += el[..., None]
    b = xp.swapaxes(u_tilde, -1, -2) @ kd
    states = xp.empty((count, nchunks, dv, dk), dtype=dtype)
    s = h0.copy()
    nxt = xp.empty_like(h0)
    for c in range(nchunks):
        states[:, c] = s
        xp.matmul(s, m[:, c], out=nxt)
        nxt += b[:, c]
        s, nxt = nxt, s
    out = a @ u_tilde + (eg[..., None] * qc - a @ w) @ xp.swapaxes(states, -1, -2)
    return out.reshape(count, nchunks * chunk, dv)[:, :length], s


def delta_tril(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, h0: Any) -> tuple[Any, Any]:
    """(Gated) DeltaNet as one structured triangular system over the whole sequence.

    With ``G_t = e^{g_t}``, ``g = cumsum(log α)``: ``(I + tril((diag(β)KKᵀ) ⊙ Γ, −1)) U =
    diag(β)(V − diag(G) K S₀ᵀ)`` (``tril_dlr_solve``), ``O = (QKᵀ ⊙ Γ, diagonal included) U
    + diag(G) Q S₀ᵀ`` (``tril_dlr_matmul``), ``S_T = G_{T−1} S₀ + Uᵀ diag(e^{g_{T−1} − g}) K``.
    """
    xp = array_namespace(q=q, k=k, v=v, beta=beta, log_alpha=log_alpha, h0=h0)
    dtype = q.dtype
    ones = xp.ones(beta.shape, dtype=dtype)
    g = _cumulative(log_alpha, beta.shape, xp)
    big_g = xp.exp(g).astype(dtype)[..., None]
    rhs = beta[..., None] * (v - big_g * (k @ xp.swapaxes(h0, -1, -2)))
    u = tril_dlr_solve(ones, beta[..., None] * k, k, rhs, log_decay=log_alpha, check_finite=False)
    out = tril_dlr_matmul(xp.sum(q * k, axis=-1), q, k, u, log_decay=log_alpha, check_finite=False)
    out += big_g * (q @ xp.swapaxes(h0, -1, -2))
    return out, _final_state(k, u, g, h0, xp)


def _cumulative(log_alpha: Any, shape: tuple[int, ...], xp: Any) -> Any:
    """``g = cumsum(log α)`` in float64 (zeros when ungated)."""
    if log_alpha is None:
        return xp.zeros(shape, dtype=xp.float64)
    return xp.cumsum(log_alpha.astype(xp.float64), axis=1)


def _final_state(k: Any, u: Any, g: Any, h0: Any, xp: Any) -> Any:
    """``S_T = e^{g_{T−1}} S₀ + Uᵀ diag(e^{g_{T−1} − g}) K`` (``g`` float64, per step)."""
    dtype = k.dtype
    if g.shape[1] == 0:
        return h0.copy()
    last = g[:, -1:]
    kd = xp.exp(last - g).astype(dtype)[..., None] * k
    return xp.exp(last).astype(dtype)[..., None] * h0 + xp.swapaxes(u, -1, -2) @ kd


def linear_tril(q: Any, k: Any, v: Any, log_alpha: Any, h0: Any) -> tuple[Any, Any]:
    """Linear attention with one decay per step as ``O = ((QKᵀ) ⊙ Γ) V + diag(G) Q S₀ᵀ`` (MATH F1)."""
    xp = array_namespace(q=q, k=k, v=v, log_alpha=log_alpha, h0=h0)
    g = _cumulative(log_alpha, q.shape[:2], xp)
    out = tril_dlr_matmul(xp.sum(q * k, axis=-1), q, k, v, log_decay=log_alpha, check_finite=False)
    out += xp.exp(g).astype(q.dtype)[..., None] * (q @ xp.swapaxes(h0, -1, -2))
    return out, _final_state(k, v, g, h0, xp)


def linear_chunked(q: Any, k: Any, v: Any, log_alpha: Any, h0: Any, chunk: int) -> tuple[Any, Any]:
    """Chunkwise linear attention / GLA (MATH F1), exponents inside a chunk kept ≤ 0 for decays.

    ``log_alpha`` is ``(B, T)`` (one decay per step) or ``(B, T, d_k)`` (GLA). Per chunk,
    with in-chunk ``g = cumsum(log α)``: ``O = (Q ⊙ e^{g}) Sᵀ + A V`` with the in-chunk
    scores ``A_ts = Σ_j q_tj k_sj e^{g_tj − g_sj}`` (t ≥ s), and the chunk states
    ``S_c = S_{c−1} diag(e^{g_last}) + Vᵀ (K ⊙ e^{g_last − g})`` — an elementwise linear
    recurrence over chunks, run by ``linear_scan``. The scores come from
    ``tril_dlr_dense`` (scalar decay), or from it once per key feature (GLA).
    """
    xp = array_namespace(q=q, k=k, v=v, log_alpha=log_alpha, h0=h0)
    count, length, _ = q.shape
    dv = v.shape[2]
    dtype = q.dtype
    per_key = log_alpha is not None and log_alpha.ndim == 3
    qc, kc, vc = (_pad_chunks(x, chunk, xp) for x in (q, k, v))
    lc = None if log_alpha is None else _pad_chunks(log_alpha, chunk, xp)
    nchunks = qc.shape[1]
    eg, ed, el = _chunk_decays(lc, qc.shape[:3], xp, dtype)
    if not per_key:
        eg, ed, el = eg[..., None], ed[..., None], el[..., None]
        a = tril_dlr_dense(xp.sum(qc * kc, axis=-1), qc, kc, log_decay=lc)
    else:
        a = _gla_scores(qc, kc, lc, xp)
    b = xp.swapaxes(vc, -1, -2) @ (ed * kc)
    decay = xp.broadcast_to(el[:, :, None, :], (count, nchunks, 1, el.shape[-1]))
    after = linear_scan(decay, b, axis=1, h0=h0, check_finite=False)
    states = xp.concatenate([h0[:, None], after[:, :-1]], axis=1)
    out = a @ vc + (eg * qc) @ xp.swapaxes(states, -1, -2)
    return out.reshape(count, nchunks * chunk, dv)[:, :length], after[:, -1] if nchunks else h0.copy()


def _gla_scores(qc: Any, kc: Any, lc: Any, xp: Any) -> Any:
    """``A_ts = Σ_j q_tj k_sj Γ^{(j)}_ts`` (t ≥ s, diagonal included), one ``tril_dlr_dense``
    per key feature j, summed; in blocks of chunks so the per-feature blocks stay small."""
    count, nchunks, chunk, dk = qc.shape
    out = xp.empty((count, nchunks, chunk, chunk), dtype=qc.dtype)
    step = max(1, _GLA_BLOCK_ELEMENTS // max(1, count * dk * chunk * chunk))
    for s in range(0, nchunks, step):
        e = min(nchunks, s + step)
        # Key feature j becomes a batch axis: rank-1 factors (…, j, C, 1), decays (…, j, C).
        qj = xp.moveaxis(qc[:, s:e], -1, -2)[..., None]
        kj = xp.moveaxis(kc[:, s:e], -1, -2)[..., None]
        lj = xp.moveaxis(lc[:, s:e], -1, -2)
        dense = tril_dlr_dense(qj[..., 0] * kj[..., 0], qj, kj, log_decay=lj)
        out[:, s:e] = xp.sum(dense, axis=2)
    return out
