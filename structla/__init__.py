"""structla: fast, verified linear algebra for structured matrices.

Diagonal + low-rank triangular systems (DeltaNet), Cauchy and Vandermonde sums and
HiPPO/NPLR state-space kernels (S4, S4D), the matrix sign family (msign, mcsgn,
mclip) for Muon-style optimizers, Sylvester solvers and linear scans (Mamba), on
NumPy (Numba kernels) and CuPy (CUDA kernels) with one API.

Importing structla imports neither Numba nor CuPy; kernels compile on first use.
"""

from ._core.errors import IllConditionedWarning as IllConditionedWarning
from ._core.errors import LinAlgError as LinAlgError
from ._core.errors import NotConvergedWarning as NotConvergedWarning
from ._core.info import IterationInfo as IterationInfo

__version__ = "0.1.0"

# --- tril ---------------------------------------------------------------------------
# --- cauchy -------------------------------------------------------------------------
from .cauchy._api import cauchy as cauchy
from .cauchy._api import vandermonde as vandermonde
# --- hippo --------------------------------------------------------------------------
# --- matfun -------------------------------------------------------------------------
# --- sylvester ----------------------------------------------------------------------
from .sylvester._api import solve_lyapunov as solve_lyapunov
from .sylvester._api import solve_sylvester as solve_sylvester
# --- scan ---------------------------------------------------------------------------

__all__ = [
    "IllConditionedWarning",
    "IterationInfo",
    "LinAlgError",
    "NotConvergedWarning",
    # tril
    # cauchy
    "cauchy",
    "vandermonde",
    # hippo
    # matfun
    # sylvester
    "solve_lyapunov",
    "solve_sylvester",
    # scan
]
