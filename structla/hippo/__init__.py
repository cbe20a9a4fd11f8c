"""HiPPO operators, NPLR/DPLR decompositions, discretisation and SSM convolution kernels."""

from ._api import NPLR as NPLR
from ._api import discretize as discretize
from ._api import discretize_diag as discretize_diag
from ._api import fftconv as fftconv
from ._api import hippo as hippo
from ._api import legs_matvec as legs_matvec
from ._api import legs_solve as legs_solve
from ._api import nplr as nplr
from ._api import rft_kernel as rft_kernel
from ._api import s4d_init as s4d_init
from ._api import ssm_kernel as ssm_kernel
from ._api import ssm_kernel_diag as ssm_kernel_diag
from ._api import ssm_kernel_dplr as ssm_kernel_dplr

__all__ = [
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
]
