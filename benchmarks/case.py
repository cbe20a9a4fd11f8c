"""One registry entry: a routine, the peer it is measured against, and the sizes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

Size = dict[str, int]


@dataclass(frozen=True)
class BenchCase:
    """A benchmark of one structla routine against one peer, side by side.

    Attributes
    ----------
    routine : str
        structla routine measured (a name in ``structla.__all__`` or ``structla.models``).
    peer : str
        What it is compared with, e.g. ``"scipy.linalg.solve_triangular (dense)"``.
    sizes : sequence of dict
        Problem sizes, smallest first; ``--quick`` runs the first two.
    setup : callable
        ``setup(size, xp, dtype)`` → inputs on ``xp`` (NumPy or CuPy).
    ours : callable
        ``ours(inputs)`` runs structla.
    peer_fn : callable or None
        ``peer_fn(inputs)`` runs the peer on the same inputs (converting them as it
        needs); ``None`` if the peer is not installed.
    peer_device : {"cpu", "gpu"}
        Where the peer runs (selects the timer).
    x : str
        The size key used as the x axis of plots.
    devices : tuple of str
        Devices this case runs on.
    dtypes : tuple of str
    flops, bytes : callable or None
        ``flops(size)`` / ``bytes(size)``: work and minimal memory traffic, for
        achieved GFLOP/s and GB/s columns.
    peer_limit : callable or None
        ``peer_limit(size)`` False skips the peer at that size (too slow or too big).
    """

    routine: str
    peer: str
    sizes: Sequence[Size]
    setup: Callable[[Size, ModuleType, str], Any]
    ours: Callable[[Any], Any]
    peer_fn: Callable[[Any], Any] | None
    peer_device: str = "cpu"
    x: str = "n"
    devices: tuple[str, ...] = ("cpu", "gpu")
    dtypes: tuple[str, ...] = ("float64",)
    flops: Callable[[Size], float] | None = None
    bytes: Callable[[Size], float] | None = None
    peer_limit: Callable[[Size], bool] | None = None
