"""Built-in problems of the hippo family for ``python -m structla demo`` and ``check``."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._cli.cases import DemoCase
from .._core.namespace import to_numpy
from ._api import (
    discretize,
    fftconv,
    hippo,
    legs_solve,
    nplr,
    rft_kernel,
    s4d_init,
    ssm_kernel_diag,
    ssm_kernel_dplr,
)

__all__ = ["demo_cases"]


def _powers(Ad: np.ndarray, Bd: np.ndarray, C: np.ndarray, length: int) -> np.ndarray:
    """Batched ``C Āᵏ B̄`` by ``length`` matrix–vector products (the dense peer)."""
    K = np.empty((Ad.shape[0], length), dtype=np.result_type(Ad, C))
    x = Bd
    for k in range(length):
        K[:, k] = np.sum(C * x, axis=-1)
        x = np.einsum("hij,hj->hi", Ad, x)
    return K


def _dplr_case(xp: ModuleType, quick: bool) -> DemoCase:
    H, N, L = (4, 32, 512) if quick else (16, 64, 4096)
    rng = np.random.default_rng(0)
    Lambda, P, Bt, _V = nplr("legs", N, conj_pairs=True)
    Ct = rng.standard_normal((H, N // 2)) + 1j * rng.standard_normal((H, N // 2))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    args = [xp.asarray(x) for x in (Lambda, P, Bt, Ct, dt)]

    def peer() -> np.ndarray:
        Lf, Pf, Bf = (np.concatenate([x, x.conj()], axis=-1) for x in (Lambda, P, Bt))
        Cf = np.concatenate([Ct, Ct.conj()], axis=-1)
        A = np.diag(Lf) - Pf.T @ Pf.conj()
        Ad, Bd = discretize(np.broadcast_to(A, (H, N, N)), np.broadcast_to(Bf, (H, N)), dt,
                            method="bilinear")
        # C̄ᵀ = C̃ᵀ(I − Āᴸ)⁻¹, then the kernel by powers.
        power = np.linalg.matrix_power(Ad, L)
        Cbar = np.linalg.solve(np.swapaxes(np.eye(N) - power, -1, -2), Cf[..., None])[..., 0]
        return _powers(Ad, Bd, Cbar, L).real

    return DemoCase("ssm_kernel_dplr", f"H={H} N={N} L={L}",
                    lambda: ssm_kernel_dplr(*args, L, c_tilde=True), peer,
                    "dense powers (NumPy)", 1e-9)


def _diag_case(xp: ModuleType, quick: bool) -> DemoCase:
    H, N, L = (8, 32, 1024) if quick else (64, 64, 4096)
    rng = np.random.default_rng(1)
    a = s4d_init("lin", N)
    C = rng.standard_normal((H, N // 2)) + 1j * rng.standard_normal((H, N // 2))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    args = [xp.asarray(x) for x in (a, np.ones(N // 2), C, dt)]

    def peer() -> np.ndarray:
        z = dt[:, None] * a
        weights = C * (np.exp(z) - 1) / a
        return 2 * np.einsum("hn,hnl->hl", weights, np.exp(z[..., None] * np.arange(L))).real

    return DemoCase("ssm_kernel_diag", f"H={H} N={N} L={L}",
                    lambda: ssm_kernel_diag(*args, L), peer, "NumPy broadcasting", 1e-10)


def _nplr_case(xp: ModuleType, quick: bool) -> DemoCase:
    N = 128 if quick else 512
    A = hippo("legs", N)[0]

    def ours() -> np.ndarray:
        Lambda, P, _, V = nplr("legs", N)
        return (V * Lambda) @ V.conj().T - (V @ P.T) @ (V @ P.T).conj().T

    return DemoCase("nplr", f"legs N={N}", ours, lambda: A.copy(), "hippo A (dense)", 1e-12)


def _legs_solve_case(xp: ModuleType, quick: bool) -> DemoCase:
    N = 256 if quick else 2048
    v = np.random.default_rng(2).standard_normal((4, N))
    lam = np.array([0.01, 0.1, 1.0, 10.0])
    A = hippo("legs", N)[0]

    def peer() -> np.ndarray:
        return np.stack([np.linalg.solve(np.eye(N) - l * A, x) for l, x in zip(lam, v)])

    vx, lx = xp.asarray(v), xp.asarray(lam)
    return DemoCase("legs_solve", f"4 x N={N}", lambda: legs_solve(vx, lx), peer,
                    "numpy.linalg.solve (dense)", 1e-10)


def _discretize_case(xp: ModuleType, quick: bool) -> DemoCase:
    H, N = (4, 16) if quick else (32, 64)
    A, B = hippo("legt", N)
    dt = np.linspace(0.01, 0.1, H)
    As, Bs = np.broadcast_to(A, (H, N, N)), np.broadcast_to(B, (H, N))

    def peer() -> np.ndarray:
        import scipy.linalg

        out = []
        for d in dt:
            block = np.zeros((N + 1, N + 1))
            block[:N, :N], block[:N, N] = A, B
            out.append(scipy.linalg.expm(d * block)[:N, :])
        return np.stack(out)

    def ours() -> np.ndarray:
        Ad, Bd = discretize(xp.asarray(As), xp.asarray(Bs), xp.asarray(dt))
        return np.concatenate([to_numpy(Ad), to_numpy(Bd)[..., None]], axis=-1)

    return DemoCase("discretize", f"zoh H={H} N={N}", ours, peer, "scipy.linalg.expm (Van Loan)",
                    1e-12)


def _rft_case(xp: ModuleType, quick: bool) -> DemoCase:
    H, d, L = (8, 8, 512) if quick else (16, 16, 2048)
    rng = np.random.default_rng(3)
    a = 0.5 * rng.uniform(-1, 1, (H, d)) / d
    b = rng.standard_normal((H, d))

    def peer() -> np.ndarray:
        out = []
        for ah, bh in zip(a, b):
            companion = np.zeros((d, d))
            companion[0], companion[1:, :-1] = -ah, np.eye(d - 1)
            Cbar = np.linalg.solve((np.eye(d) - np.linalg.matrix_power(companion, L)).T, bh)
            out.append(_powers(companion[None], np.eye(d)[:1], Cbar[None], L)[0])
        return np.stack(out)

    ax, bx = xp.asarray(a), xp.asarray(b)
    return DemoCase("rft_kernel", f"H={H} d={d} L={L}", lambda: rft_kernel(ax, bx, L), peer,
                    "companion powers (NumPy)", 1e-10)


def _fftconv_case(xp: ModuleType, quick: bool) -> DemoCase:
    H, L = (4, 2048) if quick else (64, 16384)
    rng = np.random.default_rng(4)
    K, x = rng.standard_normal((H, L)), rng.standard_normal((H, L))

    def peer() -> np.ndarray:
        import scipy.signal

        return scipy.signal.fftconvolve(K, x, axes=-1)[:, :L]

    Kx, xx = xp.asarray(K), xp.asarray(x)
    return DemoCase("fftconv", f"H={H} L={L}", lambda: fftconv(Kx, xx), peer,
                    "scipy.signal.fftconvolve", 1e-12)


def demo_cases(xp: ModuleType, quick: bool) -> list[DemoCase]:
    """One case per main routine of the family, on ``xp`` (NumPy or CuPy) inputs."""
    return [builder(xp, quick) for builder in (_nplr_case, _legs_solve_case, _discretize_case,
                                               _dplr_case, _diag_case, _rft_case, _fftconv_case)]
