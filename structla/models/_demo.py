"""Demo cases: DeltaNet / gated DeltaNet / GLA, the S4D and S4 convolution modes and Mamba's parallel
pass, each against a NumPy float64 step-by-step recurrence written from the same parameters."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import delta_rule, gated_delta_rule, gated_linear_attention
from .mamba import MambaMixer
from .s4 import S4DLayer, S4Layer


def _delta_loop(q, k, v, beta, log_alpha=None):
    """DeltaNet step by step in float64 NumPy, vectorised over heads (the peer)."""
    s = np.zeros((q.shape[0], v.shape[-1], k.shape[-1]))
    out = np.empty(v.shape)
    for t in range(q.shape[1]):
        if log_alpha is not None:
            s *= np.exp(log_alpha[:, t, None, None])
        kt = k[:, t]
        u = beta[:, t, None] * (v[:, t] - (s @ kt[..., None])[..., 0])
        s += u[:, :, None] * kt[:, None, :]
        out[:, t] = (s @ q[:, t, :, None])[..., 0]
    return out


def _gla_loop(q, k, v, log_alpha):
    s = np.zeros((q.shape[0], v.shape[-1], k.shape[-1]))
    out = np.empty(v.shape)
    for t in range(q.shape[1]):
        s = s * np.exp(log_alpha[:, t, None, :]) + v[:, t, :, None] * k[:, t, None, :]
        out[:, t] = (s @ q[:, t, :, None])[..., 0]
    return out


def _s4d_loop(layer, x):
    """S4D recurrence in NumPy float64 from the layer's parameters (ZOH, conjugate pairs)."""
    a, b, c = (to_numpy(p).astype(np.complex128) for p in (layer.A, layer.B, layer.C))
    dt, d = np.exp(to_numpy(layer.log_dt).astype(np.float64)), to_numpy(layer.D).astype(np.float64)
    ad = np.exp(dt[:, None] * a)
    bd = (ad - 1) / a * b
    x = to_numpy(x).astype(np.float64)
    state, out = np.zeros(a.shape, dtype=complex), np.empty(x.shape)
    for t in range(x.shape[0]):
        state = ad * state + bd * x[t, :, None]
        out[t] = 2 * np.sum(c * state, axis=-1).real + d * x[t]
    return out


def _s4_loop(layer, x):
    """S4 recurrence in NumPy float64: the dense full system, bilinear discretisation."""
    lam, p, b, c = (to_numpy(v).astype(np.complex128) for v in (layer.Lambda, layer.P, layer.B, layer.C))
    lam, b, c = (np.concatenate([v, v.conj()], axis=-1) for v in (lam, b, c))
    p = np.concatenate([p, p.conj()], axis=-1)
    a = lam[:, :, None] * np.eye(lam.shape[-1])
    a = a - np.swapaxes(p, -1, -2) @ p.conj()
    dt, d = np.exp(to_numpy(layer.log_dt).astype(np.float64)), to_numpy(layer.D).astype(np.float64)
    eye = np.eye(a.shape[-1])
    left = eye - dt[:, None, None] / 2 * a
    ad = np.linalg.solve(left, eye + dt[:, None, None] / 2 * a)
    bd = np.linalg.solve(left, (dt[:, None] * b)[..., None])[..., 0]
    x = to_numpy(x).astype(np.float64)
    state, out = np.zeros(b.shape, dtype=complex), np.empty(x.shape)
    for t in range(x.shape[0]):
        state = (ad @ state[..., None])[..., 0] + bd * x[t, :, None]
        out[t] = np.sum(c * state, axis=-1).real + d * x[t]
    return out


