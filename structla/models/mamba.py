"""Mamba's mixer block (MATH E2) on :func:`structla.selective_scan`, with token-by-token decoding."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._core.namespace import array_namespace
from ..scan._api import selective_scan

__all__ = ["MambaMixer", "MambaState"]


class MambaState(NamedTuple):
    """Decoding state of :class:`MambaMixer`.

    conv : (..., d_inner, d_conv − 1) array
        The last ``d_conv − 1`` inputs of the causal convolution (oldest first).
    ssm : (..., d_inner, d_state) array
        The selective-scan state.
    """

    conv: Any
    ssm: Any


def _silu(x: Any, xp: ModuleType) -> Any:
    return x / (1 + xp.exp(-x))


class MambaMixer:
    """The Mamba (S6) mixer: in-projection, causal depthwise convolution, selective scan,
    gating, out-projection — with :meth:`step` for decoding one token at a time.

    Parameters
    ----------
    d_model : int
        Model width.
    d_state : int, optional
        N, states per channel (default 16).
    d_conv : int, optional
        Width of the causal depthwise convolution (default 4).
    expand : int, optional
        ``d_inner = expand · d_model`` (default 2).
    dt_rank : int, optional
        Rank of the Δ projection (default ``ceil(d_model / 16)``).
    dt_min, dt_max, dt_floor : float, optional
        Δ at initialisation is log-uniform in [dt_min, dt_max], floored at dt_floor
        (defaults 1e-3, 1e-1, 1e-4), stored as the inverse softplus in ``dt_bias``.
    seed : int or numpy.random.Generator, optional
    dtype : {float64, float32}, optional
    xp : module, optional
        ``numpy`` (default) or ``cupy``.

    Attributes
    ----------
    in_proj : (2·d_inner, d_model) array
    conv_weight : (d_inner, d_conv) array
        ``conv_weight[:, -1]`` multiplies the current input (PyTorch ``Conv1d`` order).
    conv_bias : (d_inner,) array
    x_proj : (dt_rank + 2·d_state, d_inner) array
    dt_proj : (d_inner, dt_rank) array
    dt_bias : (d_inner,) array
    A_log : (d_inner, d_state) array
        ``A = −exp(A_log)``, initialised to ``A_n = −(n + 1)`` (S4D-Real).
    D : (d_inner,) array
    out_proj : (d_model, d_inner) array

    Notes
    -----
    For ``x`` ``(..., L, d_model)``: ``[u, z] = x W_inᵀ``; ``u ← silu(causal_conv(u))``;
    ``[δ, B, C] = u W_xᵀ``; ``Δ = softplus(δ W_dtᵀ + dt_bias)``; then
    ``y = selective_scan(u, Δ, A, B, C, D, z)`` (MATH E2: ``h_t = e^{ΔA} h_{t−1} + Δ B_t u_t``,
    ``y_t = C_tᵀ h_t + D u_t``, times ``silu(z_t)``) and ``out = y W_outᵀ``. Cost
    O(L · d_inner · (d_model + d_state + d_conv)). :meth:`step` runs the same maths on one
    token with the carried :class:`MambaState`, so decoding token by token equals the
    parallel pass.

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import MambaMixer
    >>> mixer = MambaMixer(8, d_state=4, seed=0)
    >>> x = np.random.default_rng(1).standard_normal((2, 12, 8))
    >>> y = mixer(x)
    >>> state, outs = mixer.initial_state((2,)), []
    >>> for t in range(12):
    ...     y_t, state = mixer.step(x[:, t], state)
    ...     outs.append(y_t)
    >>> np.allclose(y, np.stack(outs, axis=1))
    True
    """

    def __init__(self, d_model: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_floor: float = 1e-4, seed: Any = None, dtype: Any = np.float64,
                 xp: ModuleType | None = None) -> None:
        for name, value in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv),
                            ("expand", expand)):
            if int(value) != value or value < 1:
                raise ValueError(f"argument {name!r} must be a positive integer; got {value!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"argument 'dtype' must be float32 or float64; got {self.dtype}")
        self.xp = np if xp is None else xp
        self.d_model, self.d_state, self.d_conv = int(d_model), int(d_state), int(d_conv)
        self.d_inner = int(expand) * self.d_model
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank is None else int(dt_rank)
        rng = np.random.default_rng(seed)
        di, n, r = self.d_inner, self.d_state, self.dt_rank

        def uniform(bound: float, shape: tuple[int, ...]) -> Any:
            return self.xp.asarray(rng.uniform(-bound, bound, shape), dtype=self.dtype)

        self.in_proj = uniform(1 / math.sqrt(self.d_model), (2 * di, self.d_model))
        self.conv_weight = uniform(1 / math.sqrt(self.d_conv), (di, self.d_conv))
        self.conv_bias = uniform(1 / math.sqrt(self.d_conv), (di,))
        self.x_proj = uniform(1 / math.sqrt(di), (r + 2 * n, di))
        self.dt_proj = uniform(r ** -0.5, (di, r))
        dt = np.exp(rng.uniform(np.log(dt_min), np.log(dt_max), di))
        dt = np.maximum(dt, dt_floor)
        # Inverse of softplus, so that softplus(dt_bias) = dt at initialisation.
        self.dt_bias = self.xp.asarray(dt + np.log(-np.expm1(-dt)), dtype=self.dtype)
        self.A_log = self.xp.asarray(np.log(np.tile(np.arange(1, n + 1, dtype=np.float64), (di, 1))),
                                     dtype=self.dtype)
        self.D = self.xp.ones(di, dtype=self.dtype)
        self.out_proj = uniform(1 / math.sqrt(di), (self.d_model, di))

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> MambaState:
        """Zero :class:`MambaState` for a batch of shape ``batch_shape``."""
        xp = self.xp
        return MambaState(xp.zeros((*batch_shape, self.d_inner, self.d_conv - 1), dtype=self.dtype),
                          xp.zeros((*batch_shape, self.d_inner, self.d_state), dtype=self.dtype))

    def __call__(self, x: Any, state: MambaState | None = None, *, return_state: bool = False) -> Any:
        """Parallel mode over a sequence ``x`` ``(..., L, d_model)``.

        ``state`` continues from an earlier call (default: zeros); with ``return_state``
        the :class:`MambaState` after the last token is returned too.
        """
        xp = array_namespace(x=x, in_proj=self.in_proj)
        x = xp.asarray(x)
        if x.dtype.kind == "c":
            raise TypeError(f"argument 'x' must be real; got dtype {x.dtype}")
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"argument 'x' must have shape (..., L, d_model) with d_model = {self.d_model}; "
                             f"got shape {tuple(x.shape)}")
        dtype = np.result_type(x.dtype, self.dtype)
        batch, length = tuple(x.shape[:-2]), x.shape[-2]
        count = math.prod(batch)
        if state is None:
            state = self.initial_state(batch)
        conv_prev = xp.asarray(state.conv, dtype=dtype).reshape(count, self.d_inner, self.d_conv - 1)
        h0 = xp.asarray(state.ssm, dtype=dtype).reshape(count, self.d_inner, self.d_state)
        xs = x.reshape(count, length, self.d_model).astype(dtype, copy=False)
        xz = xs @ self.in_proj.T.astype(dtype, copy=False)
        u = xp.swapaxes(xz[..., :self.d_inner], -1, -2)              # (count, d_inner, L)
        z = xp.swapaxes(xz[..., self.d_inner:], -1, -2)
        padded = xp.concatenate([conv_prev, u], axis=-1)
        conv = self.conv_bias[:, None].astype(dtype) + self.conv_weight[:, :1] * padded[..., :length]
        for j in range(1, self.d_conv):
            conv = conv + self.conv_weight[:, j:j + 1] * padded[..., j:j + length]
        u = _silu(conv, xp)
        proj = xp.swapaxes(u, -1, -2) @ self.x_proj.T                # (count, L, r + 2N)
        r, n = self.dt_rank, self.d_state
        delta = xp.swapaxes(proj[..., :r] @ self.dt_proj.T, -1, -2)
        b = xp.swapaxes(proj[..., r:r + n], -1, -2)
        c = xp.swapaxes(proj[..., r + n:], -1, -2)
        y, h = selective_scan(xp.ascontiguousarray(u), xp.ascontiguousarray(delta), -xp.exp(self.A_log),
                              xp.ascontiguousarray(b), xp.ascontiguousarray(c), self.D,
                              xp.ascontiguousarray(z), delta_bias=self.dt_bias, delta_softplus=True,
                              h0=h0, return_state=True, check_finite=False)
        out = (xp.swapaxes(y, -1, -2) @ self.out_proj.T).astype(dtype, copy=False)
        out = out.reshape(*batch, length, self.d_model)
        if not return_state:
            return out
        conv_next = padded[..., padded.shape[-1] - (self.d_conv - 1):]
        new_state = MambaState(conv_next.reshape(*batch, self.d_inner, self.d_conv - 1),
                               h.reshape(*batch, self.d_inner, self.d_state))
        return out, new_state

    def step(self, x_t: Any, state: MambaState) -> tuple[Any, MambaState]:
        """Decode one token ``x_t`` ``(..., d_model)`` → ``(y_t, new_state)``."""
        xp = array_namespace(x_t=x_t, in_proj=self.in_proj)
        x_t = xp.asarray(x_t)
        y, state = self(x_t[..., None, :], state, return_state=True)
        return y[..., 0, :], state
