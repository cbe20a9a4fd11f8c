"""Shared machinery: array namespaces, batching, validation, errors, dispatch, timing.

The Numba decorator (:mod:`structla._core.jit`) and the CUDA loader
(:mod:`structla._core.cuda`) are imported only by kernel modules, keeping
``import structla`` free of Numba and CuPy.
"""
