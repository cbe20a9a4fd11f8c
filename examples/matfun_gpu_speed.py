"""msign on the GPU against its torch peers (issue 6, Must show 6), with the accuracy reached.

Matrices have singular values log-spaced in [1e-3, 1]. For each case: the median wall time of
``rounds`` synchronised calls after a warm-up, the steps taken, and max|σᵢ − 1| of the result
(float32 singular values on the GPU). First a diagnosis of the cuBLAS paths msign uses: one
4096² product in float16 as a 2-D CuPy product (what a single matrix takes), as a 3-D
(1, n, n) stack, in float32, and in torch bf16. Needs CuPy and torch; < 2 minutes on an H100.

    python examples/matfun_gpu_speed.py [rounds] [case,...]

The optional second argument keeps only the cases whose label contains one of the given
words (e.g. ``Muon,batched``; ``gemm`` for the cuBLAS diagnosis).
"""

from __future__ import annotations

import sys
import time

import cupy as cp
import numpy as np
import torch

import structla

_MUON = (3.4445, -4.7750, 2.0315)


def timed(fn, rounds):
    fn()
    cp.cuda.Device().synchronize()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        cp.cuda.Device().synchronize()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def spectrum(rng, batch, n, m):
    k = min(n, m)
    out = []
    for _ in range(batch):
        u, _ = np.linalg.qr(rng.standard_normal((n, k)))
        v, _ = np.linalg.qr(rng.standard_normal((m, k)))
        out.append((u * np.logspace(0, -3, k)) @ v.T)
    return cp.asarray(np.stack(out) if batch > 1 else out[0], dtype=cp.float32)


def deviation(X):
    s = torch.linalg.svdvals(torch.from_dlpack(X).float())
    return float((s - 1).abs().max())


def muon5(M):
    G = torch.from_dlpack(M)
    wide = G.shape[-2] <= G.shape[-1]
    X = (G if wide else G.mT).bfloat16()
    X = X / (torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True) + 1e-7)
    a, b, c = _MUON
    for _ in range(5):
        A = X @ X.mT
        X = a * X + (b * A + c * (A @ A)) @ X
    return X if wide else X.mT


def torch_svd(M):
    U, _, Vh = torch.linalg.svd(torch.from_dlpack(M), full_matrices=False)
    return U @ Vh


def diagnose(rounds):
    n = 4096
    flops = 2.0 * n**3
    a16 = cp.random.standard_normal((n, n), dtype=cp.float32).astype(cp.float16)
    a32 = a16.astype(cp.float32)
    tb = torch.from_dlpack(a32).bfloat16()
    for label, fn in [("cupy f16 2-D  A @ A.T", lambda: a16 @ a16.T),
                      ("cupy f16 3-D  (1,n,n) @ (1,n,n).T", lambda: a16[None] @ a16[None].swapaxes(1, 2)),
                      ("cupy f32 2-D  A @ A.T", lambda: a32 @ a32.T),
                      ("torch bf16    A @ A.T", lambda: tb @ tb.T)]:
        t, _ = timed(fn, rounds)
        print(f"  {label:36s} {t * 1e3:8.3f} ms  {flops / t / 1e12:6.0f} TFLOP/s")


def main(rounds, only=None):
    def wanted(label):
        return only is None or any(word in label for word in only)

    rng = np.random.default_rng(0)
    if wanted("gemm"):
        print("cuBLAS paths (one 4096² product):")
        diagnose(rounds)
    print(f"{'case':44s} {'ours ms':>9s} {'steps':>5s} {'dev':>9s} | {'peer':18s} {'ms':>9s} "
          f"{'dev':>9s} {'ratio':>7s}")
    cases = [
        ("4096x4096 f16 tol=1e-2 vs Muon", (1, 4096, 4096), dict(tol=1e-2, compute_dtype="float16"), "muon"),
        ("1024x4096 f16 tol=1e-2 vs Muon", (1, 1024, 4096), dict(tol=1e-2, compute_dtype="float16"), "muon"),
        ("4096x4096 mixed tol=1e-3 vs svd", (1, 4096, 4096), dict(tol=1e-3, compute_dtype="mixed"), "svd"),
        ("1024x4096 mixed tol=1e-3 vs svd", (1, 1024, 4096), dict(tol=1e-3, compute_dtype="mixed"), "svd"),
        ("4096x4096 f32 tol=1e-3 vs svd", (1, 4096, 4096), dict(tol=1e-3), "svd"),
        ("8192x8192 f16 tol=1e-2 vs Muon", (1, 8192, 8192), dict(tol=1e-2, compute_dtype="float16"), "muon"),
    ]
    for label, (batch, n, m), options, peer in cases:
        if not wanted(label):
            continue
        M = spectrum(rng, batch, n, m)
        try:
            t_ours, X = timed(lambda M=M, options=options: structla.msign(M, **options), rounds)
        except structla.LinAlgError as error:
            print(f"{label:44s} failed: {error}")
            continue
        _, info = structla.msign(M, return_info=True, **options)
        fn = muon5 if peer == "muon" else torch_svd
        t_peer, Y = timed(lambda M=M, fn=fn: fn(M), rounds if peer == "muon" else 2)
        print(f"{label:44s} {t_ours * 1e3:9.3f} {info.iterations:5d} {deviation(X):9.2e} | "
              f"{'torch ' + peer:18s} {t_peer * 1e3:9.3f} {deviation(Y):9.2e} {t_peer / t_ours:6.2f}x")
    if not wanted("256x128x128 batched"):
        return
    # batched: fewest Polar Express steps (float16) reaching Muon's accuracy
    M = spectrum(rng, 256, 128, 128)
    target = deviation(muon5(M))
    steps = next(t for t in range(1, 12)
                 if deviation(structla.msign(M, steps=t, compute_dtype="float16")) <= target)
    t_ours, X = timed(lambda: structla.msign(M, steps=steps, compute_dtype="float16"), rounds)
    t_peer, Y = timed(lambda: muon5(M), rounds)
    print(f"{'256x128x128 batched f16 fixed steps vs Muon':44s} {t_ours * 1e3:9.3f} {steps:5d} "
          f"{deviation(X):9.2e} | {'torch muon':18s} {t_peer * 1e3:9.3f} {deviation(Y):9.2e} "
          f"{t_peer / t_ours:6.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5,
         sys.argv[2].split(",") if len(sys.argv) > 2 else None)
