"""Demo cases: a Mamba layer's selective scan, an IIR filter bank and a tanh RNN by DEER."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import deer, linear_scan, selective_scan


def _selective_ref(u: np.ndarray, delta: np.ndarray, A: np.ndarray, B: np.ndarray,
                   C: np.ndarray) -> np.ndarray:
    """NumPy float64 port of mamba_ssm's selective_scan_ref (loop over time)."""
    delta_a = np.exp(np.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = np.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = np.zeros((u.shape[0], A.shape[0], A.shape[1]))
    ys = []
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(np.einsum("bdn,bn->bd", x, C[:, :, i]))
    return np.stack(ys, axis=2)


def _lfilter_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import scipy.signal

    return np.stack([scipy.signal.lfilter([1.0], [1.0, -a[i, 0]], b[i]) for i in range(b.shape[0])])


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """selective_scan in float32 (Mamba's setting), linear_scan and deer in float64."""
    rng = np.random.default_rng(0)
    batch, dim, nstate, length = (1, 128, 16, 256) if quick else (2, 768, 16, 1024)
    u = rng.standard_normal((batch, dim, length))
    delta = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (batch, dim, length)))
    A = -np.tile(np.arange(1.0, nstate + 1), (dim, 1))
    B = rng.standard_normal((batch, nstate, length))
    C = rng.standard_normal((batch, nstate, length))
    ss_args = [xp.asarray(x, dtype=np.float32) for x in (u, delta, A, B, C)]
    ss_host = [to_numpy(x).astype(np.float64) for x in ss_args]

    rows, steps = (16, 2048) if quick else (64, 65536)
    decay = rng.uniform(0.5, 0.99, (rows, 1))
    x = rng.standard_normal((rows, steps))
    ls_args = (xp.asarray(decay), xp.asarray(x))

    length_rnn = 200 if quick else 2000
    W = 0.5 * rng.standard_normal((4, 4)) / 2
    inputs = rng.standard_normal((length_rnn, 4))
    Wx, ux = xp.asarray(W), xp.asarray(inputs)

    def rnn(state, v):
        return xp.tanh(state @ Wx.T + v)

    def rnn_jac(state, v):
        return (1 - xp.tanh(state @ Wx.T + v) ** 2)[..., :, None] * Wx

    def rnn_loop() -> np.ndarray:
        out = np.empty_like(inputs)
        state = np.zeros(4)
        for t in range(length_rnn):
            state = np.tanh(W @ state + inputs[t])
            out[t] = state
        return out

    return [
        DemoCase("selective_scan", f"batch={batch} D={dim} N={nstate} L={length} f32",
                 lambda: selective_scan(*ss_args), lambda: _selective_ref(*ss_host),
                 "NumPy selective_scan_ref (f64)", tolerance=1e-4),
        DemoCase("linear_scan", f"rows={rows} L={steps} f64", lambda: linear_scan(*ls_args),
                 lambda: _lfilter_rows(decay, x), "scipy.signal.lfilter (f64)", tolerance=1e-12),
        DemoCase("deer", f"tanh RNN d=4 L={length_rnn} f64",
                 lambda: deer(rnn, xp.zeros(4), ux, jac=rnn_jac), rnn_loop,
                 "sequential loop (f64)", tolerance=1e-10),
    ]
