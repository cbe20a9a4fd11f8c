"""Train a small S4D model on a delayed-copy task with ``structla.torch.ssm_kernel_diag``.

The model lifts a scalar signal to H channels, convolves each channel with the kernel of a
diagonal state-space model (S4D: ``K_l = 2·Re Σ_n C_n B̄_n Ā_nˡ`` with ZOH discretisation),
mixes the channels back and must reproduce the input delayed by ``delay`` steps. The kernel
and its gradients with respect to the complex poles ``a``, the output weights ``C`` and the
steps ``Δ`` come from structla (Vandermonde sums and their analytic VJP); the FFT
convolution and the rest are ordinary torch.

    python examples/torch_s4d_train.py            # 300 steps
    python examples/torch_s4d_train.py --quick    # 60 steps, a few seconds
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
from torch import nn

import structla
import structla.torch as st


class S4D(nn.Module):
    """H independent diagonal SSMs of N/2 conjugate pairs each, as in Gu et al.'s S4D-Lin."""

    def __init__(self, channels: int, state: int = 16, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        a = torch.as_tensor(structla.s4d_init("lin", state)).repeat(channels, 1)
        self.log_a_real = nn.Parameter(torch.log(-a.real))
        self.a_imag = nn.Parameter(a.imag.clone())
        self.C = nn.Parameter(torch.randn(channels, state // 2, dtype=torch.complex128) * 0.5**0.5)
        self.D = nn.Parameter(torch.randn(channels, dtype=torch.float64))
        log_dt = torch.rand(channels, dtype=torch.float64) * (math.log(dt_max) - math.log(dt_min))
        self.log_dt = nn.Parameter(log_dt + math.log(dt_min))
        self.register_buffer("B", torch.ones(channels, state // 2, dtype=torch.complex128))

    def kernel(self, length: int) -> torch.Tensor:
        a = torch.complex(-torch.exp(self.log_a_real), self.a_imag)
        return st.ssm_kernel_diag(a, self.B, self.C, torch.exp(self.log_dt), length)   # (H, L) real

    def forward(self, u: torch.Tensor) -> torch.Tensor:                  # u: (batch, H, L)
        L = u.shape[-1]
        K = self.kernel(L)
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(K, n=2 * L), n=2 * L)[..., :L]
        return y + self.D[:, None] * u


class Model(nn.Module):
    def __init__(self, channels: int = 8, state: int = 16) -> None:
        super().__init__()
        self.lift = nn.Linear(1, channels).double()
        self.ssm = S4D(channels, state)
        self.mix = nn.Linear(channels, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:                  # x: (batch, L)
        h = self.lift(x[..., None]).transpose(1, 2)
        h = nn.functional.gelu(self.ssm(h))
        return self.mix(h.transpose(1, 2))[..., 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (60 if args.quick else 300)
    # Small problems run fastest on one thread (see torch_deltanet_train.py).
    torch.set_num_threads(1)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    torch.manual_seed(0)
    length, delay, batch = 64, 6, 32
    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        x = torch.randn(batch, length, dtype=torch.float64)
        target = nn.functional.pad(x, (delay, 0))[:, :length]
        loss = nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    window = max(1, min(10, steps // 5))
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    print(f"{steps} steps in {time.perf_counter() - t0:.1f} s (a zero prediction has loss 1)")
    print(f"first loss {first:.4f} last loss {last:.4f}")
    if not last < first:  # CI runs the quick mode: a loss that did not fall fails it
        sys.exit(f"the loss did not fall: first {first:.4f}, last {last:.4f}")


if __name__ == "__main__":
    main()
