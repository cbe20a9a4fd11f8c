"""``import structla`` is light: no Numba, no CuPy, well under half a second."""

import subprocess
import sys

import structla

PROBE = """
import sys, time
t0 = time.perf_counter()
import structla
elapsed = time.perf_counter() - t0
print(elapsed, 'numba' in sys.modules, 'cupy' in sys.modules, 'llvmlite' in sys.modules)
"""


def test_import_is_light():
    # best of three fresh interpreters: one slow start on a busy machine is not the library
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             check=True)
        elapsed, numba, cupy, llvmlite = out.stdout.split()
        assert numba == "False" and llvmlite == "False", "import structla imported numba"
        assert cupy == "False", "import structla imported cupy"
        times.append(float(elapsed))
    assert min(times) < 0.5, f"import structla took {min(times):.3f} s (best of 3)"


def test_all_names_exist_and_are_unique():
    assert len(set(structla.__all__)) == len(structla.__all__)
    for name in structla.__all__:
        assert hasattr(structla, name), name


def test_errors_subclass_numpy_and_runtime_warning():
    import numpy as np

    assert issubclass(structla.LinAlgError, np.linalg.LinAlgError)
    assert issubclass(structla.NotConvergedWarning, RuntimeWarning)
    assert issubclass(structla.IllConditionedWarning, RuntimeWarning)
