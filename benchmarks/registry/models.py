"""models: delta_rule against a recurrent NumPy loop (CPU) and fla's chunk_delta_rule (GPU).

``python -m benchmarks.registry.models [--quick]`` (GPU machine) prints the GPU cases with
the error of ours (float32, float16 inputs) and of fla (bf16) against a float64 reference
beside the times.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from structla.models import delta_rule

from ..case import BenchCase


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _delta_inputs(size, xp, dtype):
    """q, k (unit rows), v ``(B, H, T, d)`` and β ``(B, H, T)`` in (0, 1), on ``xp``."""
    rng = np.random.default_rng(0)
    shape = (size.get("B", 1), size["H"], size["T"], size["d"])
    q = rng.standard_normal(shape, dtype=np.float32)
    k = rng.standard_normal(shape, dtype=np.float32)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    v = rng.standard_normal(shape, dtype=np.float32)
    beta = rng.random(shape[:-1], dtype=np.float32)
    return tuple(xp.asarray(a, dtype=dtype) for a in (q, k, v, beta))


def numpy_recurrence(q, k, v, beta):
    """DeltaNet step by step in NumPy, vectorised over batch and heads (the CPU peer)."""
    q, k, v, beta = (_host(a) for a in (q, k, v, beta))
    s = np.zeros((*q.shape[:-2], v.shape[-1], k.shape[-1]), dtype=q.dtype)
    out = np.empty(v.shape, dtype=v.dtype)
    for t in range(q.shape[-2]):
        kt = k[..., t, :]
        u = beta[..., t, None] * (v[..., t, :] - (s @ kt[..., None])[..., 0])
        s += u[..., :, None] * kt[..., None, :]
        out[..., t, :] = (s @ q[..., t, :, None])[..., 0]
    return out


def _delta_flops(size):
    # Per token and head: S k, S q and the rank-1 update, 2 flops per state entry each.
    return 6.0 * size.get("B", 1) * size["H"] * size["T"] * size["d"] ** 2


def _delta_bytes(size):
    # q, k, v, β read and o written once, float32.
    return 4.0 * size.get("B", 1) * size["H"] * size["T"] * (4 * size["d"] + 1)


def _fla_inputs(inputs):
    """Our ``(B, H, T, d)`` arrays → fla's ``(B, T, H, d)`` bf16 torch tensors (zero-copy view, then cast)."""
    import torch

    q, k, v, beta = (torch.from_dlpack(x) for x in inputs)
    return tuple(x.transpose(1, 2).contiguous().to(torch.bfloat16) for x in (q, k, v, beta))


def _fla_peer():
    """fla's ``chunk_delta_rule`` in bf16 on the same data (None when fla is not installed)."""
    if importlib.util.find_spec("fla") is None or importlib.util.find_spec("torch") is None:
        return None
    cache: dict[tuple, tuple] = {}

    def run(inputs):
        from fla.ops.delta_rule import chunk_delta_rule

        key = (id(inputs[0]), tuple(inputs[0].shape), str(inputs[0].dtype))
        if key not in cache:  # the conversion is setup, not part of fla's time
            cache.clear()
            cache[key] = _fla_inputs(inputs)
        q, k, v, beta = cache[key]
        return chunk_delta_rule(q, k, v, beta, scale=1.0)[0]

    return run


GPU_SIZES = [{"B": 4, "H": 16, "T": 4096, "d": 128}, {"B": 1, "H": 16, "T": 16384, "d": 128}]

CASES = [
    BenchCase(
        routine="delta_rule",
        peer="recurrent NumPy loop (batched over B·H)",
        sizes=[{"H": 8, "T": 1024, "d": 64}, {"H": 8, "T": 4096, "d": 64}],
        setup=_delta_inputs,
        ours=lambda inputs: delta_rule(*inputs),
        peer_fn=lambda inputs: numpy_recurrence(*inputs),
        x="T", devices=("cpu",), dtypes=("float32",),
        flops=_delta_flops, bytes=_delta_bytes,
    ),
    BenchCase(
        routine="delta_rule (mode='chunk')",
        peer="recurrent NumPy loop (batched over B·H)",
        sizes=[{"H": 8, "T": 1024, "d": 64}, {"H": 8, "T": 4096, "d": 64}],
        setup=_delta_inputs,
        ours=lambda inputs: delta_rule(*inputs, mode="chunk"),
        peer_fn=lambda inputs: numpy_recurrence(*inputs),
        x="T", devices=("cpu",), dtypes=("float32",),
        flops=_delta_flops, bytes=_delta_bytes,
    ),
    BenchCase(
        routine="delta_rule",
        peer="fla chunk_delta_rule (bf16)",
        sizes=GPU_SIZES,
        setup=_delta_inputs,
        ours=lambda inputs: delta_rule(*inputs),
        peer_fn=_fla_peer(),
        peer_device="gpu",
        x="T", devices=("gpu",), dtypes=("float32", "float16"),
        flops=_delta_flops, bytes=_delta_bytes,
    ),
]


def _gpu_report(quick: bool) -> None:
    """Times and errors against a float64 reference, ours (float32, float16) and fla (bf16)."""
    import cupy

    from structla._core.timing import time_call

    peer = _fla_peer()
    for size in GPU_SIZES[:1] if quick else GPU_SIZES:
        exact = delta_rule(*_delta_inputs(size, cupy, "float64"), mode="chunk")
        scale = float(cupy.abs(exact).max())
        rows = []
        for dtype in ("float32", "float16"):
            inputs = _delta_inputs(size, cupy, dtype)
            out = delta_rule(*inputs)
            err = float(cupy.abs(out.astype(cupy.float64) - exact).max()) / scale
            seconds = time_call(lambda i=inputs: delta_rule(*i), gpu=True).median
            rows.append((f"structla {dtype}", seconds, err))
        if peer is not None:
            inputs = _delta_inputs(size, cupy, "float32")
            out = cupy.from_dlpack(peer(inputs).float().transpose(1, 2).contiguous())
            err = float(cupy.abs(out.astype(cupy.float64) - exact).max()) / scale
            rows.append(("fla bf16", time_call(lambda i=inputs: peer(i), gpu=True).median, err))
        sys.stdout.write(f"delta_rule {size}\n")
        for name, seconds, err in rows:
            sys.stdout.write(f"  {name:18s} {seconds * 1e3:9.3f} ms   max rel. error vs float64 {err:.2e}\n")
        if peer is None:
            sys.stdout.write("  fla not installed: peer skipped\n")


if __name__ == "__main__":
    _gpu_report("--quick" in sys.argv)
