"""Run a family's unmodified ``.cu`` kernels on the host: one C++ thread per CUDA thread.

CI has no GPU; a harness (C++ text written by each family's test) includes the kernel source,
emulates ``threadIdx``/``blockIdx``/``__syncthreads`` with threads and a C++20 barrier, runs
checks and prints one ``ratio=<error / bound>`` line per check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from structla._core.cuda import INCLUDE_DIR

CXX = shutil.which("g++") or shutil.which("clang++")


def build_and_run(work: Path, harness: str, define: str, source: Path, timeout: float) -> list[str]:
    """Compile ``harness`` with ``-D<define>="<source>"`` and return its output lines.

    Skips (not fails) where no C++20 host compiler exists; any build or run error fails.
    """
    if CXX is None:
        pytest.skip("no host C++ compiler")
    path = work / "harness.cpp"
    path.write_text(harness)
    binary = work / "harness"
    build = subprocess.run(
        [CXX, "-O1", "-std=c++20", "-w", f"-I{INCLUDE_DIR}", f'-D{define}="{source}"',
         "-o", str(binary), str(path), "-lpthread"], capture_output=True, text=True)
    if build.returncode != 0 and "barrier" in build.stderr:
        pytest.skip("host C++ compiler without C++20 <barrier>")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def assert_within_bounds(lines: list[str], expected_checks: int) -> None:
    """Every ``ratio=`` line is ≤ 1 (NaN, i.e. an unwritten entry, fails too)."""
    ratios = [(line, float(re.search(r"ratio=(\S+)", line).group(1))) for line in lines]
    assert len(ratios) == expected_checks
    bad = [line for line, ratio in ratios if not ratio <= 1.0]
    assert not bad, "error above the bound (or an unwritten NaN entry):\n" + "\n".join(bad)
