"""A Mamba-sized selective scan, streamed in pieces, and a tanh RNN solved by DEER.

Run: python examples/scan_streaming.py
"""

import time

import numpy as np

import structla

rng = np.random.default_rng(0)
batch, dim, nstate, length = 2, 768, 16, 4096
u = rng.standard_normal((batch, dim, length)).astype(np.float32)
delta = rng.standard_normal((batch, dim, length)).astype(np.float32)
A = -np.exp(rng.uniform(0, 2, (dim, nstate))).astype(np.float32)
B = rng.standard_normal((batch, nstate, length)).astype(np.float32)
C = rng.standard_normal((batch, nstate, length)).astype(np.float32)
bias = np.full(dim, -3.0, np.float32)

t0 = time.perf_counter()
y = structla.selective_scan(u, delta, A, B, C, delta_bias=bias, delta_softplus=True)
print(f"selective_scan batch={batch} D={dim} N={nstate} L={length}: {time.perf_counter() - t0:.3f} s")

# The same sequence in four pieces, carrying the state: identical up to rounding.
pieces, state = [], None
for s in np.array_split(np.arange(length), 4):
    part = slice(s[0], s[-1] + 1)
    out, state = structla.selective_scan(u[..., part], delta[..., part], A, B[..., part], C[..., part],
                                         delta_bias=bias, delta_softplus=True, h0=state, return_state=True)
    pieces.append(out)
print("streamed == whole:", np.allclose(np.concatenate(pieces, axis=-1), y, rtol=1e-4, atol=1e-4))

# A nonlinear RNN x_t = tanh(W x_{t-1} + u_t) by Newton iterations of scans.
d = 8
W = 0.8 * rng.standard_normal((d, d)) / np.sqrt(d)
inputs = rng.standard_normal((2000, d))
x, info = structla.deer(lambda x, v: np.tanh(x @ W.T + v), np.zeros(d), inputs,
                        jac=lambda x, v: (1 - np.tanh(x @ W.T + v) ** 2)[..., :, None] * W,
                        return_info=True)
state, loop = np.zeros(d), []
for v in inputs:
    state = np.tanh(W @ state + v)
    loop.append(state)
print(f"deer: {info.iterations} iterations, max |x - loop| = {np.abs(x - np.array(loop)).max():.1e}")
