"""Repository hygiene: CI runs the README's test command; ruff is clean; no print()."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_starts_with_the_two_commands():
    demo, test = readme_commands()
    assert demo == "pip install -e . && python -m structla demo"
    assert "pytest" in test and test.startswith("pip install -e '.[test]'")


def test_ci_runs_exactly_the_readme_test_command():
    _, test = readme_commands()
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in lines


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed")
def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_print_in_library():
    offenders = []
    for path in (ROOT / "structla").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s*print\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, offenders
