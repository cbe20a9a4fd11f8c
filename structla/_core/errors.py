"""Exceptions and warnings raised by structla."""

from __future__ import annotations

import numpy as np

__all__ = ["IllConditionedWarning", "LinAlgError", "NotConvergedWarning"]


class LinAlgError(np.linalg.LinAlgError):
    """A singular or undefined problem (zero pivot, touching spectra, ...).

    Subclass of :class:`numpy.linalg.LinAlgError`, so code that already catches
    NumPy's or SciPy's linear-algebra errors keeps working.
    """


class NotConvergedWarning(RuntimeWarning):
    """An iteration stopped before reaching its tolerance; the result is the last iterate."""


class IllConditionedWarning(RuntimeWarning):
    """The problem is so ill-conditioned that the answer may not be trustworthy."""
