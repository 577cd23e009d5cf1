"""The rl kind: the Ray session, RLlib resources and placement, and :class:`RLSession`,
which the run harness (:mod:`trainers.harness`) drives."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from trainers.checkpoint import empty_iteration_streak
from trainers.config import ConfigError, ExperimentConfig, config_from_dict
from trainers.logging import namespace_metrics

CONFIG_FILE = "config.yaml"
TB_DIR = "tb"


@dataclass
class RunResult:
    run_dir: Path
    iteration: int
    env_steps: float
    metrics: Dict[str, float]
    stopped_early: bool


def init_ray(address: Optional[str] = None) -> bool:
    """Join ``address`` (``auto`` or ``ray://host:port``) or start a local single-node Ray;
    True when this call started (or connected) a session, which its caller then owns.

    A local session binds to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); a cluster
    address keeps Ray's own networking.
    """
    import ray

    from trainers import quiet

    if ray.is_initialized():
        return False
    quiet.install()  # Ray's start-up noise regrl cannot fix; workers get it through the hook
    hook = {"worker_process_setup_hook": quiet.WORKER_HOOK}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=hook)
        return True
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # address="local": always a fresh single-node session, never an already running cluster
    # found through RAY_ADDRESS or /tmp/ray (use --address for that)
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=True, log_to_driver=True, runtime_env=hook)
    return True


@contextmanager
def ray_session(address: Optional[str] = None):
    """``init_ray`` for the block; on leaving it (normal end, error or Ctrl-C) shut down the
    session this block started, so no raylet/GCS/agent processes of ours outlive the run
    (disconnects only from a cluster; a session someone else started is left alone)."""
    started = init_ray(address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def new_run_dir(cfg) -> Path:
    """A fresh ``<runs_root>/<name>/<timestamp>[-N]/`` for any config with those fields.

    Each candidate is created with one atomic ``mkdir`` (no exists-then-create gap), so two
    processes starting in the same second get different directories, never the same one
    and never a FileExistsError; ``name`` is checked to be one path segment again here."""
    from trainers.checks import require_run_name, short_repr

    try:
        require_run_name(cfg.name)
        parent = Path(cfg.runs_root).resolve() / cfg.name
        parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"runs_root {short_repr(cfg.runs_root)}, name {short_repr(cfg.name)}: "
                          f"cannot create the run directory: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    base = parent / time.strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        run_dir = base if n == 0 else Path(f"{base}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # taken (by us earlier, or by a process racing us): next one
            continue
    raise ConfigError(f"{parent}: 10,000 run directories named {base.name}[-N] exist already")


def load_run_config(run_dir: Path, parse_fn=config_from_dict):
    """The resolved config a run saved (``parse_fn`` validates it: RL by default)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a regrl run directory (no {CONFIG_FILE})")
    from trainers.config import read_yaml

    return parse_fn(read_yaml(path), source=str(path))


def apply_torch_threads(cfg: ExperimentConfig) -> None:
    """``resources.torch_threads`` for this process (null keeps torch's default)."""
    if cfg.resources.torch_threads:
        import torch

        torch.set_num_threads(cfg.resources.torch_threads)


