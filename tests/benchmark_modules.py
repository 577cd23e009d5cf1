"""Import a script of ``benchmarks/`` in a test: the scripts are not a package, and several
import their siblings by bare name (``from turbulence_routes import ...``), so the folder is on
``sys.path`` while the module is loaded and used, and taken off afterwards."""

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextmanager
def benchmark_module(name: str, register: bool = False):
    """``benchmarks/<name>.py`` as a module for the ``with`` block. ``register``: also under
    ``sys.modules[name]`` (for scripts whose dataclasses or pickles look themselves up)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        if register:
            sys.modules[name] = module
        spec.loader.exec_module(module)
        yield module
    finally:
        if register:
            sys.modules.pop(name, None)
        sys.path.remove(str(BENCHMARKS))
