"""The fused GPU chunk form of (gated) DeltaNet (``models/_cupy.py``, ``models.cu``) against the
float64 step-by-step recurrence, with every output the GPU path allocates poisoned with NaN.

Every carry kernel (32, 16 and 64 value columns per block) runs every case. Sizes cover what they
tile: partial last chunks, chunk sizes below, at and between the 32-wide slabs (16, 37, 64), d_k
from 5 to 128 (one to four key slabs), value dimensions over several partial column tiles,
initial states, and the fallbacks beyond the kernels' bounds (chunk > 64, d_k > 128), which
keep the general chunked form.
"""

from __future__ import annotations

import numpy as np
import pytest

from structla.models import delta_rule, gated_delta_rule
from tests.oracles import as_host, max_relative_error
from tests.strategies import eps
from tests.test_models import _oracle, _problem

pytestmark = pytest.mark.gpu


@pytest.fixture
def poisoned(monkeypatch, cp):
    """Outputs of the fused path start as NaN, so an unwritten entry shows."""
    from structla.models import _cupy

    def empty(shape, dtype):
        out = cp.empty(shape, dtype=dtype)
        out.fill(np.nan)
        return out

    monkeypatch.setattr(_cupy, "_empty", empty)
    return _cupy


def _run(model, args, h0, cp, **kw):
    dargs = [cp.asarray(a) for a in args]
    fn = delta_rule if model == "delta" else gated_delta_rule
    return fn(*dargs, h0=None if h0 is None else cp.asarray(h0), return_state=True, **kw)


@pytest.fixture(params=[32, 16, 64])
def tiles(request, monkeypatch, poisoned):
    """Each carry kernel: 32, 16 and 64 value columns per block."""
    monkeypatch.setattr(poisoned, "_carry_tile", lambda count, dv: request.param)
    return request.param


@pytest.mark.parametrize("model", ["delta", "gated_delta"])
@pytest.mark.parametrize("length, chunk, dk, dv", [
    (150, 64, 32, 16), (150, 16, 5, 3), (200, 37, 33, 70), (130, 64, 128, 128), (64, 64, 64, 40),
    (1, 64, 8, 8),
])
def test_fused_chunk_form_equals_recurrence_float64(tiles, cp, model, length, chunk, dk, dv):
    rng = np.random.default_rng(length + dk + dv)
    args, h0 = _problem(rng, model, batch=(3,), length=length, dk=dk, dv=dv)
    want, want_state = _oracle(model, args, h0)
    for mode in ("chunk", "auto"):
        out, state = _run(model, args, h0, cp, chunk_size=chunk, mode=mode)
        assert max_relative_error(as_host(out), want) < 1e-10, mode
        assert max_relative_error(as_host(state), want_state) < 1e-10, mode


@pytest.mark.parametrize("model", ["delta", "gated_delta"])
def test_fused_chunk_form_float32(tiles, cp, model):
    rng = np.random.default_rng(5)
    args, h0 = _problem(rng, model, batch=(2, 2), length=300, dk=128, dv=128)
    args[1] /= np.linalg.norm(args[1], axis=-1, keepdims=True)
    want, want_state = _oracle(model, args, h0)
    out, state = _run(model, [a.astype(np.float32) for a in args], h0.astype(np.float32), cp, mode="chunk")
    assert out.dtype == np.float32 and state.dtype == np.float32
    assert max_relative_error(as_host(out), want) < 500 * eps(np.float32)
    assert max_relative_error(as_host(state), want_state) < 500 * eps(np.float32)


def test_two_halves_with_carried_state_equal_the_whole(poisoned, cp):
    rng = np.random.default_rng(6)
    args, h0 = _problem(rng, "gated_delta", length=200, dk=48, dv=40)
    whole, whole_state = _run("gated_delta", args, h0, cp, mode="chunk")
    first, mid = _run("gated_delta", [a[:, :90] for a in args], h0, cp, mode="chunk")
    second, end = _run("gated_delta", [a[:, 90:] for a in args], as_host(mid), cp, mode="chunk")
    assert max_relative_error(as_host(cp.concatenate([first, second], axis=1)), as_host(whole)) < 1e-12
    assert max_relative_error(as_host(end), as_host(whole_state)) < 1e-12


@pytest.mark.parametrize("chunk, dk", [(100, 16), (64, 130)])
def test_beyond_the_kernel_bounds_the_general_form_runs(cp, chunk, dk):
    rng = np.random.default_rng(7)
    args, h0 = _problem(rng, "delta", length=150, dk=dk, dv=8)
    want, want_state = _oracle("delta", args, h0)
    out, state = _run("delta", args, h0, cp, chunk_size=chunk, mode="chunk")
    assert max_relative_error(as_host(out), want) < 1e-10
    assert max_relative_error(as_host(state), want_state) < 1e-10


def test_empty_sequences_and_batches(poisoned, cp):
    rng = np.random.default_rng(8)
    args, h0 = _problem(rng, "delta", batch=(2,), length=0, dk=4, dv=3)
    out, state = _run("delta", args, h0, cp, mode="chunk")
    assert out.shape == (2, 0, 3)
    assert np.array_equal(as_host(state), h0)
    args, h0 = _problem(rng, "delta", batch=(0,), length=10, dk=4, dv=3)
    out, state = _run("delta", args, h0, cp, mode="chunk")
    assert out.shape == (0, 10, 3) and state.shape == (0, 3, 4)
