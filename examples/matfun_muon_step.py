"""A Muon-style optimizer step with structla.msign (Polar Express coefficients).

Muon updates a weight matrix W with the orthogonalised momentum ``msign(B)``: every singular
direction of the momentum moves by the same amount. Here it fits a linear map W to data (least
squares) and compares the fixed 5-step Muon iteration with Polar Express to a 1e-3 tolerance.

    python examples/matfun_muon_step.py
"""

from __future__ import annotations

import numpy as np

from structla import msign


def muon_step(W, grad, momentum, *, lr=0.02, beta=0.95, **msign_options):
    """One Muon step (Nesterov momentum, orthogonalised update scaled to the matrix shape)."""
    momentum = beta * momentum + grad
    update = msign(beta * momentum + grad, **msign_options)
    scale = max(1.0, W.shape[0] / W.shape[1]) ** 0.5
    return W - lr * scale * update, momentum


def main() -> None:
    rng = np.random.default_rng(0)
    d_in, d_out, samples = 64, 32, 512
    X = rng.standard_normal((samples, d_in)).astype(np.float32)
    W_true = rng.standard_normal((d_out, d_in)).astype(np.float32) / np.sqrt(d_in)
    Y = X @ W_true.T
    for label, options in [("muon 5 steps", {"steps": 5, "coeffs": "muon"}),
                           ("polar express tol=1e-3", {"tol": 1e-3})]:
        W = np.zeros_like(W_true)
        momentum = np.zeros_like(W)
        for _ in range(200):
            grad = (X @ W.T - Y).T @ X / samples
            W, momentum = muon_step(W, grad, momentum, **options)
        loss = float(np.mean((X @ W.T - Y) ** 2))
        print(f"{label:24s} final loss {loss:.3e}")


if __name__ == "__main__":
    main()
