"""hippo: S4/S4D kernel generation, NPLR and the O(N) LegS solve against their naive peers.

``ssm_kernel_dplr`` is measured on S4's training path (``c_tilde=True``: C̃ is the trained
parameter, so the kernel is Cauchy sums + Woodbury + irfft) against the same formula written
with NumPy (CPU) or torch (GPU) broadcasting, which materialise the ``H × 4 × N × (L/2+1)``
Cauchy matrices (S4's ``cauchy_naive``, conjugate modes concatenated). Sizes follow S4:
``nplr("legs", N, conj_pairs=True)`` (N/2 stored modes), Δ log-uniform in [1e-3, 1e-1].
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

import structla

from ..case import BenchCase


def _dplr_inputs(size, xp, dtype):
    H, N, L = size["H"], size["N"], size["L"]
    rng = np.random.default_rng(0)
    Lambda, P, B, _ = structla.nplr("legs", N, conj_pairs=True)
    Ct = rng.standard_normal((H, N // 2)) + 1j * rng.standard_normal((H, N // 2))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    cdtype = np.result_type(dtype, np.complex64)
    return {"Lambda": xp.asarray(np.broadcast_to(Lambda, (H, N // 2)), dtype=cdtype),
            "P": xp.asarray(np.broadcast_to(P, (H, 1, N // 2)), dtype=cdtype),
            "B": xp.asarray(np.broadcast_to(B, (H, N // 2)), dtype=cdtype),
            "C": xp.asarray(Ct, dtype=cdtype), "dt": xp.asarray(dt, dtype=dtype), "L": L}


def _dplr_ours(inputs):
    return structla.ssm_kernel_dplr(inputs["Lambda"], inputs["P"], inputs["B"], inputs["C"],
                                    inputs["dt"], inputs["L"], c_tilde=True)


def _dplr_formula(lib, inputs, Lambda, P, B, C, dt):
    """The S4 kernel formula with broadcast Cauchy matrices; ``lib`` is numpy or torch."""
    L = inputs["L"]
    cat = np.concatenate if lib is np else lib.cat
    Lf, Bf, Cf = (cat([x, x.conj()], -1) for x in (Lambda, B, C))
    Pf = cat([P[:, 0], P[:, 0].conj()], -1)
    l = lib.arange(L // 2) if lib is np else lib.arange(L // 2, device=Lambda.device)
    half = np.pi * l / L
    g = (2j / dt[:, None]) * lib.tan(half)[None, :]
    numerators = lib.stack([Cf * Bf, Cf * Pf, Pf.conj() * Bf, Pf.conj() * Pf], 1)
    k = (numerators[:, :, :, None] / (g[:, None, None, :] - Lf[:, None, :, None])).sum(-2)
    values = lib.exp(1j * half) / lib.cos(half) * (k[:, 0] - k[:, 1] * k[:, 2] / (1 + k[:, 3]))
    nyquist = (dt / 2 * (Cf * Bf).sum(-1))[:, None]
    spectrum = cat([values, nyquist.to(values.dtype) if lib is not np else nyquist], -1)
    return lib.fft.irfft(spectrum, n=L)


def _dplr_numpy(inputs):
    args = (inputs[k] for k in ("Lambda", "P", "B", "C", "dt"))
    return _dplr_formula(np, inputs, *args)


def _dplr_torch():
    if importlib.util.find_spec("torch") is None:
        return None

    def run(inputs):
        import torch

        args = [torch.from_dlpack(inputs[k]) for k in ("Lambda", "P", "B", "C", "dt")]
        out = _dplr_formula(torch, inputs, *args)
        torch.cuda.synchronize()
        return out

    return run


def _dplr_flops(size):
    # 4 Cauchy sums × 2 (conjugate modes) × N/2 poles × (L/2 + 1) nodes × ~8 flops per term.
    return size["H"] * 4 * size["N"] * (size["L"] // 2 + 1) * 8


def _dplr_bytes(size):
    return size["H"] * (size["L"] * 8 + size["N"] * 4 * 16)


def _diag_inputs(size, xp, dtype):
    H, N, L = size["H"], size["N"], size["L"]
    rng = np.random.default_rng(1)
    a = structla.s4d_init("lin", N)
    C = rng.standard_normal((H, N // 2)) + 1j * rng.standard_normal((H, N // 2))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    return {"a": xp.asarray(a), "B": xp.ones(N // 2), "C": xp.asarray(C), "dt": xp.asarray(dt),
            "L": L}


def _diag_numpy(inputs):
    z = inputs["dt"][:, None] * inputs["a"]
    weights = inputs["C"] * inputs["B"] * (np.exp(z) - 1) / inputs["a"]
    powers = np.exp(z[..., None] * np.arange(inputs["L"]))
    return 2 * (weights[..., None] * powers).sum(-2).real


def _nplr_inputs(size, xp, dtype):
    return {"N": size["N"], "A": structla.hippo("legs", size["N"])[0]}


def _nplr_eig(inputs):
    return np.linalg.eig(inputs["A"])


def _legs_inputs(size, xp, dtype):
    rng = np.random.default_rng(2)
    N = size["N"]
    return {"v": xp.asarray(rng.standard_normal((4, N))), "lam": xp.asarray([0.01, 0.1, 1, 10.0]),
            "A": structla.hippo("legs", N)[0]}


def _legs_dense(inputs):
    N = inputs["A"].shape[0]
    return [np.linalg.solve(np.eye(N) - lam * inputs["A"], v)
            for lam, v in zip(inputs["lam"], inputs["v"])]


def nplr_accuracy(N: int = 1024) -> dict[str, float]:
    """Seconds and relative reconstruction error ‖A − V(Λ − PᵀP̄)V*‖_F/‖A‖_F of ``nplr`` and of a
    naive ``numpy.linalg.eig(A)`` decomposition ``X diag(w) X⁻¹`` (LegS, size N; ``inf`` when X
    is singular to working precision), with the condition number of X."""
    A = structla.hippo("legs", N)[0]
    t0 = time.perf_counter()
    Lambda, P, _, V = structla.nplr("legs", N)
    t1 = time.perf_counter()
    rebuilt = V @ (np.diag(Lambda) - P.T @ P.conj()) @ V.conj().T
    t2 = time.perf_counter()
    w, X = np.linalg.eig(A)
    t3 = time.perf_counter()
    norm = np.linalg.norm(A)
    try:
        naive_error = float(np.linalg.norm(X @ np.diag(w) @ np.linalg.inv(X) - A) / norm)
    except np.linalg.LinAlgError:  # X is singular to working precision: no decomposition at all
        naive_error = float("inf")
    return {"nplr_s": t1 - t0, "nplr_error": float(np.linalg.norm(rebuilt - A) / norm),
            "eig_s": t3 - t2, "eig_error": naive_error, "eig_cond": float(np.linalg.cond(X))}


CASES = [
    BenchCase(
        routine="ssm_kernel_dplr", peer="same formula, NumPy broadcasting (S4 cauchy_naive)",
        sizes=[{"H": 4, "N": 64, "L": 1024}, {"H": 16, "N": 64, "L": 2048},
               {"H": 64, "N": 64, "L": 4096}],
        setup=_dplr_inputs, ours=_dplr_ours, peer_fn=_dplr_numpy, x="L", devices=("cpu",),
        flops=_dplr_flops, bytes=_dplr_bytes,
    ),
    BenchCase(
        routine="ssm_kernel_dplr", peer="same formula, torch broadcasting (S4 cauchy_naive)",
        sizes=[{"H": 64, "N": 64, "L": 4096}, {"H": 256, "N": 64, "L": 16384}],
        setup=_dplr_inputs, ours=_dplr_ours, peer_fn=_dplr_torch(), peer_device="gpu", x="L",
        devices=("gpu",), dtypes=("float32", "float64"), flops=_dplr_flops, bytes=_dplr_bytes,
    ),
    BenchCase(
        routine="ssm_kernel_diag", peer="NumPy broadcasting (S4D Vandermonde)",
        sizes=[{"H": 16, "N": 64, "L": 1024}, {"H": 64, "N": 64, "L": 4096}],
        setup=_diag_inputs, ours=lambda i: structla.ssm_kernel_diag(i["a"], i["B"], i["C"],
                                                                    i["dt"], i["L"]),
        peer_fn=_diag_numpy, x="L", devices=("cpu",),
        flops=lambda s: s["H"] * s["N"] // 2 * s["L"] * 8,
    ),
    BenchCase(
        routine="nplr", peer="numpy.linalg.eig(A) (naive; inaccurate, see RESULTS.md)",
        sizes=[{"N": 256}, {"N": 1024}], setup=_nplr_inputs,
        ours=lambda i: structla.nplr("legs", i["N"]), peer_fn=_nplr_eig, x="N", devices=("cpu",),
        flops=lambda s: 10 * s["N"] ** 3,
    ),
    BenchCase(
        routine="legs_solve", peer="numpy.linalg.solve (dense I − λA)",
        sizes=[{"N": 256}, {"N": 2048}], setup=_legs_inputs,
        ours=lambda i: structla.legs_solve(i["v"], i["lam"]), peer_fn=_legs_dense, x="N",
        devices=("cpu",), flops=lambda s: 4 * 8 * s["N"],
    ),
]


def dplr_alternating(rounds: int = 9, size: dict | None = None) -> dict[str, float]:
    """Must-show ratio of ``ssm_kernel_dplr`` against the NumPy-broadcasting formula, with the
    two calls alternating so that both see the same machine load: medians of the per-round wall
    ratios and of the CPU-time ratios (``time.process_time``, all threads)."""
    size = size or {"H": 64, "N": 64, "L": 4096}
    inputs = _dplr_inputs(size, np, "float64")
    _dplr_ours(inputs)
    wall, cpu = [], []
    for _ in range(rounds):
        samples = []
        for fn in (_dplr_ours, _dplr_numpy):
            w0, c0 = time.perf_counter(), time.process_time()
            fn(inputs)
            samples.append((time.perf_counter() - w0, time.process_time() - c0))
        (ours_w, ours_c), (peer_w, peer_c) = samples
        wall.append(peer_w / ours_w)
        cpu.append(peer_c / ours_c)
    return {"wall_ratio": float(np.median(wall)), "cpu_ratio": float(np.median(cpu)),
            "wall_min": float(np.min(wall)), "wall_max": float(np.max(wall))}


if __name__ == "__main__":
    print("nplr(1024) vs eig:", nplr_accuracy(1024))
    print("ssm_kernel_dplr H=64 N=64 L=4096, alternating:", dplr_alternating())
