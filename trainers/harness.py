"""One run harness for every kind: what each experiment does the same way is written here once.

The harness owns the run directory (a new ``<runs_root>/<name>/<timestamp>/`` or a resumed
one), the resolved-config dump, the TensorBoard writer and ``metrics.jsonl``, the progress
line, the checkpoint cadence (atomic writes and pruning through :mod:`regrl.trainers.checkpoint`),
the Ctrl-C and SIGTERM checkpoint (:mod:`regrl.trainers.stop_signal`), ``--resume`` and the
final ``summary.json``.

It also sets up the process once per run (:func:`set_up`: torch threads and the global seed,
before the session is built) and returns the one :class:`Result` type of every kind.

A kind's driver (:mod:`regrl.trainers.kinds`) provides only ``build(cfg, run_dir, choice)``, which
returns a :class:`Session`: ``step(i) -> metrics``, ``save(path) -> state``,
``restore(ckpt, state)``, and, where the defaults do not fit, the optional hooks declared on
:class:`Session` (``should_stop``, ``close``, ``abort``, ``write_checkpoint``,
``save_on_interrupt``). A driver whose sessions run elsewhere (the offline kind's Ray Train
workers) overrides the launch hook (``HarnessDriver.launch``): the run directory, the resume
choice and the summary stay the harness's, and each worker runs :func:`run`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import yaml

from regrl.files import atomic_output
from regrl.trainers.checkpoint import (
    RunAborted,
    log_resume,
    newest_saved_iteration,
    read_state,
    resume_checkpoint,
    save_checkpoint,
)
from regrl.trainers.checks import ConfigError, require_run_name, short_repr
from regrl.trainers.config_yaml import read_yaml
from regrl.trainers.logging import Progress, TensorBoardLogger
from regrl.trainers.run_files import (
    CONFIG_FILE,
    LEGACY_OFFLINE_METRICS,
    METRICS_JSONL,
    SUMMARY_FILE,
    TB_DIR,
)
from regrl.trainers.stop_signal import (
    Terminated,
    check,
    deferred,
    requested,
    sigterm_as_interrupt,
)


class Session:
    """One run of one kind, as the harness drives it (built by the kind's driver).

    A kind's session subclasses this: it must provide ``total``, :meth:`step`, :meth:`save`
    and :meth:`restore`; the other hooks have defaults that fit a one-process run."""

    total: int
    """Iterations (steps, epochs) in the schedule."""
    unit: str = "iteration"
    """What one iteration is called in messages: ``iteration``, ``step``, ``epoch``."""
    save_on_interrupt: bool = True
    """Whether Ctrl-C / an aborted run checkpoints the last completed iteration (False where
    the session cannot: a data-parallel group whose peers may be gone, a lost learner)."""

    def step(self, i: int) -> Optional[Dict[str, float]]:
        """Run iteration ``i``; None when it must not count (it is retried as ``i``)."""
        raise NotImplementedError

    def save(self, path: str) -> Dict[str, Any]:
        """Write the model/optimizer into the directory ``path`` (not yet created); return
        the JSON state to keep next to it."""
        raise NotImplementedError

    def restore(self, ckpt: Path, state: Dict[str, Any]) -> None:
        """Load what :meth:`save` wrote (``state`` is its JSON state plus ``iteration``)."""
        raise NotImplementedError

    def should_stop(self, i: int, metrics: Dict[str, float]) -> bool:
        """Early stop after iteration ``i`` (the schedule's end stops it anyway)."""
        return False

    def close(self) -> None:
        """Release actors and files."""

    def abort(self) -> None:
        """Called before :meth:`close` after Ctrl-C / SIGTERM: release the actors without
        waiting on the work they are running (the scheduler's SIGKILL is near)."""

    def write_checkpoint(self, run_dir: Path, iteration: int, keep: int) -> None:
        """Checkpoint ``iteration`` into ``run_dir``: by default :meth:`save` through one
        atomic :func:`regrl.trainers.checkpoint.save_checkpoint` (a data-parallel session
        overrides it so that every rank writes its part)."""
        state: Dict[str, Any] = {}

        def save_fn(path: str) -> None:
            state.update(self.save(path) or {})

        # save_checkpoint serialises ``state`` after save_fn ran, so it holds what save returned
        save_checkpoint(save_fn, run_dir, iteration, state, keep)


@dataclass
class Result:
    """How a run ended, the one result type of every kind (``regrl train``, ``train_kind``,
    the kinds' ``train_*`` functions): the run directory, the last completed iteration, its
    metrics, early stop or not, and the one ``done: ...`` line the CLI prints."""

    run_dir: Path
    metrics: Dict[str, float]
    done: int = 0
    """The last completed iteration (step, epoch)."""
    stopped: bool = False
    """Stopped early (``should_stop``) before the schedule's end."""
    line: str = ""
    """The one ``done: ...`` line the CLI prints (set by the kind's driver)."""
    extra: Dict[str, Any] = field(default_factory=dict)
    """Kind-specific extras."""

    # the names the kinds' result types had (rl's RunResult, rlvr's, sft's, offline's)
    @property
    def iteration(self) -> int:
        return self.done

    @property
    def step(self) -> int:
        return self.done

    @property
    def epoch(self) -> int:
        return self.done

    @property
    def stopped_early(self) -> bool:
        return self.stopped

    @property
    def env_steps(self) -> float:
        return self.metrics.get("env/env_steps_total", 0.0)


def set_up(cfg: Any) -> None:
    """This process's torch threads (``resources.torch_threads``; null keeps torch's default)
    and global torch seed (``seed``), once per run before the session is built: in the
    harness's own launch and in each data-parallel worker. torch is imported here, so the
    harness module stays importable without it."""
    import torch  # lazy: regrl validate and --help import the harness, not torch

    threads = getattr(getattr(cfg, "resources", None), "torch_threads", None)
    if threads:
        torch.set_num_threads(threads)
    seed = getattr(cfg, "seed", None)
    if seed is not None:
        torch.manual_seed(seed)


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
) -> Result:
    """Open (or resume) the run and hand it to the driver's launch hook (by default
    :func:`launch`: build the session here and run it); the caller,
    :func:`regrl.trainers.kinds.train_kind`, writes the summary."""
    if resume is None:
        driver.preflight(cfg)  # bad data: an error, and no run directory left behind
    run_dir, cfg, choice = open_run(driver, cfg, resume)
    if resume is not None:
        driver.preflight(cfg)  # e.g. a data file gone since: an error line, not a traceback
    return driver.launch(cfg, run_dir, choice, address, progress)


def launch(
    driver, cfg: Any, run_dir: Path, choice, address: Optional[str], progress: bool
) -> Result:
    """The default launch: set up this process, build the session inside the driver's context
    and run it here."""
    # e.g. the Ray session, after resume_checkpoint; SIGTERM is handled after ray.init, which
    # installs a handler of its own: the context first, then ours (the reverse order leaves
    # Ray's handler answering a SIGTERM with a stack dump, exit -6)
    with driver.context(cfg, address), sigterm_as_interrupt():
        set_up(cfg)
        try:
            session = driver.build(cfg, run_dir, choice)
        except KeyboardInterrupt as exc:  # e.g. SIGTERM while RLlib builds its actors
            raise _stopped_early(exc, driver.unit, run_dir, _resumed(choice)) from None
        try:
            result = run(session, run_dir, choice, cfg.checkpoint, progress, driver.progress_line)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, already checkpointed: exit promptly
            session.abort()
            raise
        finally:
            session.close()
    return result


def run(
    session: Session,
    run_dir: Path,
    choice,
    checkpoint_cfg,
    progress: bool,
    line: Optional[Callable] = None,
    main: bool = True,
) -> Result:
    """Iterations ``start+1 .. total`` with logging, checkpoint cadence and Ctrl-C / SIGTERM
    saving. In a data-parallel group every worker runs this; only the ``main`` one writes logs.
    A resumed run whose checkpoint is its last iteration has nothing to do: its final metrics."""
    try:
        start = _restore(session, run_dir, choice, main)
    except KeyboardInterrupt as exc:
        raise _stopped_early(exc, session.unit, run_dir, _resumed(choice)) from None
    if start >= session.total:
        if main:
            print(f"{run_dir} already finished {session.total} {session.unit}s", flush=True)
        return Result(run_dir, finished_metrics(run_dir, start), done=start)
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
        print_run_location(run_dir)
    return Result(run_dir, metrics, done=loop.done, stopped=stopped)


def finished_metrics(run_dir: Path, iteration: int) -> Dict[str, float]:
    """The final metrics of a run that has finished ``iteration``: its ``summary.json``, else
    the ``metrics.json`` of an offline run written before the offline kind ran on the harness
    (read, never written), else the ``metrics.jsonl`` row of that iteration ({} if none)."""
    run_dir = Path(run_dir)
    try:
        if (run_dir / SUMMARY_FILE).is_file():
            return dict(json.loads((run_dir / SUMMARY_FILE).read_text())["metrics"])
        if (run_dir / LEGACY_OFFLINE_METRICS).is_file():
            legacy = json.loads((run_dir / LEGACY_OFFLINE_METRICS).read_text())
            return {k: v for k, v in legacy.items() if k != "epoch"}
        if (run_dir / METRICS_JSONL).is_file():
            for line in reversed((run_dir / METRICS_JSONL).read_text().splitlines()):
                row = json.loads(line)
                if row.get("step") == iteration:
                    return {k: v for k, v in row.items() if k != "step"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run_dir}: cannot read the final metrics of the run: {exc}") from None
    return {}


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


def stopped_by_sigterm(run_dir: Path, unit: str) -> Terminated:
    """Say in one line how a run whose loop ran in other processes (the offline kind's Ray
    Train workers) was stopped by SIGTERM: the line :func:`run` prints, with what was done
    (the last ``metrics.jsonl`` row) and saved (the newest checkpoint) read from the run
    directory, the workers' only record. Returns the :class:`Terminated` to raise."""
    done = saved = newest_saved_iteration(run_dir)
    path = run_dir / METRICS_JSONL
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            done = max(done, int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):  # a row cut short by a killed worker
            continue
    print(
        f"\nstopped by SIGTERM {_saved(unit, done, saved)}; "
        f"resume with: regrl train --resume {run_dir}",
        flush=True,
    )
    return Terminated()


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
        self.session.write_checkpoint(self.run_dir, self.done, self.cfg.keep)
        self.saved = self.done

    def save_unsaved(self) -> None:
        """Ctrl-C or an aborted run: checkpoint the last completed iteration if unsaved (not
        where the session cannot: a data-parallel group whose peers may be gone)."""
        if self.done > self.saved and self.session.save_on_interrupt:
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
