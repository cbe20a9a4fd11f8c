"""Fused recurrent CPU kernels for the linear-attention family (MATH F1, F3, F4).

On a CPU the d_v×d_k state of one head fits in L1 cache, so stepping through the sequence
with the state held there costs O(d_v·d_k) per token with no memory traffic beyond reading
q, k, v and writing o: for d up to ~128 this beats the chunked form, whose matrix products
do several times the flops. Linear attention runs one task per (batch, head).

The kernels hold the transposed state ``Sᵀ`` (d_k×d_v): the products ``S k`` and ``S q``
then accumulate into vectors over d_v (SIMD lanes), with no horizontal reduction per row.

DeltaNet: rows of S (columns of Sᵀ) evolve independently, so each block of value columns
runs through the whole sequence as its own task (parallel over heads and blocks). Its pass
over the state is the one place written below the loop level (:func:`_delta_pairs`, an
LLVM-IR intrinsic): it takes two steps per pass, so each state row is loaded and stored
once per two steps — the stores, not the FMAs, bound the one-step pass on this CPU — and
keeps the update vectors and the eight accumulators in registers, which Numba's loop
vectorizer does not (measurements in docs/families/models.md).
"""

from __future__ import annotations

import numpy as np

from .._core.jit import JIT_DISABLED, kernel, prange

#: Bytes of one SIMD register (AVX2) and registers per column block. A block of two
#: registers holds, through a pair of steps, 2 × 2 update vectors and 2 × 4 accumulators
#: (12 of the 16 registers); the rest take the broadcast coefficients of a state row.
_VECTOR_BYTES = 32
_VECTORS = 2
#: Steps per tile (even): every column block of a head passes over a tile while its q, k,
#: v and o rows (64 KB at d = 64, float32) are in L2, so each is read from memory once.
_TILE = 64


@kernel
def _delta_columns_loop(s, q, k, v, beta, log_alpha, out, start):
    """One head's DeltaNet recurrence on the value columns ``[start, start + width)``, one
    step at a time: ``s`` is that ``d_k × width`` block of Sᵀ (updated in place); writes
    ``out[:, start:start + width]``.

    Rows of S (columns of Sᵀ) evolve independently, so a block runs through the sequence on
    its own. With ``sk`` = S_{t−1} k_t and ``sq`` = S_{t−1} q_t from the previous pass:
    ``u = β_t (v_t − α_t sk)``, ``o_t = α_t sq + (k_t·q_t) u``, and one pass over the block
    makes ``S_t = α_t S_{t−1} + u k_tᵀ`` and S_t k_{t+1}, S_t q_{t+1}.
    """
    length, dk = k.shape
    width = s.shape[1]
    sk = np.zeros(width, dtype=s.dtype)
    sq = np.zeros(width, dtype=s.dtype)
    u = np.empty(width, dtype=s.dtype)
    for j in range(dk):
        for i in range(width):
            sk[i] += s[j, i] * k[0, j]
            sq[i] += s[j, i] * q[0, j]
    for t in range(length):
        a = np.exp(log_alpha[t])
        kq = k[t, 0] * q[t, 0]
        for j in range(1, dk):
            kq += k[t, j] * q[t, j]
        nxt = min(t + 1, length - 1)
        for i in range(width):
            u[i] = beta[t] * (v[t, start + i] - a * sk[i])
            out[t, start + i] = a * sq[i] + kq * u[i]
            sk[i] = 0
            sq[i] = 0
        for j in range(dk):
            kj = k[t, j]
            knj = k[nxt, j]
            qnj = q[nxt, j]
            for i in range(width):
                x = a * s[j, i] + u[i] * kj
                s[j, i] = x
                sk[i] += x * knj
                sq[i] += x * qnj


@kernel
def _delta_products(s, k, q, acc):
    """``acc`` ← (S k₀, S k₁, S q₀, S q₁) on the block's columns (``s`` its Sᵀ)."""
    for i in range(s.shape[1]):
        acc[0, i] = 0
        acc[1, i] = 0
        acc[2, i] = 0
        acc[3, i] = 0
    for j in range(s.shape[0]):
        for i in range(s.shape[1]):
            acc[0, i] += s[j, i] * k[0, j]
            acc[1, i] += s[j, i] * k[1, j]
            acc[2, i] += s[j, i] * q[0, j]
            acc[3, i] += s[j, i] * q[1, j]


