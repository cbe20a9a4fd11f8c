"""Step-by-step recurrent oracles of the sequence models (MATH F1, F3, F4).

Written against the array namespace of the inputs, so they run on NumPy and CuPy. Every
function receives what ``_api.py`` prepared: one flattened batch axis first, one compute
dtype, sequences ``(B, T, d)``, states in the column convention ``S ∈ R^{d_v×d_k}`` with
``o_t = S_t q_t``, and log-gates already floored (never -inf).

They are the ``mode="recurrent"`` path on the GPU and the oracle of the tests.
"""

from __future__ import annotations

from typing import Any

from .._core.namespace import array_namespace


def delta_rule_recurrent(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any, h0: Any) -> tuple[Any, Any]:
    """Gated DeltaNet one step at a time: ``S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ``.

    ``log_alpha`` is ``(B, T)`` (ungated: zeros); ``h0`` is ``(B, d_v, d_k)``. Returns the
    outputs ``o_t = S_t q_t`` ``(B, T, d_v)`` and the last state.
    """
    xp = array_namespace(q=q, k=k, v=v, beta=beta, log_alpha=log_alpha, h0=h0)
    s = h0.copy()
    out = xp.empty(v.shape, dtype=v.dtype)
    for t in range(q.shape[1]):
        s *= xp.exp(log_alpha[:, t, None, None])
        # SGD step on ½‖S k − v‖²: the error of the current prediction, scaled by β.
        u = beta[:, t, None] * (v[:, t] - xp.einsum("bvk,bk->bv", s, k[:, t]))
        s += u[:, :, None] * k[:, t, None, :]
        out[:, t] = xp.einsum("bvk,bk->bv", s, q[:, t])
    return out, s


def delta_rule_recurrent_counted(q: Any, k: Any, v: Any, beta: Any, log_alpha: Any,
                                 h0: Any) -> tuple[Any, Any, list[int]]:
    """:func:`delta_rule_recurrent` and the numbers of NaN/Inf entries of q, k, v and β (the
    fused CPU kernel counts them while it reads the inputs, for ``check_finite``)."""
    xp = array_namespace(q=q, k=k, v=v, beta=beta, log_alpha=log_alpha, h0=h0)
    out, state = delta_rule_recurrent(q, k, v, beta, log_alpha, h0)
    return out, state, [int(xp.count_nonzero(~xp.isfinite(x))) for x in (q, k, v, beta)]


def linear_attention_recurrent(q: Any, k: Any, v: Any, log_alpha: Any, h0: Any) -> tuple[Any, Any]:
    """Linear attention with decay one step at a time: ``S_t = S_{t−1} diag(α_t) + v_t k_tᵀ``.

    ``log_alpha`` is ``(B, T)`` (one decay per step: RetNet/Mamba-2 style, zeros when
    undecayed) or ``(B, T, d_k)`` (GLA, one decay per key feature).
    """
    xp = array_namespace(q=q, k=k, v=v, log_alpha=log_alpha, h0=h0)
    s = h0.copy()
    out = xp.empty(v.shape, dtype=v.dtype)
    per_key = log_alpha.ndim == 3
    for t in range(q.shape[1]):
        if per_key:
            s *= xp.exp(log_alpha[:, t, None, :])
        else:
            s *= xp.exp(log_alpha[:, t, None, None])
        s += v[:, t, :, None] * k[:, t, None, :]
        out[:, t] = xp.einsum("bvk,bk->bv", s, q[:, t])
    return out, s
