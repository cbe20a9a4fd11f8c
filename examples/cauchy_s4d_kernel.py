"""S4D kernels with ``structla.vandermonde`` and S4 generating functions with ``structla.cauchy``.

1. S4D-Lin, ZOH: ``K_l = 2 Re Σ_n C_n B̄_n exp(l Δ a_n)`` for a batch of channels, in complex64,
   against the float64 state-space recurrence ``x ← Ā x + B̄ u`` (MATH B3).
2. The truncated generating function ``K̂(ω) = Σ_k K_k ω^k`` of a diagonal system at the roots
   of unity as a Cauchy sum in ``g(ω) = (2/Δ)(1 − ω)/(1 + ω)`` (bilinear, MATH B2 with P = 0),
   against the FFT of the kernel computed by powers.

Run ``python examples/cauchy_s4d_kernel.py [--quick]``; exits with status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import structla


def s4d_zoh(channels: int, n: int, length: int, dtype) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(0)
    a = -0.5 + 1j * np.pi * np.arange(n)                       # S4D-Lin, one mode per pair
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (channels, 1)))
    c = rng.standard_normal((channels, n)) + 1j * rng.standard_normal((channels, n))
    b_bar = (np.exp(dt * a) - 1) / a                           # ZOH with B = 1
    structla.vandermonde(c[:1].astype(dtype), a.astype(dtype), 8, log=True)  # compile first
    t0 = time.perf_counter()
    k = structla.vandermonde((c * b_bar).astype(dtype), (dt * a).astype(dtype), length,
                             log=True, conj_pairs=True)
    elapsed = time.perf_counter() - t0
    # float64 recurrence of the full real system (both modes of every pair)
    a_bar = np.exp(dt * a)
    state = b_bar.copy()
    ref = np.empty((channels, length))
    for step in range(length):
        ref[:, step] = 2 * (c * state).sum(axis=1).real
        state = a_bar * state
    return np.abs(k - ref).max() / np.abs(ref).max(), elapsed


def generating_function(n: int, length: int) -> float:
    rng = np.random.default_rng(1)
    a = -0.5 + 1j * np.pi * np.arange(n)
    dt = 0.01
    b, c = np.ones(n), rng.standard_normal(n) + 1j * rng.standard_normal(n)
    a_bar = (1 + dt * a / 2) / (1 - dt * a / 2)                # bilinear
    b_bar = dt * b / (1 - dt * a / 2)
    k = 2 * (c * b_bar * a_bar ** np.arange(length)[:, None]).sum(axis=1).real
    omega = np.exp(-2j * np.pi * np.arange(length // 2) / length)   # skip the Nyquist node
    g = (2 / dt) * (1 - omega) / (1 + omega)
    c_tilde = c * (1 - a_bar**length)
    k_hat = 2 / (1 + omega) * structla.cauchy(c_tilde * b, a, g, conj_pairs=True)
    return np.abs(k_hat - np.fft.fft(k)[: length // 2]).max() / np.abs(k_hat).max()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    channels, n, length = (16, 32, 1024) if args.quick else (256, 32, 4096)
    failed = False
    for dtype, tol in ((np.complex64, 1e-5), (np.complex128, 1e-12)):
        err, elapsed = s4d_zoh(channels, n, length, dtype)
        ok = err <= tol
        failed |= not ok
        print(f"S4D kernel {channels}x{length} N={n} pairs {np.dtype(dtype).name}: "
              f"rel. error {err:.1e} ({'ok' if ok else 'FAIL'}), vandermonde {elapsed * 1e3:.1f} ms")
    err = generating_function(n, length)
    ok = err <= 1e-10
    failed |= not ok
    print(f"generating function at {length // 2} roots of unity by cauchy: rel. error {err:.1e} "
          f"({'ok' if ok else 'FAIL'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
