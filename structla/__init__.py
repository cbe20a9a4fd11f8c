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
from .tril._api import TrilDLR as TrilDLR
from .tril._api import tril_dlr_dense as tril_dlr_dense
from .tril._api import tril_dlr_inv as tril_dlr_inv
from .tril._api import tril_dlr_matmul as tril_dlr_matmul
from .tril._api import tril_dlr_solve as tril_dlr_solve
from .tril._api import ut_transform as ut_transform
# --- cauchy -------------------------------------------------------------------------
from .cauchy._api import cauchy as cauchy
from .cauchy._api import vandermonde as vandermonde
# --- hippo --------------------------------------------------------------------------
from .hippo._api import NPLR as NPLR
from .hippo._api import discretize as discretize
from .hippo._api import discretize_diag as discretize_diag
from .hippo._api import fftconv as fftconv
from .hippo._api import hippo as hippo
from .hippo._api import legs_matvec as legs_matvec
from .hippo._api import legs_solve as legs_solve
from .hippo._api import nplr as nplr
from .hippo._api import rft_kernel as rft_kernel
from .hippo._api import s4d_init as s4d_init
from .hippo._api import ssm_kernel as ssm_kernel
from .hippo._api import ssm_kernel_diag as ssm_kernel_diag
from .hippo._api import ssm_kernel_dplr as ssm_kernel_dplr
# --- matfun -------------------------------------------------------------------------
from .matfun._api import inv_sqrtm as inv_sqrtm
from .matfun._api import mclip as mclip
from .matfun._api import mcsgn as mcsgn
from .matfun._api import msign as msign
from .matfun._api import msign_vjp as msign_vjp
from .matfun._api import ns_coefficients as ns_coefficients
from .matfun._api import polar as polar
from .matfun._api import polar_express_coefficients as polar_express_coefficients
from .matfun._api import sqrtm as sqrtm
# --- sylvester ----------------------------------------------------------------------
from .sylvester._api import solve_lyapunov as solve_lyapunov
from .sylvester._api import solve_sylvester as solve_sylvester
# --- scan ---------------------------------------------------------------------------
from .scan._api import deer as deer
from .scan._api import linear_scan as linear_scan
from .scan._api import selective_scan as selective_scan

__all__ = [
    "IllConditionedWarning",
    "IterationInfo",
    "LinAlgError",
    "NotConvergedWarning",
    # tril
    "TrilDLR",
    "tril_dlr_dense",
    "tril_dlr_inv",
    "tril_dlr_matmul",
    "tril_dlr_solve",
    "ut_transform",
    # cauchy
    "cauchy",
    "vandermonde",
    # hippo
    "NPLR",
    "discretize",
    "discretize_diag",
    "fftconv",
    "hippo",
    "legs_matvec",
    "legs_solve",
    "nplr",
    "rft_kernel",
    "s4d_init",
    "ssm_kernel",
    "ssm_kernel_diag",
    "ssm_kernel_dplr",
    # matfun
    "inv_sqrtm",
    "mclip",
    "mcsgn",
    "msign",
    "msign_vjp",
    "ns_coefficients",
    "polar",
    "polar_express_coefficients",
    "sqrtm",
    # sylvester
    "solve_lyapunov",
    "solve_sylvester",
    # scan
    "deer",
    "linear_scan",
    "selective_scan",
]
