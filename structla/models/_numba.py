"""Fused recurrent CPU kernels for the linear-attention family (MATH F1, F3, F4).

On a CPU the d_v×d_k state of one head fits in L1 cache, so stepping through the sequence
with the state held there costs O(d_v·d_k) per token with no memory traffic beyond reading
q, k, v and writing o: for d up to ~128 this beats the chunked form, whose matrix products
do several times the flops. One task per (batch, head), parallel over them.

The kernels hold the transposed state ``Sᵀ`` (d_k×d_v): the products ``S k`` and ``S q``
then accumulate into vectors over d_v (SIMD lanes), with no horizontal reduction per row.
"""

from __future__ import annotations

import numpy as np

from .._core.jit import kernel, prange


@kernel
def _delta_head(q, k, v, beta, log_alpha, s, out, nonfinite):
    """One head: 2-D slices, so that the inner loops vectorise (the state ``s`` is Sᵀ).

    ``nonfinite`` receives the number of NaN/Inf entries met in q, k, v and β: each entry
    is counted in a loop that reads it anyway, so ``check_finite`` costs no extra pass.
    """
    length, dk = q.shape
    dv = v.shape[1]
    sk = np.zeros(dv, dtype=s.dtype)
    sq = np.zeros(dv, dtype=s.dtype)
    u = np.empty(dv, dtype=s.dtype)
    a = np.exp(log_alpha[0])
    for j in range(dk):
        sj = s[j]
        kj = a * k[0, j]
        qj = a * q[0, j]
        for i in range(dv):
            sk[i] += sj[i] * kj
            sq[i] += sj[i] * qj
    bad_q = 0
    bad_k = 0
    bad_v = 0
    bad_b = 0
    for t in range(length):
        kt = k[t]
        qt = q[t]
        vt = v[t]
        ot = out[t]
        nxt = min(t + 1, length - 1)
        kn = k[nxt]
        qn = q[nxt]
        kq = kt[0] * qt[0]
        for j in range(1, dk):
            kq += kt[j] * qt[j]
        for j in range(dk):
            bad_k += not np.isfinite(kt[j])
            bad_q += not np.isfinite(qt[j])
        bt = beta[t]
        bad_b += not np.isfinite(bt)
        for i in range(dv):
            bad_v += not np.isfinite(vt[i])
            ui = bt * (vt[i] - sk[i])
            u[i] = ui
            ot[i] = sq[i] + ui * kq
            sk[i] = 0
            sq[i] = 0
        # One pass over the state per step: the update of step t also forms S_t k_{t+1}
        # and S_t q_{t+1} for the next step (o_t = S_t q_t follows from the rank-1 update).
        # Two rows of Sᵀ at a time: the accumulators are loaded and stored once per two
        # rows and the six broadcast coefficients stay in registers (four or eight rows
        # spill theirs; measured 1.0-1.2x slower, docs/families/models.md).
        j = 0
        while j + 2 <= dk:
            s0 = s[j]
            s1 = s[j + 1]
            k0, k1 = kt[j], kt[j + 1]
            n0, n1 = kn[j], kn[j + 1]
            m0, m1 = qn[j], qn[j + 1]
            for i in range(dv):
                ui = u[i]
                x0 = a * s0[i] + ui * k0
                x1 = a * s1[i] + ui * k1
                s0[i] = x0
                s1[i] = x1
                sk[i] += x0 * n0 + x1 * n1
                sq[i] += x0 * m0 + x1 * m1
            j += 2
        if j < dk:
            sj = s[j]
            kj = kt[j]
            knj = kn[j]
            qnj = qn[j]
            for i in range(dv):
                x = a * sj[i] + u[i] * kj
                sj[i] = x
                sk[i] += x * knj
                sq[i] += x * qnj
        a = np.exp(log_alpha[nxt])
        for i in range(dv):
            sk[i] *= a
            sq[i] *= a
    nonfinite[0] = bad_q
    nonfinite[1] = bad_k
    nonfinite[2] = bad_v
    nonfinite[3] = bad_b


@kernel(parallel=True)
def _delta_steps(q, k, v, beta, log_alpha, st, out, nonfinite):
    for b in prange(q.shape[0]):
        _delta_head(q[b], k[b], v[b], beta[b], log_alpha[b], st[b], out[b], nonfinite[b])


def delta_rule_recurrent_counted(q, k, v, beta, log_alpha, h0):
    """Gated DeltaNet step by step (see ``_reference.delta_rule_recurrent``), fused, and the
    numbers of NaN/Inf entries of q, k, v and β (``_reference.delta_rule_recurrent_counted``)."""
    st = np.ascontiguousarray(np.swapaxes(h0, 1, 2), dtype=q.dtype).copy()
    if not (v.size and q.shape[2]):
        counts = [int(np.count_nonzero(~np.isfinite(x))) for x in (q, k, v, beta)]
        return np.zeros(v.shape, dtype=v.dtype), h0.copy(), counts
    # Every step writes its whole output row, so the output needs no zero fill.
    out = np.empty(v.shape, dtype=v.dtype)
    nonfinite = np.zeros((q.shape[0], 4), dtype=np.int64)
    _delta_steps(q, k, v, beta, log_alpha, st, out, nonfinite)
    return out, np.ascontiguousarray(np.swapaxes(st, 1, 2)), [int(c) for c in nonfinite.sum(axis=0)]


def delta_rule_recurrent(q, k, v, beta, log_alpha, h0):
    """Gated DeltaNet step by step (see ``_reference.delta_rule_recurrent``), fused."""
    out, state, _ = delta_rule_recurrent_counted(q, k, v, beta, log_alpha, h0)
    return out, state


@kernel
def _linear_head(q, k, v, log_alpha, s, out):
    """One head of linear attention / GLA on 2-D slices (the state ``s`` is Sᵀ)."""
    length, dk = q.shape
    dv = v.shape[1]
    per_key = log_alpha.shape[1] == dk
    for t in range(length):
        kt = k[t]
        qt = q[t]
        vt = v[t]
        ot = out[t]
        gates = log_alpha[t]
        for i in range(dv):
            ot[i] = 0
        for j in range(dk):
            a = np.exp(gates[j if per_key else 0])
            sj = s[j]
            kj = kt[j]
            qj = qt[j]
            for i in range(dv):
                x = a * sj[i] + vt[i] * kj
                sj[i] = x
                ot[i] += x * qj


@kernel(parallel=True)
def _linear_steps(q, k, v, log_alpha, st, out):
    for b in prange(q.shape[0]):
        _linear_head(q[b], k[b], v[b], log_alpha[b], st[b], out[b])


def linear_attention_recurrent(q, k, v, log_alpha, h0):
    """Linear attention / GLA step by step (see ``_reference.linear_attention_recurrent``), fused."""
    st = np.ascontiguousarray(np.swapaxes(h0, 1, 2), dtype=q.dtype).copy()
    out = np.zeros(v.shape, dtype=v.dtype)
    gates = log_alpha if log_alpha.ndim == 3 else log_alpha[:, :, None]
    if out.size and q.shape[2]:
        _linear_steps(q, k, v, np.ascontiguousarray(gates), st, out)
    return out, np.ascontiguousarray(np.swapaxes(st, 1, 2))
