"""``python -m structla demo`` and ``check``: every family on its built-in problems."""

from __future__ import annotations

import sys
import traceback
from types import ModuleType
from typing import TextIO

import numpy as np

from .._core.families import families, family_module, gpu_available
from .._core.timing import time_call
from .cases import DemoCase

__all__ = ["run_check", "run_demo"]


def _namespaces() -> list[tuple[str, ModuleType]]:
    spaces: list[tuple[str, ModuleType]] = [("cpu", np)]
    if gpu_available():
        import cupy

        spaces.append(("gpu", cupy))
    return spaces


def _collect(quick: bool) -> list[tuple[str, str, DemoCase]]:
    cases = []
    for family in families():
        demo = family_module(family, "_demo")
        if demo is None:
            continue
        for device, xp in _namespaces():
            cases.extend((family, device, case) for case in demo.demo_cases(xp, quick=quick))
    return cases


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rows.insert(1, tuple("-" * w for w in widths))
    for row in rows:
        out.write("  ".join(c.rjust(w) if i >= 4 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip() + "\n")


def run_demo(out: TextIO = sys.stdout, quick: bool = False) -> int:
    """Run every demo case, check it against its oracle and print a timing table.

    Returns the process exit code: 1 if any case exceeded its tolerance.
    """
    from tqdm import tqdm

    cases = _collect(quick)
    if not cases:
        out.write("structla demo: no routine family is implemented yet, so there is nothing to run.\n")
        return 0
    header = ("routine", "device", "size", "vs", "error", "tol", "ours [s]", "peer [s]", "speed-up")
    rows = [header]
    failures = 0
    for _family, device, case in tqdm(cases, desc="structla demo", unit="case", file=sys.stderr):
        ours = time_call(case.ours, gpu=device == "gpu", repeats=5, budget=3.0)
        peer = time_call(case.peer, repeats=3, budget=3.0)
        error = case.error(case.ours(), case.peer())
        ok = error <= case.tolerance
        failures += not ok
        rows.append((case.routine, device, case.size, case.peer_name,
                     f"{error:.1e}" + ("" if ok else " FAIL"), f"{case.tolerance:.0e}",
                     f"{ours.median:.2e}", f"{peer.median:.2e}", f"{peer.median / ours.median:.1f}x"))
    _table(rows, out)
    out.write(f"\n{len(cases) - failures}/{len(cases)} cases within tolerance of the "
              "SciPy/NumPy float64 oracle.\n")
    return 1 if failures else 0


def run_check(out: TextIO = sys.stdout) -> int:
    """Quick self-test of every backend present; returns 0 only if everything passed."""
    failures = 0
    checks = [("numba kernel decorator", _check_numba)]
    if gpu_available():
        checks.append(("CUDA loader (sample kernel, all dtypes)", _check_cuda_loader))
    for name, check in checks:
        failures += _report(name, check, out)
    for family, device, case in _collect(quick=True):
        label = f"{family}.{case.routine} [{device}] {case.size}"
        failures += _report(label, lambda c=case: _check_case(c), out)
    out.write(f"\n{'all checks passed' if not failures else f'{failures} check(s) FAILED'}\n")
    return 1 if failures else 0


def _report(label: str, check, out: TextIO) -> int:
    try:
        detail = check()
    except Exception:
        out.write(f"FAIL  {label}\n{traceback.format_exc()}")
        return 1
    out.write(f"ok    {label}{'  ' + detail if detail else ''}\n")
    return 0


def _check_case(case: DemoCase) -> str:
    error = case.error(case.ours(), case.peer())
    if not error <= case.tolerance:
        raise AssertionError(f"error {error:.2e} exceeds tolerance {case.tolerance:.0e}")
    return f"error {error:.1e}"


def _check_numba() -> str:
    from .._core.jit import JIT_DISABLED, kernel

    @kernel
    def dot(x, y):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * y[i]
        return s

    x = np.arange(10.0)
    if dot(x, x) != 285.0:
        raise AssertionError("compiled dot product is wrong")
    return "(JIT disabled)" if JIT_DISABLED else ""


def _check_cuda_loader() -> str:
    import cupy

    from .._core.cuda import CUDA_TYPES, get_kernel, launch

    for dtype in CUDA_TYPES:
        x = cupy.arange(1000, dtype=dtype)
        y = cupy.ones(1000, dtype=dtype)
        out = cupy.full(1000, np.nan, dtype=dtype)
        k = get_kernel("_core", "selftest.cu", "axpby", dtype)
        launch(k, 4, 256, (np.int64(1000), dtype.type(2), x, dtype.type(3), y, out))
        if not bool(cupy.allclose(out, 2 * x + 3)):
            raise AssertionError(f"sample kernel wrong for {dtype}")
    return f"{len(CUDA_TYPES)} dtypes"
