"""msign (float32, 1024×4096, to max|σᵢ − 1| ≤ 1e-3) against NumPy's SVD polar factor, side by side.

Warm-up, then the two calls alternate ``rounds`` times in one process so that changes in machine
load hit both; prints the iteration count, the measured accuracy and the median ratio.

    python examples/matfun_cpu_speed.py [rounds]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import structla


def main(rounds: int) -> None:
    M = np.random.default_rng(0).standard_normal((1024, 4096)).astype(np.float32)
    structla.msign(M, tol=1e-3)
    ours, svd = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        X, info = structla.msign(M, tol=1e-3, return_info=True)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        U, _, Vh = np.linalg.svd(M, full_matrices=False)
        U @ Vh
        svd.append(time.perf_counter() - t)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    print(f"steps={info.iterations} max|s-1|={np.abs(s - 1).max():.2e} estimate={info.error_estimate:.2e}")
    print("msign [s]:", " ".join(f"{v:.2f}" for v in ours))
    print("SVD   [s]:", " ".join(f"{v:.2f}" for v in svd))
    print(f"speed-up (median / median): {np.median(svd) / np.median(ours):.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