def _mamba_loop(m, x):
    """Mamba mixer token by token in NumPy float64 (mamba_ssm's decoding step)."""
    p = {name: to_numpy(getattr(m, name)).astype(np.float64) for name in
         ("in_proj", "conv_weight", "conv_bias", "x_proj", "dt_proj", "dt_bias", "A_log", "D", "out_proj")}
    x = to_numpy(x).astype(np.float64)
    batch, length, _ = x.shape
    buf = np.zeros((batch, m.d_inner, m.d_conv))
    h = np.zeros((batch, m.d_inner, m.d_state))
    a = -np.exp(p["A_log"])
    out = np.empty(x.shape)
    r, n = m.dt_rank, m.d_state
    for t in range(length):
        xz = x[:, t] @ p["in_proj"].T
        u, z = xz[:, :m.d_inner], xz[:, m.d_inner:]
        buf = np.concatenate([buf[..., 1:], u[..., None]], axis=-1)
        u = np.sum(buf * p["conv_weight"], axis=-1) + p["conv_bias"]
        u = u / (1 + np.exp(-u))
        proj = u @ p["x_proj"].T
        dt = np.logaddexp(0, proj[:, :r] @ p["dt_proj"].T + p["dt_bias"])
        h = np.exp(dt[..., None] * a) * h + (dt * u)[..., None] * proj[:, None, r:r + n]
        y = (np.einsum("bdn,bn->bd", h, proj[:, r + n:]) + p["D"] * u) * (z / (1 + np.exp(-z)))
        out[:, t] = y @ p["out_proj"].T
    return out


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """float32 sequence models against float64 NumPy step-by-step loops."""
    heads, length, d = (4, 512, 32) if quick else (8, 4096, 64)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((heads, length, d))
    k = rng.standard_normal((heads, length, d))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    v = rng.standard_normal((heads, length, d))
    beta = rng.random((heads, length))
    la = np.log(rng.uniform(0.9, 1.0, (heads, length)))
    lak = np.log(rng.uniform(0.9, 1.0, (heads, length, d)))
    dq, dk, dv, db, dla, dlak = (xp.asarray(a, dtype=np.float32) for a in (q, k, v, beta, la, lak))
    hq, hk, hv, hb, hla, hlak = (to_numpy(a).astype(np.float64) for a in (dq, dk, dv, db, dla, dlak))
    size = f"heads={heads} T={length} d={d} f32"

    channels, n, sl = (4, 16, 256) if quick else (16, 32, 2048)
    x = rng.standard_normal((sl, channels))
    s4d, s4 = S4DLayer(channels, N=n, seed=0, xp=xp), S4Layer(channels, N=n, seed=0, xp=xp)
    dx = xp.asarray(x)

    d_model, ml = (16, 64) if quick else (64, 256)
    mixer = MambaMixer(d_model, seed=0, xp=xp)
    mx = xp.asarray(rng.standard_normal((2, ml, d_model)))

    return [
        DemoCase("delta_rule", size, lambda: delta_rule(dq, dk, dv, db),
                 lambda: _delta_loop(hq, hk, hv, hb), "NumPy step loop (f64)", tolerance=1e-4),
        DemoCase("gated_delta_rule", size + " chunk",
                 lambda: gated_delta_rule(dq, dk, dv, db, dla, mode="chunk"),
                 lambda: _delta_loop(hq, hk, hv, hb, hla), "NumPy step loop (f64)", tolerance=1e-4),
        DemoCase("gated_linear_attention", size,
                 lambda: gated_linear_attention(dq, dk, dv, dlak),
                 lambda: _gla_loop(hq, hk, hv, hlak), "NumPy step loop (f64)", tolerance=1e-4),
        DemoCase("S4DLayer", f"H={channels} N={n} L={sl} conv", lambda: s4d(dx),
                 lambda: _s4d_loop(s4d, dx), "NumPy recurrence (f64)", tolerance=1e-9),
        DemoCase("S4Layer", f"H={channels} N={n} L={sl} conv", lambda: s4(dx),
                 lambda: _s4_loop(s4, dx), "NumPy recurrence (f64)", tolerance=1e-9),
        DemoCase("MambaMixer", f"d_model={d_model} L={ml} parallel", lambda: mixer(mx),
                 lambda: _mamba_loop(mixer, mx), "NumPy token loop (f64)", tolerance=1e-10),
    ]
