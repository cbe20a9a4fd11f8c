"""Fused recurrent CPU kernels for the linear-attention family (MATH F1, F3, F4).

On a CPU the d_v×d_k state of one head fits in L1 cache, so stepping through the sequence
with the state held there costs O(d_v·d_k) per token with no memory traffic beyond reading
q, k, v and writing o: for d up to ~128 this beats the chunked form, whose matrix products
do several times the flops. One task per (batch, head), parallel over them.

The kernels hold the transposed state ``Sᵀ`` (d_k×d_v): the products ``S k`` and ``S q``
then accumulate into vectors over d_v (SIMD lanes), with no horizontal reduction per row.

DeltaNet's sweep over the state is the one place written below the loop level
(:func:`_delta_sweep`, an LLVM-IR intrinsic): Numba's loop vectorizer keeps the two
accumulators in memory and re-checks aliasing at every 8-lane row, which costs 1.6-1.8× on
this loop (measurements in docs/families/models.md).
"""

from __future__ import annotations

import numpy as np

from .._core.jit import JIT_DISABLED, kernel, prange

#: Bytes of one SIMD register the sweep fills (AVX2), and registers per row and step: two
#: keep 2 × (state, u, S k, S q) vectors and three broadcast coefficients in 16 registers.
_VECTOR_BYTES = 32
_VECTORS = 2


def _sweep_python(s, u, kt, kn, qn, a, sk, sq, start):
    """Plain-Python :func:`_delta_sweep` (``STRUCTLA_DISABLE_JIT=1``)."""
    stop = start + _VECTORS * (_VECTOR_BYTES // s.itemsize)
    x = a * s[:, start:stop] + kt[:, None] * u[None, start:stop]
    s[:, start:stop] = x
    sk[start:stop] = kn @ x
    sq[start:stop] = qn @ x


def _sweep_intrinsic(decay):
    """``_delta_sweep(s, u, kt, kn, qn, a, sk, sq, start)``: for the columns
    ``[start, start + width)`` of Sᵀ (``width`` = ``_VECTORS`` SIMD registers) and every row j:
    ``s[j] ← a·s[j] + kt[j]·u``, then ``sk = Σ_j kn[j]·s[j]``, ``sq = Σ_j qn[j]·s[j]`` with the
    sums held in registers across all rows. Arrays must be C-contiguous (checked at typing).
    Without ``decay`` ``a`` is taken as 1 (the ungated rule; the multiply costs 4-9 %)."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _delta_sweep(typingctx, s, u, kt, kn, qn, a, sk, sq, start):
        arrays = (s, u, kt, kn, qn, sk, sq)
        if any(not isinstance(x, types.Array) or x.layout != "C" or x.dtype != s.dtype for x in arrays):
            return None
        if s.ndim != 2 or any(x.ndim != 1 for x in arrays[1:]):
            return None
        if s.dtype not in (types.float32, types.float64):
            return None
        return types.void(s, u, kt, kn, qn, s.dtype, sk, sq, types.intp), _sweep_codegen

    def _sweep_codegen(context, builder, signature, args):
        dtype = signature.args[0].dtype
        fty = context.get_value_type(dtype)
        size = context.get_abi_sizeof(fty)
        lanes = _VECTOR_BYTES // size
        vty = ir.VectorType(fty, lanes)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{lanes}f{8 * size}")
        state, u, kt, kn, qn, sk, sq = (context.make_array(signature.args[i])(context, builder, args[i])
                                        for i in (0, 1, 2, 3, 4, 6, 7))
        a, start = args[5], args[8]
        intp = cgutils.intp_t

        def splat(x):
            v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)

        def vector_at(data, index):
            return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())

        offsets = [builder.add(start, ir.Constant(intp, b * lanes)) for b in range(_VECTORS)]
        u_vec = [builder.load(vector_at(u.data, o), align=size) for o in offsets]
        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes)
        acc_k = [cgutils.alloca_once_value(builder, zero) for _ in range(_VECTORS)]
        acc_q = [cgutils.alloca_once_value(builder, zero) for _ in range(_VECTORS)]
        a_vec = splat(a)
        rows = builder.extract_value(state.shape, 0)
        row_elems = builder.extract_value(state.shape, 1)
        with cgutils.for_range(builder, rows) as loop:
            j = loop.index
            k_j, n_j, m_j = (splat(builder.load(builder.gep(x.data, [j]))) for x in (kt, kn, qn))
            row = builder.mul(j, row_elems)
            for b in range(_VECTORS):
                ptr = vector_at(state.data, builder.add(row, offsets[b]))
                x = builder.load(ptr, align=size)
                x = builder.call(fma, [u_vec[b], k_j, builder.fmul(a_vec, x) if decay else x])
                builder.store(x, ptr, align=size)
                builder.store(builder.call(fma, [x, n_j, builder.load(acc_k[b])]), acc_k[b])
                builder.store(builder.call(fma, [x, m_j, builder.load(acc_q[b])]), acc_q[b])
        for b in range(_VECTORS):
            builder.store(builder.load(acc_k[b]), vector_at(sk.data, offsets[b]), align=size)
            builder.store(builder.load(acc_q[b]), vector_at(sq.data, offsets[b]), align=size)
        return context.get_dummy_value()

    return _delta_sweep


_delta_sweep = _sweep_python if JIT_DISABLED else _sweep_intrinsic(decay=True)
_delta_sweep_ungated = _sweep_python if JIT_DISABLED else _sweep_intrinsic(decay=False)


@kernel
def _delta_head(q, k, v, beta, log_alpha, s, out, nonfinite):
    """One head on 2-D slices (the state ``s`` is Sᵀ, swept by :func:`_delta_sweep`).

    ``nonfinite`` receives the number of NaN/Inf entries met in q, k, v and β: each entry
    is counted in a loop that reads it anyway, so ``check_finite`` costs no extra pass.
    """
    length, dk = q.shape
    dv = v.shape[1]
    sk = np.zeros(dv, dtype=s.dtype)
    sq = np.zeros(dv, dtype=s.dtype)
    u = np.empty(dv, dtype=s.dtype)
    width = _VECTORS * (_VECTOR_BYTES // s.itemsize)
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
        if not np.isfinite(kq):
            # Only a non-finite k·q can come from non-finite entries (or an overflow).
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
        i0 = 0
        while i0 + width <= dv:
            if a == 1:
                _delta_sweep_ungated(s, u, kt, kn, qn, a, sk, sq, i0)
            else:
                _delta_sweep(s, u, kt, kn, qn, a, sk, sq, i0)
            i0 += width
        if i0 < dv:
            for j in range(dk):
                sj = s[j]
                kj = kt[j]
                knj = kn[j]
                qnj = qn[j]
                for i in range(i0, dv):
                    x = a * sj[i] + u[i] * kj
                    sj[i] = x
                    sk[i] += x * knj
                    sq[i] += x * qnj
        a = np.exp(log_alpha[nxt])
        if a != 1:
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
    # The state sweep reads rows as SIMD vectors: C order, one dtype (no copy if already so).
    q, k, v, beta, log_alpha = (np.ascontiguousarray(x, dtype=q.dtype) for x in (q, k, v, beta, log_alpha))
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
