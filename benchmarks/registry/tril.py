"""tril: diagonal + low-rank triangular solves, inverses and UT transforms against the dense route.

Problems are gated DeltaNet systems (MATH F3–F4): λ = 1, unit keys, Q = diag(β) K with
β ∈ [0, 1), log-gates in [-0.1, 0]; their inverses stay bounded, so every peer computes the
same well-defined answer. Peers get the dense T prebuilt (its construction is not timed):

* CPU: ``scipy.linalg.solve_triangular`` (default arguments) and LAPACK ``dtrtri``;
  ``numpy.linalg.inv`` for batches of UT blocks.
* GPU: ``torch.linalg.solve_triangular`` on the dense T. For ``ut_transform`` (ours takes K
  and β and forms ``A = tril(diag(β) K Kᵀ, -1)`` itself) two fla peers in fla's
  ``[B, T, H, ·]`` layout: the like-for-like ``chunk_scaled_dot_kkt_fwd`` (A from K and β)
  followed by ``solve_tril`` (``(I + A)⁻¹``), and ``solve_tril`` alone on a prebuilt A (less
  work than ours). Peers are ``None`` where torch / fla are not importable. The GPU UT setup
  also checks our answer: ``‖(I + A) X − diag(β)‖_max ≤ 1e-5`` (float32, normalised keys).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import time

import numpy as np
import scipy.linalg

import structla

from ..case import BenchCase

#: Dense peers are skipped above this n (n = 32768 would need 8 GiB for T alone).
DENSE_MAX_N = 16384


def _deltanet(rng, batch, n, d):
    k = rng.standard_normal((*batch, n, d))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    beta = rng.random((*batch, n))
    return np.ones((*batch, n)), beta[..., None] * k, k, beta, -0.1 * rng.random((*batch, n))


def _dense_rows(diag, q, k, log_decay, rows=1024):
    """The dense float64 T, built a block of rows at a time (peak memory ≈ T itself)."""
    n = diag.shape[-1]
    t = np.zeros((n, n))
    g = np.cumsum(log_decay)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        block = q[s:e] @ k[:e].T
        exponent = g[s:e, None] - g[None, :e]
        lower = np.arange(s, e)[:, None] > np.arange(e)[None, :]
        block *= np.where(lower, np.exp(np.where(lower, exponent, 0.0)), 0.0)
        block[np.arange(e - s), np.arange(s, e)] = diag[s:e]
        t[s:e, :e] = block
    return t


def _solve_setup(size, xp, dtype):
    rng = np.random.default_rng(0)
    n, d, m = size["n"], size["d"], size["m"]
    diag, q, k, _, g = _deltanet(rng, (), n, d)
    b = rng.standard_normal((n, m))
    inputs = {name: xp.asarray(a, dtype=dtype) for name, a in
              (("diag", diag), ("q", q), ("k", k), ("b", b), ("g", g))}
    if n <= DENSE_MAX_N:
        inputs["dense"] = _dense_rows(diag, q, k, g).astype(dtype)
    return inputs


def _solve(inputs):
    return structla.tril_dlr_solve(inputs["diag"], inputs["q"], inputs["k"], inputs["b"],
                                   log_decay=inputs["g"])


def _scipy_solve(inputs):
    return scipy.linalg.solve_triangular(inputs["dense"], inputs["b"], lower=True)


def _inv_setup(size, xp, dtype):
    return _solve_setup({**size, "m": 1}, xp, dtype)


def _inv(inputs):
    return structla.tril_dlr_inv(inputs["diag"], inputs["q"], inputs["k"], log_decay=inputs["g"])


def _dtrtri(inputs):
    return scipy.linalg.lapack.dtrtri(inputs["dense"], lower=1)[0]


def _ut_setup(size, xp, dtype):
    """``blocks`` chunks of ``C`` keys in fla's layout: B × T × H with T = blocks·C/(B·H)."""
    rng = np.random.default_rng(0)
    blocks, c, d = size["blocks"], size["C"], size["d"]
    _, _, k, beta, _ = _deltanet(rng, (blocks,), c, d)
    a = np.tril(beta[..., :, None] * (k @ np.swapaxes(k, -1, -2)), -1)
    return {"k": xp.asarray(k, dtype=dtype), "beta": xp.asarray(beta, dtype=dtype),
            "system": np.eye(c) + a, "beta64": beta, "a": a, "B": size.get("B", 1),
            "H": size.get("H", 1)}


def _ut(inputs):
    return structla.ut_transform(inputs["k"], inputs["beta"])


def _numpy_inv(inputs):
    return np.linalg.inv(inputs["system"]) * inputs["beta64"][..., None, :]


def _has(module):
    return importlib.util.find_spec(module) is not None


def _torch():
    return importlib.import_module("torch") if _has("torch") else None


def _fla_solve_tril():
    """fla's ``solve_tril`` (its module moved between releases)."""
    for module in ("fla.ops.utils.solve_tril", "fla.ops.utils", "fla.ops.common.solve_tril"):
        try:
            return importlib.import_module(module).solve_tril
        except (ImportError, AttributeError):
            continue
    raise ImportError("fla is installed but has no solve_tril in the known modules")


