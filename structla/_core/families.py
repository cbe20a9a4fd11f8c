"""Discovery of the algorithm families (sub-packages) present in this install."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["FAMILY_ORDER", "families", "family_module", "gpu_available"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
#: Display order; a family folder not listed here is shown after these.
FAMILY_ORDER = ("tril", "cauchy", "hippo", "matfun", "sylvester", "scan", "models", "interop")


def families() -> list[str]:
    """Family folders of the package (those with an ``_api.py``), in display order."""
    found = {p.parent.name for p in PACKAGE_ROOT.glob("*/_api.py") if not p.parent.name.startswith("_")}
    ordered = [f for f in FAMILY_ORDER if f in found]
    return ordered + sorted(found - set(ordered))


def family_module(family: str, module: str) -> ModuleType | None:
    """``structla.<family>.<module>`` if that file exists, else ``None``."""
    if not (PACKAGE_ROOT / family / f"{module}.py").exists():
        return None
    return importlib.import_module(f"structla.{family}.{module}")


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device, broken install: all mean "no GPU here"
        return False
