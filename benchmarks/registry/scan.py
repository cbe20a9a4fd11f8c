"""scan: selective_scan against ports of mamba_ssm's selective_scan_ref, linear_scan against
scipy.signal.lfilter, deer against the sequential loop."""

from __future__ import annotations

import importlib.util

import numpy as np

import structla

from ..case import BenchCase


def selective_scan_ref_numpy(u, delta, A, B, C):
    """NumPy port of mamba_ssm's ``selective_scan_ref`` (real A, B/C ``(batch, N, L)``).

    Like the original it forms ``exp(einsum('bdl,dn->bdln'))`` and the ``ΔBu`` tensor,
    then loops over time vectorised over (batch, channels, states).
    """
    delta_a = np.exp(np.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = np.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = np.zeros((u.shape[0], A.shape[0], A.shape[1]), dtype=A.dtype)
    ys = []
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(np.einsum("bdn,bn->bd", x, C[:, :, i]))
    return np.stack(ys, axis=2)


def _selective_inputs(size, xp, dtype):
    rng = np.random.default_rng(0)
    batch, dim, nstate, length = size["batch"], size["D"], size["N"], size["L"]
    u = rng.standard_normal((batch, dim, length))
    # Mamba's initialisation: Δ log-uniform in [1e-3, 1e-1], A_n = −(n + 1).
    delta = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (batch, dim, length)))
    A = -np.tile(np.arange(1, nstate + 1, dtype=np.float64), (dim, 1))
    B = rng.standard_normal((batch, nstate, length))
    C = rng.standard_normal((batch, nstate, length))
    return tuple(xp.asarray(x, dtype=dtype) for x in (u, delta, A, B, C))


def _selective_bytes(size):
    # u and delta read, y written (B and C are N/D of that); 4 bytes (float32).
    batch, dim, nstate, length = size["batch"], size["D"], size["N"], size["L"]
    return 4.0 * (3 * batch * dim * length + 2 * batch * nstate * length + dim * nstate)


def _selective_flops(size):
    # exp, 2 multiply-adds for the state, 1 for the output, per (batch, channel, step, state).
    return 7.0 * size["batch"] * size["D"] * size["N"] * size["L"]


def _torch_peer():
    """A torch port of ``selective_scan_ref`` on the GPU (None without torch)."""
    if importlib.util.find_spec("torch") is None:
        return None

    def run(inputs):
        import torch

        u, delta, A, B, C = (torch.from_dlpack(x) for x in inputs)
        delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
        delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
        x = A.new_zeros((u.shape[0], A.shape[0], A.shape[1]))
        ys = []
        for i in range(u.shape[2]):
            x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
            ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
        return torch.stack(ys, dim=2)

    return run


def _gated_inputs(size, xp, dtype):
    """The plain inputs plus Mamba's block options: D, z, delta_bias with softplus."""
    rng = np.random.default_rng(1)
    dim = size["D"]
    D = xp.asarray(rng.standard_normal(dim), dtype=dtype)
    z = xp.asarray(rng.standard_normal((size["batch"], dim, size["L"])), dtype=dtype)
    # Biased so that softplus gives steps in Mamba's range (≈ 1e-3 … 1e-1).
    bias = xp.asarray(rng.uniform(-6.9, -2.3, dim), dtype=dtype)
    return (*_selective_inputs(size, xp, dtype), D, z, bias)


def _gated_ours(inputs):
    u, delta, A, B, C, D, z, bias = inputs
    return structla.selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)


def _gated_bytes(size):
    # z read on top of the plain traffic, D and delta_bias negligible.
    return _selective_bytes(size) + 4.0 * size["batch"] * size["D"] * size["L"]


def _torch_gated_peer():
    """The torch port with D, z, delta_bias and softplus (None without torch)."""
    plain = _torch_peer()
    if plain is None:
        return None

    def run(inputs):
        import torch

        u, delta, A, B, C, D, z, bias = (torch.from_dlpack(x) for x in inputs)
        delta = torch.nn.functional.softplus(delta + bias[:, None])
        y = plain((u, delta, A, B, C))
        return (y + u * D[:, None]) * torch.nn.functional.silu(z)

    return run


def _copy_inputs(size, xp, dtype):
    # As many bytes as selective_scan moves at this size: the bandwidth it is judged against.
    elements = int(_selective_bytes(size) // 8)
    return xp.ones(elements, dtype=dtype), xp.empty(elements, dtype=dtype)


def _copy(inputs):
    source, target = inputs
    target[...] = source
    return target


def _lfilter_inputs(size, xp, dtype):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 0.99, (size["rows"], 1))
    b = rng.standard_normal((size["rows"], size["L"]))
    return xp.asarray(a, dtype=dtype), xp.asarray(b, dtype=dtype)


