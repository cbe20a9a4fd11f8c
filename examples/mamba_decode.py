"""A Mamba block decoding token by token, checked against the parallel pass.

``MambaMixer`` (MATH E2): in-projection, causal depthwise convolution, ``structla.selective_scan``,
gating, out-projection. A prompt is processed in parallel (prefill) and the rest of the
sequence decoded one token at a time with the carried state; the result must equal the
parallel pass over the whole sequence.

Run ``python examples/mamba_decode.py [--quick]``; exits with status 1 if the check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from structla.models import MambaMixer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    batch, length, prompt, d_model = (2, 64, 48, 32) if args.quick else (4, 1024, 768, 128)
    mixer = MambaMixer(d_model, d_state=16, seed=0)
    x = np.random.default_rng(1).standard_normal((batch, length, d_model))

    t0 = time.perf_counter()
    parallel = mixer(x)
    t_parallel = time.perf_counter() - t0

    t0 = time.perf_counter()
    head, state = mixer(x[:, :prompt], return_state=True)
    t_prefill = time.perf_counter() - t0
    outs = [head]
    t0 = time.perf_counter()
    for t in range(prompt, length):
        y, state = mixer.step(x[:, t], state)
        outs.append(y[:, None])
    t_decode = (time.perf_counter() - t0) / (length - prompt)
    decoded = np.concatenate(outs, axis=1)

    err = float(np.abs(decoded - parallel).max() / np.abs(parallel).max())
    print(f"Mamba mixer: batch={batch} L={length} d_model={d_model} d_inner={mixer.d_inner} "
          f"d_state={mixer.d_state}")
    print(f"  parallel pass {t_parallel * 1e3:.1f} ms; prefill of {prompt} tokens {t_prefill * 1e3:.1f} ms; "
          f"decode {t_decode * 1e3:.2f} ms/token")
    print(f"  prefill + token-by-token decoding vs parallel: rel. error {err:.1e}")
    ok = err < 1e-10
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
