"""Run-directory checkpoints: atomic writes with an integrity manifest, discovery of the
newest intact one, pruning, clean-up after a crash, and the empty-iteration guard.

Pure file logic (no Ray, no torch at import): the run harness calls it through one-line
hooks, and the tests need no framework.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from regrl.trainers.checks import ConfigError
from regrl.trainers.run_files import CHECKPOINT_DIR

STATE_FILE = "regrl_state.json"
MANIFEST_FILE = "regrl_manifest.json"
PREFIX = "iter_"
NAME = re.compile(r"iter_(\d{6})")  # what we write; anything else in checkpoints/ is not ours
TMP_PREFIXES = (".tmp_iter_", ".stage_")  # partial checkpoints (save_checkpoint, offline ranks)
MAX_EMPTY_ITERATIONS = 20
MIN_EMPTY_SECONDS = 300.0  # and at least this long: an actor restart can take minutes
RESTARTING = "env runner restarting?"
"""The usual cause of an empty iteration: its env runner died and Ray restarts it."""


class CheckpointError(ConfigError):
    """No usable checkpoint (every one is damaged) or a state file we refuse to load."""


class RunAborted(RuntimeError):
    """Training cannot make progress (e.g. every env runner keeps dying); the run is saved."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_iteration(path: Path) -> Optional[int]:
    """The iteration of a checkpoint dir named exactly ``iter_NNNNNN``, else None."""
    m = NAME.fullmatch(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: Path) -> List[Path]:
    """Our checkpoint dirs (exact ``iter_NNNNNN`` names), oldest first, intact or not;
    strays such as ``iter_000003.bak`` or ``iter_abc`` are not ours and are ignored."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_iteration(p) is not None]
    return sorted(found, key=checkpoint_iteration)


def read_state(ckpt: Path) -> Dict[str, Any]:
    return json.loads((Path(ckpt) / STATE_FILE).read_text())


# ------------------------------------------------------------------------------ integrity
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(ckpt: Path) -> Dict[str, Any]:
    """``{"files": {relative path: {"size", "sha256"}}}`` of every file except the manifest."""
    ckpt = Path(ckpt)
    files = {}
    for path in sorted(p for p in ckpt.rglob("*") if p.is_file()):
        rel = path.relative_to(ckpt).as_posix()
        if rel != MANIFEST_FILE:
            files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return {"format": 1, "files": files}


def write_manifest(ckpt: Path) -> None:
    """Written last, so a manifest that verifies means every file was completely written."""
    (Path(ckpt) / MANIFEST_FILE).write_text(json.dumps(build_manifest(ckpt), indent=1))


def _state_problem(ckpt: Path) -> Optional[str]:
    if not (ckpt / STATE_FILE).is_file():
        return f"no {STATE_FILE}"
    try:
        state = read_state(ckpt)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{STATE_FILE} is not valid JSON ({type(exc).__name__})"
    if not isinstance(state, dict) or not isinstance(state.get("iteration"), int):
        return f"{STATE_FILE} has no integer 'iteration'"
    return None


def _file_problem(ckpt: Path, rel: str, want: Mapping[str, Any]) -> Optional[str]:
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        return f"the manifest names a path outside the checkpoint ({rel[:80]!r})"
    path = ckpt / rel
    if not path.is_file():
        return f"missing file {rel}"
    size = path.stat().st_size
    if size != want.get("size"):
        return f"{rel} has {size} bytes, the manifest says {want.get('size')}"
    if file_sha256(path) != want.get("sha256"):
        return f"{rel} differs from its manifest sha256"
    return None


def checkpoint_problem(ckpt: Path) -> Tuple[Optional[str], bool]:
    """``(what is wrong or None, has a manifest)``: checks the state file, then every file
    the manifest lists (existence, size, sha256). Files the manifest does not list are
    ignored, so a user's notes beside the weights do not invalidate a checkpoint."""
    ckpt = Path(ckpt)
    problem = _state_problem(ckpt)
    manifest_path = ckpt / MANIFEST_FILE
    if problem or not manifest_path.is_file():
        return problem, manifest_path.is_file()
    try:
        files = json.loads(manifest_path.read_text())["files"]
        items = sorted(files.items())
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return f"{MANIFEST_FILE} is unreadable", True
    for rel, want in items:
        problem = _file_problem(ckpt, rel, want if isinstance(want, dict) else {})
        if problem:
            return problem, True
    return None, True