def _lfilter_peer(inputs):
    import scipy.signal

    a, b = (x.get() if hasattr(x, "get") else x for x in inputs)
    return np.stack([scipy.signal.lfilter([1.0], [1.0, -a[i, 0]], b[i]) for i in range(b.shape[0])])


def _deer_inputs(size, xp, dtype):
    rng = np.random.default_rng(0)
    d = size["d"]
    W = xp.asarray(0.5 * rng.standard_normal((d, d)) / np.sqrt(d), dtype=dtype)
    u = xp.asarray(rng.standard_normal((size["L"], d)), dtype=dtype)
    return W, u


def _deer_ours(inputs):
    W, u = inputs
    xp = np if isinstance(u, np.ndarray) else __import__("cupy")

    def f(x, v):
        return xp.tanh(x @ W.T + v)

    def jac(x, v):
        return (1 - xp.tanh(x @ W.T + v) ** 2)[..., :, None] * W

    return structla.deer(f, xp.zeros(W.shape[0], dtype=W.dtype), u, jac=jac)


def _deer_loop(inputs):
    W, u = (x.get() if hasattr(x, "get") else x for x in inputs)
    x = np.zeros(W.shape[0], dtype=W.dtype)
    out = np.empty_like(u)
    for t in range(u.shape[0]):
        x = np.tanh(W @ x + u[t])
        out[t] = x
    return out


CASES = [
    BenchCase(
        routine="selective_scan",
        peer="NumPy port of mamba_ssm selective_scan_ref",
        sizes=[{"batch": 2, "D": 768, "N": 16, "L": 256}, {"batch": 2, "D": 768, "N": 16, "L": 2048}],
        setup=_selective_inputs,
        ours=lambda inputs: structla.selective_scan(*inputs),
        peer_fn=lambda inputs: selective_scan_ref_numpy(*inputs),
        x="L", devices=("cpu",), dtypes=("float32",),
        flops=_selective_flops, bytes=_selective_bytes,
    ),
    BenchCase(
        routine="selective_scan",
        peer="torch port of mamba_ssm selective_scan_ref",
        sizes=[{"batch": 8, "D": 1536, "N": 16, "L": 512}, {"batch": 8, "D": 1536, "N": 16, "L": 2048}],
        setup=_selective_inputs,
        ours=lambda inputs: structla.selective_scan(*inputs),
        peer_fn=_torch_peer(),
        peer_device="gpu",
        x="L", devices=("gpu",), dtypes=("float32",),
        flops=_selective_flops, bytes=_selective_bytes,
    ),
    BenchCase(
        routine="selective_scan",
        peer="torch port of selective_scan_ref with D, z, delta_bias, softplus",
        sizes=[{"batch": 8, "D": 1536, "N": 16, "L": 512}, {"batch": 8, "D": 1536, "N": 16, "L": 2048}],
        setup=_gated_inputs,
        ours=_gated_ours,
        peer_fn=_torch_gated_peer(),
        peer_device="gpu",
        x="L", devices=("gpu",), dtypes=("float32",),
        flops=_selective_flops, bytes=_gated_bytes,
    ),
    BenchCase(
        routine="device copy (bandwidth reference for selective_scan)",
        peer="none",
        sizes=[{"batch": 8, "D": 1536, "N": 16, "L": 512}, {"batch": 8, "D": 1536, "N": 16, "L": 2048}],
        setup=_copy_inputs,
        ours=_copy,
        peer_fn=None,
        x="L", devices=("gpu",), dtypes=("float32",),
        bytes=lambda size: 8 * (_selective_bytes(size) // 8),
    ),
    BenchCase(
        routine="linear_scan",
        peer="scipy.signal.lfilter per row",
        sizes=[{"rows": 64, "L": 4096}, {"rows": 64, "L": 65536}, {"rows": 8, "L": 2**20}],
        setup=_lfilter_inputs,
        ours=lambda inputs: structla.linear_scan(*inputs),
        peer_fn=_lfilter_peer,
        x="L", dtypes=("float32", "float64"),
        bytes=lambda size: 3.0 * 4 * size["rows"] * size["L"],
    ),
    BenchCase(
        routine="deer",
        peer="sequential NumPy loop",
        sizes=[{"L": 256, "d": 4}, {"L": 2048, "d": 4}, {"L": 8192, "d": 8}],
        setup=_deer_inputs,
        ours=_deer_ours,
        peer_fn=_deer_loop,
        x="L", devices=("cpu",), dtypes=("float64",),
    ),
]
