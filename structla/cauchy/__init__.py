"""Cauchy and Vandermonde sums (MATH.md B1, B3): the inner loops of S4 and S4D kernels."""

from ._api import cauchy as cauchy
from ._api import vandermonde as vandermonde

__all__ = ["cauchy", "vandermonde"]