# ------------------------------------------------------------------------------ discovery
@dataclass(frozen=True)
class CheckpointChoice:
    """The newest intact checkpoint of a run and what was passed over to find it."""

    path: Optional[Path]
    skipped: Tuple[Tuple[str, str], ...] = ()
    """(checkpoint name, what is wrong with it) of every newer, damaged checkpoint."""
    legacy: bool = False
    """The chosen checkpoint has no manifest (written before manifests existed)."""

    def warnings(self) -> List[str]:
        lines = [f"checkpoint {name} is damaged ({why}); skipped" for name, why in self.skipped]
        if self.path is not None and self.skipped:
            lines.append(f"falling back to {self.path.name}, the newest intact checkpoint")
        if self.legacy:
            lines.append(
                f"checkpoint {self.path.name} has no {MANIFEST_FILE} (written by an "
                "older regrl); its files cannot be verified"
            )
        return lines


def choose_checkpoint(run_dir: Path) -> CheckpointChoice:
    """Newest first, the first checkpoint whose state and manifest verify; one without a
    manifest is accepted (flagged ``legacy``)."""
    skipped = []
    for ckpt in reversed(list_checkpoints(run_dir)):
        problem, has_manifest = checkpoint_problem(ckpt)
        if problem is None:
            return CheckpointChoice(ckpt, tuple(skipped), legacy=not has_manifest)
        skipped.append((ckpt.name, problem))
    return CheckpointChoice(None, tuple(skipped))


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def damaged_error(run_dir: Path, choice: CheckpointChoice) -> CheckpointError:
    what = "; ".join(f"{name}: {why}" for name, why in choice.skipped)
    return CheckpointError(f"{run_dir}: every checkpoint is damaged ({what})")


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None] = _warn) -> Optional[Path]:
    """The newest intact checkpoint (None when the run has none); damaged ones are skipped
    with a warning, and a run whose checkpoints are all damaged raises CheckpointError."""
    choice = choose_checkpoint(run_dir)
    for line in choice.warnings():
        warn(line)
    if choice.path is None and choice.skipped:
        raise damaged_error(run_dir, choice)
    return choice.path


def newest_saved_iteration(run_dir: Path) -> int:
    """The iteration of the newest checkpoint dir (by name, unverified; 0 if none)."""
    found = list_checkpoints(run_dir)
    return checkpoint_iteration(found[-1]) if found else 0


