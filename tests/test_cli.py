"""``python -m structla info | demo | check | bench`` exit 0 and say what they did."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

import structla

ROOT = Path(__file__).resolve().parent.parent


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


def test_bench_runner_writes_csv_and_plot(tmp_path, monkeypatch):
    """The runner times ours and the peer side by side and writes CSV + plot."""
    import csv

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks import runner
    from benchmarks.case import BenchCase

    case = BenchCase(
        routine="cumsum", peer="numpy.add.accumulate", sizes=[{"n": 10}, {"n": 100}, {"n": 1000}],
        setup=lambda size, xp, dtype: xp.ones(size["n"], dtype=dtype),
        ours=np.cumsum, peer_fn=np.add.accumulate, devices=("cpu",), flops=lambda s: s["n"],
    )
    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    monkeypatch.setattr(runner, "registry", lambda: {"toy": [case]})
    out = io.StringIO()
    assert runner.run(family=None, device="cpu", quick=True, out=out) == 0
    rows = list(csv.DictReader((tmp_path / "toy-cpu.csv").open()))
    assert [r["x"] for r in rows] == ["10", "100"]
    assert all(float(r["ours_median_s"]) > 0 and float(r["speedup"]) > 0 for r in rows)
    assert "== toy" in out.getvalue()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "toy-cpu.png").exists()


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
