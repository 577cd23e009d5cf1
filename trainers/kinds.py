"""Experiment kinds: one registered driver per kind (rl, rlvr, sft, offline, planner).

``regrl train | validate | eval`` and ``regrl sweep`` find the driver from the YAML's ``kind:``
(default ``rl``) through :data:`KINDS`; nothing else branches on the kind. A driver is
stateless and imports its backend lazily, so ``regrl --help`` stays fast without extras.

The protocol (see :class:`Driver`):
- ``load(source, overrides) -> cfg``: a YAML path or a raw mapping, validated (ConfigError);
- ``dump(cfg) -> dict``: the resolved config as plain YAML data;
- ``train(cfg, *, resume, address, progress) -> TrainResult``: a new run, or ``resume`` one;
- ``evaluate(run_dir, episodes) -> int``: print the evaluation of a finished run;
- ``bundles(cfg)``: the Ray resource bundles one run needs (a sweep trial reserves them);
- ``curve_metrics``: the metrics a sweep plots by default.

Kinds on the run harness (:class:`HarnessDriver`: rl, rlvr, sft, planner) add
``build(cfg, run_dir, choice) -> Session`` (see :mod:`trainers.harness`), ``context(cfg,
address)`` (their Ray session), ``preflight(cfg)`` and ``progress_line``; the harness does the
rest. The offline kind runs the same harness inside each data-parallel worker
(:func:`trainers.offline.fit`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from agents.registry import Registry
from trainers.checks import ConfigError

KINDS = Registry("experiment kind")
DEFAULT_KIND = "rl"
CONFIG_FILE = "config.yaml"  # the resolved config every run directory holds
SUMMARY_FILE = "summary.json"  # written when a run finished: its final metrics (harness)

Source = Union[str, Path, Mapping[str, Any]]


@dataclass
class TrainResult:
    """What every kind's training returns: the run directory, the last iteration's metrics and
    the one ``done: ...`` line the CLI prints."""
    run_dir: Path
    metrics: Dict[str, float]
    done: str
    extra: Dict[str, Any] = field(default_factory=dict)


def raw_config(source: Source, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """A YAML file (or a mapping) with ``--set`` overrides applied, as a plain dict."""
    import copy

    from trainers.config import apply_overrides, read_yaml

    data = copy.deepcopy(dict(source)) if isinstance(source, Mapping) else read_yaml(source)
    return apply_overrides(data, list(overrides))


def kind_of_data(data: Any) -> str:
    """The ``kind:`` of a raw config mapping (``rl`` when absent)."""
    kind = data.get("kind", DEFAULT_KIND) if isinstance(data, dict) else DEFAULT_KIND
    return DEFAULT_KIND if kind is None else str(kind)


def kind_of_path(path: Union[str, Path, None]) -> str:
    """The kind of a config file or of a run directory's saved config (``rl`` if unreadable:
    the rl driver then reports the missing file)."""
    from trainers.config import read_yaml

    if path is None:
        return DEFAULT_KIND
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    return kind_of_data(read_yaml(path)) if path.is_file() else DEFAULT_KIND


def driver_for(path: Union[str, Path, None]) -> "Driver":
    """The registered driver of a config file or run directory (unknown kind -> error)."""
    return KINDS.get(kind_of_path(path))


def train_kind(kind: str, cfg: Any = None, *, resume: Optional[Path] = None,
               address: Optional[str] = None, progress: bool = True) -> TrainResult:
    """Train through the ``kind`` driver and mark the run finished (summary.json)."""
    from trainers.harness import write_summary

    result = KINDS.get(kind).train(cfg, resume=resume, address=address, progress=progress)
    write_summary(result.run_dir, kind, result.metrics)
    return result


class Driver:
    """Base of the kind drivers: one-process CPU runs need one CPU."""
    curve_metrics: Tuple[str, ...] = ()

    def load(self, source: Source, overrides: Sequence[str] = (), *,
             where: Optional[str] = None) -> Any:
        """Validate; errors name ``where`` (default: the file, or ``<config>`` for a mapping)."""
        raise NotImplementedError

    def trial_config(self, raw: Dict[str, Any]) -> Dict[str, Any]:
        """A sweep trial's raw config (drop side effects outside the run directory)."""
        return raw

    def dump(self, cfg: Any) -> Dict[str, Any]:
        from trainers.config import to_dict

        return to_dict(cfg)

    def train(self, cfg: Any = None, *, resume: Optional[Path] = None,
              address: Optional[str] = None, progress: bool = True) -> TrainResult:
        raise NotImplementedError

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        raise ConfigError(f"{run_dir}: this kind of run has no evaluation")

    def bundles(self, cfg: Any) -> List[Dict[str, float]]:
        return [{"CPU": 1.0}]


