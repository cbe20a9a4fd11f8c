"""models: delta_rule against a recurrent NumPy loop (CPU) and fla's chunk_delta_rule (GPU).

``python -m benchmarks.registry.models [--quick]`` (GPU machine) prints the GPU cases with
the error of ours (float32, float16 inputs) and of fla (bf16) against a float64 reference
beside the times. ``python -m benchmarks.registry.models --cpu [ROUNDS]`` times the CPU goal
case (B·H = 8, T = 4096, d = 64, float32) alternately with the NumPy loop in one process:
wall-clock min and median and CPU time of each (default 7 rounds).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time

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


def _cpu_alternate(rounds: int) -> None:
    """Ours and the NumPy loop, one call each per round (same load for both)."""
    inputs = _delta_inputs({"H": 8, "T": 4096, "d": 64}, np, "float32")
    runs = {"structla delta_rule": lambda: delta_rule(*inputs),
            "recurrent NumPy loop": lambda: numpy_recurrence(*inputs)}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # compilation / cache load and first-touch of the outputs
    for _ in range(rounds):
        for name, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    for name in runs:
        median = statistics.median(wall[name])
        sys.stdout.write(f"{name:22s} wall min {min(wall[name]) * 1e3:8.2f} ms  median "
                         f"{median * 1e3:8.2f} ms  CPU min {min(cpu[name]) * 1e3:8.2f} ms\n")
    ours, peer = runs
    sys.stdout.write(f"speed-up: {min(wall[peer]) / min(wall[ours]):.1f}x (min), "
                     f"{statistics.median(wall[peer]) / statistics.median(wall[ours]):.1f}x (median)\n")


if __name__ == "__main__":
    if "--cpu" in sys.argv:
        rest = sys.argv[sys.argv.index("--cpu") + 1:]
        _cpu_alternate(int(rest[0]) if rest else 7)
    else:
        _gpu_report("--quick" in sys.argv)
