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


# ---- cauchy
def cauchy_dense(v, w, z, conj_pairs=False):
    """``Σ_i v_i / (z_j − w_i)`` by float64 broadcasting over a ``(..., N, L)`` temporary.

    Returns ``(k, scale)``: ``scale[..., j] = Σ_i |v_i| (|z_j| + |w_i|) / |z_j − w_i|²`` is the
    componentwise condition of the sum (the error bound of ``cauchy`` is a few ulps of it).
    """
    v, w, z = as_host(v)[..., :, None], as_host(w)[..., :, None], as_host(z)[..., None, :]
    if conj_pairs:
        v, w = np.concatenate([v, v.conj()], axis=-2), np.concatenate([w, w.conj()], axis=-2)
    d = z - w
    k = (v / d).sum(axis=-2)
    scale = (np.abs(v) * (np.abs(z) + np.abs(w)) / np.abs(d) ** 2).sum(axis=-2)
    return k, scale


def vandermonde_dense(v, x, length, log=False, conj_pairs=False):
    """``Σ_i v_i x_i**l`` (``exp(l·x_i)`` if log) by float64 powers of a ``(..., N, L)`` array.

    Returns ``(k, scale)`` with ``scale[..., l] = Σ_i |v_i| |x_i^l| (1 + l·σ_i)``, ``σ = |x|``
    (log) or ``|log x| + 1``: the condition of the terms, including that of the power itself.
    """
    v, x = as_host(v).astype(np.complex128), as_host(x).astype(np.complex128)
    exponent = np.arange(length)
    if log:
        terms = np.exp(x[..., :, None] * exponent)
        s = np.abs(x)
    else:
        terms = x[..., :, None] ** exponent
        with np.errstate(divide="ignore"):
            s = np.where(x == 0, 0.0, np.abs(np.log(np.where(x == 0, 1, x))) + 1)
    k = (v[..., :, None] * terms).sum(axis=-2)
    scale = (np.abs(v[..., :, None] * terms) * (1 + exponent * s[..., :, None])).sum(axis=-2)
    if conj_pairs:
        k, scale = 2 * k.real, 2 * scale
    return k, scale


# ---- sylvester


def sylvester_backward_error(A, B, C, X) -> float:
    """Largest ``‖AX + XB − C‖_F / ((‖A‖_F + ‖B‖_F)‖X‖_F + ‖C‖_F)`` over a batch (float64)."""
    A, B, C, X = (as_host(v) for v in (A, B, C, X))
    fro = lambda v: np.sqrt((np.abs(v) ** 2).sum(axis=(-2, -1)))  # noqa: E731
    r = fro(A @ X + X @ B - C)
    scale = (fro(A) + fro(B)) * fro(X) + fro(C)
    return float(np.max(np.where(scale > 0, r / np.where(scale > 0, scale, 1), r), initial=0.0))


def sylvester_dense(A, B, C) -> np.ndarray:
    """``scipy.linalg.solve_sylvester`` in float64/complex128, looped over a batch."""
    import scipy.linalg

    A, B, C = as_host(A), as_host(B), as_host(C)
    out = loop_batch(scipy.linalg.solve_sylvester, A, B, C, core_ndims=(2, 2, 2))
    return out if out is not None else np.zeros(C.shape)


# ---- hippo


def van_loan_zoh(A, B, dt):
    """Exact ZOH ``(Ā, B̄)`` from ``expm(dt·[[A, B], [0, 0]])`` (Van Loan), one system."""
    import scipy.linalg

    n = A.shape[0]
    block = np.zeros((n + 1, n + 1), dtype=np.result_type(A, B, np.float64))
    block[:n, :n], block[:n, n] = A, B
    E = scipy.linalg.expm(dt * block)
    return E[:n, :n], E[:n, n]


def gbt_dense(A, B, dt, alpha):
    """``(I − αΔA)⁻¹(I + (1−α)ΔA)`` and ``(I − αΔA)⁻¹ΔB`` by dense solves, one system."""
    eye = np.eye(A.shape[0])
    M = eye - alpha * dt * A
    return np.linalg.solve(M, eye + (1 - alpha) * dt * A), np.linalg.solve(M, dt * B)


def kernel_by_powers(Ad, Bd, C, length):
    """``[C @ Āᵏ @ B̄ for k < length]`` by repeated matrix–vector products, one system."""
    out, x = [], Bd
    for _ in range(length):
        out.append(C @ x)
        x = Ad @ x
    return np.array(out)


