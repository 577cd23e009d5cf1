"""Files written atomically, and the commit of the source tree that wrote them.

The one writer and the one commit reader of regrl: environments (``regrl.envs``), trainers and
benchmarks all use these, so this module imports nothing of regrl and nothing beyond the
standard library (an import-linter contract in ``.importlinter`` keeps it so).

- :func:`atomic_output`: a file handle whose content replaces ``path`` only when the block
  completes, flushed and fsynced first; a failure (or an interrupt) leaves the old file as it
  was and no temporary file behind.
- :func:`write_text_atomic`: the same for a whole text at once (reports, JSON summaries).
- :func:`package_commit`: the git commit of the checkout that holds regrl's own source files,
  whatever the working directory of the process; None for an installed wheel or without git.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional, Union

GIT_TIMEOUT_S = 10
"""A git call that takes longer (a hung network file system) is given up: no commit."""

PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of ``regrl/__init__.py``: in a checkout, a tracked folder of the repository."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where directories cannot be
    opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(
    path: Union[str, Path], mode: str = "wb", encoding: Optional[str] = None
) -> Iterator[IO]:
    """A handle on a temporary file beside ``path`` (``mode`` ``"wb"`` or ``"w"``); when the
    block completes the file is flushed, fsynced and renamed over ``path``. Parent folders are
    created. The file gets the permissions of a newly created file (``0o666`` less the umask).

    If the block raises, ``path`` keeps its old content (or stays absent) and the temporary
    file is removed.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output writes with mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output is a normal file
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Union[str, Path], text: str) -> Path:
    """``Path(path).write_text(text)`` through :func:`atomic_output`: a reader (or an
    interrupted writer) never leaves a half-written report in place of the old one."""
    with atomic_output(path, "w") as fh:
        fh.write(text)
    return Path(path)


def _git(directory: Path, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def commit_of(directory: Union[str, Path], short: bool = False) -> Optional[str]:
    """The commit checked out in the git repository that tracks ``directory``'s
    ``__init__.py``; None when no repository tracks it (an installed package, even one whose
    virtual environment lies inside some checkout), git is missing or fails."""
    directory = Path(directory)
    if _git(directory, "ls-files", "--error-unmatch", "--", "__init__.py") is None:
        return None
    return _git(directory, "rev-parse", *(["--short"] if short else []), "HEAD")


def package_commit(short: bool = False) -> Optional[str]:
    """The commit of the checkout regrl runs from (not of the working directory); None for an
    installed wheel or without git."""
    return commit_of(PACKAGE_DIR, short=short)
