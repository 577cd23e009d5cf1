"""One run harness for every kind: what each experiment does the same way is written here once.

The harness owns the run directory (a new ``<runs_root>/<name>/<timestamp>/`` or a resumed
one), the resolved-config dump, the TensorBoard writer and ``metrics.jsonl``, the progress
line, the checkpoint cadence (atomic writes and pruning through :mod:`regrl.trainers.checkpoint`),
the Ctrl-C and SIGTERM checkpoint (:mod:`regrl.trainers.stop_signal`), ``--resume`` and the
final ``summary.json``.

A kind's driver (:mod:`regrl.trainers.kinds`) provides only ``build(cfg, run_dir, choice)``, which
returns a :class:`Session`: ``step(i) -> metrics``, ``save(path) -> state``,
``restore(ckpt, state)``, ``should_stop(i, metrics)`` and ``close()``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol

import yaml

from regrl.files import atomic_output
from regrl.trainers.checkpoint import (
    RunAborted,
    log_resume,
    read_state,
    resume_checkpoint,
    save_checkpoint,
)
from regrl.trainers.checks import ConfigError, require_run_name, short_repr
from regrl.trainers.config_yaml import read_yaml
from regrl.trainers.logging import Progress, TensorBoardLogger
from regrl.trainers.run_files import CONFIG_FILE, METRICS_JSONL, SUMMARY_FILE, TB_DIR
from regrl.trainers.stop_signal import (
    Terminated,
    check,
    deferred,
    requested,
    sigterm_as_interrupt,
)


class Session(Protocol):
    """One run of one kind, as the harness drives it (built by the kind's driver)."""

    total: int
    """Iterations (steps, epochs) in the schedule."""
    unit: str
    """What one iteration is called in messages: ``iteration``, ``step``, ``epoch``."""

    def step(self, i: int) -> Optional[Dict[str, float]]:
        """Run iteration ``i``; None when it must not count (it is retried as ``i``)."""

    def save(self, path: str) -> Dict[str, Any]:
        """Write the model/optimizer into the directory ``path`` (not yet created); return
        the JSON state to keep next to it."""

    def restore(self, ckpt: Path, state: Dict[str, Any]) -> None:
        """Load what :meth:`save` wrote (``state`` is its JSON state plus ``iteration``)."""

    def should_stop(self, i: int, metrics: Dict[str, float]) -> bool:
        """Early stop after iteration ``i`` (the schedule's end stops it anyway)."""

    def close(self) -> None:
        """Release actors and files."""

    # optional: abort() -> None, called before close() after Ctrl-C / SIGTERM: release the
    # actors without waiting on the work they are running (the scheduler's SIGKILL is near)


@dataclass
class Outcome:
    """How a run ended: the last completed iteration, its metrics, early stop or not."""

    run_dir: Path
    done: int
    metrics: Dict[str, float]
    stopped: bool


def new_run_dir(cfg) -> Path:
    """A fresh ``<runs_root>/<name>/<timestamp>[-N]/`` for any config with those fields.

    Each candidate is created with one atomic ``mkdir`` (no exists-then-create gap), so two
    processes starting in the same second get different directories, never the same one
    and never a FileExistsError; ``name`` is checked to be one path segment again here."""
    try:
        require_run_name(cfg.name)
        parent = Path(cfg.runs_root).resolve() / cfg.name
        parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"runs_root {short_repr(cfg.runs_root)}, name {short_repr(cfg.name)}: "
            f"cannot create the run directory: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    base = parent / time.strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        run_dir = base if n == 0 else Path(f"{base}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # taken (by us earlier, or by a process racing us): next one
            continue
    raise ConfigError(f"{parent}: 10,000 run directories named {base.name}[-N] exist already")


def load_run_config(run_dir: Path, parse_fn: Callable[[Dict[str, Any], str], Any]) -> Any:
    """The resolved config a run saved, validated by ``parse_fn(data, source)`` (the kind's
    schema; :func:`regrl.trainers.kinds.load_run_config` picks it from the saved ``kind:``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a regrl run directory (no {CONFIG_FILE})")
    return parse_fn(read_yaml(path), source=str(path))


def print_run_location(run_dir: Path) -> None:
    print(
        f"run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir / TB_DIR}",
        flush=True,
    )


def open_run(driver, cfg: Any, resume: Optional[Path]):
    """(run_dir, cfg, choice): a new run directory holding the resolved config, or the run at
    ``resume`` with its saved config and the checkpoint ``resume_checkpoint`` picks."""
    if resume is None:
        run_dir = new_run_dir(cfg)
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(driver.dump(cfg), sort_keys=False))
        return run_dir, cfg, None
    run_dir = Path(resume).resolve()
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir}: not a regrl run directory (no {CONFIG_FILE})")
    return run_dir, driver.load(run_dir / CONFIG_FILE), resume_checkpoint(run_dir)


def train(
    driver,
    cfg: Any = None,
    *,
    resume: Optional[Path] = None,
    address: Optional[str] = None,
    progress: bool = True,
) -> Outcome:
    """Open (or resume) the run, let the driver build its session and run it (the caller,
    :func:`regrl.trainers.kinds.train_kind`, writes the summary)."""
    if resume is None:
        driver.preflight(cfg)  # bad data: an error, and no run directory left behind
    run_dir, cfg, choice = open_run(driver, cfg, resume)
    # e.g. the Ray session, after resume_checkpoint; SIGTERM is handled after ray.init, which
    # installs a handler of its own
    with driver.context(cfg, address), sigterm_as_interrupt():
        try:
            session = driver.build(cfg, run_dir, choice)
        except KeyboardInterrupt as exc:  # e.g. SIGTERM while RLlib builds its actors
            unit = getattr(driver, "unit", "iteration")
            raise _stopped_early(exc, unit, run_dir, _resumed(choice)) from None
        try:
            outcome = run(session, run_dir, choice, cfg.checkpoint, progress, driver.progress_line)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, already checkpointed: exit promptly
            abort = getattr(session, "abort", None)
            if abort is not None:
                abort()
            raise
        finally:
            session.close()
    return outcome


def run(
    session: Session,
    run_dir: Path,
    choice,
    checkpoint_cfg,
    progress: bool,
    line: Optional[Callable] = None,
    main: bool = True,
) -> Outcome:
    """Iterations ``start+1 .. total`` with logging, checkpoint cadence and Ctrl-C / SIGTERM
    saving. In a data-parallel group every worker runs this; only the ``main`` one writes logs."""
    try:
        start = _restore(session, run_dir, choice, main)
    except KeyboardInterrupt as exc:
        raise _stopped_early(exc, session.unit, run_dir, _resumed(choice)) from None
    tb = _logger(run_dir, choice, start) if main else _Silent()
    bar = Progress(session.total, start, enabled=progress and main)
    if line is not None:
        bar.line = line
    loop = _Cadence(session, run_dir, checkpoint_cfg, start)
    try:
        # a SIGTERM lets the running iteration finish (within a grace period); the handler is
        # installed here too for loops run outside train() (the offline kind's local fit)
        with sigterm_as_interrupt(), deferred():
            metrics, stopped = loop.iterate(tb, bar)
    except (KeyboardInterrupt, RunAborted) as exc:
        loop.save_unsaved()
        print(
            f"\n{_why(exc, session, loop)}; resume with: regrl train --resume {run_dir}", flush=True
        )
        raise
    finally:
        bar.close()
        tb.close()
    if main:
        print(
            f"run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir / TB_DIR}",
            flush=True,
        )
    return Outcome(run_dir, loop.done, metrics, stopped)


def _why(exc: BaseException, session: Session, loop: "_Cadence") -> str:
    if isinstance(exc, Terminated):
        return "stopped by SIGTERM " + _saved(session.unit, loop.done, loop.saved)
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "aborted"


def _saved(unit: str, done: int, saved: int) -> str:
    """What a stopped run has on disk, truthfully."""
    if done == 0:
        return f"before the first {unit} finished: nothing to save"
    if saved == done:
        return f"after {unit} {done} (saved)"
    last = f"{unit} {saved}" if saved else "none"
    return f"after {unit} {done} (not saved; the last checkpoint is {last})"


def _resumed(choice) -> bool:
    return choice is not None and choice.path is not None


def _stopped_early(
    exc: KeyboardInterrupt, unit: str, run_dir: Path, resumed: bool
) -> KeyboardInterrupt:
    """Ctrl-C or SIGTERM before the iteration loop (building actors, restoring): nothing new
    to save. A SIGTERM says so in one line and stays a SIGTERM where a blocking Ray call
    turned it into a KeyboardInterrupt."""
    if not (isinstance(exc, Terminated) or requested()):
        return exc  # Ctrl-C
    what = "nothing new to save" if resumed else "nothing to save"
    print(
        f"\nstopped by SIGTERM before the first {unit} finished: {what}; "
        f"resume with: regrl train --resume {run_dir}",
        flush=True,
    )
    return exc if isinstance(exc, Terminated) else Terminated()


def _logger(run_dir: Path, choice, start: int) -> TensorBoardLogger:
    """TensorBoard + metrics.jsonl; a resumed run drops what was logged after its checkpoint."""
    tb = TensorBoardLogger(
        run_dir / TB_DIR, purge_step=start + 1 if choice else None, jsonl=run_dir / METRICS_JSONL
    )
    log_resume(tb, choice, start + 1)
    if choice is None:
        tb.text("config", "```yaml\n" + (run_dir / CONFIG_FILE).read_text() + "\n```")
    return tb


class _Silent:
    """The logger of the non-main workers of a data-parallel group."""

    def scalars(self, metrics, step) -> None:
        pass

    def close(self) -> None:
        pass


class _Cadence:
    """The iteration loop: which iterations are done, and which are saved."""

    def __init__(self, session: Session, run_dir: Path, checkpoint_cfg, start: int):
        self.session, self.run_dir, self.cfg = session, run_dir, checkpoint_cfg
        self.done = self.saved = start

    def iterate(self, tb, bar):
        metrics: Dict[str, float] = {}
        while self.done < self.session.total:
            got = self.session.step(self.done + 1)
            if got is None:  # not counted (e.g. an env runner restarting): retry
                continue
            metrics, self.done = got, self.done + 1
            tb.scalars(metrics, self.done)
            bar.update(self.done, metrics, metrics.get("env/env_steps_total", 0.0))
            stopped = self.session.should_stop(self.done, metrics)
            if stopped or self.done % self.cfg.every == 0 or self.done == self.session.total:
                self.save()
            if stopped:
                return metrics, True
            check()  # a SIGTERM during this iteration: its checkpoint follows in run()
        return metrics, False

    def save(self) -> None:
        if hasattr(self.session, "write_checkpoint"):  # e.g. every data-parallel rank writes
            self.session.write_checkpoint(self.run_dir, self.done, self.cfg.keep)
            self.saved = self.done
            return
        state: Dict[str, Any] = {}

        def save_fn(path: str) -> None:
            state.update(self.session.save(path) or {})

        # save_checkpoint serialises ``state`` after save_fn ran, so it holds what save returned
        save_checkpoint(save_fn, self.run_dir, self.done, state, self.cfg.keep)
        self.saved = self.done

    def save_unsaved(self) -> None:
        """Ctrl-C or an aborted run: checkpoint the last completed iteration if unsaved (not
        where the session cannot: a data-parallel group whose peers may be gone)."""
        if self.done > self.saved and getattr(self.session, "save_on_interrupt", True):
            self.save()


def _restore(session: Session, run_dir: Path, choice, main: bool = True) -> int:
    """The iteration of the checkpoint ``resume_checkpoint`` chose (0 when there is none)."""
    if choice is None or choice.path is None:
        return 0
    state = read_state(choice.path)
    session.restore(choice.path, state)
    if main:
        print(
            f"resumed {run_dir} from {choice.path.name} ({session.unit} {state['iteration']})",
            flush=True,
        )
    return int(state["iteration"])


def write_summary(run_dir: Path, kind: str, metrics: Dict[str, Any], **extra: Any) -> Path:
    """``run_dir/summary.json``: marks a finished run and holds its final metrics (what
    ``regrl sweep`` aggregates; a run without one is unfinished)."""
    path = Path(run_dir) / SUMMARY_FILE
    body = {
        "kind": kind,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
        "metrics": {
            k: v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        },
    }
    with atomic_output(path, "w") as fh:  # a reader never sees half a summary
        fh.write(json.dumps(body, indent=2))
    return path
