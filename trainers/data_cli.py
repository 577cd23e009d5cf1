"""``regrl data NAME [--out PATH]``: write a data file that example configs read.

``regrl data digits`` writes ``data/digits.npz`` for ``configs/offline_digits.yaml``; the
offline learner's "no such dataset file" error names this command when a missing file is one
of these. Files are written atomically (a reader never sees half a file) and parent
directories are created, so the commands work on a fresh clone.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

from regrl import files
from regrl.agents.registry import Registry
from regrl.trainers.checks import ConfigError, require_module, short_repr

DATASETS = Registry("data set")


@dataclass(frozen=True)
class DataSet:
    default_out: str
    """Where the example configs expect the file (relative to the repository root)."""
    make: Callable[[], Dict]
    """Builds the arrays (name -> numpy array) written to the .npz file."""
    module: Optional[str] = None
    """Optional dependency the builder imports (its extra is named when missing)."""


def digits_arrays() -> Dict:
    """scikit-learn's bundled digits: x [1797, 64] float32 in [0, 1] (pixels / 16), y [1797]
    int64 in 0..9. Bundled with scikit-learn, so nothing is downloaded."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"x": (d.data / 16.0).astype(np.float32), "y": d.target.astype(np.int64)}


DATASETS.register("digits", "8x8 handwritten digits for configs/offline_digits.yaml")(
    DataSet("data/digits.npz", digits_arrays, module="sklearn")
)


def make_hint(path: Path) -> str:
    """`` (make it with: regrl data NAME --out PATH)`` when ``path`` is named like a file a
    ``regrl data`` command writes, else ``""``."""
    for entry in DATASETS:
        if Path(path).name == Path(entry.obj.default_out).name:
            return f" (make it with: regrl data {entry.name} --out {path})"
    return ""


def make_parent(path: Path) -> None:
    """Create the parent directories of output ``path`` (a fresh clone has no ``data/``); a
    file where a directory should be is a ConfigError naming it."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"--out {short_repr(str(path))}: a file is in the way of its parent directory"
        ) from None


@contextmanager
def atomic_output(path: Path) -> Iterator:
    """:func:`regrl.files.atomic_output` for an ``--out`` path: a binary handle whose content
    replaces ``path`` only once the block completes; a directory at ``path`` or a file in the
    way of its parent is a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {short_repr(str(path))} is a directory; give a file path")
    make_parent(path)
    with files.atomic_output(path) as fh:
        yield fh


def write_dataset(name: str, out: Optional[str] = None) -> Path:
    """Build data set ``name`` and write it to ``out`` (default: where the configs expect it)."""
    import numpy as np

    entry = DATASETS.get(name)
    path = Path(out or entry.default_out)
    if path.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {short_repr(str(path))}")
    if entry.module:
        require_module(entry.module)
    arrays = entry.make()
    with atomic_output(path) as fh:
        np.savez(fh, **arrays)
    return path


def add_cli(sub) -> None:
    p = sub.add_parser("data", help="write a data file the example configs read")
    p.add_argument("name", help="data set: " + ", ".join(DATASETS.names()))
    p.add_argument("--out", help="output .npz (default: the path the example configs read)")
    p.set_defaults(handler=_data)


def _data(args) -> int:
    import numpy as np

    path = write_dataset(args.name, args.out)
    with np.load(path) as f:
        shapes = ", ".join(f"{k} {tuple(f[k].shape)}" for k in f.files)
    print(f"wrote {path}: {shapes}")
    return 0
