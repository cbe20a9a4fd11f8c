"""Diagonal + low-rank triangular matrices (DeltaNet's systems): solves, products, inverses.

See :mod:`structla.tril._api` for the routines and ``README.md`` beside this file for the maths.
"""

from ._api import TrilDLR as TrilDLR
from ._api import tril_dlr_dense as tril_dlr_dense
from ._api import tril_dlr_inv as tril_dlr_inv
from ._api import tril_dlr_matmul as tril_dlr_matmul
from ._api import tril_dlr_solve as tril_dlr_solve
from ._api import ut_transform as ut_transform

__all__ = ["TrilDLR", "tril_dlr_dense", "tril_dlr_inv", "tril_dlr_matmul", "tril_dlr_solve", "ut_transform"]
