"""What a family contributes to ``demo`` and ``check``.

A family's ``_demo.py`` defines ``demo_cases(xp, quick) -> list[DemoCase]``: one
case per routine, with inputs already built on ``xp`` (NumPy or CuPy), our call,
and a SciPy/NumPy float64 oracle that is both the accuracy reference and the peer
whose time we compare with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.namespace import to_numpy

__all__ = ["DemoCase", "relative_error"]


def relative_error(ours: Any, reference: Any) -> float:
    """``max|ours − reference| / max|reference|`` (absolute error if the reference is 0)."""
    ours = np.asarray(to_numpy(ours), dtype=np.complex128)
    reference = np.asarray(to_numpy(reference), dtype=np.complex128)
    if ours.shape != reference.shape:
        raise ValueError(f"shape {ours.shape} does not match the reference's {reference.shape}")
    if reference.size == 0:
        return 0.0
    scale = float(np.abs(reference).max())
    diff = float(np.abs(ours - reference).max())
    return diff / scale if scale > 0 else diff


@dataclass(frozen=True)
class DemoCase:
    """One routine on one built-in problem.

    Attributes
    ----------
    routine : str
        Public name, e.g. ``"tril_dlr_solve"``.
    size : str
        Human-readable problem size, e.g. ``"n=4096 d=16"``.
    ours : callable
        ``ours()`` runs structla on the prepared inputs and returns its result.
    peer : callable
        ``peer()`` computes the float64 answer with SciPy/NumPy on the CPU.
    peer_name : str
        What ``peer`` is (shown in the table).
    tolerance : float
        Largest acceptable ``error(ours(), peer())``.
    error : callable
        Error measure; relative max-norm error by default.
    """

    routine: str
    size: str
    ours: Callable[[], Any]
    peer: Callable[[], Any]
    peer_name: str
    tolerance: float
    error: Callable[[Any, Any], float] = relative_error