def _pairs_python(s, acc, k, q, v, beta, gate, kq, kk, kqn, out, start, pairs, ahead):
    """Plain-NumPy :func:`_delta_pairs` (``STRUCTLA_DISABLE_JIT=1``; ``ahead``, a prefetch
    distance, has nothing to do here)."""
    cols = slice(start, start + s.shape[1])
    for t in range(0, 2 * pairs, 2):
        a1, a2 = gate[t], gate[t + 1]
        u1 = beta[t] * (v[t, cols] - a1 * acc[0])
        out[t, cols] = a1 * acc[2] + kq[t] * u1
        w1 = a2 * u1
        u2 = beta[t + 1] * (v[t + 1, cols] - a1 * a2 * acc[1] - kk[t] * w1)
        out[t + 1, cols] = a1 * a2 * acc[3] + kqn[t] * w1 + kq[t + 1] * u2
        s *= a1 * a2
        s += np.outer(k[t], w1) + np.outer(k[t + 1], u2)
        nxt = t + 2 if t + 3 < k.shape[0] else t
        acc[:2] = k[nxt:nxt + 2] @ s
        acc[2:] = q[nxt:nxt + 2] @ s


def _pairs_intrinsic():
    """``_delta_pairs(s, acc, k, q, v, beta, gate, kq, kk, kqn, out, start, pairs, ahead)``:
    steps ``[0, 2·pairs)`` of :func:`_delta_columns_loop` two at a time, for a block of exactly
    ``_VECTORS`` SIMD registers, written in LLVM IR so that the update vectors and the
    accumulators stay in registers. ``gate`` = α_t, ``kq`` = k_t·q_t, ``kk`` = k_t·k_{t+1},
    ``kqn`` = k_t·q_{t+1}; ``acc`` = (P_0, P_1, R_0, R_1) on entry and those of step
    ``2·pairs`` on exit (of step ``2·pairs − 2`` again where k, q have no rows beyond);
    ``ahead`` > 0 prefetches the rows that many steps ahead. Arrays C-contiguous (checked at
    typing).

    One pass over the block per pair of steps t, t+1, from P_i = S k_i, R_i = S q_i of the
    state S before the pair (g = α_t α_{t+1}):
    ``u₁ = β_t (v_t − α_t P_t)``, ``o_t = α_t R_t + (k_t·q_t) u₁``, ``w₁ = α_{t+1} u₁``,
    ``u₂ = β_{t+1} (v_{t+1} − g P_{t+1} − (k_t·k_{t+1}) w₁)``,
    ``o_{t+1} = g R_{t+1} + (k_t·q_{t+1}) w₁ + (k_{t+1}·q_{t+1}) u₂``, then each state row
    ``s[j] ← g s[j] + k_t[j] w₁ + k_{t+1}[j] u₂`` (no multiply when g = 1), accumulating
    the next pair's P and R. Per row and register: one load, one store, 2 + 4 FMAs; the
    store, the costly part of the one-step pass on this CPU, is shared by two steps.
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _delta_pairs(typingctx, s, acc, k, q, v, beta, gate, kq, kk, kqn, out, start, pairs, ahead):
        arrays = (s, acc, k, q, v, beta, gate, kq, kk, kqn, out)
        if any(not isinstance(x, types.Array) or x.layout != "C" or x.dtype != s.dtype for x in arrays):
            return None
        if any(x.ndim != 2 for x in (s, acc, k, q, v, out)) or any(x.ndim != 1 for x in arrays[5:10]):
            return None
        if s.dtype not in (types.float32, types.float64):
            return None
        if not all(isinstance(x, types.Integer) for x in (start, pairs, ahead)):
            return None
        return types.void(*arrays, types.intp, types.intp, types.intp), _codegen

    def _codegen(context, builder, signature, args):
        fty = context.get_value_type(signature.args[0].dtype)
        size = context.get_abi_sizeof(fty)
        lanes = _VECTOR_BYTES // size
        vty = ir.VectorType(fty, lanes)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{lanes}f{8 * size}")
        s, acc, k, q, v, beta, gate, kq, kk, kqn, out = (
            context.make_array(signature.args[i])(context, builder, args[i]) for i in range(11))
        start, pairs, ahead = args[11], args[12], args[13]
        intp = cgutils.intp_t
        i32 = ir.IntType(32)
        bytes_ptr = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [bytes_ptr, i32, i32, i32]), "llvm.prefetch.p0")

        def const(x):
            return ir.Constant(intp, x)

        def at(array, row, col=None):
            if col is None:
                return builder.gep(array.data, [row])
            columns = builder.extract_value(array.shape, 1)
            return builder.gep(array.data, [builder.add(builder.mul(row, columns), col)])

        def vector(ptr):
            return builder.bitcast(ptr, vty.as_pointer())

        def splat(x):
            lane = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            return builder.shuffle_vector(lane, ir.Constant(vty, ir.Undefined), mask)

        def scalar(array, index):
            return splat(builder.load(at(array, index)))

        # P_t, P_{t+1}, R_t, R_{t+1} per register of the block (promoted to registers).
        sums = [[cgutils.alloca_once_value(builder, builder.load(vector(at(acc, const(i), const(b * lanes))),
                                                                  align=size))
                 for b in range(_VECTORS)] for i in range(4)]
        rows = builder.extract_value(k.shape, 1)
        # The next pair's rows, or the pair's own at the end of k and q (products unused).
        last = builder.sub(builder.extract_value(k.shape, 0), const(3))

        def sweep(t, nxt, update, g):
            """Every state row: ``s[j] ← g s[j] + k_t[j] w₁ + k_{t+1}[j] u₂`` (``g`` None: 1),
            then the products with k_nxt, k_{nxt+1}, q_nxt, q_{nxt+1}."""
            nxt1 = builder.add(nxt, const(1))
            with cgutils.for_range(builder, rows) as loop:
                j = loop.index
                # Each coefficient is loaded right before its two FMAs: with all six live at
                # once, the 12 vectors held across the pass no longer fit in 16 registers.
                states = []
                for b in range(_VECTORS):
                    ptr = vector(at(s, j, const(b * lanes)))
                    x = builder.load(ptr, align=size)
                    states.append(x if g is None else builder.fmul(g, x))
                for c, step in ((0, t), (1, builder.add(t, const(1)))):
                    coefficient = splat(builder.load(at(k, step, j)))
                    for b in range(_VECTORS):
                        states[b] = builder.call(fma, [update[b][c], coefficient, states[b]])
                for b in range(_VECTORS):
                    builder.store(states[b], vector(at(s, j, const(b * lanes))), align=size)
                for i, (x, row) in enumerate(((k, nxt), (k, nxt1), (q, nxt), (q, nxt1))):
                    factor = splat(builder.load(at(x, row, j)))
                    for b in range(_VECTORS):
                        total = builder.call(fma, [states[b], factor, builder.load(sums[i][b])])
                        builder.store(total, sums[i][b])

        def fetch(t):
            """Prefetch (into L2) rows ``t + ahead`` and ``t + ahead + 1`` of k, q, v and, for
            writing, of out, where they exist: the next tile, in the first block's pass."""
            row = builder.add(t, ahead)
            exists = builder.icmp_signed("<", builder.add(row, const(1)), builder.extract_value(k.shape, 0))
            with builder.if_then(builder.and_(builder.icmp_signed(">", ahead, const(0)), exists)):
                for array, write in ((k, 0), (q, 0), (v, 0), (out, 1)):
                    columns = builder.extract_value(array.shape, 1)
                    nbytes = builder.mul(columns, const(2 * size))
                    lines = builder.udiv(builder.add(nbytes, const(63)), const(64))
                    base = builder.bitcast(at(array, row, const(0)), bytes_ptr)
                    with cgutils.for_range(builder, lines) as line:
                        address = builder.gep(base, [builder.mul(line.index, const(64))])
                        builder.call(prefetch, [address, ir.Constant(i32, write), ir.Constant(i32, 2),
                                                ir.Constant(i32, 1)])

        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes)
        with cgutils.for_range(builder, pairs) as loop:
            t = builder.mul(loop.index, const(2))
            fetch(t)
            t1 = builder.add(t, const(1))
            following = builder.add(t, const(2))
            nxt = builder.select(builder.icmp_signed("<", t, last), following, t)
            a1 = builder.load(at(gate, t))
            g_scalar = builder.fmul(a1, builder.load(at(gate, t1)))
            a1, a2, g = splat(a1), scalar(gate, t1), splat(g_scalar)
            b1, b2 = scalar(beta, t), scalar(beta, t1)
            kq1, kq2, kk1, kqn1 = scalar(kq, t), scalar(kq, t1), scalar(kk, t), scalar(kqn, t)
            update = []
            for b in range(_VECTORS):
                column = builder.add(start, const(b * lanes))
                p1, p2, r1, r2 = (builder.load(sums[i][b]) for i in range(4))
                v1 = builder.load(vector(at(v, t, column)), align=size)
                v2 = builder.load(vector(at(v, t1, column)), align=size)
                u1 = builder.fmul(b1, builder.fsub(v1, builder.fmul(a1, p1)))
                o1 = builder.call(fma, [kq1, u1, builder.fmul(a1, r1)])
                builder.store(o1, vector(at(out, t, column)), align=size)
                w1 = builder.fmul(a2, u1)
                error = builder.fsub(builder.fsub(v2, builder.fmul(g, p2)), builder.fmul(kk1, w1))
                u2 = builder.fmul(b2, error)
                o2 = builder.call(fma, [kq2, u2, builder.call(fma, [kqn1, w1, builder.fmul(g, r2)])])
                builder.store(o2, vector(at(out, t1, column)), align=size)
                update.append((w1, u2))
                for i in range(4):
                    builder.store(zero, sums[i][b])
            ungated_pair = builder.fcmp_ordered("==", g_scalar, ir.Constant(fty, 1.0))
            with builder.if_else(ungated_pair) as (ungated, gated):
                with ungated:
                    sweep(t, nxt, update, None)
                with gated:
                    sweep(t, nxt, update, g)
        for i in range(4):
            for b in range(_VECTORS):
                ptr = vector(at(acc, const(i), const(b * lanes)))
                builder.store(builder.load(sums[i][b]), ptr, align=size)
        return context.get_dummy_value()

    return _delta_pairs