class HarnessDriver(Driver):
    """A kind whose run loop is :mod:`trainers.harness`: it builds a session per run."""
    unit = "iteration"
    progress_line = None  # or fn(i, total, metrics, env_steps) -> str

    def build(self, cfg: Any, run_dir: Path, choice: Any) -> Any:
        """The :class:`trainers.harness.Session` of one run (``choice``: resume checkpoint)."""
        raise NotImplementedError

    def preflight(self, cfg: Any) -> None:
        """Problems to report before a run directory is created (missing data files)."""

    def context(self, cfg: Any, address: Optional[str]):
        """What the session runs inside (a Ray session for kinds that use Ray)."""
        from contextlib import nullcontext

        return nullcontext()

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        from trainers import harness

        out = harness.train(self, cfg, resume=resume, address=address, progress=progress)
        done = f"done: {out.done} {self.unit}s; run directory: {out.run_dir}"
        return TrainResult(out.run_dir, out.metrics, done,
                           {"done": out.done, "stopped": out.stopped})


def _kind(name: str, description: str):
    """Register one instance of the decorated driver class as kind ``name``."""
    def deco(cls):
        driver = cls()
        driver.name = name
        KINDS.register(name, description)(driver)
        return cls
    return deco


def _name(source: Source, where: Optional[str]) -> str:
    return where or ("<config>" if isinstance(source, Mapping) else str(source))


# ---------------------------------------------------------------------------- rl
@_kind("rl", "simulator RL through RLlib (the default kind)")
class RLDriver(HarnessDriver):
    curve_metrics = ("env/episode_return_mean",)

    def load(self, source: Source, overrides: Sequence[str] = (), *,
             where: Optional[str] = None) -> Any:
        from trainers.config import config_from_dict

        data = raw_config(source, overrides)
        data.pop("kind", None)  # `kind: rl` may be written; the schema has no such field
        cfg = config_from_dict(data, source=_name(source, where))
        _probe_env(cfg, _name(source, where))
        return cfg

    def context(self, cfg, address: Optional[str]):
        from trainers.run import rl_context

        return rl_context(cfg, address)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from trainers.run import RLSession

        return RLSession(cfg, run_dir, choice)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        m = result.metrics
        result.done = (f"done: {result.extra['done']} iterations, "
                       f"{int(m.get('env/env_steps_total', 0))} env steps, "
                       f"episode_return_mean {m.get('env/episode_return_mean', float('nan')):.2f}")
        return result

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        from trainers.evaluate import evaluate

        report = evaluate(Path(run_dir), episodes)
        if "table" in report:  # evaluators with a results table (SMARL) print it, not JSON
            print((Path(run_dir) / report["table"]).read_text(), end="")
        else:
            print(json.dumps({k: v for k, v in report.items() if k != "per_episode"},
                             indent=2))
        for fig in report.get("figures", []):
            print(f"figure: {fig}")
        print(f"report: {Path(run_dir) / 'eval.json'}")
        return 0

    def bundles(self, cfg) -> List[Dict[str, float]]:
        """The driver (with the local learner's GPU), each env runner, each learner actor."""
        r = cfg.resources
        gpu = r.num_gpus_per_learner
        head = {"CPU": 1.0, **({"GPU": float(gpu)} if gpu and not r.num_learners else {})}
        runner = {"CPU": float(r.num_cpus_per_env_runner), **r.env_runner_resources}
        learner = {"CPU": 0.0 if gpu else 1.0, **({"GPU": float(gpu)} if gpu else {}),
                   **r.learner_resources}
        return [head] + [runner] * r.num_env_runners + [learner] * r.num_learners


def _probe_env(cfg, source: str) -> None:
    """Build the environment once so its problems are config errors, before Ray starts."""
    from agents.registry import UnknownNameError
    from trainers.envs import probe_env

    from agents.objectives.terms import needs  # capabilities by flag, never by term name

    need_discrete = needs(cfg.objective.terms, "needs_discrete")
    try:
        probe_env(cfg.env.name, dict(cfg.env.kwargs), need_discrete=need_discrete)
    except (UnknownNameError, ValueError) as exc:
        raise ConfigError(f"{source}: env: {exc}") from None


# ---------------------------------------------------------------------------- rlvr / sft
class _LMDriver(Driver):
    def preflight(self, cfg) -> None:
        """Every LM policy (tiny, GGUF, HF) is a transformers model: without the `lm` extra,
        one error line before a run directory exists."""
        from trainers.checks import require_module

        require_module("transformers")

    def load(self, source: Source, overrides: Sequence[str] = (), *,
             where: Optional[str] = None) -> Any:
        from trainers.rlvr import config as rc

        return rc.config_from_dict(raw_config(source, overrides),
                                   source=_name(source, where))

    def dump(self, cfg) -> Dict[str, Any]:
        from trainers.rlvr import config as rc

        return rc.dump(cfg)

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        from trainers.rlvr.evaluate import evaluate_run

        report = evaluate_run(Path(run_dir))
        print(json.dumps(report["last"], indent=2, sort_keys=True))
        for fig in report["figures"]:
            print(f"figure: {fig}")
        print(f"report: {Path(run_dir) / 'eval.json'}")
        return 0


