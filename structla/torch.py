"""structla on torch tensors: differentiable routines and the Muon optimizer.

Importing this module imports torch (``import structla`` does not). CPU tensors are computed
by the NumPy/Numba kernels, CUDA tensors by the CuPy/CUDA kernels on the caller's current
stream, without copies; bfloat16/float16 compute in float32. Every function is a
``torch.library`` custom operator with an analytic backward pass (see
``docs/families/interop.md``).
"""

from .interop import _torch as _impl

if _impl.torch is not None:
    from .interop._torch import Muon as Muon
    from .interop._torch import cauchy as cauchy
    from .interop._torch import delta_rule as delta_rule
    from .interop._torch import linear_scan as linear_scan
    from .interop._torch import msign as msign
    from .interop._torch import selective_scan as selective_scan
    from .interop._torch import ssm_kernel_diag as ssm_kernel_diag
    from .interop._torch import ssm_kernel_dplr as ssm_kernel_dplr
    from .interop._torch import tril_dlr_matmul as tril_dlr_matmul
    from .interop._torch import tril_dlr_solve as tril_dlr_solve
    from .interop._torch import ut_transform as ut_transform
    from .interop._torch import vandermonde as vandermonde
else:

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"structla.torch.{name} needs PyTorch, which is not installed "
                          f"(pip install structla[torch])")


__all__ = [
    "Muon",
    "cauchy",
    "delta_rule",
    "linear_scan",
    "msign",
    "selective_scan",
    "ssm_kernel_diag",
    "ssm_kernel_dplr",
    "tril_dlr_matmul",
    "tril_dlr_solve",
    "ut_transform",
    "vandermonde",
]
