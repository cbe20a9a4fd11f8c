"""JAX wrappers: ``jax.custom_vjp`` functions whose forward and backward passes call structla's
CPU kernels through ``jax.pure_callback``.

The forward pass is the public structla routine, the backward pass the analytic VJP of
:mod:`structla.interop._vjp` (the same code the torch wrappers use). Both run on the host:
under ``jax.jit`` they are opaque callbacks (no XLA fusion, arrays on an accelerator are
copied to the host and back). ``jax.vmap`` maps them sequentially. Higher-order derivatives
(``jax.hessian``, grad of grad) are not supported: the backward callback has no VJP itself.

Complex numbers: JAX's cotangents are the complex conjugates of torch's (JAX's VJP is linear,
torch's conjugate-linear), so the shared VJPs are called on ``conj(ct)`` and their result is
conjugated back. bfloat16/float16 inputs are computed in float32 and real results cast back.

Without JAX installed this module imports but its functions cannot run; :mod:`structla.jax`
then raises an ImportError naming the missing dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import structla

from . import _shapes, _vjp

try:
    import jax
    import jax.numpy as jnp
except ModuleNotFoundError:  # importable without JAX (the docs import every module); see structla.jax
    jax = jnp = None

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

def _is_half(x: Any) -> bool:
    return x is not None and jnp.asarray(x).dtype in (jnp.bfloat16, jnp.float16)


def _prepare(x: Any) -> Any:
    if x is None:
        return None
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if _is_half(x) else x


def _np_conj(x: Any) -> Any:
    return None if x is None else np.conj(x) if np.iscomplexobj(x) else x


def _op(forward: Callable[..., Any], vjp: Callable[..., Any], out_specs: Any, arrays: tuple[Any, ...],
        vjp_uses_output: bool) -> Any:
    """Call ``forward(*arrays)`` on the host with a custom VJP ``vjp(ct, [out,] *arrays)``.

    ``arrays`` may hold None (absent optional arguments); ``out_specs`` is one
    ``ShapeDtypeStruct`` or a tuple of them. The VJP returns one gradient (or None) per array.
    """
    halves = [jnp.asarray(a).dtype for a in arrays if _is_half(a)]
    arrays = tuple(_prepare(a) for a in arrays)
    present = [i for i, a in enumerate(arrays) if a is not None]
    multi = isinstance(out_specs, tuple)

    def expand(values: tuple[Any, ...]) -> list[Any]:
        full: list[Any] = [None] * len(arrays)
        for i, value in zip(present, values, strict=True):
            full[i] = np.asarray(value)
        return full

    def host_forward(*values: Any) -> Any:
        out = forward(*expand(values))
        if multi:
            return tuple(np.asarray(o, dtype=s.dtype) for o, s in zip(out, out_specs, strict=True))
        return np.asarray(out, dtype=out_specs.dtype)

    def call(*values: Any) -> Any:
        return jax.pure_callback(host_forward, out_specs, *values, vmap_method="sequential")

    @jax.custom_vjp
    def f(*values: Any) -> Any:
        return call(*values)

    def f_fwd(*values: Any) -> Any:
        out = call(*values)
        return out, (values, out)

    def f_bwd(residual: Any, ct: Any) -> Any:
        values, out = residual
        specs = tuple(jax.ShapeDtypeStruct(v.shape, v.dtype) for v in values)

        def host_backward(ct_: Any, out_: Any, *vals: Any) -> Any:
            cts = tuple(ct_) if multi else (ct_,)
            args = [_np_conj(np.asarray(c)) for c in cts]
            if vjp_uses_output:
                args.append(np.asarray(out_))
            grads = vjp(*args, *expand(vals))
            picked = [grads[i] for i in present]
            return tuple(np.asarray(_np_conj(g), dtype=s.dtype) for g, s in zip(picked, specs, strict=True))

        grads = jax.pure_callback(host_backward, specs, ct, out, *values, vmap_method="sequential")
        return tuple(grads)

    f.defvjp(f_fwd, f_bwd)
    result = f(*(arrays[i] for i in present))
    if not halves:
        return result

    def back(r: Any) -> Any:
        return r.astype(halves[0]) if r.dtype.kind == "f" else r

    return tuple(back(r) for r in result) if multi else back(result)


def _spec(shape: Any, dtype: Any) -> Any:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


def _dt(*xs: Any) -> np.dtype:
    """The promoted dtype of the arguments as computed (half precision counts as float32)."""
    return _shapes.promote(*(None if x is None else np.dtype(_prepare(x).dtype) for x in xs))


def _sh(x: Any) -> Any:
    return None if x is None else jnp.shape(x)


def tril_dlr_solve(diag: Any, q: Any, k: Any, b: Any, *, trans: Any = False, log_decay: Any = None) -> Any:
    """Differentiable :func:`structla.tril_dlr_solve` for JAX arrays (host callback)."""
    code = _vjp._trans_code(trans)
    shape = _shapes.tril(jnp.shape(diag), jnp.shape(q), jnp.shape(k), jnp.shape(b), _sh(log_decay))
    spec = _spec(shape, _dt(diag, q, k, b))

    def forward(diag, q, k, b, log_decay):
        return structla.tril_dlr_solve(diag, q, k, b, trans=code, log_decay=log_decay)

    def vjp(gx, x, diag, q, k, b, log_decay):
        return _vjp.tril_dlr_solve_vjp(gx, x, diag, q, k, b, log_decay, code)

    return _op(forward, vjp, spec, (diag, q, k, b, log_decay), True)


def tril_dlr_matmul(diag: Any, q: Any, k: Any, x: Any, *, trans: Any = False, log_decay: Any = None) -> Any:
    """Differentiable :func:`structla.tril_dlr_matmul` for JAX arrays (host callback)."""
    code = _vjp._trans_code(trans)
    shape = _shapes.tril(jnp.shape(diag), jnp.shape(q), jnp.shape(k), jnp.shape(x), _sh(log_decay))
    spec = _spec(shape, _dt(diag, q, k, x))

    def forward(diag, q, k, x, log_decay):
        return structla.tril_dlr_matmul(diag, q, k, x, trans=code, log_decay=log_decay)

    def vjp(gy, diag, q, k, x, log_decay):
        return _vjp.tril_dlr_matmul_vjp(gy, diag, q, k, x, log_decay, code)

    return _op(forward, vjp, spec, (diag, q, k, x, log_decay), False)


def ut_transform(k: Any, beta: Any, *, log_decay: Any = None) -> Any:
    """Differentiable :func:`structla.ut_transform` for JAX arrays (host callback)."""
    spec = _spec(_shapes.ut_transform(jnp.shape(k), jnp.shape(beta), _sh(log_decay)), _dt(k, beta))

    def forward(k, beta, log_decay):
        return structla.ut_transform(k, beta, log_decay=log_decay)

    def vjp(gT, Tc, k, beta, log_decay):
        return _vjp.ut_transform_vjp(gT, Tc, k, beta, log_decay)

    return _op(forward, vjp, spec, (k, beta, log_decay), True)


def cauchy(v: Any, w: Any, z: Any, *, conj_pairs: bool = False) -> Any:
    """Differentiable :func:`structla.cauchy` for JAX arrays (host callback)."""
    spec = _spec(_shapes.cauchy(jnp.shape(v), jnp.shape(w), jnp.shape(z)),
                 _shapes.complex_of(_dt(v, w, z)))

    def forward(v, w, z):
        return structla.cauchy(v, w, z, conj_pairs=conj_pairs)

    def vjp(gk, v, w, z):
        return _vjp.cauchy_vjp(gk, v, w, z, conj_pairs)

    return _op(forward, vjp, spec, (v, w, z), False)


def vandermonde(v: Any, x: Any, length: int, *, log: bool = False, conj_pairs: bool = False) -> Any:
    """Differentiable :func:`structla.vandermonde` for JAX arrays (host callback)."""
    dtype = _shapes.complex_of(_dt(v, x))
    spec = _spec(_shapes.vandermonde(jnp.shape(v), jnp.shape(x), length),
                 _shapes.real_of(dtype) if conj_pairs else dtype)

    def forward(v, x):
        return structla.vandermonde(v, x, length, log=log, conj_pairs=conj_pairs)

    def vjp(gk, v, x):
        return _vjp.vandermonde_vjp(gk, v, x, length, log, conj_pairs)

    return _op(forward, vjp, spec, (v, x), False)


def ssm_kernel_diag(a: Any, B: Any, C: Any, dt: Any, length: int, *, method: str = "zoh",
                    alpha: float | None = None, conj_pairs: bool = True) -> Any:
    """Differentiable :func:`structla.ssm_kernel_diag` (S4D) for JAX arrays (host callback)."""
    a, B, C = _prepare(a), _prepare(B), _prepare(C)
    dt = jnp.asarray(dt, dtype=_shapes.real_of(_dt(a, B, C)))
    spec = _spec(_shapes.ssm_kernel_diag(jnp.shape(a), jnp.shape(B), jnp.shape(C), jnp.shape(dt), length),
                 _shapes.ssm_kernel_diag_dtype(_dt(a), _dt(B), _dt(C), _dt(dt), conj_pairs))

    def forward(a, B, C, dt):
        return structla.ssm_kernel_diag(a, B, C, dt, length, method=method, alpha=alpha,
                                        conj_pairs=conj_pairs)

    def vjp(gK, a, B, C, dt):
        return _vjp.ssm_kernel_diag_vjp(gK, a, B, C, dt, length, method, alpha, conj_pairs)

    return _op(forward, vjp, spec, (a, B, C, dt), False)


def ssm_kernel_dplr(Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int, *, conj_pairs: bool = True,
                    c_tilde: bool = False) -> Any:
    """Differentiable :func:`structla.ssm_kernel_dplr` (S4) for JAX arrays (host callback)."""
    Lambda, P, B, C = _prepare(Lambda), _prepare(P), _prepare(B), _prepare(C)
    dt = jnp.asarray(dt, dtype=_shapes.real_of(_dt(Lambda, P, B, C)))
    shape = _shapes.ssm_kernel_dplr(jnp.shape(Lambda), jnp.shape(P), jnp.shape(B), jnp.shape(C),
                                    jnp.shape(dt), length)
    spec = _spec(shape, _shapes.ssm_kernel_diag_dtype(_dt(Lambda, P), _dt(B), _dt(C), _dt(dt), conj_pairs))

    def forward(Lambda, P, B, C, dt):
        return structla.ssm_kernel_dplr(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs, c_tilde=c_tilde)

    def vjp(gK, Lambda, P, B, C, dt):
        return _vjp.ssm_kernel_dplr_vjp(gK, Lambda, P, B, C, dt, length, conj_pairs, c_tilde)

    return _op(forward, vjp, spec, (Lambda, P, B, C, dt), False)


def msign(M: Any, *, steps: int | None = None, coeffs: str = "polar_express") -> Any:
    """Differentiable :func:`structla.msign` for real JAX matrices; backward :func:`structla.msign_vjp`."""
    if jnp.iscomplexobj(M):
        raise TypeError("structla.jax.msign differentiates real matrices (msign_vjp is real)")
    spec = _spec(jnp.shape(M), _dt(M))

    def forward(M):
        return structla.msign(M, steps=steps, coeffs=coeffs)

    def vjp(gX, M):
        return (_vjp.msign_vjp(gX, M),)

    return _op(forward, vjp, spec, (M,), False)


def linear_scan(a: Any, b: Any, *, axis: int = -1, h0: Any = None, reverse: bool = False) -> Any:
    """Differentiable :func:`structla.linear_scan` for JAX arrays; backward is one reverse scan."""
    a = jnp.asarray(a, dtype=jnp.asarray(b).dtype) if not hasattr(a, "shape") else a
    spec = _spec(_shapes.linear_scan(jnp.shape(a), jnp.shape(b)), _dt(a, b, h0))

    def forward(a, b, h0):
        return structla.linear_scan(a, b, axis=axis, h0=h0, reverse=reverse)

    def vjp(gh, h, a, b, h0):
        return _vjp.linear_scan_vjp(gh, h, a, b, h0, axis, reverse)

    return _op(forward, vjp, spec, (a, b, h0), True)


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any = None, z: Any = None, *,
                   delta_bias: Any = None, delta_softplus: bool = False, h0: Any = None) -> Any:
    """Differentiable :func:`structla.selective_scan` (real A) for JAX arrays (host callback)."""
    arrays = (u, delta, A, B, C, D, z, delta_bias, h0)
    spec = _spec(jnp.shape(u), _shapes.real_of(_dt(*arrays)))

    def forward(u, delta, A, B, C, D, z, delta_bias, h0):
        return structla.selective_scan(u, delta, A, B, C, D, z, delta_bias=delta_bias,
                                       delta_softplus=delta_softplus, h0=h0)

    def vjp(g, u, delta, A, B, C, D, z, delta_bias, h0):
        return _vjp.selective_scan_vjp(g, u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0)

    return _op(forward, vjp, spec, arrays, False)


def delta_rule(q: Any, k: Any, v: Any, beta: Any, *, chunk_size: int = 64, h0: Any = None,
               return_state: bool = False) -> Any:
    """Differentiable :func:`structla.models.delta_rule` (DeltaNet) for real JAX arrays."""
    from structla.models import delta_rule as forward_rule

    shapes = _shapes.delta_rule(jnp.shape(q), jnp.shape(k), jnp.shape(v), jnp.shape(beta), _sh(h0))
    dtype = _dt(q, k, v, beta, h0)
    specs = (_spec(shapes[0], dtype), _spec(shapes[1], dtype))

    def forward(q, k, v, beta, h0):
        return forward_rule(q, k, v, beta, chunk_size=chunk_size, h0=h0, return_state=True)

    def vjp(gO, gS, q, k, v, beta, h0):
        return _vjp.delta_rule_vjp(gO, gS, q, k, v, beta, h0)

    o, s = _op(forward, vjp, specs, (q, k, v, beta, h0), False)
    return (o, s) if return_state else o
