"""matfun: msign and relatives against SVD/Schur (NumPy, SciPy, torch) and Muon's torch iteration.

CPU: msign in float32 to max|σᵢ − 1| ≤ 1e-3 (the Muon use) against NumPy's SVD polar factor
``U @ Vh`` in the same precision, and float64 routines against SciPy (``polar``, ``signm``,
``sqrtm``, the ``solve_sylvester`` form of the msign VJP) and SVD clipping.

GPU: the same routines on CuPy (cuBLAS) against torch in the same process (imported lazily):
``torch.linalg.svd`` and Muon's 5-step bf16 quintic iteration (Keller Jordan's coefficients,
written out below from the formula of MATH D2), single and batched. GPU square test matrices
have singular values log-spaced in [1e-3, 1] (a gradient-like spectrum; a square Gaussian has
σ_min ≈ 0, which no few-step iteration brings to 1).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import scipy.linalg

import structla
from structla._core.namespace import to_numpy

from ..case import BenchCase

_HAS_TORCH = importlib.util.find_spec("torch") is not None
#: Iterations our adaptive runs took per (case, size, dtype), recorded in setup for the flop count.
_STEPS: dict[str, int] = {}
_MUON = (3.4445, -4.7750, 2.0315)


def _key(tag, size):
    return tag + json.dumps(size, sort_keys=True)


def _msign_flops(n, m, steps, method="standard"):
    """Product flops (symmetric products counted in full) of ``steps`` msign steps.

    Standard: ``XXᵀ``, ``Y²``, ``HX`` per step. Gram (the certified path: at most 3 steps, no
    restart): ``XXᵀ`` and ``Y²`` once, ``HRH``, ``R²`` and ``HQ`` per later step, ``QX`` once.
    """
    k, big = min(n, m), max(n, m)
    if method == "gram":
        return 4.0 * k * k * big + 2.0 * k**3 + max(steps - 1, 0) * 8.0 * k**3
    return steps * (4.0 * k * k * big + 2.0 * k**3)


def _flops(tag, size, scale=1):
    steps, method = _STEPS[_key(tag, size)]
    return scale * _msign_flops(size["n"], size["m"], steps, method)


def _spectrum(rng, n, m, low):
    k = min(n, m)
    u, _ = np.linalg.qr(rng.standard_normal((n, k)))
    v, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return (u * np.logspace(0, np.log10(low), k)) @ v.T


# ---------------------------------------------------------------------------------
# msign float32 to 1e-3 (CPU and GPU)


def _gaussian_setup(tag, tol, compute_dtype=None):
    def setup(size, xp, dtype):
        rng = np.random.default_rng(0)
        shape = (size["batch"], size["n"], size["m"]) if "batch" in size else (size["n"], size["m"])
        if size.get("spectrum"):
            M = np.stack([_spectrum(rng, size["n"], size["m"], 1e-3)
                          for _ in range(size.get("batch", 1))]).reshape(shape)
        else:
            M = rng.standard_normal(shape)
        M = xp.asarray(M, dtype=dtype)
        _, info = structla.msign(M, tol=tol, compute_dtype=compute_dtype, return_info=True)
        _STEPS[_key(tag, size)] = (info.iterations, info.method)
        return {"M": M}

    return setup


def _numpy_svd_polar(inputs):
    U, _, Vh = np.linalg.svd(inputs["M"], full_matrices=False)
    return U @ Vh


def _torch_svd_polar(inputs):
    import torch

    M = torch.from_dlpack(inputs["M"])
    U, _, Vh = torch.linalg.svd(M, full_matrices=False)
    out = U @ Vh
    torch.cuda.synchronize()
    return out


def _torch_muon5(inputs):
    """Muon's iteration: bf16, X₀ = G/(‖G‖_F + 1e-7), 5 steps of X ← aX + (bA + cA²)X, A = XXᵀ."""
    import torch

    G = torch.from_dlpack(inputs["M"])
    wide = G.shape[-2] <= G.shape[-1]
    X = (G if wide else G.mT).bfloat16()
    X = X / (torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True) + 1e-7)
    a, b, c = _MUON
    for _ in range(5):
        A = X @ X.mT
        X = a * X + (b * A + c * (A @ A)) @ X
    out = X if wide else X.mT
    torch.cuda.synchronize()
    return out


