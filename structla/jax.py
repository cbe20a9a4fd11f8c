"""structla on JAX arrays: ``jax.custom_vjp`` wrappers over the CPU kernels.

Importing this module imports JAX (``import structla`` does not). Forward and backward passes
run on the host through ``jax.pure_callback``; see :mod:`structla.interop._jax` for what that
implies (no fusion under ``jit``, sequential ``vmap``, first derivatives only) and
``docs/families/interop.md`` for the list of covered routines.
"""

from .interop import _jax as _impl

if _impl.jax is not None:
    from .interop._jax import cauchy as cauchy
    from .interop._jax import delta_rule as delta_rule
    from .interop._jax import linear_scan as linear_scan
    from .interop._jax import msign as msign
    from .interop._jax import selective_scan as selective_scan
    from .interop._jax import ssm_kernel_diag as ssm_kernel_diag
    from .interop._jax import ssm_kernel_dplr as ssm_kernel_dplr
    from .interop._jax import tril_dlr_matmul as tril_dlr_matmul
    from .interop._jax import tril_dlr_solve as tril_dlr_solve
    from .interop._jax import ut_transform as ut_transform
    from .interop._jax import vandermonde as vandermonde
else:

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"structla.jax.{name} needs JAX, which is not installed "
                          f"(pip install jax jaxlib)")


__all__ = [
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