@_kind("rlvr", "language-model RL with verifiable rewards on Ray core actors")
class RLVRDriver(_LMDriver, HarnessDriver):
    curve_metrics = ("train/accuracy", "eval/pass@1")
    unit = "step"

    def context(self, cfg, address: Optional[str]):
        from trainers.rlvr.loop import rlvr_context

        return rlvr_context(cfg, address)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from trainers.rlvr.loop import RLVRSession

        return RLVRSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(step: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        from trainers.rlvr.loop import progress_line

        return progress_line(step, total, m)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        m = result.metrics
        acc = m.get("eval/pass@1", m.get("train/accuracy", float("nan")))
        result.done = (f"done: {result.extra['done']} steps; accuracy {acc:.3f}; "
                       f"run directory: {result.run_dir}")
        return result

    def bundles(self, cfg) -> List[Dict[str, float]]:
        r = cfg.resources
        if r.mode == "local":
            return [{"CPU": 1.0, **({"GPU": 1.0} if r.learner_device.startswith("cuda") else {})}]
        actor = {"CPU": float(r.cpus_per_actor)}
        learner = {**actor, **({"GPU": float(r.learner_num_gpus)} if r.learner_num_gpus else {}),
                   **r.learner_resources}
        return ([{"CPU": 1.0}] + [{**actor, **r.rollout_resources}] * r.num_rollout_actors
                + [{**actor, **r.reward_resources}] * r.num_reward_actors
                + [learner] * r.num_learners)


@_kind("sft", "supervised fine-tuning of a language model on solved problems")
class SFTDriver(_LMDriver, HarnessDriver):
    curve_metrics = ("train/loss", "train/token_acc")
    unit = "epoch"

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from trainers.rlvr.sft import SFTSession

        return SFTSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(epoch: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        from trainers.rlvr.sft import progress_line

        return progress_line(epoch, total, m)

    def bundles(self, cfg) -> List[Dict[str, float]]:
        return [{"CPU": 1.0, **({"GPU": 1.0} if cfg.device.startswith("cuda") else {})}]


# ---------------------------------------------------------------------------- offline
@_kind("offline", "supervised / behaviour-cloning learner with plugins")
class OfflineDriver(Driver):
    curve_metrics = ("val/accuracy", "train/task_loss")

    def load(self, source: Source, overrides: Sequence[str] = (), *,
             where: Optional[str] = None) -> Any:
        from trainers.offline import offline_config_from_dict

        return offline_config_from_dict(raw_config(source, overrides), _name(source, where))

    def dump(self, cfg) -> Dict[str, Any]:
        from trainers.offline import offline_to_dict

        return offline_to_dict(cfg)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        from trainers.offline import train_offline

        result = train_offline(cfg, resume=resume, progress=progress, address=address)
        done = f"done: {result.epoch} epochs; run directory: {result.run_dir}"
        return TrainResult(result.run_dir, result.metrics, done)

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        from trainers.offline import METRICS_FILE

        path = Path(run_dir) / METRICS_FILE
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no {METRICS_FILE} yet (the run has not finished)")
        print(path.read_text())
        print(f"report: {path}")
        return 0

    def bundles(self, cfg) -> List[Dict[str, float]]:
        r = cfg.resources
        gpu = {"GPU": 1.0} if r.use_gpu else {}
        if r.num_workers == 0:
            return [{"CPU": 1.0, **gpu}]
        return [{"CPU": 1.0}] + [{"CPU": 1.0, **gpu}] * r.num_workers


# ---------------------------------------------------------------------------- planner
@_kind("planner", "RIFT stage 1: imitation pre-training of the trajectory planner")
class PlannerDriver(HarnessDriver):
    curve_metrics = ("pretrain/val_loss", "pretrain/val_min_ade")
    unit = "epoch"

    def load(self, source: Source, overrides: Sequence[str] = (), *,
             where: Optional[str] = None) -> Any:
        from trainers.config import parse
        from trainers.traffic import PretrainConfig

        return parse(PretrainConfig, raw_config(source, overrides),
                     source=_name(source, where))

    def dump(self, cfg) -> Dict[str, Any]:
        from dataclasses import asdict

        return asdict(cfg)

    def trial_config(self, raw: Dict[str, Any]) -> Dict[str, Any]:
        """Trials never overwrite the shared exported planner (``export``)."""
        return dict(raw, export=None)

    def preflight(self, cfg) -> None:
        from trainers.traffic import load_demos

        load_demos(cfg.demos)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from trainers.traffic import PretrainSession

        return PretrainSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(epoch: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        from trainers.traffic import pretrain_progress_line

        return pretrain_progress_line(epoch, total, m)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        from trainers.traffic import export_planner, load_pretrain_config

        result = super().train(cfg, resume=resume, address=address, progress=progress)
        export_planner(load_pretrain_config(result.run_dir / CONFIG_FILE), result.run_dir)
        return result
