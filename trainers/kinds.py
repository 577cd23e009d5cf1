"""Experiment kinds: one registered driver per kind (rl, rlvr, sft, offline, planner).

``regrl train | validate | eval`` and ``regrl sweep`` find the driver from the YAML's ``kind:``
(default ``rl``) through :data:`KINDS`; nothing else branches on the kind. A driver is
stateless and lives next to its loop, in one of :data:`KIND_MODULES`, which are imported on the
first lookup only (``regrl --help`` imports none of them).

The protocol (see :class:`Driver`):
- ``load(source, overrides) -> cfg``: a YAML path or a raw mapping, validated (ConfigError);
- ``dump(cfg) -> dict``: the resolved config as plain YAML data;
- ``train(cfg, *, resume, address, progress) -> Result``: a new run, or ``resume`` one
  (:class:`regrl.trainers.harness.Result`, the one result type of every kind);
- ``evaluate(run_dir, episodes) -> int``: print the evaluation of a finished run;
- ``bundles(cfg)``: the Ray resource bundles one run needs (a sweep trial reserves them);
- ``curve_metrics``: the metrics a sweep plots by default.

Every kind runs on the run harness (:class:`HarnessDriver`: rl, rlvr, sft, planner, offline): it
adds ``build(cfg, run_dir, choice) -> Session`` (see :mod:`regrl.trainers.harness`),
``context(cfg, address)`` (its Ray session), ``preflight(cfg)`` and ``progress_line``; the
harness does the rest. ``launch`` is the hook of a kind whose sessions run elsewhere: the
offline kind's data-parallel runs start Ray Train workers there, each running the harness's
loop in the run directory the harness opened (:func:`regrl.trainers.offline.fit`).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from regrl.trainers import harness
from regrl.trainers.checks import ConfigError
from regrl.trainers.config_kernel import to_dict
from regrl.trainers.config_overrides import apply_overrides
from regrl.trainers.config_yaml import read_yaml
from regrl.trainers.plugins import DOMAIN_PLUGINS, PluginRegistry
from regrl.trainers.run_files import CONFIG_FILE

# The modules whose import registers their kinds' drivers (each driver lives next to its
# loop). Imported by name on first use of KINDS: the plugin mechanism, like DOMAIN_CLIS in
# regrl.trainers.cli, so this core module imports no kind's backend.
KIND_MODULES = ("regrl.trainers.run", "regrl.trainers.offline") + DOMAIN_PLUGINS
KINDS = PluginRegistry("experiment kind", KIND_MODULES)
DEFAULT_KIND = "rl"

Source = Union[str, Path, Mapping[str, Any]]


def raw_config(source: Source, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """A YAML file (or a mapping) with ``--set`` overrides applied, as a plain dict."""
    data = copy.deepcopy(dict(source)) if isinstance(source, Mapping) else read_yaml(source)
    return apply_overrides(data, list(overrides))


def kind_of_data(data: Any) -> str:
    """The ``kind:`` of a raw config mapping (``rl`` when absent)."""
    kind = data.get("kind", DEFAULT_KIND) if isinstance(data, dict) else DEFAULT_KIND
    return DEFAULT_KIND if kind is None else str(kind)


def kind_of_path(path: Union[str, Path, None]) -> str:
    """The kind of a config file or of a run directory's saved config (``rl`` if unreadable:
    the rl driver then reports the missing file)."""
    if path is None:
        return DEFAULT_KIND
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    return kind_of_data(read_yaml(path)) if path.is_file() else DEFAULT_KIND


def driver_for(path: Union[str, Path, None]) -> "Driver":
    """The registered driver of a config file or run directory (unknown kind -> error)."""
    return KINDS.get(kind_of_path(path))


def load_run_config(run_dir: Union[str, Path], kind: Optional[str] = None) -> Any:
    """The resolved config a run saved, validated by the schema of its own ``kind:`` (the
    driver's :meth:`Driver.parse`). ``kind``: the kind the caller needs; a run of another kind
    is refused with a message naming both."""

    def parse(data: Dict[str, Any], source: str) -> Any:
        saved = kind_of_data(data)
        if kind is not None and saved != kind:
            raise ConfigError(
                f"{run_dir}: a run of kind {saved!r}; this needs a run of kind {kind!r}"
            )
        return KINDS.get(saved).parse(data, source)

    return harness.load_run_config(Path(run_dir), parse)


def train_kind(
    kind: str,
    cfg: Any = None,
    *,
    resume: Optional[Path] = None,
    address: Optional[str] = None,
    progress: bool = True,
) -> harness.Result:
    """Train through the ``kind`` driver and mark the run finished (summary.json)."""
    result = KINDS.get(kind).train(cfg, resume=resume, address=address, progress=progress)
    harness.write_summary(result.run_dir, kind, result.metrics)
    return result


class Driver:
    """Base of the kind drivers: one-process CPU runs need one CPU."""

    curve_metrics: Tuple[str, ...] = ()

    def load(
        self, source: Source, overrides: Sequence[str] = (), *, where: Optional[str] = None
    ) -> Any:
        """Validate; errors name ``where`` (default: the file, or ``<config>`` for a mapping)."""
        raise NotImplementedError

    def parse(self, data: Dict[str, Any], source: str) -> Any:
        """The kind's schema alone on a raw mapping (a run's saved config): no environment
        probe or other check of the world outside the file; errors name ``source``."""
        return self.load(data, where=source)

    def trial_config(self, raw: Dict[str, Any]) -> Dict[str, Any]:
        """A sweep trial's raw config (drop side effects outside the run directory)."""
        return raw

    def check_trial(self, cfg: Any) -> None:
        """Refuse (ConfigError) a validated config that cannot run as a Tune trial."""

    def dump(self, cfg: Any) -> Dict[str, Any]:
        return to_dict(cfg)

    def train(
        self,
        cfg: Any = None,
        *,
        resume: Optional[Path] = None,
        address: Optional[str] = None,
        progress: bool = True,
    ) -> harness.Result:
        raise NotImplementedError

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        raise ConfigError(f"{run_dir}: this kind of run has no evaluation")

    def bundles(self, cfg: Any) -> List[Dict[str, float]]:
        return [{"CPU": 1.0}]


