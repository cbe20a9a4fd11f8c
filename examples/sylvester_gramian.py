"""Controllability Gramian of a stable system, and what happens when a Sylvester equation is singular.

The Gramian W of ``x' = A x + B u`` solves the Lyapunov equation ``A W + W Aᵀ = −B Bᵀ``. structla
solves it with the matrix-sign iteration (on CuPy arrays too, when a GPU is present) and checks
it against SciPy. Then A and −B are given a common eigenvalue (scipy gh-23066): SciPy returns a
matrix that does not solve the equation, structla raises ``LinAlgError``.

    python examples/sylvester_gramian.py
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

import structla


def main() -> None:
    rng = np.random.default_rng(0)
    n, inputs = 200, 3
    A = -np.eye(n) + rng.standard_normal((n, n)) / (2 * np.sqrt(n))  # stable
    B = rng.standard_normal((n, inputs))
    W, info = structla.solve_lyapunov(A, -B @ B.T, return_info=True)
    ref = scipy.linalg.solve_continuous_lyapunov(A, -B @ B.T)
    error = np.abs(W - ref).max() / np.abs(ref).max()
    print(f"Gramian n={n}: method={info.method}, {info.iterations} iterations, "
          f"backward error {info.error_estimate:.1e}, difference to SciPy {error:.1e}")
    print(f"  symmetric to {np.abs(W - W.T).max() / np.abs(W).max():.1e}; its eigenvalues decay "
          f"fast (3 inputs): largest {np.linalg.eigvalsh((W + W.T) / 2)[-1]:.2e}")

    # gh-23066: A and -B share the eigenvalue 1.
    A2 = np.diag([1.0, 2.0, 3.0])
    B2 = -np.diag([1.0, 5.0, 6.0])
    C2 = np.ones((3, 3))
    X_scipy = scipy.linalg.solve_sylvester(A2, B2, C2)
    residual = np.abs(A2 @ X_scipy + X_scipy @ B2 - C2).max()
    print(f"SciPy on a singular equation: no error, residual |AX + XB - C| = {residual:.1e}")
    try:
        structla.solve_sylvester(A2, B2, C2)
        singular_reported = False
    except structla.LinAlgError as exc:
        singular_reported = True
        print(f"structla: LinAlgError: {exc}")
    ok = error < 1e-10 and info.error_estimate < 1e-13 and singular_reported
    print("check: OK" if ok else "check: FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