CASES = [
    BenchCase(
        routine="msign", peer="numpy.linalg.svd U@Vh (float32); ours: tol=1e-3",
        sizes=[{"n": 256, "m": 1024}, {"n": 512, "m": 2048}, {"n": 1024, "m": 4096}],
        setup=_gaussian_setup("f32", 1e-3), ours=lambda d: structla.msign(d["M"], tol=1e-3),
        peer_fn=_numpy_svd_polar, devices=("cpu",), dtypes=("float32",),
        flops=lambda s: _flops("f32", s)),
    BenchCase(
        routine="msign", peer="numpy.linalg.svd batched (float32); ours: tol=1e-3",
        sizes=[{"batch": 32, "n": 128, "m": 128, "spectrum": 1},
               {"batch": 256, "n": 128, "m": 128, "spectrum": 1}],
        setup=_gaussian_setup("batch", 1e-3), ours=lambda d: structla.msign(d["M"], tol=1e-3),
        peer_fn=_numpy_svd_polar, devices=("cpu",), dtypes=("float32",), x="batch",
        flops=lambda s: _flops("batch", s, s["batch"])),
]


# ---------------------------------------------------------------------------------
# float64 routines against SciPy (CPU)


def _square_setup(kind):
    def setup(size, xp, dtype):
        rng = np.random.default_rng(1)
        n = size["n"]
        if kind == "spd":
            A = _spectrum(rng, n, n, 1e-3)
            A = A @ A.T
        elif kind == "sign":
            P = _spectrum(rng, n, n, 0.1)
            A = P @ np.diag(np.linspace(0.5, 2.0, n) * np.resize([1.0, -1.0], n)) @ np.linalg.inv(P)
        else:
            A = _spectrum(rng, n, n, 1e-3)
        return {"M": xp.asarray(A, dtype=dtype), "G": xp.asarray(rng.standard_normal((n, n)), dtype=dtype)}

    return setup


def _sylvester_vjp(inputs):
    M, G = inputs["M"], inputs["G"]
    O = scipy.linalg.polar(M)[0]
    X = scipy.linalg.solve_sylvester(M @ O.T, O.T @ M, G)
    return X - O @ X.T @ O


def _svd_clip(inputs):
    U, s, Vh = np.linalg.svd(inputs["M"], full_matrices=False)
    return (U * np.clip(s, 0.0, 0.1)) @ Vh


_SQUARE = [{"n": 128}, {"n": 256}, {"n": 512}]

CASES += [
    BenchCase(routine="polar", peer="scipy.linalg.polar", sizes=_SQUARE,
              setup=_square_setup("cond"), ours=lambda d: structla.polar(d["M"]),
              peer_fn=lambda d: scipy.linalg.polar(d["M"]), devices=("cpu",)),
    BenchCase(routine="mcsgn", peer="scipy.linalg.signm", sizes=_SQUARE,
              setup=_square_setup("sign"), ours=lambda d: structla.mcsgn(d["M"]),
              peer_fn=lambda d: scipy.linalg.signm(d["M"]), devices=("cpu",)),
    BenchCase(routine="sqrtm", peer="scipy.linalg.sqrtm", sizes=_SQUARE,
              setup=_square_setup("spd"), ours=lambda d: structla.sqrtm(d["M"]),
              peer_fn=lambda d: scipy.linalg.sqrtm(d["M"]), devices=("cpu",)),
    BenchCase(routine="mclip", peer="numpy.linalg.svd + clip", sizes=_SQUARE,
              setup=_square_setup("cond"), ours=lambda d: structla.mclip(d["M"], 0.0, 0.1),
              peer_fn=_svd_clip, devices=("cpu",)),
    BenchCase(routine="msign_vjp", peer="scipy polar + solve_sylvester", sizes=_SQUARE,
              setup=_square_setup("cond"), ours=lambda d: structla.msign_vjp(d["M"], d["G"]),
              peer_fn=_sylvester_vjp, devices=("cpu",)),
]