class HarnessDriver(Driver):
    """A kind whose run loop is :mod:`regrl.trainers.harness`: it builds a session per run."""

    unit = "iteration"
    progress_line = None  # or fn(i, total, metrics, env_steps) -> str

    def build(self, cfg: Any, run_dir: Path, choice: Any) -> Any:
        """The :class:`regrl.trainers.harness.Session` of one run (``choice``: resume checkpoint)."""
        raise NotImplementedError

    def preflight(self, cfg: Any) -> None:
        """Problems to report before a run directory is created (missing data files)."""

    def context(self, cfg: Any, address: Optional[str]):
        """What the session runs inside (a Ray session for kinds that use Ray)."""
        return nullcontext()

    def launch(
        self, cfg: Any, run_dir: Path, choice: Any, address: Optional[str], progress: bool
    ) -> harness.Result:
        """Run the opened run (``choice``: its resume checkpoint): by default build the session
        in this process and run the harness's loop (:func:`regrl.trainers.harness.launch`)."""
        return harness.launch(self, cfg, run_dir, choice, address, progress)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> harness.Result:
        result = harness.train(self, cfg, resume=resume, address=address, progress=progress)
        result.line = f"done: {result.done} {self.unit}s; run directory: {result.run_dir}"
        return result


def register_kind(name: str, description: str):
    """Register one instance of the decorated driver class as kind ``name``."""

    def deco(cls):
        driver = cls()
        driver.name = name
        KINDS.register(name, description)(driver)
        return cls

    return deco


def source_name(source: Source, where: Optional[str]) -> str:
    """How errors name a config: ``where``, the file, or ``<config>`` for a mapping."""
    return where or ("<config>" if isinstance(source, Mapping) else str(source))
