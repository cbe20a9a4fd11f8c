"""S4 (DPLR, HiPPO-LegS) and S4D (diagonal) layers: kernel + FFT convolution, and recurrent steps.

The layers hold their parameters as plain NumPy/CuPy arrays (attributes) and compute with
the hippo family: the kernel by :func:`structla.ssm_kernel_dplr` (Cauchy sums + Woodbury,
MATH B2) or :func:`structla.ssm_kernel_diag` (Vandermonde, MATH B3), the output by
:func:`structla.fftconv` (MATH E3), and the recurrent step from :func:`structla.discretize`
/ :func:`structla.discretize_diag`. Sequences are ``(..., L, H)``: time, then channels.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .._core.namespace import array_namespace
from ..hippo._api import (
    discretize,
    discretize_diag,
    fftconv,
    nplr,
    s4d_init,
    ssm_kernel_diag,
    ssm_kernel_dplr,
)

__all__ = ["S4DLayer", "S4Layer"]


def _log_dt(rng: np.random.Generator, channels: int, dt_min: float, dt_max: float) -> np.ndarray:
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max; got dt_min={dt_min}, dt_max={dt_max}")
    return rng.uniform(np.log(dt_min), np.log(dt_max), channels)


def _channels(value: Any, name: str) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"argument {name!r} must be a positive integer; got {value!r}")
    return int(value)


class _SSMLayer:
    """Shared parts: dtype, the convolution mode and the checks on ``x``.

    Subclasses define ``kernel(length)`` → the ``(H, L)`` convolution kernel.
    """

    H: int
    D: Any
    log_dt: Any
    xp: ModuleType
    dtype: np.dtype

    def _setup(self, channels: int, dtype: Any, xp: ModuleType | None) -> None:
        self.H = _channels(channels, "channels")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"argument 'dtype' must be float32 or float64; got {self.dtype}")
        self.xp = np if xp is None else xp

    @property
    def complex_dtype(self) -> np.dtype:
        return np.result_type(self.dtype, np.complex64)

    def _input(self, x: Any, name: str, time_axis: bool) -> Any:
        xp = array_namespace(**{name: x}, D=self.D)
        x = xp.asarray(x)
        if x.dtype.kind == "c":
            raise TypeError(f"argument {name!r} must be real; got dtype {x.dtype}")
        need = 2 if time_axis else 1
        if x.ndim < need or x.shape[-1] != self.H:
            shape = "(..., L, H)" if time_axis else "(..., H)"
            raise ValueError(f"argument {name!r} must have shape {shape} with H = {self.H}; "
                             f"got shape {tuple(x.shape)}")
        return x

    def __call__(self, x: Any) -> Any:
        """Convolution mode: ``y = K * x + D x`` per channel, ``x`` of shape ``(..., L, H)``.

        The kernel of length L is computed once per call (O(N L) by the structured
        kernel routine), the convolution by zero-padded FFT in O(L log L).
        """
        x = self._input(x, "x", True)
        length = x.shape[-2]
        y = fftconv(self.kernel(length), self.xp.swapaxes(x, -1, -2), D=self.D)
        return self.xp.swapaxes(y, -1, -2).astype(np.result_type(x.dtype, self.dtype), copy=False)


class S4DLayer(_SSMLayer):
    """S4D: a diagonal state-space layer with H channels of N states each (MATH B3).

    Parameters
    ----------
    channels : int
        H, the number of independent channels (model width).
    N : int, optional
        State size per channel (default 64); with ``init`` "lin" or "inv" the layer keeps
        the N/2 modes of one half of each conjugate pair.
    init : {"lin", "inv", "real"}, optional
        :func:`structla.s4d_init` initialisation of A (default "lin").
    dt_min, dt_max : float, optional
        Δ is log-uniform in [dt_min, dt_max] per channel (default 1e-3, 1e-1).
    seed : int or numpy.random.Generator, optional
    dtype : {float64, float32}, optional
        Real dtype of the layer (complex parameters use the matching complex dtype).
    xp : module, optional
        ``numpy`` (default) or ``cupy``: where the parameters live.

    Attributes
    ----------
    A, B, C : (H, M) arrays
        Diagonal state matrix, input and output vectors (M = N/2 complex, or N real).
    log_dt : (H,) array
    D : (H,) array
        Skip connection.

    Notes
    -----
    Convolution mode: ``K_l = Σ_n C_n B̄_n Ā_nˡ`` (ZOH; ``2·Re`` for conjugate pairs) by
    :func:`structla.ssm_kernel_diag`, then :func:`structla.fftconv`. Recurrent mode:
    ``h ← Ā ⊙ h + B̄ x_t``, ``y_t = (2·Re) Σ_n C_n h_n + D x_t`` with ``(Ā, B̄)`` from
    :func:`structla.discretize_diag`. Both give the same outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import S4DLayer
    >>> layer = S4DLayer(3, N=8, seed=0)
    >>> x = np.random.default_rng(1).standard_normal((2, 40, 3))
    >>> y = layer(x)
    >>> state = layer.initial_state((2,))
    >>> steps = []
    >>> for t in range(40):
    ...     y_t, state = layer.step(x[:, t], state)
    ...     steps.append(y_t)
    >>> np.allclose(y, np.stack(steps, axis=1))
    True
    """

    def __init__(self, channels: int, N: int = 64, *, init: str = "lin", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, seed: Any = None, dtype: Any = np.float64,
                 xp: ModuleType | None = None) -> None:
        self._setup(channels, dtype, xp)
        rng = np.random.default_rng(seed)
        a = s4d_init(init, N)
        self.conj_pairs = init != "real"
        modes = a.shape[0]
        pdtype = self.complex_dtype if self.conj_pairs else self.dtype
        if self.conj_pairs:
            c = (rng.standard_normal((self.H, modes))
                 + 1j * rng.standard_normal((self.H, modes))) / np.sqrt(2)
        else:
            c = rng.standard_normal((self.H, modes))
        xp = self.xp
        self.A = xp.asarray(np.broadcast_to(a, (self.H, modes)), dtype=pdtype)
        self.B = xp.ones((self.H, modes), dtype=pdtype)
        self.C = xp.asarray(c, dtype=pdtype)
        self.log_dt = xp.asarray(_log_dt(rng, self.H, dt_min, dt_max), dtype=self.dtype)
        self.D = xp.asarray(rng.standard_normal(self.H), dtype=self.dtype)

    def kernel(self, length: int) -> Any:
        """The convolution kernel ``(H, L)`` (real)."""
        return ssm_kernel_diag(self.A, self.B, self.C, self.xp.exp(self.log_dt), length,
                               conj_pairs=self.conj_pairs)

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """Zero state ``(*batch_shape, H, M)`` for :meth:`step`."""
        return self.xp.zeros((*batch_shape, *self.A.shape), dtype=self.A.dtype)

    def discrete_system(self) -> tuple[Any, Any]:
        """``(Ā, B̄)`` ``(H, M)`` by ZOH: pass it to :meth:`step` to reuse it over many steps."""
        return discretize_diag(self.A, self.B, self.xp.exp(self.log_dt))

    def step(self, x_t: Any, state: Any, *, system: Any = None) -> tuple[Any, Any]:
        """Recurrent mode: one time step ``x_t`` ``(..., H)`` → ``(y_t, new_state)``.

        ``system`` is :meth:`discrete_system` (computed here when omitted).
        """
        x_t = self._input(x_t, "x_t", False)
        ad, bd = self.discrete_system() if system is None else system
        state = ad * state + bd * x_t[..., None]
        y = self.xp.sum(self.C * state, axis=-1)
        y = 2 * y.real if self.conj_pairs else y
        return (y + self.D * x_t).astype(np.result_type(x_t.dtype, self.dtype), copy=False), state


class S4Layer(_SSMLayer):
    """S4: a state-space layer with HiPPO (DPLR) state matrices (MATH B2, C1).

    Parameters
    ----------
    channels : int
        H, the number of channels.
    N : int, optional
        State size (default 64, even); the parameters keep N/2 modes (one of each
        conjugate pair).
    measure : str, optional
        HiPPO measure of :func:`structla.nplr` (default "legs").
    dt_min, dt_max, seed, dtype, xp
        As in :class:`S4DLayer`.

    Attributes
    ----------
    Lambda : (H, M) complex array
        Diagonal part of ``A = diag(Λ) − Pᵀ P̄`` in the eigenbasis of its normal part.
    P : (H, r, M) complex array
    B, C : (H, M) complex arrays
        C enters as ``C x`` (no conjugation); it is the exact C of the system (not S4's C̃).
    log_dt, D : (H,) arrays

    Notes
    -----
    Convolution mode: the bilinear-discretised kernel ``K_k = C Āᵏ B̄`` by
    :func:`structla.ssm_kernel_dplr` (Cauchy sums at the roots of unity, Woodbury, inverse
    FFT; O(N L + L log L)), then :func:`structla.fftconv`. Recurrent mode: the full system
    (both halves of the conjugate pairs, N×N) discretised densely by
    :func:`structla.discretize`, ``h ← Ā h + B̄ x_t``, ``y_t = Re(C h) + D x_t``
    (O(N²) per step and channel).

    Examples
    --------
    >>> import numpy as np
    >>> from structla.models import S4Layer
    >>> layer = S4Layer(2, N=8, seed=0)
    >>> x = np.random.default_rng(1).standard_normal((30, 2))
    >>> state, steps, system = layer.initial_state(), [], layer.discrete_system()
    >>> for t in range(30):
    ...     y_t, state = layer.step(x[t], state, system=system)
    ...     steps.append(y_t)
    >>> np.allclose(layer(x), np.stack(steps))
    True
    """

    def __init__(self, channels: int, N: int = 64, *, measure: str = "legs", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, seed: Any = None, dtype: Any = np.float64,
                 xp: ModuleType | None = None) -> None:
        self._setup(channels, dtype, xp)
        rng = np.random.default_rng(seed)
        lam, p, b, _ = nplr(measure, N, conj_pairs=True)
        modes = lam.shape[0]
        c = (rng.standard_normal((self.H, modes)) + 1j * rng.standard_normal((self.H, modes))) / np.sqrt(2)
        xp, cdt = self.xp, self.complex_dtype
        self.Lambda = xp.asarray(np.broadcast_to(lam, (self.H, modes)), dtype=cdt)
        self.P = xp.asarray(np.broadcast_to(p, (self.H, *p.shape)), dtype=cdt)
        self.B = xp.asarray(np.broadcast_to(b, (self.H, modes)), dtype=cdt)
        self.C = xp.asarray(c, dtype=cdt)
        self.log_dt = xp.asarray(_log_dt(rng, self.H, dt_min, dt_max), dtype=self.dtype)
        self.D = xp.asarray(rng.standard_normal(self.H), dtype=self.dtype)

    def kernel(self, length: int) -> Any:
        """The convolution kernel ``(H, L)`` (real)."""
        return ssm_kernel_dplr(self.Lambda, self.P, self.B, self.C, self.xp.exp(self.log_dt), length,
                               conj_pairs=True)

    def _full_system(self) -> tuple[Any, Any, Any]:
        """``(A, B, C)`` of the whole system, both halves of each conjugate pair: N×N."""
        xp = self.xp
        lam = xp.concatenate([self.Lambda, self.Lambda.conj()], axis=-1)
        p = xp.concatenate([self.P, self.P.conj()], axis=-1)
        n = lam.shape[-1]
        a = -xp.swapaxes(p, -1, -2) @ p.conj()
        a[..., xp.arange(n), xp.arange(n)] += lam
        b = xp.concatenate([self.B, self.B.conj()], axis=-1)
        c = xp.concatenate([self.C, self.C.conj()], axis=-1)
        return a, b, c

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """Zero state ``(*batch_shape, H, N)`` (complex, the full system) for :meth:`step`."""
        return self.xp.zeros((*batch_shape, self.H, 2 * self.Lambda.shape[-1]), dtype=self.complex_dtype)

    def discrete_system(self) -> tuple[Any, Any, Any]:
        """``(Ā, B̄, C)`` of the full system (bilinear, ``(H, N, N)``, ``(H, N)``, ``(H, N)``):
        O(H·N³); pass it to :meth:`step` to reuse it over many steps."""
        a, b, c = self._full_system()
        ad, bd = discretize(a, b, self.xp.exp(self.log_dt), method="bilinear")
        return ad, bd, c

    def step(self, x_t: Any, state: Any, *, system: Any = None) -> tuple[Any, Any]:
        """Recurrent mode: one time step ``x_t`` ``(..., H)`` → ``(y_t, new_state)``.

        ``system`` is :meth:`discrete_system` (computed here when omitted).
        """
        x_t = self._input(x_t, "x_t", False)
        ad, bd, c = self.discrete_system() if system is None else system
        state = (ad @ state[..., None])[..., 0] + bd * x_t[..., None]
        y = self.xp.sum(c * state, axis=-1).real
        return (y + self.D * x_t).astype(np.result_type(x_t.dtype, self.dtype), copy=False), state
