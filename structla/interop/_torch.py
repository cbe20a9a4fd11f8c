"""torch autograd wrappers: custom operators with analytic backward passes, and the Muon optimizer.

Every routine is a ``torch.library.custom_op`` (namespace ``structla``) whose forward calls the
public structla routine through the zero-copy bridges of :mod:`structla.interop._dlpack`, with
a fake (meta) kernel so ``torch.compile`` traces it as one opaque node, and an autograd
formula registered by ``register_autograd`` with a ``setup_context``. The backward pass is
itself a custom operator calling the NumPy/CuPy VJPs of :mod:`structla.interop._vjp`.

Not wrapped: the gated models; complex-A ``selective_scan`` runs forward
but its backward raises (``docs/families/interop.md`` lists the coverage).

Without torch installed this module still imports (the documentation and its doctests import
every module of the package) but defines nothing; :mod:`structla.torch` then raises an
ImportError naming the missing dependency.
"""

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import structla

from . import _shapes, _vjp
from ._dlpack import half_dtypes, run_on_tensors

try:
    import torch
    from torch import Tensor
except ModuleNotFoundError:
    torch = None

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

if torch is not None:
    _TO_NUMPY = {
        torch.float32: np.float32, torch.float64: np.float64, torch.complex64: np.complex64,
        torch.complex128: np.complex128, torch.bfloat16: np.float32, torch.float16: np.float32,
        torch.int32: np.int32, torch.int64: np.int64, torch.bool: np.bool_,
    }
    _TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                 np.dtype(np.complex64): torch.complex64, np.dtype(np.complex128): torch.complex128}


    def _np(t: Tensor | None) -> np.dtype | None:
        if t is None:
            return None
        try:
            return np.dtype(_TO_NUMPY[t.dtype])
        except KeyError:
            raise TypeError(f"unsupported tensor dtype {t.dtype}") from None


    def _out_dtype(dtype: np.dtype, *inputs: Tensor | None) -> torch.dtype:
        """The torch dtype of a result: half-precision inputs get real results back in their dtype."""
        dtype = np.dtype(dtype)
        halves = [t.dtype for t in inputs if t is not None and t.dtype in half_dtypes()]
        if dtype.kind == "f" and halves and all(t is None or t.dtype in half_dtypes()
                                                or not t.is_floating_point()
                                                for t in inputs):
            return halves[0]
        return _TO_TORCH[dtype]


    def _device(*inputs: Tensor | None) -> torch.device:
        for t in inputs:
            if t is not None:
                return t.device
        return torch.device("cpu")


    def _empty(shape: Iterable[int], dtype: torch.dtype, *like: Tensor | None) -> Tensor:
        return torch.empty(tuple(shape), dtype=dtype, device=_device(*like))


    def _grads(fn: Callable[..., Any], inputs: list[Tensor | None], *args: Any,
               **kwargs: Any) -> list[Tensor]:
        """Run a VJP and return one gradient per input, cast to the input's dtype (empty for None)."""
        result = run_on_tensors(fn, *args, **kwargs)
        out = []
        for g, x in zip(result, inputs, strict=True):
            if x is None:
                out.append(torch.empty(0, device=_device(*inputs)))
            else:
                out.append(g.to(x.dtype))
        return out


    def _fake_grads(inputs: list[Tensor | None]) -> list[Tensor]:
        return [torch.empty(0, device=_device(*inputs)) if x is None else torch.empty_like(x) for x in inputs]


    def _shape(t: Tensor | None) -> tuple[int, ...] | None:
        return None if t is None else tuple(t.shape)


    def _maybe(g: Tensor, x: Tensor | None) -> Tensor | None:
        return None if x is None else g


    def _tensor(x: Any, like: Tensor, real: bool = False) -> Tensor:
        if isinstance(x, Tensor):
            return x
        dtype = like.dtype
        if real and dtype.is_complex:
            dtype = torch.empty(0, dtype=dtype).real.dtype
        return torch.as_tensor(x, dtype=dtype, device=like.device)


    # ----------------------------------------------------------------------------- tril


    def _tril_dtype(*ts: Tensor | None) -> torch.dtype:
        return _out_dtype(_shapes.promote(*(_np(t) for t in ts)), *ts)


    @torch.library.custom_op("structla::tril_dlr_solve", mutates_args=())
    def _tril_dlr_solve(diag: Tensor, q: Tensor, k: Tensor, b: Tensor, log_decay: Tensor | None,
                        trans: str) -> Tensor:
        return run_on_tensors(structla.tril_dlr_solve, diag, q, k, b, trans=trans, log_decay=log_decay,
                              out_dtype=_tril_dtype(diag, q, k, b))


    @_tril_dlr_solve.register_fake
    def _(diag, q, k, b, log_decay, trans):
        shape = _shapes.tril(diag.shape, q.shape, k.shape, b.shape, _shape(log_decay))
        return _empty(shape, _tril_dtype(diag, q, k, b), diag)


    @torch.library.custom_op("structla::tril_dlr_solve_backward", mutates_args=())
    def _tril_dlr_solve_backward(gx: Tensor, x: Tensor, diag: Tensor, q: Tensor, k: Tensor, b: Tensor,
                                 log_decay: Tensor | None, trans: str) -> list[Tensor]:
        inputs = [diag, q, k, b, log_decay]
        return _grads(_vjp.tril_dlr_solve_vjp, inputs, gx, x, diag, q, k, b, log_decay, trans)


    @_tril_dlr_solve_backward.register_fake
    def _(gx, x, diag, q, k, b, log_decay, trans):
        return _fake_grads([diag, q, k, b, log_decay])


    def _tril_solve_setup(ctx, inputs, output):
        diag, q, k, b, log_decay, trans = inputs
        ctx.trans = trans
        ctx.has_decay = log_decay is not None
        ctx.save_for_backward(output, diag, q, k, b, log_decay)


    def _tril_solve_backward(ctx, gx):
        x, diag, q, k, b, log_decay = ctx.saved_tensors
        log_decay = log_decay if ctx.has_decay else None
        g = _tril_dlr_solve_backward(gx.contiguous(), x, diag, q, k, b, log_decay, ctx.trans)
        return g[0], g[1], g[2], g[3], _maybe(g[4], log_decay), None


    torch.library.register_autograd("structla::tril_dlr_solve", _tril_solve_backward,
                                    setup_context=_tril_solve_setup)


    def _trans(trans: Any) -> str:
        return _vjp._trans_code(trans)


    def tril_dlr_solve(diag: Tensor, q: Tensor, k: Tensor, b: Tensor, *, trans: Any = False,
                       log_decay: Tensor | None = None) -> Tensor:
        """Differentiable :func:`structla.tril_dlr_solve` on torch tensors (CPU or CUDA).

        Backward: one adjoint ``tril_dlr_solve`` plus the outer-product terms restricted to T's
        structure, each a ``tril_dlr_matmul`` of rank m: O(n·d·m), no n×n matrix. Gradients flow
        to ``diag``, ``q``, ``k``, ``b`` and ``log_decay``.
        """
        return _tril_dlr_solve(diag, q, k, b, log_decay, _trans(trans))


    @torch.library.custom_op("structla::tril_dlr_matmul", mutates_args=())
    def _tril_dlr_matmul(diag: Tensor, q: Tensor, k: Tensor, x: Tensor, log_decay: Tensor | None,
                         trans: str) -> Tensor:
        return run_on_tensors(structla.tril_dlr_matmul, diag, q, k, x, trans=trans, log_decay=log_decay,
                              out_dtype=_tril_dtype(diag, q, k, x))


    @_tril_dlr_matmul.register_fake
    def _(diag, q, k, x, log_decay, trans):
        shape = _shapes.tril(diag.shape, q.shape, k.shape, x.shape, _shape(log_decay))
        return _empty(shape, _tril_dtype(diag, q, k, x), diag)


    @torch.library.custom_op("structla::tril_dlr_matmul_backward", mutates_args=())
    def _tril_dlr_matmul_backward(gy: Tensor, diag: Tensor, q: Tensor, k: Tensor, x: Tensor,
                                  log_decay: Tensor | None, trans: str) -> list[Tensor]:
        inputs = [diag, q, k, x, log_decay]
        return _grads(_vjp.tril_dlr_matmul_vjp, inputs, gy, diag, q, k, x, log_decay, trans)


    @_tril_dlr_matmul_backward.register_fake
    def _(gy, diag, q, k, x, log_decay, trans):
        return _fake_grads([diag, q, k, x, log_decay])


    def _tril_matmul_setup(ctx, inputs, output):
        diag, q, k, x, log_decay, trans = inputs
        ctx.trans = trans
        ctx.has_decay = log_decay is not None
        ctx.save_for_backward(diag, q, k, x, log_decay)


    def _tril_matmul_backward(ctx, gy):
        diag, q, k, x, log_decay = ctx.saved_tensors
        log_decay = log_decay if ctx.has_decay else None
        g = _tril_dlr_matmul_backward(gy.contiguous(), diag, q, k, x, log_decay, ctx.trans)
        return g[0], g[1], g[2], g[3], _maybe(g[4], log_decay), None


    torch.library.register_autograd("structla::tril_dlr_matmul", _tril_matmul_backward,
                                    setup_context=_tril_matmul_setup)


    def tril_dlr_matmul(diag: Tensor, q: Tensor, k: Tensor, x: Tensor, *, trans: Any = False,
                        log_decay: Tensor | None = None) -> Tensor:
        """Differentiable :func:`structla.tril_dlr_matmul`; backward O(n·d·m) like the solve's."""
        return _tril_dlr_matmul(diag, q, k, x, log_decay, _trans(trans))


    @torch.library.custom_op("structla::ut_transform", mutates_args=())
    def _ut_transform(k: Tensor, beta: Tensor, log_decay: Tensor | None) -> Tensor:
        return run_on_tensors(structla.ut_transform, k, beta, log_decay=log_decay,
                              out_dtype=_tril_dtype(k, beta))


    @_ut_transform.register_fake
    def _(k, beta, log_decay):
        shape = _shapes.ut_transform(k.shape, beta.shape, _shape(log_decay))
        return _empty(shape, _tril_dtype(k, beta), k)


    @torch.library.custom_op("structla::ut_transform_backward", mutates_args=())
    def _ut_transform_backward(gT: Tensor, Tc: Tensor, k: Tensor, beta: Tensor,
                               log_decay: Tensor | None) -> list[Tensor]:
        return _grads(_vjp.ut_transform_vjp, [k, beta, log_decay], gT, Tc, k, beta, log_decay)


    @_ut_transform_backward.register_fake
    def _(gT, Tc, k, beta, log_decay):
        return _fake_grads([k, beta, log_decay])


    def _ut_setup(ctx, inputs, output):
        k, beta, log_decay = inputs
        ctx.has_decay = log_decay is not None
        ctx.save_for_backward(output, k, beta, log_decay)


    def _ut_backward(ctx, gT):
        Tc, k, beta, log_decay = ctx.saved_tensors
        log_decay = log_decay if ctx.has_decay else None
        g = _ut_transform_backward(gT.contiguous(), Tc, k, beta, log_decay)
        return g[0], g[1], _maybe(g[2], log_decay)


    torch.library.register_autograd("structla::ut_transform", _ut_backward, setup_context=_ut_setup)


    def ut_transform(k: Tensor, beta: Tensor, *, log_decay: Tensor | None = None) -> Tensor:
        """Differentiable :func:`structla.ut_transform`; backward by one transposed solve, O(C²·d)."""
        return _ut_transform(k, beta, log_decay)


    # ----------------------------------------------------------------------------- cauchy


    def _complex_dtype(*ts: Tensor) -> torch.dtype:
        return _TO_TORCH[_shapes.complex_of(_shapes.promote(*(_np(t) for t in ts)))]


    @torch.library.custom_op("structla::cauchy", mutates_args=())
    def _cauchy(v: Tensor, w: Tensor, z: Tensor, conj_pairs: bool) -> Tensor:
        return run_on_tensors(structla.cauchy, v, w, z, conj_pairs=conj_pairs,
                              out_dtype=_complex_dtype(v, w, z))


    @_cauchy.register_fake
    def _(v, w, z, conj_pairs):
        return _empty(_shapes.cauchy(v.shape, w.shape, z.shape), _complex_dtype(v, w, z), v)


    @torch.library.custom_op("structla::cauchy_backward", mutates_args=())
    def _cauchy_backward(gk: Tensor, v: Tensor, w: Tensor, z: Tensor, conj_pairs: bool) -> list[Tensor]:
        return _grads(_vjp.cauchy_vjp, [v, w, z], gk, v, w, z, conj_pairs)


    @_cauchy_backward.register_fake
    def _(gk, v, w, z, conj_pairs):
        return _fake_grads([v, w, z])


    def _cauchy_setup(ctx, inputs, output):
        v, w, z, conj_pairs = inputs
        ctx.conj_pairs = conj_pairs
        ctx.save_for_backward(v, w, z)


    def _cauchy_bwd(ctx, gk):
        v, w, z = ctx.saved_tensors
        g = _cauchy_backward(gk.contiguous(), v, w, z, ctx.conj_pairs)
        return g[0], g[1], g[2], None


    torch.library.register_autograd("structla::cauchy", _cauchy_bwd, setup_context=_cauchy_setup)


    def cauchy(v: Tensor, w: Tensor, z: Tensor, *, conj_pairs: bool = False) -> Tensor:
        """Differentiable :func:`structla.cauchy` (complex result).

        Backward: ``∂L/∂v̄`` is a Cauchy sum with poles and nodes swapped (``structla.cauchy``);
        the pole and node gradients need ``Σ c/(z − w)²``, summed in blocks: O(N·L) time.
        """
        return _cauchy(v, w, z, bool(conj_pairs))


    def _vandermonde_dtype(v: Tensor, x: Tensor, conj_pairs: bool) -> torch.dtype:
        dtype = _shapes.complex_of(_shapes.promote(_np(v), _np(x)))
        return _out_dtype(_shapes.real_of(dtype), v, x) if conj_pairs else _TO_TORCH[dtype]


    @torch.library.custom_op("structla::vandermonde", mutates_args=())
    def _vandermonde(v: Tensor, x: Tensor, length: int, log: bool, conj_pairs: bool) -> Tensor:
        return run_on_tensors(structla.vandermonde, v, x, length, log=log, conj_pairs=conj_pairs,
                              out_dtype=_vandermonde_dtype(v, x, conj_pairs))


    @_vandermonde.register_fake
    def _(v, x, length, log, conj_pairs):
        return _empty(_shapes.vandermonde(v.shape, x.shape, length), _vandermonde_dtype(v, x, conj_pairs), v)


    @torch.library.custom_op("structla::vandermonde_backward", mutates_args=())
    def _vandermonde_backward(gk: Tensor, v: Tensor, x: Tensor, length: int, log: bool,
                              conj_pairs: bool) -> list[Tensor]:
        return _grads(_vjp.vandermonde_vjp, [v, x], gk, v, x, length, log, conj_pairs)


    @_vandermonde_backward.register_fake
    def _(gk, v, x, length, log, conj_pairs):
        return _fake_grads([v, x])


    def _vandermonde_setup(ctx, inputs, output):
        v, x, length, log, conj_pairs = inputs
        ctx.args = (length, log, conj_pairs)
        ctx.save_for_backward(v, x)


    def _vandermonde_bwd(ctx, gk):
        v, x = ctx.saved_tensors
        g = _vandermonde_backward(gk.contiguous(), v, x, *ctx.args)
        return g[0], g[1], None, None, None


    torch.library.register_autograd("structla::vandermonde", _vandermonde_bwd,
                                    setup_context=_vandermonde_setup)


    def vandermonde(v: Tensor, x: Tensor, length: int, *, log: bool = False,
                    conj_pairs: bool = False) -> Tensor:
        """Differentiable :func:`structla.vandermonde`; backward by transposed power sums, O(N·L)."""
        return _vandermonde(v, x, int(length), bool(log), bool(conj_pairs))


    # ----------------------------------------------------------------------------- hippo


    def _kernel_dtype(a: Tensor, B: Tensor, C: Tensor, dt: Tensor, conj_pairs: bool) -> torch.dtype:
        dtype = _shapes.ssm_kernel_diag_dtype(_np(a), _np(B), _np(C), _np(dt), conj_pairs)
        return _out_dtype(dtype, a, B, C) if dtype.kind == "f" else _TO_TORCH[dtype]


    @torch.library.custom_op("structla::ssm_kernel_diag", mutates_args=())
    def _ssm_kernel_diag(a: Tensor, B: Tensor, C: Tensor, dt: Tensor, length: int, method: str,
                         alpha: float | None, conj_pairs: bool) -> Tensor:
        return run_on_tensors(structla.ssm_kernel_diag, a, B, C, dt, length, method=method, alpha=alpha,
                              conj_pairs=conj_pairs, out_dtype=_kernel_dtype(a, B, C, dt, conj_pairs))


    @_ssm_kernel_diag.register_fake
    def _(a, B, C, dt, length, method, alpha, conj_pairs):
        shape = _shapes.ssm_kernel_diag(a.shape, B.shape, C.shape, dt.shape, length)
        return _empty(shape, _kernel_dtype(a, B, C, dt, conj_pairs), a)


    @torch.library.custom_op("structla::ssm_kernel_diag_backward", mutates_args=())
    def _ssm_kernel_diag_backward(gK: Tensor, a: Tensor, B: Tensor, C: Tensor, dt: Tensor, length: int,
                                  method: str, alpha: float | None, conj_pairs: bool) -> list[Tensor]:
        return _grads(_vjp.ssm_kernel_diag_vjp, [a, B, C, dt], gK, a, B, C, dt, length, method, alpha,
                      conj_pairs)


    @_ssm_kernel_diag_backward.register_fake
    def _(gK, a, B, C, dt, length, method, alpha, conj_pairs):
        return _fake_grads([a, B, C, dt])


    def _kernel_setup(ctx, inputs, output):
        a, B, C, dt, *rest = inputs
        ctx.args = tuple(rest)
        ctx.save_for_backward(a, B, C, dt)


    def _kernel_bwd(ctx, gK):
        a, B, C, dt = ctx.saved_tensors
        g = _ssm_kernel_diag_backward(gK.contiguous(), a, B, C, dt, *ctx.args)
        return g[0], g[1], g[2], g[3], None, None, None, None


    torch.library.register_autograd("structla::ssm_kernel_diag", _kernel_bwd, setup_context=_kernel_setup)


    def ssm_kernel_diag(a: Tensor, B: Tensor, C: Tensor, dt: Any, length: int, *, method: str = "zoh",
                        alpha: float | None = None, conj_pairs: bool = True) -> Tensor:
        """Differentiable :func:`structla.ssm_kernel_diag` (S4D), gradients to ``a, B, C, dt``.

        Backward: the Vandermonde VJP, then the derivatives of the ZOH / GBT discretisation.
        """
        if method not in ("zoh", "bilinear", "forward_euler", "backward_euler", "gbt"):
            raise ValueError(f"argument 'method' must be 'zoh', 'bilinear', 'forward_euler', "
                             f"'backward_euler' "
                             f"or 'gbt'; got {method!r}")
        if method == "gbt" and alpha is None:
            raise ValueError("method='gbt' needs alpha")
        return _ssm_kernel_diag(a, B, C, _tensor(dt, a, real=True), int(length), method,
                                None if alpha is None else float(alpha), bool(conj_pairs))


    def _dplr_dtype(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor,
                    conj_pairs: bool) -> torch.dtype:
        dtype = _shapes.ssm_kernel_diag_dtype(_shapes.promote(_np(Lambda), _np(P)), _np(B), _np(C), _np(dt),
                                              conj_pairs)
        return _out_dtype(dtype, Lambda, P, B, C) if dtype.kind == "f" else _TO_TORCH[dtype]


    @torch.library.custom_op("structla::ssm_kernel_dplr", mutates_args=())
    def _ssm_kernel_dplr(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, length: int,
                         conj_pairs: bool, c_tilde: bool) -> Tensor:
        return run_on_tensors(structla.ssm_kernel_dplr, Lambda, P, B, C, dt, length, conj_pairs=conj_pairs,
                              c_tilde=c_tilde, out_dtype=_dplr_dtype(Lambda, P, B, C, dt, conj_pairs))


    @_ssm_kernel_dplr.register_fake
    def _(Lambda, P, B, C, dt, length, conj_pairs, c_tilde):
        shape = _shapes.ssm_kernel_dplr(Lambda.shape, P.shape, B.shape, C.shape, dt.shape, length)
        return _empty(shape, _dplr_dtype(Lambda, P, B, C, dt, conj_pairs), Lambda)


    @torch.library.custom_op("structla::ssm_kernel_dplr_backward", mutates_args=())
    def _ssm_kernel_dplr_backward(gK: Tensor, Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor,
                                  length: int, conj_pairs: bool, c_tilde: bool) -> list[Tensor]:
        return _grads(_vjp.ssm_kernel_dplr_vjp, [Lambda, P, B, C, dt], gK, Lambda, P, B, C, dt, length,
                      conj_pairs, c_tilde)


    @_ssm_kernel_dplr_backward.register_fake
    def _(gK, Lambda, P, B, C, dt, length, conj_pairs, c_tilde):
        return _fake_grads([Lambda, P, B, C, dt])


    def _dplr_setup(ctx, inputs, output):
        Lambda, P, B, C, dt, *rest = inputs
        ctx.args = tuple(rest)
        ctx.save_for_backward(Lambda, P, B, C, dt)


    def _dplr_bwd(ctx, gK):
        Lambda, P, B, C, dt = ctx.saved_tensors
        g = _ssm_kernel_dplr_backward(gK.contiguous(), Lambda, P, B, C, dt, *ctx.args)
        return g[0], g[1], g[2], g[3], g[4], None, None, None


    torch.library.register_autograd("structla::ssm_kernel_dplr", _dplr_bwd, setup_context=_dplr_setup)


    def ssm_kernel_dplr(Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Any, length: int, *,
                        conj_pairs: bool = True, c_tilde: bool = False) -> Tensor:
        """Differentiable :func:`structla.ssm_kernel_dplr` (S4), gradients to ``Lambda, P, B, C, dt``.

        Backward through the generating function (MATH B2): a forward FFT of the cotangent
        (the adjoint of the inverse FFT), the bilinear prefactor, the Woodbury step, and the
        VJP of the (r+1)² Cauchy sums (one Cauchy sum and two blocked squared-denominator
        sums per numerator row): O((r+1)²·N·L). With ``c_tilde=False`` the chain continues
        through ``C̃ = C − C Āᴸ`` by repeated squaring of the dense N×N ``Ā``: O(N³·log L).
        """
        return _ssm_kernel_dplr(Lambda, P, B, C, _tensor(dt, Lambda, real=True), int(length),
                                bool(conj_pairs), bool(c_tilde))


    # ----------------------------------------------------------------------------- matfun


    @torch.library.custom_op("structla::msign", mutates_args=())
    def _msign(M: Tensor, steps: int | None, coeffs: str) -> Tensor:
        return run_on_tensors(structla.msign, M, steps=steps, coeffs=coeffs, out_dtype=M.dtype)


    @_msign.register_fake
    def _(M, steps, coeffs):
        return torch.empty_like(M)


    @torch.library.custom_op("structla::msign_backward", mutates_args=())
    def _msign_backward(gX: Tensor, M: Tensor) -> Tensor:
        return run_on_tensors(_vjp.msign_vjp, gX, M, out_dtype=M.dtype)


    @_msign_backward.register_fake
    def _(gX, M):
        return torch.empty_like(M)


    def _msign_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])


    def _msign_bwd(ctx, gX):
        (M,) = ctx.saved_tensors
        return _msign_backward(gX.contiguous(), M), None, None


    torch.library.register_autograd("structla::msign", _msign_bwd, setup_context=_msign_setup)


    def msign(M: Tensor, *, steps: int | None = None, coeffs: str = "polar_express") -> Tensor:
        """Differentiable :func:`structla.msign` for real ``(..., n, m)`` tensors.

        The backward pass is the derivative of the exact polar factor, :func:`structla.msign_vjp`
        (MATH D5); with ``steps=None`` the forward converges to the dtype's accuracy, so the two
        agree. With a few fixed steps the forward is an approximation and the gradient is still
        that of the exact polar factor (a straight-through choice). M must have full rank.
        """
        if M.is_complex():
            raise TypeError("structla.torch.msign differentiates real matrices (msign_vjp is real)")
        return _msign(M, steps, coeffs)


    # ----------------------------------------------------------------------------- scan


    @torch.library.custom_op("structla::linear_scan", mutates_args=())
    def _linear_scan(a: Tensor, b: Tensor, h0: Tensor | None, axis: int, reverse: bool) -> Tensor:
        return run_on_tensors(structla.linear_scan, a, b, axis=axis, h0=h0, reverse=reverse,
                              out_dtype=_tril_dtype(a, b, h0))


    @_linear_scan.register_fake
    def _(a, b, h0, axis, reverse):
        return _empty(_shapes.linear_scan(a.shape, b.shape), _tril_dtype(a, b, h0), b)


    @torch.library.custom_op("structla::linear_scan_backward", mutates_args=())
    def _linear_scan_backward(gh: Tensor, h: Tensor, a: Tensor, b: Tensor, h0: Tensor | None, axis: int,
                              reverse: bool) -> list[Tensor]:
        return _grads(_vjp.linear_scan_vjp, [a, b, h0], gh, h, a, b, h0, axis, reverse)


    @_linear_scan_backward.register_fake
    def _(gh, h, a, b, h0, axis, reverse):
        return _fake_grads([a, b, h0])


    def _scan_setup(ctx, inputs, output):
        a, b, h0, axis, reverse = inputs
        ctx.args = (axis, reverse)
        ctx.has_h0 = h0 is not None
        ctx.save_for_backward(output, a, b, h0)


    def _scan_bwd(ctx, gh):
        h, a, b, h0 = ctx.saved_tensors
        h0 = h0 if ctx.has_h0 else None
        g = _linear_scan_backward(gh.contiguous(), h, a, b, h0, *ctx.args)
        return g[0], g[1], _maybe(g[2], h0), None, None


    torch.library.register_autograd("structla::linear_scan", _scan_bwd, setup_context=_scan_setup)


    def linear_scan(a: Any, b: Tensor, *, axis: int = -1, h0: Tensor | None = None,
                    reverse: bool = False) -> Tensor:
        """Differentiable :func:`structla.linear_scan`; backward is one reverse scan, O(L)."""
        return _linear_scan(_tensor(a, b), b, h0, int(axis), bool(reverse))


    def _scan_dtype(*ts: Tensor | None) -> torch.dtype:
        dtype = _shapes.real_of(_shapes.promote(*(_np(t) for t in ts)))
        return _out_dtype(dtype, *ts)


    @torch.library.custom_op("structla::selective_scan", mutates_args=())
    def _selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                        z: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                        h0: Tensor | None) -> Tensor:
        return run_on_tensors(structla.selective_scan, u, delta, A, B, C, D, z, delta_bias=delta_bias,
                              delta_softplus=delta_softplus, h0=h0,
                              out_dtype=_scan_dtype(u, delta, A, B, C, D, z, delta_bias, h0))


    @_selective_scan.register_fake
    def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0):
        return _empty(u.shape, _scan_dtype(u, delta, A, B, C, D, z, delta_bias, h0), u)


    @torch.library.custom_op("structla::selective_scan_backward", mutates_args=())
    def _selective_scan_backward(gout: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                 D: Tensor | None, z: Tensor | None, delta_bias: Tensor | None,
                                 delta_softplus: bool, h0: Tensor | None) -> list[Tensor]:
        inputs = [u, delta, A, B, C, D, z, delta_bias, h0]
        return _grads(_vjp.selective_scan_vjp, inputs, gout, u, delta, A, B, C, D, z, delta_bias,
                      delta_softplus, h0)


    @_selective_scan_backward.register_fake
    def _(gout, u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0):
        return _fake_grads([u, delta, A, B, C, D, z, delta_bias, h0])


    _OPTIONAL_SCAN = ("D", "z", "delta_bias", "h0")


    def _selective_setup(ctx, inputs, output):
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0 = inputs
        ctx.delta_softplus = delta_softplus
        ctx.present = tuple(x is not None for x in (D, z, delta_bias, h0))
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h0)


    def _selective_bwd(ctx, gout):
        u, delta, A, B, C, *optional = ctx.saved_tensors
        D, z, delta_bias, h0 = (x if p else None for x, p in zip(optional, ctx.present, strict=True))
        g = _selective_scan_backward(gout.contiguous(), u, delta, A, B, C, D, z, delta_bias,
                                     ctx.delta_softplus, h0)
        return (g[0], g[1], g[2], g[3], g[4], _maybe(g[5], D), _maybe(g[6], z), _maybe(g[7], delta_bias),
                None, _maybe(g[8], h0))


    torch.library.register_autograd("structla::selective_scan", _selective_bwd,
                                    setup_context=_selective_setup)


    def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                       z: Tensor | None = None, *, delta_bias: Tensor | None = None,
                       delta_softplus: bool = False, h0: Tensor | None = None) -> Tensor:
        """Differentiable :func:`structla.selective_scan` (mamba_ssm shapes), real ``A``.

        Backward: states recomputed by one forward scan, adjoint states by one reverse scan;
        gradients to every tensor argument. Memory O(batch·D·N·L) in the backward pass.
        A complex ``A`` runs forward but its backward raises ``NotImplementedError``.
        """
        return _selective_scan(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), h0)


    # ----------------------------------------------------------------------------- models


    def _delta_forward(q, k, v, beta, h0, chunk_size):
        from structla.models import delta_rule as forward

        return forward(q, k, v, beta, chunk_size=chunk_size, h0=h0, return_state=True)


    @torch.library.custom_op("structla::delta_rule", mutates_args=())
    def _delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, h0: Tensor | None,
                    chunk_size: int) -> tuple[Tensor, Tensor]:
        dtype = _tril_dtype(q, k, v, beta, h0)
        o, s = run_on_tensors(_delta_forward, q, k, v, beta, h0, chunk_size, out_dtype=dtype)
        return o, s


    @_delta_rule.register_fake
    def _(q, k, v, beta, h0, chunk_size):
        so, ss = _shapes.delta_rule(q.shape, k.shape, v.shape, beta.shape, None if h0 is None else h0.shape)
        dtype = _tril_dtype(q, k, v, beta, h0)
        return _empty(so, dtype, q), _empty(ss, dtype, q)


    @torch.library.custom_op("structla::delta_rule_backward", mutates_args=())
    def _delta_rule_backward(gO: Tensor, gS: Tensor, q: Tensor, k: Tensor, v: Tensor, beta: Tensor,
                             h0: Tensor | None) -> list[Tensor]:
        return _grads(_vjp.delta_rule_vjp, [q, k, v, beta, h0], gO, gS, q, k, v, beta, h0)


    @_delta_rule_backward.register_fake
    def _(gO, gS, q, k, v, beta, h0):
        return _fake_grads([q, k, v, beta, h0])


    def _delta_setup(ctx, inputs, output):
        q, k, v, beta, h0, _chunk_size = inputs
        ctx.has_h0 = h0 is not None
        ctx.save_for_backward(q, k, v, beta, h0)


    def _delta_bwd(ctx, gO, gS):
        q, k, v, beta, h0 = ctx.saved_tensors
        h0 = h0 if ctx.has_h0 else None
        g = _delta_rule_backward(gO.contiguous(), gS.contiguous(), q, k, v, beta, h0)
        return g[0], g[1], g[2], g[3], _maybe(g[4], h0), None


    torch.library.register_autograd("structla::delta_rule", _delta_bwd, setup_context=_delta_setup)


    def delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, *, chunk_size: int = 64,
                   h0: Tensor | None = None, return_state: bool = False) -> Any:
        """Differentiable :func:`structla.models.delta_rule` (DeltaNet), real tensors.

        Forward: structla's chunked (WY/UT) kernel. Backward through the full-sequence form of
        MATH F3 built from ``tril_dlr_solve`` / ``tril_dlr_matmul``: O(T·d_k·d_v) time and
        O(T·(d_k + d_v)) memory, never a T×T matrix. Gradients to ``q, k, v, beta, h0``.
        """
        o, s = _delta_rule(q, k, v, beta, h0, int(chunk_size))
        return (o, s) if return_state else o


    # ----------------------------------------------------------------------------- optimizer


    class Muon(torch.optim.Optimizer):
        """Muon: momentum SGD whose update is orthogonalised by :func:`structla.msign` (Polar Express).

        For each parameter ``W`` (n × m; higher-rank parameters are viewed as ``(shape[0], -1)``)::

            buf ← μ·buf + g                      (momentum)
            u   ← g + μ·buf   if nesterov else buf
            O   ← msign(u)                       (Polar Express coefficients)
            W   ← (1 − lr·wd)·W − lr·s·O,         s = √max(1, n/m)  (scale="shape")
                                                 s = 0.2·√max(n, m) (scale="rms", AdamW-matched RMS)

        Parameters
        ----------
        params : iterable of tensors or dicts
            Matrix-shaped parameters (ndim ≥ 2). Use another optimizer (e.g. AdamW) for
            biases, gains and embeddings, as Muon's authors do.
        lr, momentum, nesterov, weight_decay
            As above.
        steps : int or None
            msign iteration steps; ``None`` iterates to the working dtype's accuracy, 5–8 is
            what Muon uses in practice.
        coeffs : str
            msign coefficient table ("polar_express" by default; see :func:`structla.msign`).
        scale : {"shape", "rms"}
        """

        def __init__(self, params: Any, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                     weight_decay: float = 0.0, steps: int | None = None, coeffs: str = "polar_express",
                     scale: str = "shape") -> None:
            if lr < 0 or not 0 <= momentum < 1 or weight_decay < 0:
                raise ValueError(f"invalid Muon hyper-parameters lr={lr}, momentum={momentum}, "
                                 f"weight_decay={weight_decay}")
            if scale not in ("shape", "rms"):
                raise ValueError(f"argument 'scale' must be 'shape' or 'rms'; got {scale!r}")
            defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                        "steps": steps, "coeffs": coeffs, "scale": scale}
            super().__init__(params, defaults)
            for group in self.param_groups:
                for p in group["params"]:
                    if p.ndim < 2:
                        raise ValueError(f"Muon updates matrices; got a parameter of shape {tuple(p.shape)} "
                                         f"(use AdamW for vectors and scalars)")

        @torch.no_grad()
        def step(self, closure: Callable[[], Any] | None = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                mu = group["momentum"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(g)
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).add_(g)
                    u = g.add(buf, alpha=mu) if group["nesterov"] else buf
                    matrix = u.reshape(u.shape[0], -1)
                    n, m = matrix.shape
                    O = run_on_tensors(structla.msign, matrix, steps=group["steps"], coeffs=group["coeffs"],
                                       out_dtype=p.dtype)
                    shape_scale = group["scale"] == "shape"
                    s = math.sqrt(max(1.0, n / m)) if shape_scale else 0.2 * math.sqrt(max(n, m))
                    if group["weight_decay"]:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(O.reshape(p.shape), alpha=-group["lr"] * s)
            return loss
