"""The torch examples run in quick mode and reduce their loss (issue 10, Must show 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["torch_deltanet_train.py", "torch_s4d_train.py", "muon_step.py"])
def test_example_quick_mode_reduces_the_loss(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               NUMBA_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr
    match = re.search(r"first loss (\S+) last loss (\S+)", run.stdout)
    assert match, run.stdout
    first, last = float(match.group(1)), float(match.group(2))
    print(f"{script}: first loss {first} last loss {last}")
    assert last < 0.7 * first, run.stdout
