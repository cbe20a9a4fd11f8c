"""Matrix sign family: msign, mcsgn, mclip, polar, square roots and the msign VJP (MATH D)."""

from ._api import inv_sqrtm as inv_sqrtm
from ._api import mclip as mclip
from ._api import mcsgn as mcsgn
from ._api import msign as msign
from ._api import msign_vjp as msign_vjp
from ._api import ns_coefficients as ns_coefficients
from ._api import polar as polar
from ._api import polar_express_coefficients as polar_express_coefficients
from ._api import sqrtm as sqrtm

__all__ = [
    "inv_sqrtm",
    "mclip",
    "mcsgn",
    "msign",
    "msign_vjp",
    "ns_coefficients",
    "polar",
    "polar_express_coefficients",
    "sqrtm",
]