_delta_pairs = _pairs_python if JIT_DISABLED else _pairs_intrinsic()


@kernel
def _delta_scalars(q, k, v, beta, log_alpha, first, scalars, counts):
    """For the steps ``first + i`` of one head's tile: ``scalars[:, i]`` = (α, k·q,
    k·k_next, k·q_next), and ``counts`` += the NaN/Inf entries of q, k, v and β.

    An entry is counted only where a sum that reads it anyway is not finite (a NaN/Inf
    entry always makes it so), so ``check_finite`` costs no pass of its own. The sums are
    tested by comparison, not by ``np.isfinite``: that computes ``x − x``, which the
    reassociation allowed by the fast-math flags cancels against the sum's own terms.
    """
    length, dk = q.shape
    dv = v.shape[1]
    # Sums from a zero of the arrays' dtype over whole rows: vector loops with no remainder.
    zero = q.dtype.type(0)
    for i in range(min(scalars.shape[1], length - first)):
        t = first + i
        nxt = min(t + 1, length - 1)
        x = zero
        y = zero
        z = zero
        for j in range(dk):
            x += k[t, j] * q[t, j]
            y += k[t, j] * k[nxt, j]
            z += k[t, j] * q[nxt, j]
        scalars[1, i] = x
        scalars[2, i] = y
        scalars[3, i] = z
        if not abs(x) < np.inf:
            for j in range(dk):
                counts[1] += not np.isfinite(k[t, j])
                counts[0] += not np.isfinite(q[t, j])
        w = zero
        for j in range(dv):
            w += v[t, j]
        if not abs(w) < np.inf:
            for j in range(dv):
                counts[2] += not np.isfinite(v[t, j])
        counts[3] += not np.isfinite(beta[t])
        # α = e⁰ = 1 exactly: ungated steps skip the exponential.
        scalars[0, i] = 1 if log_alpha[t] == 0 else np.exp(log_alpha[t])