def train(cfg: Optional[ExperimentConfig] = None, *, resume: Optional[Path] = None,
          address: Optional[str] = None, progress: bool = True) -> RunResult:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume`` (the ``rl``
    kind's driver on :mod:`trainers.harness`)."""
    from trainers.kinds import train_kind

    assert cfg is not None or resume is not None, "train() needs a config or a run to resume"
    result = train_kind("rl", cfg, resume=resume, address=address, progress=progress)
    return RunResult(result.run_dir, result.extra["done"],
                     result.metrics.get("env/env_steps_total", 0.0), result.metrics,
                     result.extra["stopped"])


@contextmanager
def rl_context(cfg: ExperimentConfig, address: Optional[str]):
    """The Ray session an RL run needs (checked for its resources; shut down if ours)."""
    with ray_session(address):
        check_resources(cfg, autoscaling=address is not None)
        apply_torch_threads(cfg)
        yield


class RLSession:
    """One RLlib run for :mod:`trainers.harness`: an iteration is one ``algo.train()``."""
    unit = "iteration"

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, choice=None):
        from trainers.rllib.algo import build_algorithm_config

        self.cfg, self.total = cfg, cfg.training.iterations
        self.env_steps, self.empty = 0.0, 0
        self.algo = build_algorithm_config(cfg).build_algo()
        if cfg.resources.num_env_runners or cfg.resources.num_learners:
            print(placement_summary(placement(self.algo)), flush=True)

    def step(self, i: int) -> Optional[Dict[str, float]]:
        metrics = {**namespace_metrics(self.algo.train()), **runner_health(self.algo)}
        self.empty = empty_iteration_streak(self.empty, metrics, i)
        if self.empty:  # a restarting env runner: not a training iteration
            return None
        self.env_steps += metrics.get("env/env_steps", 0.0)
        metrics["env/env_steps_total"] = self.env_steps
        return metrics

    def save(self, path: str) -> Dict[str, float]:
        self.algo.save_to_path(path)
        return {"env_steps": self.env_steps}

    def restore(self, ckpt: Path, state: Dict[str, float]) -> None:
        self.algo.restore_from_path(str(ckpt))
        self.env_steps = state["env_steps"]

    def should_stop(self, i: int, metrics: Dict[str, float]) -> bool:
        target = self.cfg.training.stop_return
        return target is not None and metrics.get("env/episode_return_mean",
                                                  float("-inf")) >= target

    def close(self) -> None:
        self.algo.stop()


def required_resources(cfg: ExperimentConfig) -> Dict[str, float]:
    """Largest single-actor demand per Ray resource (GPU and custom placement labels)."""
    r = cfg.resources
    need: Dict[str, float] = {}
    if r.num_gpus_per_learner:
        need["GPU"] = r.num_gpus_per_learner
    for demand, used in ((r.env_runner_resources, r.num_env_runners),
                         (r.learner_resources, r.num_learners)):
        for key, amount in demand.items():
            if used:
                need[key] = max(need.get(key, 0.0), float(amount))
    return need


def missing_resources(cfg: ExperimentConfig, available: Dict[str, float]) -> List[str]:
    """``resource: need N, cluster has M`` for every demand no node can meet today."""
    return [f"{key}: an actor needs {amount:g}, the cluster has {available.get(key, 0):g}"
            for key, amount in required_resources(cfg).items()
            if available.get(key, 0.0) < amount]


def check_resources(cfg: ExperimentConfig, *, autoscaling: bool) -> None:
    """Fail fast instead of waiting forever for a GPU or a placement label that no node has.
    On a cluster (``--address``) the autoscaler may still add such nodes: warn only."""
    import ray

    missing = missing_resources(cfg, ray.cluster_resources())
    if not missing:
        return
    text = "; ".join(missing)
    if autoscaling:
        print(f"warning: waiting for the autoscaler to add nodes with {text}", flush=True)
        return
    raise ConfigError(f"resources not available on this machine: {text} (set "
                      "resources.num_gpus_per_learner: 0 / remove the custom resources, or "
                      "run on a cluster with --address)")


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def placement(algo) -> Dict[str, list]:
    """Node ids of the env-runner and learner actors (``driver`` for in-process ones)."""
    runners = (algo.env_runner_group.foreach_env_runner(lambda r: _node_id(),
                                                         local_env_runner=False)
               if algo.config.num_env_runners else [])
    learners = ([r.get() for r in algo.learner_group.foreach_learner(lambda l: _node_id())]
                if algo.config.num_learners else [])
    return {"env_runners": list(runners), "learners": list(learners) or ["driver"]}


def runner_health(algo) -> Dict[str, float]:
    """Env-runner fault-tolerance counters (RLlib's new-stack results omit them)."""
    group = algo.env_runner_group
    if group is None or not algo.config.num_env_runners:
        return {}
    return {"perf/env_runner_restarts": float(group.num_remote_worker_restarts()),
            "perf/healthy_env_runners": float(group.num_healthy_remote_workers())}


def placement_summary(where: Dict[str, list]) -> str:
    def short(ids):
        return ", ".join(i[:8] if i != "driver" else i for i in ids) or "driver"
    return (f"placement: env runners on node(s) [{short(where['env_runners'])}], "
            f"learners on [{short(where['learners'])}]")


def print_run_location(run_dir: Path) -> None:
    print(f"run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir / TB_DIR}",
          flush=True)
