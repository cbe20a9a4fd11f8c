"""UT transform blocks of DeltaNet with raw (unnormalised) Gaussian keys: what float32 can hold.

Blocks of C = 64 keys, d = 64, β ∈ [0, 2]. The exact inverse grows like (β‖k‖²)^C, so many
blocks have entries beyond float32's range; this script counts, per method, the non-finite
outputs, and the error on the blocks whose exact values fit in float32:

* structla.ut_transform in float32 (CPU, and GPU when CuPy sees a device),
* fla's ``solve_tril`` on ``A = tril(diag(β) K Kᵀ, -1)`` (only when fla and a GPU are present),

against structla in float64, checked by its residual.

Run: ``python examples/tril_raw_keys.py [blocks]``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np

import structla
from structla._core.families import gpu_available


def report(name, out, reference, fits):
    out = np.asarray(out, dtype=np.float64) * 1.0
    bad = ~np.isfinite(out)
    error = np.abs(out[fits] - reference[fits]).max(axis=(1, 2)) / np.abs(reference[fits]).max(axis=(1, 2))
    blocks = int(bad.any(axis=(1, 2)).sum())
    print(f"{name:34s} non-finite entries {int(bad.sum()):7d} in {blocks:5d} blocks; "
          f"representable blocks: max rel. error {np.nanmax(error):.1e}")


def fla_solve_tril():
    for module in ("fla.ops.utils.solve_tril", "fla.ops.utils", "fla.ops.common.solve_tril"):
        try:
            return importlib.import_module(module).solve_tril
        except (ImportError, AttributeError):
            continue
    return None


def main(blocks: int = 512) -> None:
    rng = np.random.default_rng(0)
    c = d = 64
    k = rng.standard_normal((blocks, c, d))
    beta = 2 * rng.random((blocks, c))
    a = np.tril(beta[..., :, None] * (k @ np.swapaxes(k, -1, -2)), -1)
    reference = structla.ut_transform(k, beta)
    residual = np.abs((np.eye(c) + a) @ reference - beta[..., None, :] * np.eye(c)).max(axis=(1, 2))
    scale = np.abs(np.eye(c) + a).max(axis=(1, 2)) * np.abs(reference).max(axis=(1, 2))
    print(f"float64 reference: max residual / (‖I+A‖‖X‖) = {(residual / scale).max():.1e}")
    peak = np.abs(reference).max(axis=(1, 2))
    fits = peak < np.finfo(np.float32).max
    print(f"{blocks} blocks; exact |entries| up to {peak.max():.1e}; "
          f"{int((~fits).sum())} blocks do not fit in float32")
    k32, beta32 = k.astype(np.float32), beta.astype(np.float32)
    with np.errstate(all="ignore"):
        report("structla float32 (CPU)", structla.ut_transform(k32, beta32), reference, fits)
    if gpu_available():
        import cupy

        out = structla.ut_transform(cupy.asarray(k32), cupy.asarray(beta32))
        report("structla float32 (GPU)", cupy.asnumpy(out), reference, fits)
        solve_tril = fla_solve_tril() if importlib.util.find_spec("fla") else None
        if solve_tril is not None:
            import torch

            ta = torch.as_tensor(a.astype(np.float32), device="cuda").reshape(1, blocks * c, 1, c)
            inverse = solve_tril(ta).reshape(blocks, c, c).cpu().numpy()
            report("fla solve_tril float32 (GPU)", inverse * beta32[..., None, :], reference, fits)
        else:
            print("fla not importable: skipped")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
