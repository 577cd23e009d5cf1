"""Range checks of the config dataclasses: ``__post_init__`` calls :func:`require`, and the
config loader turns the ValueError into a ConfigError naming the file and the key.
Imports nothing heavy, so the CLI can catch ConfigError without loading torch."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

# Bounds on sizes, far above what any published config uses and below what makes a node hang
# or run out of memory before the first iteration (issue 15: ``train_batch_size: 1e20``).
MAX_INT = 2**31 - 1
"""Every integer field (counts, sizes, seeds) fits int32: torch/numpy indices, Ray counts."""
MAX_BATCH = 10**7
"""Samples (env steps, sequences, examples) held in memory at once for one update."""
MAX_WIDTH = 2**16
"""A layer width or embedding size (one 2^16 x 2^16 float32 layer is already 16 GiB)."""
MAX_ACTORS = 10**4
"""Ray actors, workers or vectorised envs of one run (a large cluster has ~10^3 nodes)."""
MAX_TOKENS = 2**17
"""Generated tokens per completion (beyond any context window we load)."""
MAX_THREADS = 4096
"""torch CPU threads of one process."""
MAX_NAME = 100
"""Characters of a run name (one directory name)."""
MAX_REPR = 200
"""Characters of a value quoted in an error message."""


class ConfigError(ValueError):
    """A configuration problem the user must fix; the CLI prints it and exits with status 2."""


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, MAX_REPR, MAX_REPR
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)`` cut to about ``limit`` characters, computed without walking all of a
    huge value: an error message never prints (or builds) a whole value."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_size(key: str, value: int, hi: int, lo: int = 1) -> None:
    """``lo <= value <= hi`` for a count or size field, naming ``key`` (issue 15)."""
    require(lo <= value <= hi, f"{key} must be in [{lo}, {hi:,}], got {value:,}")


def require_run_name(name: str) -> None:
    """A run name is one safe path segment: ``<runs_root>/<name>/`` never leaves runs_root.
    Refused: empty, ``.``, ``..``, separators, NUL/control characters, a leading ``-``
    (read as an option by shell tools) and more than MAX_NAME characters."""
    bad = (
        "is empty"
        if not name
        else f"is longer than {MAX_NAME} characters"
        if len(name) > MAX_NAME
        else "is '.' or '..'"
        if name in (".", "..")
        else "contains a path separator"
        if "/" in name or "\\" in name
        else "contains a control character"
        if any(ord(c) < 32 or ord(c) == 127 for c in name)
        else "starts with '-'"
        if name.startswith("-")
        else None
    )
    require(
        bad is None,
        f"name {short_repr(name)} {bad}; a run name is one directory name such as 'cartpole_ppo'",
    )


def require_runs_root(runs_root: str) -> None:
    """``runs_root`` is a directory or can become one: its nearest existing ancestor is a
    directory (a file there would make run-directory creation fail mid-start)."""
    require("\0" not in runs_root, "runs_root contains a NUL character")
    path = Path(runs_root or ".")
    for p in (path, *path.parents):
        try:
            if p.exists():
                require(
                    p.is_dir(),
                    f"runs_root {short_repr(runs_root)}: {short_repr(str(p))} "
                    "is a file, not a directory",
                )
                return
        except OSError as exc:  # unreadable parent: say so now, not at run start
            raise ValueError(f"runs_root {short_repr(runs_root)}: {exc.strerror}") from None


# Optional dependencies: which `pip install 'regrl[EXTRA]'` brings each module a plain install
# lacks (pyproject.toml's extras). Core dependencies (torch, ray[rllib] with scipy and pyarrow,
# gymnasium, pettingzoo, ...) are never missing from an installed regrl.
OPTIONAL_MODULES = {
    "metadrive": ("traffic", "the RIFT traffic simulator (MetaDrive)"),
    "panda3d": ("traffic", "the RIFT traffic simulator (MetaDrive)"),
    "transformers": ("lm", "a language-model policy"),
    "tokenizers": ("lm", "a language-model policy"),
    "safetensors": ("lm", "a language-model policy"),
    "huggingface_hub": ("lm", "a language-model policy"),
    "gguf": ("lm", "a GGUF model file (SmolLM2)"),
    "accelerate": ("lm", "a language-model policy"),
    "sklearn": ("offline", "the digits data set (scikit-learn)"),
}
"""Top-level module -> (extra, what needs it)."""


def missing_extra(exc: BaseException) -> str | None:
    """The one-line fix for a ModuleNotFoundError of an optional dependency (None for any other
    error: a missing core module is a broken install or a regrl bug, not a user's choice)."""
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    top = (name or "").split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    extra, what = OPTIONAL_MODULES[top]
    return (
        f"no module named {top!r}: {what} needs the '{extra}' extra, which this install "
        f"lacks; install it with: pip install 'regrl[{extra}]'"
    )


def require_module(module: str) -> None:
    """Raise the ConfigError of :func:`missing_extra` now if optional ``module`` is missing,
    so a run fails before its run directory or Ray session exists."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        found = False
    if not found:
        raise ConfigError(
            missing_extra(ModuleNotFoundError(name=module)) or f"module {module!r} is not installed"
        )
