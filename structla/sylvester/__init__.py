"""Sylvester and Lyapunov equations: matrix-sign iteration (NumPy/CuPy) and Bartels–Stewart."""

from ._api import solve_lyapunov as solve_lyapunov
from ._api import solve_sylvester as solve_sylvester

__all__ = ["solve_lyapunov", "solve_sylvester"]