# ---------------------------------------------------------------------------------
# GPU: torch peers


def _gpu_spectrum_setup(tag, tol, compute_dtype=None):
    inner = _gaussian_setup(tag, tol, compute_dtype)

    def setup(size, xp, dtype):
        return inner(dict(size, spectrum=1), xp, dtype)

    return setup


def _deviation(X):
    s = np.linalg.svd(to_numpy(X).astype(np.float64), compute_uv=False)
    return float(np.abs(s - 1).max())


def _equal_accuracy_setup(size, xp, dtype):
    """Batched matrices and the fewest Polar Express steps that reach Muon's 5-step accuracy.

    Muon's deviation max|σ − 1| is measured with its coefficients in float32 (more accurate
    than its bf16 run), so the step count chosen for us is never flattering.
    """
    rng = np.random.default_rng(0)
    M = np.stack([_spectrum(rng, size["n"], size["m"], 1e-3) for _ in range(size["batch"])])
    M = xp.asarray(M, dtype=dtype)
    target = _deviation(structla.msign(M, steps=5, coeffs="muon"))
    steps = next(t for t in range(1, 9)
                 if _deviation(structla.msign(M, steps=t, compute_dtype="float16")) <= target)
    _STEPS[_key("eq", size)] = (steps, "standard")
    return {"M": M, "steps": steps}


def _cupy_svd_polar(inputs):
    import cupy

    U, _, Vh = cupy.linalg.svd(inputs["M"], full_matrices=False)
    return U @ Vh


CASES.append(BenchCase(
    routine="msign", peer="cupy.linalg.svd U@Vh (float32); ours: tol=1e-3",
    sizes=[{"n": 1024, "m": 4096}, {"n": 4096, "m": 4096}], setup=_gpu_spectrum_setup("cusvd", 1e-3),
    ours=lambda d: structla.msign(d["M"], tol=1e-3), peer_fn=_cupy_svd_polar, peer_device="gpu",
    devices=("gpu",), dtypes=("float32",),
    flops=lambda s: _flops("cusvd", dict(s, spectrum=1))))

if _HAS_TORCH:
    _GPU_SQUARE = [{"n": 1024, "m": 4096}, {"n": 4096, "m": 4096}, {"n": 8192, "m": 8192}]
    CASES += [
        BenchCase(
            routine="msign", peer="torch Muon 5-step bf16; ours: float16 compute, tol=1e-2",
            sizes=_GPU_SQUARE, setup=_gpu_spectrum_setup("muon", 1e-2, "float16"),
            ours=lambda d: structla.msign(d["M"], tol=1e-2, compute_dtype="float16"),
            peer_fn=_torch_muon5, peer_device="gpu", devices=("gpu",), dtypes=("float32",),
            flops=lambda s: _flops("muon", dict(s, spectrum=1))),
        BenchCase(
            routine="msign", peer="torch.linalg.svd U@Vh (float32); ours: tol=1e-3, "
                                  "compute_dtype='mixed' (float16 steps, float32 finish)",
            sizes=_GPU_SQUARE, setup=_gpu_spectrum_setup("svd", 1e-3, "mixed"),
            ours=lambda d: structla.msign(d["M"], tol=1e-3, compute_dtype="mixed"),
            peer_fn=_torch_svd_polar, peer_device="gpu", devices=("gpu",), dtypes=("float32",),
            flops=lambda s: _flops("svd", dict(s, spectrum=1)),
            peer_limit=lambda s: s["n"] <= 4096),
        BenchCase(
            routine="msign", peer="torch batched Muon 5-step bf16; ours: fewest Polar Express "
                                  "steps (f16) at Muon's accuracy",
            sizes=[{"batch": 256, "n": 128, "m": 128}],
            setup=_equal_accuracy_setup,
            ours=lambda d: structla.msign(d["M"], steps=d["steps"], compute_dtype="float16"),
            peer_fn=_torch_muon5, peer_device="gpu", devices=("gpu",), dtypes=("float32",),
            x="batch", flops=lambda s: _flops("eq", s, s["batch"])),
    ]
