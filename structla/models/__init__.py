"""Thin sequence-model modules built on the structla core (not re-exported at the top level).

:func:`delta_rule`, :func:`gated_delta_rule`, :func:`linear_attention`,
:func:`gated_linear_attention` (MATH F1, F3, F4), and the layers :class:`S4Layer`,
:class:`S4DLayer` (MATH B, E3) and :class:`MambaMixer` (MATH E2).
"""

from ._api import delta_rule as delta_rule
from ._api import gated_delta_rule as gated_delta_rule
from ._api import gated_linear_attention as gated_linear_attention
from ._api import linear_attention as linear_attention
from .mamba import MambaMixer as MambaMixer
from .mamba import MambaState as MambaState
from .s4 import S4DLayer as S4DLayer
from .s4 import S4Layer as S4Layer

__all__ = [
    "MambaMixer",
    "MambaState",
    "S4DLayer",
    "S4Layer",
    "delta_rule",
    "gated_delta_rule",
    "gated_linear_attention",
    "linear_attention",
]
