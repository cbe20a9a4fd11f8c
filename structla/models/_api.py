"""Linear attention, GLA, DeltaNet and gated DeltaNet on the structla core (MATH F1, F3, F4).

This module checks and broadcasts the arguments and picks a form: the step-by-step
recurrence (``_reference.py``, fused on the CPU in ``_numba.py``), the chunkwise form
(``_chunk.py``, built from ``ut_transform``, ``tril_dlr_dense`` and ``linear_scan``) or the
whole sequence as one structured triangular system (``tril_dlr_solve`` /
``tril_dlr_matmul``). The S4, S4D and Mamba layers are in ``s4.py`` and ``mamba.py``.
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any

import numpy as np

from .._core.batch import broadcast_batch
from .._core.dispatch import defined_names, implementation
from .._core.namespace import array_namespace, is_cupy_namespace
from .._core.validate import as_array, check_ndim, checks_finite, compute_dtype, result_dtype
from .._core.validate import check_finite as _check_finite
from . import _chunk

__all__ = ["delta_rule", "gated_delta_rule", "gated_linear_attention", "linear_attention"]

#: Log-gates below this act as this value: ``exp`` of it is 0 in every dtype, and a floor
#: keeps -inf (a full reset) from turning differences of cumulative sums into NaN.
LOG_GATE_FLOOR = -1.0e4
_MODES = ("auto", "chunk", "recurrent", "tril")
# On the CPU the fused recurrence keeps the d_v×d_k state in L1 and does ~3× fewer flops than
# the chunked form; past this state size the chunked form's BLAS products win.
_CPU_RECURRENT_MAX_STATE = 128 * 128


def _check_mode(mode: str, chunk_size: Any, allowed: tuple[str, ...] = _MODES) -> int:
    if mode not in allowed:
        raise ValueError(f"argument 'mode' must be one of {allowed}; got {mode!r}")
    try:
        chunk = operator.index(chunk_size)
    except TypeError:
        raise TypeError(f"argument 'chunk_size' must be a positive integer; got {chunk_size!r}") from None
    if chunk < 1:
        raise ValueError(f"argument 'chunk_size' must be a positive integer; got {chunk}")
    return chunk


def _prepare(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, h0: Any, check_finite: bool | None,
             per_key: bool) -> tuple[ModuleType, Any, np.dtype, dict[str, Any], bool]:
    """Validate, promote to one compute dtype, broadcast the batch and flatten it.

    The last value says whether q, k, v and β still have to be checked for NaN/Inf: the
    caller does it, so that the fused CPU recurrence can count them while it reads them
    (:func:`_check_sequences`)."""
    xp = array_namespace(q=q, k=k, v=v, beta=beta, log_alpha=log_alpha, h0=h0)
    arrays = {"q": q, "k": k, "v": v, "beta": beta, "log_alpha": log_alpha, "h0": h0}
    arrays = {name: None if x is None else as_array(x, name, xp) for name, x in arrays.items()}
    for name, x in arrays.items():
        if x is not None and x.dtype.kind == "c":
            raise TypeError(f"argument {name!r} must be real; got dtype {x.dtype}")
    dtype = result_dtype(*arrays.values(), real_only=True)
    work = compute_dtype(dtype)
    check_ndim(arrays["q"], "q", 2, "(..., T, d_k)")
    check_ndim(arrays["k"], "k", 2, "(..., T, d_k)")
    check_ndim(arrays["v"], "v", 2, "(..., T, d_v)")
    gate_core = "(t,k)" if per_key else "(t)"
    batch = broadcast_batch(f"(t,k),(t,k),(t,v),(t),{gate_core},(v,k)", **arrays)
    check = checks_finite(check_finite, xp)
    if check:
        _check_finite(arrays["h0"], "h0", xp)
        gates = arrays["log_alpha"]
        if gates is not None and gates.size and bool((xp.isnan(gates) | (gates == xp.inf)).any()):
            raise ValueError("argument 'log_alpha' must not contain NaN or +inf (-inf is allowed: a "
                             "full reset; pass check_finite=False to skip this check)")
    cores = {"q": 2, "k": 2, "v": 2, "beta": 1, "log_alpha": 2 if per_key else 1, "h0": 2}
    flat: dict[str, Any] = {}
    for name, x in arrays.items():
        if x is None:
            flat[name] = None
            continue
        core = cores[name]
        flat[name] = xp.ascontiguousarray(batch.flatten(x, core, xp), dtype=work)
    if flat["log_alpha"] is not None:
        flat["log_alpha"] = xp.maximum(flat["log_alpha"], work.type(LOG_GATE_FLOOR))
    if flat["h0"] is None:
        count, sizes = batch.count, batch.sizes
        flat["h0"] = xp.zeros((count, sizes["v"], sizes["k"]), dtype=work)
    return xp, batch, dtype, flat, check


def _check_sequences(flat: dict[str, Any], xp: ModuleType, counts: Any = None) -> None:
    """NaN/Inf check of the sequences q, k, v (and β): ``counts`` are the numbers of
    non-finite entries found by the fused recurrence; without them the arrays are scanned."""
    names = [name for name in ("q", "k", "v", "beta") if flat.get(name) is not None]
    if counts is None:
        for name in names:
            _check_finite(flat[name], name, xp)
        return
    for name, count in zip(names, counts):
        if count:
            raise ValueError(f"argument {name!r} must not contain infs or NaNs "
                             "(pass check_finite=False to skip this check)")


def _finish(batch: Any, dtype: np.dtype, out: Any, state: Any, return_state: bool) -> Any:
    out = batch.unflatten(out).astype(dtype, copy=False)
    if not return_state:
        return out
    return out, batch.unflatten(state).astype(dtype, copy=False)


def _gpu_has(*names: str) -> bool:
    return all(name in defined_names("tril", "cuda") for name in names)


def _delta(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, chunk_size: Any, h0: Any,
           return_state: bool, mode: str, check_finite: bool | None) -> Any:
    chunk = _check_mode(mode, chunk_size)
    xp, batch, dtype, f, check = _prepare(q, k, v, beta, log_alpha, h0, check_finite, per_key=False)
    dk, dv = batch.sizes["k"], batch.sizes["v"]
    if mode == "auto":
        if not is_cupy_namespace(xp):
            mode = "recurrent" if dk * dv <= _CPU_RECURRENT_MAX_STATE else "chunk"
        elif dk <= _chunk._GPU_MAX_KEY:
            mode = "chunk"  # the state carry is one kernel there (models.cu)
        else:
            mode = "tril" if _gpu_has("tril_dlr_solve", "tril_dlr_matmul") else "chunk"
    args = (f["q"], f["k"], f["v"], f["beta"])
    if check and mode != "recurrent":
        _check_sequences(f, xp)
    if mode == "recurrent":
        gates = f["log_alpha"] if f["log_alpha"] is not None else xp.zeros_like(f["beta"])
        if check:
            # The fused kernel counts NaN/Inf while it reads the inputs: no extra pass.
            run = implementation("models", "delta_rule_recurrent_counted", xp)
            out, state, counts = run(*args, gates, f["h0"])
            _check_sequences(f, xp, counts)
        else:
            out, state = implementation("models", "delta_rule_recurrent", xp)(*args, gates, f["h0"])
    elif mode == "chunk":
        out, state = _chunk.delta_chunked(*args, f["log_alpha"], f["h0"], chunk)
    else:
        out, state = _chunk.delta_tril(*args, f["log_alpha"], f["h0"])
    return _finish(batch, dtype, out, state, return_state)


def _linear(q: Any, k: Any, v: Any, log_alpha: Any, per_key: bool, chunk_size: Any, h0: Any,
            return_state: bool, mode: str, check_finite: bool | None) -> Any:
    allowed = ("auto", "chunk", "recurrent") if per_key else _MODES
    chunk = _check_mode(mode, chunk_size, allowed)
    xp, batch, dtype, f, check = _prepare(q, k, v, None, log_alpha, h0, check_finite, per_key=per_key)
    if check:
        _check_sequences(f, xp)
    dk, dv = batch.sizes["k"], batch.sizes["v"]
    if mode == "auto":
        if not is_cupy_namespace(xp):
            mode = "recurrent" if dk * dv <= _CPU_RECURRENT_MAX_STATE else "chunk"
        else:
            mode = "tril" if not per_key and _gpu_has("tril_dlr_matmul") else "chunk"
    args = (f["q"], f["k"], f["v"])
    if mode == "recurrent":
        gates = f["log_alpha"] if f["log_alpha"] is not None else xp.zeros(f["q"].shape[:2], f["q"].dtype)
        out, state = implementation("models", "linear_attention_recurrent", xp)(*args, gates, f["h0"])
    elif mode == "chunk":
        out, state = _chunk.linear_chunked(*args, f["log_alpha"], f["h0"], chunk)
    else:
        out, state = _chunk.linear_tril(*args, f["log_alpha"], f["h0"])
    return _finish(batch, dtype, out, state, return_state)


_COMMON_PARAMETERS = """chunk_size : int, optional
        Chunk length C of ``mode="chunk"`` (default 64); any sequence length works (the
        last chunk is padded internally).
    h0 : (..., d_v, d_k) array_like, optional
        State before the first step (default 0), column convention ``o_t = S_t q_t``.
    return_state : bool, optional
        Also return the state after the last step, so that a sequence can be processed
        in pieces.
    mode : {"auto", "chunk", "recurrent", "tril"}, optional
        ``"recurrent"``: step by step (the oracle; a fused Numba loop on the CPU).
        ``"chunk"``: the chunkwise form. ``"tril"``: the whole sequence as one structured
        triangular system of the tril family. ``"auto"`` (default): the recurrence on the
        CPU for states up to 128×128 (it keeps the state in cache), else the chunkwise
        form; on the GPU the chunkwise form for the delta rules with d_k ≤ 128 (its chunk
        loop is one kernel), else the tril form when the tril family has GPU kernels, else
        the chunkwise form.
    check_finite : bool, optional
        Check for NaN/Inf (log-gates may be -inf). Default True on NumPy, False on CuPy."""

_COMMON_RETURNS = """o : (..., T, d_v) ndarray
        Same array library as the inputs; dtype the promotion of the inputs (integers
        become float64; float16 computes in float32 and returns float16).
    state : (..., d_v, d_k) ndarray
        Only with ``return_state``: the state after the last step."""

_COMMON_RAISES = """ValueError
        Shapes that do not match or broadcast (the argument is named), a bad ``mode`` or
        ``chunk_size``, NaN/Inf with ``check_finite``.
    TypeError
        Complex inputs, mixed array libraries."""


def delta_rule(q: Any, k: Any, v: Any, beta: Any, *, chunk_size: int = 64, h0: Any = None,
               return_state: bool = False, mode: str = "auto", check_finite: bool | None = None) -> Any:
    """DeltaNet: ``S_t = S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ``, ``o_t = S_t q_t`` (MATH F3).

    Parameters
    ----------
    q, k : (..., T, d_k) array_like
        Queries and keys; keys need not be normalised.
    v : (..., T, d_v) array_like
    beta : (..., T) array_like
        Learning rates β (any real value; β‖k‖² ∈ [0, 2] keeps the state bounded).
    {common}

    Returns
    -------
    {returns}

    Raises
    ------
    {raises}

    Notes
    -----
    The whole sequence solves ``(I + tril(diag(β)KKᵀ, −1)) U = diag(β)V``,
    ``O = ((QKᵀ) ⊙ M) U`` (MATH F3). Chunkwise (WY/UT) form per chunk of C steps with the
    carried state S: ``T_c = ut_transform(K, β)``, ``W = T_c K``, ``U = T_c V − W Sᵀ``,
    ``O = Q Sᵀ + ((QKᵀ) ⊙ tril(1)) U``, ``S ← S + Uᵀ K``; everything but the state update
    (one d_v×d_k by d_k×d_k product per chunk) is batched over all chunks. Cost
    O(T·d_k·d_v) recurrent, O(T·C·d + T·d_k·d_v + T·d_k²) chunked. No normalisation is
    imposed: with raw keys or β > 2 the state can grow, and every form stays equal to the
    recurrence as long as the result is representable.

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import delta_rule
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.standard_normal((2, 100, 8)) for _ in range(3))
    >>> beta = rng.random((2, 100))
    >>> o = delta_rule(q, k, v, beta, chunk_size=16, mode="chunk")
    >>> S = np.zeros((2, 8, 8)); ref = np.empty_like(v)
    >>> for t in range(100):
    ...     u = beta[:, t, None] * (v[:, t] - np.einsum("bij,bj->bi", S, k[:, t]))
    ...     S = S + u[:, :, None] * k[:, t, None, :]
    ...     ref[:, t] = np.einsum("bij,bj->bi", S, q[:, t])
    >>> np.allclose(o, ref)
    True
    """
    return _delta(q, k, v, beta, None, chunk_size, h0, return_state, mode, check_finite)


def gated_delta_rule(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, *, chunk_size: int = 64,
                     h0: Any = None, return_state: bool = False, mode: str = "auto",
                     check_finite: bool | None = None) -> Any:
    """Gated DeltaNet: ``S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ`` (MATH F4).

    Parameters
    ----------
    q, k : (..., T, d_k) array_like
    v : (..., T, d_v) array_like
    beta : (..., T) array_like
    log_alpha : (..., T) array_like
        Log-gates ``log α_t`` (≤ 0 for a decay; 0 is no decay, -inf a full reset; values
        below -10⁴ act as -10⁴).
    {common}

    Returns
    -------
    {returns}

    Raises
    ------
    {raises}

    Notes
    -----
    With in-chunk ``g = cumsum(log α)`` and ``Γ_ts = e^{g_t − g_s}`` (t ≥ s; only these
    differences, ≤ 0 for decays, are exponentiated): ``T_c = ut_transform(K, β, log α)``,
    ``U = T_c V − T_c diag(e^{g}) K Sᵀ``, ``O = diag(e^{g}) Q Sᵀ + ((QKᵀ) ⊙ Γ) U``,
    ``S ← e^{g_last} S + Uᵀ diag(e^{g_last − g}) K`` (MATH F4). The cumulative sums are
    taken in float64. Costs as in :func:`delta_rule`.

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import gated_delta_rule
    >>> rng = np.random.default_rng(1)
    >>> q, k, v = (rng.standard_normal((50, 4)) for _ in range(3))
    >>> beta, la = rng.random(50), np.log(rng.uniform(0.8, 1.0, 50))
    >>> o1, S = gated_delta_rule(q[:20], k[:20], v[:20], beta[:20], la[:20], return_state=True)
    >>> o2 = gated_delta_rule(q[20:], k[20:], v[20:], beta[20:], la[20:], h0=S, mode="chunk")
    >>> np.allclose(np.concatenate([o1, o2]), gated_delta_rule(q, k, v, beta, la, mode="recurrent"))
    True
    """
    return _delta(q, k, v, beta, log_alpha, chunk_size, h0, return_state, mode, check_finite)


def linear_attention(q: Any, k: Any, v: Any, *, log_decay: Any = None, chunk_size: int = 64,
                     h0: Any = None, return_state: bool = False, mode: str = "auto",
                     check_finite: bool | None = None) -> Any:
    """Causal linear attention ``S_t = γ_t S_{t−1} + v_t k_tᵀ``, ``o_t = S_t q_t`` (MATH F1).

    Parameters
    ----------
    q, k : (..., T, d_k) array_like
    v : (..., T, d_v) array_like
    log_decay : (..., T) array_like, optional
        ``log γ_t``, one decay per step (RetNet / Mamba-2 style); none by default.
    {common}

    Returns
    -------
    {returns}

    Raises
    ------
    {raises}

    Notes
    -----
    ``O = ((QKᵀ) ⊙ Γ) V``, ``Γ_ts = Π_{r=s+1..t} γ_r`` (t ≥ s) (MATH F1). Chunked: in-chunk
    scores from ``tril_dlr_dense`` (exponents ``g_t − g_s ≤ 0`` only), the chunk states by
    ``linear_scan`` over chunks — no loop over chunks. The tril form is one
    ``tril_dlr_matmul``. Cost O(T·C·d + T·d_k·d_v).

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import linear_attention
    >>> rng = np.random.default_rng(2)
    >>> q, k, v = (rng.standard_normal((30, 4)) for _ in range(3))
    >>> np.allclose(linear_attention(q, k, v, chunk_size=8, mode="chunk"), np.tril(q @ k.T) @ v)
    True
    """
    return _linear(q, k, v, log_decay, False, chunk_size, h0, return_state, mode, check_finite)


def gated_linear_attention(q: Any, k: Any, v: Any, log_alpha: Any, *, chunk_size: int = 64,
                           h0: Any = None, return_state: bool = False, mode: str = "auto",
                           check_finite: bool | None = None) -> Any:
    """Gated linear attention (GLA): ``S_t = S_{t−1} diag(α_t) + v_t k_tᵀ`` (MATH F1).

    Parameters
    ----------
    q, k : (..., T, d_k) array_like
    v : (..., T, d_v) array_like
    log_alpha : (..., T, d_k) array_like
        Per-feature log-gates ``log α_t`` (≤ 0 for a decay).
    chunk_size, h0, return_state, check_finite
        As in :func:`linear_attention`.
    mode : {"auto", "chunk", "recurrent"}, optional
        As in :func:`linear_attention` (no tril form: the decay is per feature).

    Returns
    -------
    {returns}

    Raises
    ------
    {raises}

    Notes
    -----
    ``o_t = Σ_{s≤t} v_s Σ_j q_tj k_sj e^{ℓ_tj − ℓ_sj}``, ``ℓ = cumsum(log α)`` (MATH F1).
    Chunked, never forming ``Q ⊙ e^{ℓ}`` and ``K ⊙ e^{−ℓ}`` (they overflow): the in-chunk
    scores are one ``tril_dlr_dense`` per key feature (exponents ≤ 0), the chunk states a
    ``linear_scan`` over chunks. Cost O(T·C·d_k + T·C·d_v + T·d_k·d_v).

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import gated_linear_attention
    >>> rng = np.random.default_rng(3)
    >>> q, k, v = (rng.standard_normal((40, 4)) for _ in range(3))
    >>> la = np.log(rng.uniform(0.5, 1.0, (40, 4)))
    >>> l = np.cumsum(la, axis=0)
    >>> scores = np.einsum("tj,sj,tsj->ts", q, k, np.exp(l[:, None] - l[None, :]))
    >>> np.allclose(gated_linear_attention(q, k, v, la, chunk_size=16, mode="chunk"), np.tril(scores) @ v)
    True
    """
    return _linear(q, k, v, log_alpha, True, chunk_size, h0, return_state, mode, check_finite)


for _fn in (delta_rule, gated_delta_rule, linear_attention, gated_linear_attention):
    _fn.__doc__ = (_fn.__doc__ or "").replace("{common}", _COMMON_PARAMETERS).replace(
        "{returns}", _COMMON_RETURNS).replace("{raises}", _COMMON_RAISES)
