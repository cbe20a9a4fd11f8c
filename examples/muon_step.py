"""Muon on torch with ``structla.torch.Muon`` (momentum orthogonalised by msign, Polar Express).

First one Muon step is checked against the same update written out with an SVD polar factor;
then a small MLP is trained on a regression task with Muon for its weight matrices and AdamW
for its biases (the usual split: Muon is defined for matrices).

    python examples/muon_step.py            # 200 steps
    python examples/muon_step.py --quick    # 40 steps
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

import structla.torch as st


def reference_step(W: torch.Tensor, grad: torch.Tensor, lr: float, momentum: float) -> torch.Tensor:
    """Muon's first step from a zero buffer, with the exact polar factor ``U Vᵀ`` of an SVD."""
    buf = grad.clone()
    u = grad + momentum * buf
    U, _, Vh = torch.linalg.svd(u, full_matrices=False)
    return W - lr * max(1.0, W.shape[0] / W.shape[1]) ** 0.5 * (U @ Vh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (40 if args.quick else 200)
    torch.set_num_threads(1)  # small matrices (see torch_deltanet_train.py)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    torch.manual_seed(0)

    W = torch.randn(48, 32, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(48, 32, dtype=torch.float64)
    expected = reference_step(W.detach(), grad, lr=0.02, momentum=0.95)
    W.grad = grad
    st.Muon([W], lr=0.02, momentum=0.95).step()
    gap = (W.detach() - expected).abs().max().item()
    print(f"one Muon step vs SVD reference: max |difference| = {gap:.2e}")

    X = torch.randn(512, 32, dtype=torch.float64)
    teacher = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 8)).double()
    with torch.no_grad():
        Y = teacher(X)
    model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 8)).double()
    matrices = [p for p in model.parameters() if p.ndim == 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    muon = st.Muon(matrices, lr=0.02, momentum=0.95, steps=6)
    adamw = torch.optim.AdamW(vectors, lr=3e-3)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        loss = nn.functional.mse_loss(model(X), Y)
        muon.zero_grad()
        adamw.zero_grad()
        loss.backward()
        muon.step()
        adamw.step()
        losses.append(loss.item())
        if step % max(1, steps // 8) == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    window = max(1, min(10, steps // 5))
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    print(f"{steps} steps in {time.perf_counter() - t0:.1f} s")
    print(f"first loss {first:.5f} last loss {last:.5f}")


if __name__ == "__main__":
    main()
