"""cauchy: Cauchy and Vandermonde sums against NumPy broadcasting (CPU) and torch broadcasting
(GPU), both of which materialise the ``batch × poles × L`` temporary that structla streams over.

Sizes follow S4/S4D: conjugate pairs of poles ``w = −½ + iπn`` (S4D-Lin), nodes on the imaginary
axis (the bilinear images of roots of unity, as in S4's DPLR kernel), Vandermonde exponents
``Δ·a`` with Δ = 0.01.
"""

from __future__ import annotations

import importlib.util

import numpy as np

import structla

from ..case import BenchCase

#: torch broadcasting is chunked over the batch so its temporary stays under this many bytes.
TORCH_CHUNK_BYTES = 2**30


def _inputs(size, xp, dtype):
    rng = np.random.default_rng(0)
    batch, n, length = size["batch"], size["N"], size["L"]
    v = rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))
    w = -0.5 + 1j * np.pi * np.arange(n) * rng.uniform(0.9, 1.1, (batch, n))
    # g(ω) = (2/Δ)(1 − ω)/(1 + ω) at ω = exp(−2πil/L), l < L/2: purely imaginary.
    z = 1j * (2 / 0.01) * np.tan(np.pi * np.arange(length) / (2 * length + 2))
    x = 0.01 * w
    return {name: xp.asarray(a, dtype=dtype) for name, a in
            (("v", v), ("w", w), ("z", z), ("x", x))} | {"L": length}


def _numpy_cauchy(inputs):
    v, w, z = inputs["v"], inputs["w"], inputs["z"]
    v, w = np.concatenate([v, v.conj()], axis=-1), np.concatenate([w, w.conj()], axis=-1)
    return (v[:, :, None] / (z - w[:, :, None])).sum(axis=1)


def _numpy_vandermonde(inputs):
    v, x = inputs["v"], inputs["x"]
    exponent = np.arange(inputs["L"], dtype=x.real.dtype)
    return 2 * (v[:, :, None] * np.exp(x[:, :, None] * exponent)).sum(axis=1).real


def _torch_chunks(inputs, itemsize):
    batch, n, length = inputs["v"].shape[0], inputs["v"].shape[1], inputs["L"]
    rows = max(1, TORCH_CHUNK_BYTES // (2 * n * length * itemsize))
    return range(0, batch, rows), rows


def _torch_peer(kind):
    """torch broadcasting on the GPU, chunked over the batch (None without torch)."""
    if importlib.util.find_spec("torch") is None:
        return None

    def run(inputs):
        import torch

        v, w, z, x = (torch.from_dlpack(inputs[k]) for k in ("v", "w", "z", "x"))
        starts, rows = _torch_chunks(inputs, v.element_size())
        parts = []
        for s in starts:
            vv, ww, xx = v[s : s + rows], w[s : s + rows], x[s : s + rows]
            if kind == "cauchy":
                vv = torch.cat([vv, vv.conj()], dim=-1)
                ww = torch.cat([ww, ww.conj()], dim=-1)
                parts.append((vv[:, :, None] / (z - ww[:, :, None])).sum(dim=1))
            else:
                exponent = torch.arange(inputs["L"], device=v.device, dtype=xx.real.dtype)
                parts.append(2 * (vv[:, :, None] * torch.exp(xx[:, :, None] * exponent))
                             .sum(dim=1).real)
        out = torch.cat(parts)
        torch.cuda.synchronize()
        return out

    return run


def _cauchy_flops(size):
    # per pole and node: difference 2, |d|² 3, reciprocal 1, numerator 6, accumulate 2.
    return 14.0 * size["batch"] * 2 * size["N"] * size["L"]


def _vandermonde_flops(size):
    # per pole and node (real part only with conjugate pairs): one complex product-accumulate.
    return 4.0 * size["batch"] * size["N"] * size["L"]


def _bytes(size):
    # complex64 inputs read once, the output written once.
    return 8.0 * (size["batch"] * (2 * size["N"] + size["L"]) + size["L"])


CPU_SIZES = [{"batch": 64, "N": 32, "L": 1024}, {"batch": 64, "N": 32, "L": 4096},
             {"batch": 64, "N": 32, "L": 16384}]
GPU_SIZES = [{"batch": 64, "N": 32, "L": 4096}, {"batch": 1024, "N": 32, "L": 16384}]

CASES = [
    BenchCase(
        routine="cauchy", peer="NumPy broadcasting (conj pairs concatenated)",
        sizes=CPU_SIZES, setup=_inputs,
        ours=lambda a: structla.cauchy(a["v"], a["w"], a["z"], conj_pairs=True),
        peer_fn=_numpy_cauchy, x="L", devices=("cpu",), dtypes=("complex64", "complex128"),
        flops=_cauchy_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="vandermonde", peer="NumPy broadcasting of exp(outer) (log=True, conj pairs)",
        sizes=CPU_SIZES, setup=_inputs,
        ours=lambda a: structla.vandermonde(a["v"], a["x"], a["L"], log=True, conj_pairs=True),
        peer_fn=_numpy_vandermonde, x="L", devices=("cpu",), dtypes=("complex64", "complex128"),
        flops=_vandermonde_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="cauchy", peer="torch broadcasting (chunked over batch)",
        sizes=GPU_SIZES, setup=_inputs,
        ours=lambda a: structla.cauchy(a["v"], a["w"], a["z"], conj_pairs=True),
        peer_fn=_torch_peer("cauchy"), peer_device="gpu", x="L", devices=("gpu",),
        dtypes=("complex64", "complex128"), flops=_cauchy_flops, bytes=_bytes,
    ),
    BenchCase(
        routine="vandermonde", peer="torch broadcasting of exp(outer) (chunked over batch)",
        sizes=GPU_SIZES, setup=_inputs,
        ours=lambda a: structla.vandermonde(a["v"], a["x"], a["L"], log=True, conj_pairs=True),
        peer_fn=_torch_peer("vandermonde"), peer_device="gpu", x="L", devices=("gpu",),
        dtypes=("complex64", "complex128"), flops=_vandermonde_flops, bytes=_bytes,
    ),
]


def interleaved_speedups(size, dtype="complex64", rounds=21):
    """Median of per-round ``peer time / our time`` with the two calls alternating.

    On a shared machine whose load changes from second to second, alternating the calls and
    taking the median of per-round ratios compares them under the same conditions.
    """
    import time

    inputs = _inputs(size, np, dtype)
    result = {}
    for case in CASES[:2]:
        case.ours(inputs)
        ratios = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            case.ours(inputs)
            t1 = time.perf_counter()
            case.peer_fn(inputs)
            t2 = time.perf_counter()
            ratios.append((t2 - t1) / (t1 - t0))
        result[case.routine] = float(np.median(ratios))
    return result


if __name__ == "__main__":
    # issue 4, Must show 5: complex64, batch 64, N = 32 pairs, L = 4096, against NumPy broadcasting
    for routine, speedup in interleaved_speedups(CPU_SIZES[1]).items():
        print(f"{routine}: {speedup:.1f}x faster than NumPy broadcasting (median of 21 rounds)")
