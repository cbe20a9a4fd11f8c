"""A DeltaNet layer forward pass on a long sequence, checked against the recurrent form.

Multi-head DeltaNet (MATH F3): projections to q, k, v and β, L2-normalised keys and queries,
``structla.models.delta_rule`` per head, output projection. The check: the fast forms
(``mode="auto"``: the fused recurrence on the CPU; ``mode="chunk"``: the chunkwise WY/UT form)
against the step-by-step recurrence in float64, with timings against a plain NumPy loop.

Run ``python examples/deltanet_layer.py [--quick]``; exits with status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from structla.models import delta_rule


class DeltaNetLayer:
    """Projections around :func:`structla.models.delta_rule` (parameters as NumPy arrays)."""

    def __init__(self, d_model: int, heads: int, seed: int = 0, dtype=np.float32) -> None:
        rng = np.random.default_rng(seed)
        self.heads, self.d_head = heads, d_model // heads
        scale = 1 / np.sqrt(d_model)
        self.w_qkv = (scale * rng.standard_normal((3 * d_model, d_model))).astype(dtype)
        self.w_beta = (scale * rng.standard_normal((heads, d_model))).astype(dtype)
        self.w_out = (scale * rng.standard_normal((d_model, d_model))).astype(dtype)

    def project(self, x: np.ndarray):
        """x ``(B, T, d_model)`` → q, k, v ``(B, H, T, d_head)`` and β ``(B, H, T)``."""
        batch, length, _ = x.shape
        qkv = (x @ self.w_qkv.T).reshape(batch, length, 3, self.heads, self.d_head)
        q, k, v = (np.moveaxis(qkv[:, :, i], 2, 1) for i in range(3))
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
        k = k / np.linalg.norm(k, axis=-1, keepdims=True)
        beta = 1 / (1 + np.exp(-(x @ self.w_beta.T)))
        return q, k, v, np.moveaxis(beta, 2, 1)

    def __call__(self, x: np.ndarray, mode: str = "auto") -> np.ndarray:
        q, k, v, beta = self.project(x)
        o = delta_rule(q, k, v, beta, mode=mode)
        batch, _, length, _ = o.shape
        return np.moveaxis(o, 1, 2).reshape(batch, length, -1) @ self.w_out.T


def numpy_recurrence(q, k, v, beta):
    """The recurrent form as a NumPy loop over time, vectorised over batch and heads."""
    s = np.zeros((*q.shape[:-2], v.shape[-1], k.shape[-1]), dtype=q.dtype)
    out = np.empty(v.shape, dtype=v.dtype)
    for t in range(q.shape[-2]):
        kt = k[..., t, :]
        u = beta[..., t, None] * (v[..., t, :] - (s @ kt[..., None])[..., 0])
        s += u[..., :, None] * kt[..., None, :]
        out[..., t, :] = (s @ q[..., t, :, None])[..., 0]
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short sequence (CI)")
    args = parser.parse_args(argv)
    batch, length, d_model, heads = (1, 512, 128, 2) if args.quick else (2, 4096, 256, 4)
    layer = DeltaNetLayer(d_model, heads)
    x = np.random.default_rng(1).standard_normal((batch, length, d_model)).astype(np.float32)
    q, k, v, beta = layer.project(x)
    exact = delta_rule(*(a.astype(np.float64) for a in (q, k, v, beta)), mode="recurrent")

    print(f"DeltaNet layer: batch={batch} T={length} d_model={d_model} heads={heads} (float32)")
    ok = True
    for mode in ("auto", "chunk"):
        o = delta_rule(q, k, v, beta, mode=mode)
        err = float(np.abs(o - exact).max() / np.abs(exact).max())
        ok &= bool(np.isfinite(o).all()) and err < 1e-4
        seconds = best_of(lambda mode=mode: delta_rule(q, k, v, beta, mode=mode), 3)
        print(f"  delta_rule mode={mode:6s} {seconds * 1e3:8.1f} ms   "
              f"rel. error vs float64 recurrence {err:.1e}")
    loop = best_of(lambda: numpy_recurrence(q, k, v, beta), 1)
    print(f"  NumPy recurrent loop      {loop * 1e3:8.1f} ms")
    y = layer(x)
    print(f"  layer output {y.shape}, finite: {bool(np.isfinite(y).all())}")
    ok &= bool(np.isfinite(y).all())
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
