"""Run the benchmark registry and write ``benchmarks/results/<family>-<device>.csv``."""

from __future__ import annotations

import csv
import datetime
import functools
import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from structla._core.families import gpu_available
from structla._core.timing import time_call

from .case import BenchCase

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COLUMNS = ["family", "routine", "device", "dtype", "size", "x", "ours_first_s", "ours_median_s",
           "peer", "peer_median_s", "speedup", "gflops", "gbps", "machine", "commit", "date"]


def registry() -> dict[str, list[BenchCase]]:
    """Every family's ``CASES``, by family name."""
    out = {}
    for path in sorted((HERE / "registry").glob("[!_]*.py")):
        module = importlib.import_module(f"benchmarks.registry.{path.stem}")
        out[path.stem] = list(module.CASES)
    return out


def machine_name(device: str) -> str:
    """CPU model and core count, or the GPU's name."""
    if device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
        return props["name"].decode()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


@functools.cache
def _commit() -> str:
    """The checkout's commit, read once per run (``STRUCTLA_COMMIT`` where there is no .git)."""
    if os.environ.get("STRUCTLA_COMMIT"):
        return os.environ["STRUCTLA_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_case(case: BenchCase, family: str, device: str, quick: bool) -> list[dict]:
    """Time one case over its sizes and dtypes; one CSV row each."""
    if device == "gpu":
        import cupy as xp
    else:
        xp = np
    sizes = list(case.sizes)[:2] if quick else list(case.sizes)
    repeats = 3 if quick else 7
    stamp = {"machine": machine_name(device), "commit": _commit(),
             "date": datetime.date.today().isoformat()}
    rows = []
    for dtype in case.dtypes:
        for size in sizes:
            inputs = case.setup(size, xp, dtype)
            ours = time_call(lambda inputs=inputs: case.ours(inputs), gpu=device == "gpu", repeats=repeats)
            peer_s = float("nan")
            if case.peer_fn is not None and (case.peer_limit is None or case.peer_limit(size)):
                peer = time_call(lambda inputs=inputs: case.peer_fn(inputs),
                                 gpu=case.peer_device == "gpu", repeats=repeats)
                peer_s = peer.median
            flops = case.flops(size) if case.flops else float("nan")
            nbytes = case.bytes(size) if case.bytes else float("nan")
            rows.append({
                "family": family, "routine": case.routine, "device": device, "dtype": dtype,
                "size": json.dumps(size, sort_keys=True), "x": size[case.x],
                "ours_first_s": f"{ours.first:.4e}", "ours_median_s": f"{ours.median:.4e}",
                "peer": case.peer, "peer_median_s": f"{peer_s:.4e}",
                "speedup": f"{peer_s / ours.median:.3g}",
                "gflops": f"{flops / ours.median / 1e9:.3g}",
                "gbps": f"{nbytes / ours.median / 1e9:.3g}", **stamp,
            })
    return rows


def _print_rows(rows: list[dict], out: TextIO) -> None:
    keys = ["routine", "dtype", "size", "ours_first_s", "ours_median_s", "peer_median_s",
            "speedup", "gflops", "gbps"]
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    out.write("  ".join(k.ljust(widths[k]) for k in keys) + "\n")
    for r in rows:
        out.write("  ".join(str(r[k]).ljust(widths[k]) for k in keys) + "\n")


def run(family: str | None, device: str, quick: bool, out: TextIO = sys.stdout) -> int:
    """Run the registry (one family or all) on ``device``; returns an exit code."""
    if device == "gpu" and not gpu_available():
        out.write("structla bench --device gpu: no CUDA device visible (CuPy missing or no GPU).\n")
        return 2
    cases = registry()
    if family is not None:
        if family not in cases:
            known = ", ".join(cases) or "none yet"
            out.write(f"no benchmark family {family!r}; registered: {known}\n")
            return 2
        cases = {family: cases[family]}
    if not any(cases.values()):
        out.write("structla bench: the registry is empty (no family has benchmark entries yet).\n")
        return 0
    RESULTS.mkdir(exist_ok=True)
    from .plot import plot_csv

    for fam, fam_cases in cases.items():
        rows = []
        for case in fam_cases:
            if device in case.devices:
                rows.extend(run_case(case, fam, device, quick))
        if not rows:
            continue
        path = RESULTS / f"{fam}-{device}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        out.write(f"\n== {fam} on {rows[0]['machine']} ({device}) -> {path}\n")
        _print_rows(rows, out)
        image = plot_csv(path)
        if image is not None:
            out.write(f"plot: {image}\n")
    return 0
