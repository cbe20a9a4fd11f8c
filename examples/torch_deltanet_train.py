"""Train a one-layer DeltaNet on associative recall with ``structla.torch.delta_rule``.

Each sequence lists P key→value pairs and ends with one of the keys; the model must output
the value stored with it. DeltaNet's state ``S_t = S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ``
is a key–value memory written by the delta rule, so one layer solves the task once it learns
to write (key of the previous token, value of the current one) and to read with the query.
The forward pass is structla's chunked kernel, the backward pass the analytic one of
``structla.torch`` (tril solves and products, no T×T matrix); the rest is ordinary torch.

    python examples/torch_deltanet_train.py            # 300 steps
    python examples/torch_deltanet_train.py --quick    # 60 steps, a few seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch import nn

import structla.torch as st


def recall_batch(batch: int, pairs: int, vocab: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``k1 v1 … kP vP q`` (keys in [0, vocab), values in [vocab, 2·vocab)) and the answer."""
    keys = torch.argsort(torch.rand(batch, vocab, generator=gen), dim=1)[:, :pairs]
    values = torch.randint(vocab, (batch, pairs), generator=gen)
    which = torch.randint(pairs, (batch,), generator=gen)
    seq = torch.stack([keys, values + vocab], dim=2).reshape(batch, 2 * pairs)
    query = keys[torch.arange(batch), which]
    return torch.cat([seq, query[:, None]], dim=1), values[torch.arange(batch), which]


class DeltaNet(nn.Module):
    """Embedding, token shift, one DeltaNet mixer with H heads, linear read-out of the last step."""

    def __init__(self, vocab: int, width: int = 64, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.embed = nn.Embedding(2 * vocab, width)
        self.qkv = nn.Linear(2 * width, 3 * width, bias=False)
        self.beta = nn.Linear(2 * width, heads)
        self.out = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        shifted = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        h = torch.cat([x, shifted], dim=-1)
        b, t, _ = x.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = nn.functional.normalize(q, dim=-1), nn.functional.normalize(k, dim=-1)
        beta = torch.sigmoid(self.beta(h)).transpose(1, 2)              # (b, H, T)
        o = st.delta_rule(q, k, v, beta, chunk_size=16)                 # (b, H, T, head_dim)
        return self.out(o[:, :, -1].reshape(b, -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (60 if args.quick else 300)
    # Matrices this small run fastest on one thread: waking a thread pool per call costs more
    # than it saves (numba reads the variable when the first kernel runs, after this line).
    torch.set_num_threads(1)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    vocab, pairs, batch = 16, 4, 64
    model = DeltaNet(vocab).double()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        tokens, answer = recall_batch(batch, pairs, vocab, gen)
        loss = nn.functional.cross_entropy(model(tokens), answer)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    window = max(1, min(10, steps // 5))
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    tokens, answer = recall_batch(1024, pairs, vocab, gen)
    with torch.no_grad():
        accuracy = (model(tokens).argmax(-1) == answer).double().mean().item()
    print(f"{steps} steps in {time.perf_counter() - t0:.1f} s; recall accuracy {accuracy:.3f} "
          f"(chance {1 / vocab:.3f})")
    print(f"first loss {first:.4f} last loss {last:.4f}")
    if not last < first:  # CI runs the quick mode: a loss that did not fall fails it
        sys.exit(f"the loss did not fall: first {first:.4f}, last {last:.4f}")


if __name__ == "__main__":
    main()