def _fla_kkt():
    """fla's ``chunk_scaled_dot_kkt_fwd`` and the keywords it takes (names moved between releases)."""
    for module in ("fla.ops.common.chunk_scaled_dot_kkt", "fla.ops.common"):
        try:
            fn = importlib.import_module(module).chunk_scaled_dot_kkt_fwd
        except (ImportError, AttributeError):
            continue
        return fn, set(inspect.signature(fn).parameters)
    raise ImportError("fla is installed but has no chunk_scaled_dot_kkt_fwd in the known modules")


def _to_fla(x, b, h, c):
    """Blocks ``(b·(T/C)·h, C, ...)`` → fla's ``[B, T, H, ...]`` (block (b, chunk, h) = rows chunk·C…)."""
    rest = x.shape[2:]
    t = x.shape[0] * c // (b * h)
    x = x.reshape(b, t // c, h, c, *rest)
    return np.ascontiguousarray(np.moveaxis(x, 3, 2).reshape(b, t, h, *rest))


def _gpu_ut_setup(size, xp, dtype):
    inputs = _ut_setup(size, xp, dtype)
    # the residual against A from the float32 keys and β we pass (double-precision products)
    k, beta, c = inputs["k"].astype(xp.float64), inputs["beta"].astype(xp.float64), size["C"]
    a = beta[..., :, None] * (k @ xp.swapaxes(k, -1, -2)) * xp.tri(c, c, -1, dtype=bool)
    x = _ut(inputs).astype(xp.float64)
    residual = float(xp.abs(a @ x + x - beta[..., None, :] * xp.eye(c)).max())
    if not residual <= 1e-5:
        raise AssertionError(f"ut_transform residual {residual:.3e} > 1e-5 on normalised keys")
    torch = _torch()
    if torch is not None:
        b, h, c = inputs["B"], inputs["H"], size["C"]
        inputs["C"] = c

        def cuda32(y):
            return torch.as_tensor(_to_fla(y, b, h, c), dtype=torch.float32, device="cuda")

        inputs["fla_a"] = cuda32(inputs["a"])
        inputs["fla_k"] = cuda32(xp.asnumpy(inputs["k"]) if xp is not np else inputs["k"])
        inputs["fla_beta"] = cuda32(inputs["beta64"])
    return inputs


def _fla_peer(inputs):
    return _fla_solve_tril()(inputs["fla_a"])


def _fla_kkt_peer(inputs):
    import torch

    kkt, params = _fla_kkt()
    kwargs = {"k": inputs["fla_k"], "beta": inputs["fla_beta"], "chunk_size": inputs["C"]}
    if "output_dtype" in params:
        kwargs["output_dtype"] = torch.float32
    return _fla_solve_tril()(kkt(**{key: v for key, v in kwargs.items() if key in params}))


def _gpu_solve_setup(size, xp, dtype):
    rng = np.random.default_rng(0)
    batch, n, d, m = size["batch"], size["n"], size["d"], size["m"]
    diag, q, k, _, g = _deltanet(rng, (batch,), n, d)
    b = rng.standard_normal((batch, n, m))
    inputs = {name: xp.asarray(a, dtype=dtype) for name, a in
              (("diag", diag), ("q", q), ("k", k), ("b", b), ("g", g))}
    torch = _torch()
    if torch is not None:
        dense = structla.tril_dlr_dense(inputs["diag"], inputs["q"], inputs["k"], log_decay=inputs["g"])
        inputs["torch_t"] = torch.from_dlpack(dense)
        inputs["torch_b"] = torch.from_dlpack(inputs["b"])
    return inputs


def _torch_solve(inputs):
    import torch

    return torch.linalg.solve_triangular(inputs["torch_t"], inputs["torch_b"], upper=False)


#: 8192 blocks of 64×64 in fla's layout: B = 8, T = 4096, H = 16.
_GPU_UT_SIZES = [{"blocks": 8192, "C": 64, "d": 64, "B": 8, "H": 16},
                 {"blocks": 8192, "C": 64, "d": 128, "B": 8, "H": 16}]


def _ut_flops(s):
    """Lower half of the Gram matrix (C²·d) and the unit lower-triangular inverse (C³/3)."""
    return s["blocks"] * (s["C"] ** 2 * s["d"] + s["C"] ** 3 / 3)


def _ut_bytes(s):
    """float32: read K and β, write the C×C block."""
    return 4.0 * s["blocks"] * s["C"] * (s["C"] + s["d"] + 1)


CASES = [
    BenchCase(
        routine="tril_dlr_solve", peer="scipy.linalg.solve_triangular (dense T)",
        sizes=[{"n": n, "d": 64, "m": 64} for n in (1024, 2048, 4096, 8192, 16384, 32768, 65536)],
        setup=_solve_setup, ours=_solve, peer_fn=_scipy_solve, devices=("cpu",),
        flops=lambda s: 4.0 * s["n"] * s["d"] * s["m"],
        bytes=lambda s: 8.0 * s["n"] * (2 * s["d"] + 2 * s["m"] + 2),
        peer_limit=lambda s: s["n"] <= DENSE_MAX_N,
    ),
    BenchCase(
        routine="tril_dlr_inv", peer="LAPACK dtrtri (dense T)",
        sizes=[{"n": n, "d": 64} for n in (512, 1024, 2048, 4096)],
        setup=_inv_setup, ours=_inv, peer_fn=_dtrtri, devices=("cpu",),
        # n²/2 entries below the diagonal, each a length-d inner product; the output written once
        flops=lambda s: 1.0 * s["d"] * s["n"] ** 2, bytes=lambda s: 8.0 * s["n"] ** 2,
    ),
    BenchCase(
        routine="ut_transform", peer="numpy.linalg.inv (I + A, float64)",
        sizes=[{"blocks": b, "C": 64, "d": 64} for b in (64, 256, 1024, 4096)], x="blocks",
        setup=_ut_setup, ours=_ut, peer_fn=_numpy_inv, devices=("cpu",), dtypes=("float32",),
        flops=lambda s: 2.0 * s["blocks"] * s["C"] ** 2 * s["d"],
        bytes=lambda s: 4.0 * s["blocks"] * s["C"] * (s["C"] + s["d"] + 1),
    ),
    BenchCase(
        routine="ut_transform", peer="fla chunk_scaled_dot_kkt_fwd + solve_tril (from K and beta, as ours)",
        sizes=_GPU_UT_SIZES, x="blocks",
        setup=_gpu_ut_setup, ours=_ut, peer_fn=_fla_kkt_peer if _has("fla") else None,
        peer_device="gpu", devices=("gpu",), dtypes=("float32",), flops=_ut_flops, bytes=_ut_bytes,
    ),
    BenchCase(
        routine="ut_transform", peer="fla solve_tril alone (A prebuilt; ours still forms A from K)",
        sizes=_GPU_UT_SIZES, x="blocks",
        setup=_gpu_ut_setup, ours=_ut, peer_fn=_fla_peer if _has("fla") else None,
        peer_device="gpu", devices=("gpu",), dtypes=("float32",), flops=_ut_flops, bytes=_ut_bytes,
    ),
    BenchCase(
        routine="tril_dlr_solve", peer="torch.linalg.solve_triangular (dense T)",
        sizes=[{"batch": 64, "n": 1024, "d": 128, "m": 128}, {"batch": 64, "n": 4096, "d": 128, "m": 128}],
        setup=_gpu_solve_setup, ours=_solve, peer_fn=_torch_solve if _has("torch") else None,
        peer_device="gpu", devices=("gpu",), dtypes=("float32",),
        flops=lambda s: 4.0 * s["batch"] * s["n"] * s["d"] * s["m"],
        bytes=lambda s: 4.0 * s["batch"] * s["n"] * (2 * s["d"] + 2 * s["m"] + 2),
    ),
]


def inv_alternating(rounds: int = 7, n: int = 4096, d: int = 64, pause: float = 0.0) -> dict[str, float]:
    """Must-show case of ``tril_dlr_inv`` against ``dtrtri``: the two calls alternate, so both
    see the same machine load. Minimum and median wall and CPU time (``time.process_time``,
    all threads) in ms, and the ratios of the minima and of the medians.

    ``pause`` seconds of sleep before each call let the other call's idle threads stop: an
    OpenBLAS worker spins for about 0.1 s (2²⁸ cycles) after a threaded call such as
    ``dtrtri``, and meanwhile takes one of the two cores from whatever runs next."""
    inputs = _inv_setup({"n": n, "d": d}, np, "float64")
    _inv(inputs)
    times = {"ours": [], "dtrtri": []}
    for _ in range(rounds):
        for name, fn in (("ours", _inv), ("dtrtri", _dtrtri)):
            time.sleep(pause)
            w0, c0 = time.perf_counter(), time.process_time()
            fn(inputs)
            times[name].append((1e3 * (time.perf_counter() - w0), 1e3 * (time.process_time() - c0)))
    out = {}
    for name, samples in times.items():
        wall, cpu = np.array(samples).T
        out |= {f"{name}_wall_min": wall.min(), f"{name}_wall_median": np.median(wall),
                f"{name}_cpu_min": cpu.min(), f"{name}_cpu_median": np.median(cpu)}
    for stat in ("wall_min", "wall_median", "cpu_min", "cpu_median"):
        out[f"ratio_{stat}"] = out[f"dtrtri_{stat}"] / out[f"ours_{stat}"]
    return {key: round(float(value), 2) for key, value in out.items()}


if __name__ == "__main__":
    print("tril_dlr_inv n=4096 d=64 vs dtrtri, alternating:", inv_alternating())
    print("the same, 0.25 s pause before each call:", inv_alternating(pause=0.25))
