"""The record that iterative routines return with ``return_info=True``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IterationInfo:
    """How an iterative routine reached its answer.

    Attributes
    ----------
    iterations : int
        Number of iterations performed.
    error_estimate : float
        A-posteriori estimate of the error (or residual) of the returned answer,
        in the norm stated by the routine's docstring.
    converged : bool
        Whether the stopping criterion was met before the iteration limit.
    method : str
        The algorithm actually used (after ``"auto"`` was resolved).
    extra : dict
        Routine-specific details (e.g. a residual history).
    """

    iterations: int
    error_estimate: float
    converged: bool
    method: str
    extra: dict[str, Any] = field(default_factory=dict)
