"""msign (float32, 1024×4096, to max|σᵢ − 1| ≤ 1e-3) against NumPy's SVD polar factor, side by side.

Warm-up, then the two calls alternate ``rounds`` times in one process so that changes in machine
load hit both; prints the iteration count, the certified band and the measured accuracy, then the
minimum and median wall time and CPU time (``time.process_time``, all threads) of each and their
ratios. The accuracy check (a float64 SVD of the result) runs outside the timed calls.

    python examples/matfun_cpu_speed.py [rounds]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import structla


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(rounds: int) -> None:
    M = np.random.default_rng(0).standard_normal((1024, 4096)).astype(np.float32)
    X, info = structla.msign(M, tol=1e-3, return_info=True)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    print(f"steps={info.iterations} method={info.method} certified band="
          f"{info.extra['predicted_error']:.2e} measured max|s-1|={np.abs(s - 1).max():.2e}")

    def svd_polar():
        U, _, Vh = np.linalg.svd(M, full_matrices=False)
        return U @ Vh

    times = {"msign": ([], []), "SVD": ([], [])}
    for _ in range(rounds):
        for name, fn in (("msign", lambda: structla.msign(M, tol=1e-3)), ("SVD", svd_polar)):
            _, wall, cpu = _timed(fn)
            times[name][0].append(wall)
            times[name][1].append(cpu)
    for name, (wall, cpu) in times.items():
        print(f"{name:6s} wall [ms]: " + " ".join(f"{v * 1e3:.0f}" for v in wall)
              + f" | min {min(wall) * 1e3:.0f} median {np.median(wall) * 1e3:.0f}"
              + f" | cpu min {min(cpu) * 1e3:.0f} median {np.median(cpu) * 1e3:.0f}")
    (ow, oc), (sw, sc) = times["msign"], times["SVD"]
    print(f"speed-up: wall min {min(sw) / min(ow):.1f}x, wall median "
          f"{np.median(sw) / np.median(ow):.1f}x, cpu min {min(sc) / min(oc):.1f}x, "
          f"cpu median {np.median(sc) / np.median(oc):.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
