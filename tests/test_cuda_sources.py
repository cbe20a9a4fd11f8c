"""Every ``.cu`` in the package compiles to PTX with nvcc, for every dtype instance.

CI has no GPU, but it has (or can have) nvcc: this catches syntax and template
errors in kernels before they reach a device. The instances come from the same
dtype table the runtime loader uses (:mod:`structla._core.cuda`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from structla._core.cuda import CUDA_TYPES, INCLUDE_DIR, kernel_dtypes, kernel_names

PACKAGE = Path(__file__).resolve().parent.parent / "structla"
SOURCES = sorted(PACKAGE.rglob("*.cu"))
NVCC = shutil.which("nvcc")


def instantiation_unit(source: Path) -> str:
    """A translation unit that includes ``source`` and takes the address of every instance."""
    text = source.read_text(encoding="utf-8")
    names = kernel_names(text)
    instances = [f"(void*)&{k}<{CUDA_TYPES[t]}>" for k in names for t in kernel_dtypes(text)]
    return (f'#include "{source}"\n'
            f"void* structla_instances[] = {{{', '.join(instances)}}};\n")


def test_every_source_declares_templated_kernels():
    assert SOURCES, "the package ships at least the loader's sample kernel"
    for source in SOURCES:
        assert kernel_names(source.read_text(encoding="utf-8")), f"{source} has no kernel"


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_compiles_to_ptx(source, tmp_path):
    unit = tmp_path / "unit.cu"
    unit.write_text(instantiation_unit(source))
    ptx = tmp_path / "unit.ptx"
    result = subprocess.run(
        [NVCC, "--ptx", "-std=c++17", "-arch=sm_80", f"-I{INCLUDE_DIR}", "-o", str(ptx), str(unit)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    text = ptx.read_text()
    names = kernel_names(source.read_text(encoding="utf-8"))
    expected = len(names) * len(kernel_dtypes(source.read_text(encoding="utf-8")))
    assert text.count(".entry") == expected, f"expected {expected} kernel entries in PTX"