def ssm_recurrence(Ad, Bd, C, u):
    """``x_t = Ā x_{t−1} + B̄ u_t``, ``y_t = C x_t`` step by step (x₋₁ = 0), one system."""
    x = np.zeros(Ad.shape[0], dtype=np.result_type(Ad, Bd, u))
    y = []
    for ut in u:
        x = Ad @ x + Bd * ut
        y.append(C @ x)
    return np.array(y)


# ---- scan


def linear_scan_loop(a, b, h0=None, reverse=False):
    """``h_t = a_t h_{t-1} + b_t`` along the last axis, one step at a time (float64/complex128)."""
    a, b = np.broadcast_arrays(as_host(a), as_host(b))
    dtype = np.result_type(a, b, np.float64 if h0 is None else as_host(h0))
    out = np.empty(a.shape, dtype=dtype)
    h = np.zeros(a.shape[:-1], dtype=dtype) if h0 is None else np.broadcast_to(as_host(h0), a.shape[:-1])
    steps = range(a.shape[-1] - 1, -1, -1) if reverse else range(a.shape[-1])
    for t in steps:
        h = a[..., t] * h + b[..., t]
        out[..., t] = h
    return out


def _selective_coefficient(M, b, d, t, dim):
    if M.ndim == 2:
        return M[d]
    if M.ndim == 3:
        return M[b if M.shape[0] > 1 else 0, :, t]
    return M[b if M.shape[0] > 1 else 0, d // (dim // M.shape[1]), :, t]


def selective_scan_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        h0=None):
    """mamba_ssm's ``selective_scan_ref`` one (batch, channel, step) at a time in float64.

    B, C: ``(D, N)`` time-invariant, ``(batch, N, L)`` or grouped ``(batch, G, N, L)``
    (complex when A is complex). Returns ``(y, last_state)``.
    """
    u, delta, A, B, C = (as_host(x) for x in (u, delta, A, B, C))
    batch, dim, length = u.shape
    complex_model = np.iscomplexobj(A)
    y = np.zeros((batch, dim, length))
    last = np.zeros((batch, dim, A.shape[1]), dtype=A.dtype)
    for b in range(batch):
        for d in range(dim):
            h = np.zeros(A.shape[1], dtype=A.dtype) if h0 is None else as_host(h0)[b, d].astype(A.dtype)
            for t in range(length):
                dt = delta[b, d, t] + (0.0 if delta_bias is None else float(delta_bias[d]))
                if delta_softplus:
                    dt = np.logaddexp(0.0, dt)
                h = np.exp(dt * A[d]) * h + dt * _selective_coefficient(B, b, d, t, dim) * u[b, d, t]
                out = np.sum(_selective_coefficient(C, b, d, t, dim) * h)
                out = 2 * out.real if complex_model else out
                if D is not None:
                    out += float(D[d]) * u[b, d, t]
                if z is not None:
                    out *= z[b, d, t] * (0.5 + 0.5 * np.tanh(0.5 * z[b, d, t]))  # silu
                y[b, d, t] = out
            last[b, d] = h
    return y, last


def tanh_rnn_loop(W, u, x0):
    """``x_t = tanh(W x_{t-1} + u_t)`` (W ``(d, d)``, or ``(d,)`` elementwise), step by step."""
    W, u, x = as_host(W), as_host(u), as_host(x0)
    out = np.empty(u.shape)
    for t in range(u.shape[-2]):
        x = np.tanh((W @ x if W.ndim == 2 else W * x) + u[t])
        out[t] = x
    return out


# ---- tril
def tril_dlr_dense_oracle(diag, q, k, log_decay=None) -> np.ndarray:
    """``diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` row by row in float64/complex128 (one problem).

    ``Γ_ij = Π_{r=j+1..i} exp(g_r)``, a product of factors, independent of the library's
    cumulative-sum route.
    """
    diag, q, k = as_host(diag), as_host(q), as_host(k)
    n = diag.shape[0]
    factors = np.ones(n) if log_decay is None else np.exp(np.asarray(log_decay, dtype=np.float64))
    t = np.zeros((n, n), dtype=np.result_type(diag, q, k))
    for i in range(n):
        t[i, i] = diag[i]
        # gamma[j] = factors[j+1] * ... * factors[i] for j < i
        gamma = np.cumprod(factors[1 : i + 1][::-1])[::-1]
        t[i, :i] = (k[:i] @ q[i]) * gamma
    return t