def remove_partial_checkpoints(run_dir: Path) -> List[str]:
    """Delete the ``.tmp_iter_*``/``.stage_*`` dirs a killed process left behind. Called when
    a run (re)starts: one process owns a run dir, so none of them is still being written."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    stale = sorted(p for p in root.iterdir() if p.name.startswith(TMP_PREFIXES))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return [p.name for p in stale]


def resume_checkpoint(
    run_dir: Path, say: Callable[[str], None] = print, clean: bool = True
) -> CheckpointChoice:
    """The resume hook of the run harness: clean up partial checkpoints (``clean``), pick the
    newest intact checkpoint with a warning per skipped one, say so when there is none (the
    run restarts at iteration 1), and refuse when every checkpoint is damaged."""
    removed = remove_partial_checkpoints(run_dir) if clean else []
    if removed:
        say(f"removed {len(removed)} partial checkpoint(s) of a killed run: {', '.join(removed)}")
    choice = choose_checkpoint(run_dir)
    for line in choice.warnings():
        say(f"warning: {line}")
    if choice.path is None and choice.skipped:
        raise damaged_error(run_dir, choice)
    if choice.path is None:
        say(f"{run_dir} has no checkpoint yet; starting from iteration 1")
    return choice


def log_resume(tb, choice: Optional[CheckpointChoice], step: int) -> None:
    """Put a fallback (or an unverifiable checkpoint) on the TensorBoard record: a text entry
    and ``perf/resume_fallbacks`` (the number of damaged checkpoints skipped)."""
    if choice is None or not (choice.skipped or choice.legacy):
        return
    tb.writer.add_text("resume", "\n\n".join(choice.warnings()), step)
    tb.scalars({"perf/resume_fallbacks": float(len(choice.skipped))}, step)


# ------------------------------------------------------------------------------ writing
def save_checkpoint(
    save_fn, run_dir: Path, iteration: int, state: Dict[str, Any], keep: int
) -> Path:
    """``save_fn(path)`` writes the algorithm; we add the state file and, last, the manifest,
    then rename atomically."""
    root = checkpoint_dir(run_dir).resolve()  # pyarrow wants absolute paths
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{iteration:06d}"
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_fn(str(tmp))
    (tmp / STATE_FILE).write_text(json.dumps(dict(state, iteration=iteration), indent=2))
    write_manifest(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError)


def load_torch_state(path: Path, map_location=None) -> Any:
    """Load one of our own ``torch.save`` state files with ``weights_only=True``: tensors,
    dicts, lists and numbers only, so a crafted pickle in a checkpoint cannot run code. A
    file that is not such a state raises CheckpointError (one ``error:`` line in the CLI)."""
    import torch  # lazy: regrl.trainers.cli imports this module at --help

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: state file missing")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{path}: refused to load; not a plain regrl state file "
            f"({load_error_reason(exc)}); only load checkpoints you trust"
        ) from None


def load_error_reason(exc: BaseException) -> str:
    """A short reason for a failed ``weights_only`` load: the refused global of a crafted
    pickle, else the first sentence. (torch's own message recommends the unsafe loader.)"""
    found = re.search(r"Unsupported global: GLOBAL [\w.]+", str(exc))
    return found.group(0) if found else f"{type(exc).__name__}: {str(exc).split('. ')[0][:120]}"


def module_checkpoint_path(path: Path, module_id: str) -> Path:
    """Resolve a run dir, an algorithm checkpoint or an RLModule dir to the module's dir.
    Only below the path the user named: checkpoints are trusted input (they hold pickles)."""
    path = Path(path).resolve()  # pyarrow wants absolute paths
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if checkpoint_dir(path).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"run {path} has no complete checkpoint yet")
        path = latest
    for candidate in (
        path / "learner_group" / "learner" / "rl_module" / module_id,
        path / "rl_module" / module_id,
        path / module_id,
        path,
    ):
        if (candidate / "class_and_ctor_args.pkl").is_file():
            return candidate
    raise FileNotFoundError(f"no RLModule {module_id!r} found under {path}")


# ------------------------------------------------------------------------------ empty samples
@dataclass(frozen=True)
class EmptyStreak:
    """Consecutive iterations that sampled no env steps, and when the first of them ended;
    false when there is none (so ``if streak:`` reads "the last iteration was empty")."""

    count: int = 0
    since: float = 0.0

    def __bool__(self) -> bool:
        return self.count > 0


def empty_iteration_streak(
    streak,
    metrics: Mapping[str, float],
    iteration: int,
    say: Callable[[str], None] = print,
    limit: Optional[int] = None,
    min_seconds: Optional[float] = None,
    clock: Optional[Callable[[], float]] = None,
    why: str = RESTARTING,
) -> EmptyStreak:
    """The streak of empty iterations after this one (empty: it sampled no env steps, e.g.
    its only env runner died and Ray is restarting it). Such an iteration is not counted
    toward ``training.iterations``. ``streak`` is the previous return value (or 0). RunAborted
    once ``limit`` of them in a row have also lasted ``min_seconds``: RLlib returns an empty
    iteration every ~2 s while a restart takes tens of seconds on a loaded machine, so a count
    alone would give up on a run that was about to recover. ``limit``/``min_seconds``
    default to MAX_EMPTY_ITERATIONS/MIN_EMPTY_SECONDS, ``clock`` to ``time.monotonic``;
    ``why`` is the likely cause, said with each empty iteration and when giving up."""
    if metrics.get("env/env_steps", 0.0) > 0:
        return EmptyStreak()
    limit = MAX_EMPTY_ITERATIONS if limit is None else limit
    min_seconds = MIN_EMPTY_SECONDS if min_seconds is None else min_seconds
    now = (clock or time.monotonic)()
    streak = EmptyStreak(streak.count + 1, streak.since) if streak else EmptyStreak(1, now)
    waited = now - streak.since
    say(
        f"iteration {iteration} sampled 0 env steps ({why}); not counted "
        f"({streak.count} in a row, {waited:.0f} s)"
    )
    if streak.count >= limit and waited >= min_seconds:
        raise RunAborted(
            f"{streak.count} iterations in a row ({waited:.0f} s) sampled no env "
            "steps; "
            + (
                "the env runners keep failing (see the Ray logs above)"
                if why == RESTARTING
                else why
            )
        )
    return streak
