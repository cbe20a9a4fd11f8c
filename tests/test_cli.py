"""``python -m structla info | demo | check | bench`` exit 0 and say what they did."""

from __future__ import annotations

import subprocess
import sys

import pytest

import structla


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "structla", *args], capture_output=True,
                          text=True, timeout=900)


def test_info_lists_versions_and_routines():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert f"structla {structla.__version__}" in out.stdout
    for word in ("numpy", "scipy", "numba threads", "cupy"):
        assert word in out.stdout


def test_check_passes():
    out = run_cli("check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all checks passed" in out.stdout


def test_demo_quick_runs_and_checks_against_scipy():
    out = run_cli("demo", "--quick")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ("cases within tolerance" in out.stdout) or ("nothing to run" in out.stdout)


@pytest.mark.slow
def test_bench_quick_writes_csv():
    out = run_cli("bench", "--quick")
    assert out.returncode == 0, out.stdout + out.stderr


def test_bench_unknown_family_is_an_error():
    out = run_cli("bench", "no_such_family")
    assert out.returncode == 2
    assert "no benchmark family" in out.stdout


def test_bench_rejects_gpu_without_device():
    from structla._core.families import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present")
    out = run_cli("bench", "--device", "gpu")
    assert out.returncode == 2 and "no CUDA device" in out.stdout
