"""An S4 kernel by Cauchy sums, checked against matrix powers, and its convolution against the recurrence.

``S4Layer`` (HiPPO-LegS, DPLR): the kernel ``K_k = C Āᵏ B̄`` by ``structla.ssm_kernel_dplr``
(MATH B2) against dense powers of the discretised system, then ``y = K * x + D x`` by
``structla.fftconv`` (MATH E3) against running the recurrence step by step. An S4D layer
(MATH B3) is checked the same way.

Run ``python examples/s4_kernel.py [--quick]``; exits with status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from structla.models import S4DLayer, S4Layer


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def dense_kernel(system, length):
    """``C Āᵏ B̄`` for k < length by repeated products (O(N² L) per channel)."""
    ad, bd, c = system
    out = np.empty((ad.shape[0], length))
    state = bd.copy()
    for j in range(length):
        out[:, j] = np.einsum("hn,hn->h", c, state).real
        state = np.einsum("hmn,hn->hm", ad, state)
    return out


def run_steps(layer, x, system):
    state, outs = layer.initial_state(), []
    for t in range(x.shape[0]):
        y, state = layer.step(x[t], state, system=system)
        outs.append(y)
    return np.stack(outs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    channels, n, length = (4, 16, 256) if args.quick else (16, 64, 4096)
    x = np.random.default_rng(0).standard_normal((length, channels))
    ok = True

    s4 = S4Layer(channels, N=n, seed=0)
    t0 = time.perf_counter()
    kernel = s4.kernel(length)
    t_kernel = time.perf_counter() - t0
    system = s4.discrete_system()
    t0 = time.perf_counter()
    powers = dense_kernel(system, length)
    t_powers = time.perf_counter() - t0
    err_kernel = relative(kernel, powers)
    print(f"S4 (LegS DPLR) H={channels} N={n} L={length}")
    print(f"  kernel by Cauchy sums {t_kernel * 1e3:7.1f} ms vs dense powers {t_powers * 1e3:7.1f} ms: "
          f"rel. error {err_kernel:.1e}")
    y = s4(x)
    err_conv = relative(y, run_steps(s4, x, system))
    print(f"  FFT convolution vs step-by-step recurrence: rel. error {err_conv:.1e}")
    ok &= err_kernel < 1e-9 and err_conv < 1e-9

    s4d = S4DLayer(channels, N=n, seed=0)
    err_s4d = relative(s4d(x), run_steps(s4d, x, s4d.discrete_system()))
    print(f"S4D (Lin) H={channels} N={n} L={length}: convolution vs recurrence rel. error {err_s4d:.1e}")
    ok &= err_s4d < 1e-9
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
