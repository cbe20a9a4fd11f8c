"""Bridges to torch and JAX: zero-copy DLPack conversion and differentiable wrappers.

``import structla.interop`` imports neither torch nor JAX. The torch wrappers live in
:mod:`structla.torch` (``import structla.torch`` imports torch), the JAX ones in
:mod:`structla.jax`; both are documented in ``docs/families/interop.md``.
"""

from ._dlpack import from_numpy_or_cupy as from_numpy_or_cupy
from ._dlpack import run_on_tensors as run_on_tensors
from ._dlpack import to_numpy_or_cupy as to_numpy_or_cupy
from ._dlpack import torch_stream as torch_stream

__all__ = ["from_numpy_or_cupy", "run_on_tensors", "to_numpy_or_cupy", "torch_stream"]