@kernel
def _delta_head(q, k, v, beta, log_alpha, st, out, counts):
    """One head (``st`` its Sᵀ, updated in place): the column blocks two steps at a time,
    tile by tile; a last odd step and the columns past the last whole block one at a time."""
    length, dk = q.shape
    dv = v.shape[1]
    width = _VECTORS * (_VECTOR_BYTES // st.itemsize)
    blocks = dv // width
    paired = length - length % 2
    # Array-slice assignments cost seconds of compile time each; the copies are loops.
    s = np.empty((blocks, dk, width), dtype=st.dtype)
    acc = np.empty((blocks, 4, width), dtype=st.dtype)
    for c in range(blocks):
        for j in range(dk):
            for i in range(width):
                s[c, j, i] = st[j, c * width + i]
        if paired:
            _delta_products(s[c], k, q, acc[c])
    scalars = np.empty((4, _TILE), dtype=st.dtype)
    for first in range(0, length, _TILE):
        _delta_scalars(q, k, v, beta, log_alpha, first, scalars, counts)
        pairs = (min(first + _TILE, paired) - first) // 2
        for c in range(blocks if pairs > 0 else 0):
            _delta_pairs(s[c], acc[c], k[first:], q[first:], v[first:], beta[first:], scalars[0], scalars[1],
                         scalars[2], scalars[3], out[first:], c * width, pairs, _TILE if c == 0 else 0)
    for c in range(blocks):
        if paired < length:
            _delta_columns_loop(s[c], q[paired:], k[paired:], v[paired:], beta[paired:], log_alpha[paired:],
                                out[paired:], c * width)
        for j in range(dk):
            for i in range(width):
                st[j, c * width + i] = s[c, j, i]
    if blocks * width < dv:
        rest = np.empty((dk, dv - blocks * width), dtype=st.dtype)
        for j in range(dk):
            for i in range(rest.shape[1]):
                rest[j, i] = st[j, blocks * width + i]
        _delta_columns_loop(rest, q, k, v, beta, log_alpha, out, blocks * width)
        for j in range(dk):
            for i in range(rest.shape[1]):
                st[j, blocks * width + i] = rest[j, i]


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
