"""The runnable model examples pass their own checks in quick mode (each a few seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("deltanet_layer.py", "s4_kernel.py", "mamba_decode.py")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quick_mode_passes_its_check(name):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    # The timeout leaves room for a cold Numba cache; with a warm one each example takes seconds.
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), "--quick"], capture_output=True,
                            text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check: OK" in result.stdout
