"""The training driver: run directory, Ray session, iterations, checkpoints, resume."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from trainers.checkpoint import (CheckpointChoice, RunAborted, empty_iteration_streak, log_resume,
                                 newest_saved_iteration, read_state, resume_checkpoint,
                                 save_checkpoint)
from trainers.config import ConfigError, ExperimentConfig, config_from_dict, to_dict
from trainers.logging import METRICS_JSONL, Progress, TensorBoardLogger, namespace_metrics

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

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return True
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # address="local": always a fresh single-node session, never an already running cluster
    # found through RAY_ADDRESS or /tmp/ray (use --address for that)
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=True, log_to_driver=True)
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
    return parse_fn(yaml.safe_load(path.read_text()) or {}, source=str(path))


def apply_torch_threads(cfg: ExperimentConfig) -> None:
    """``resources.torch_threads`` for this process (null keeps torch's default)."""
    if cfg.resources.torch_threads:
        import torch

        torch.set_num_threads(cfg.resources.torch_threads)


def train(cfg: Optional[ExperimentConfig] = None, *, resume: Optional[Path] = None,
          address: Optional[str] = None, progress: bool = True) -> RunResult:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume``."""
    if resume is not None:
        run_dir = Path(resume).resolve()
        cfg = load_run_config(run_dir)
    else:
        assert cfg is not None, "train() needs a config or a run directory to resume"
        run_dir = new_run_dir(cfg)
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    choice = resume_checkpoint(run_dir) if resume is not None else None  # before Ray starts
    with ray_session(address):
        check_resources(cfg, autoscaling=address is not None)
        apply_torch_threads(cfg)
        from trainers.rllib.algo import build_algorithm_config

        algo = build_algorithm_config(cfg).build_algo()
        if cfg.resources.num_env_runners or cfg.resources.num_learners:
            print(placement_summary(placement(algo)), flush=True)
        try:
            return _loop(cfg, algo, run_dir, choice, progress)
        finally:
            algo.stop()


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


def save_on_interrupt(run_dir: Path, done: int, checkpoint, why: str = "interrupted") -> None:
    """Ctrl-C (or an aborted run): checkpoint the last completed iteration unless it is
    saved already."""
    if done > newest_saved_iteration(run_dir):
        checkpoint(done)
    print(f"\n{why}; resume with: regrl train --resume {run_dir}", flush=True)


def print_run_location(run_dir: Path) -> None:
    print(f"run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir / TB_DIR}",
          flush=True)


def _loop(cfg: ExperimentConfig, algo, run_dir: Path, choice: Optional[CheckpointChoice],
          progress: bool) -> RunResult:
    """Iterations until ``training.iterations``; ``choice`` is what ``resume_checkpoint``
    picked when resuming (None for a new run)."""
    resuming = choice is not None
    start, env_steps = _restore_algo(algo, run_dir, choice)
    tb = TensorBoardLogger(run_dir / TB_DIR, purge_step=start + 1 if resuming else None,
                           jsonl=run_dir / METRICS_JSONL)
    log_resume(tb, choice, start + 1)
    if not resuming:
        tb.text("config", "```yaml\n" + (run_dir / CONFIG_FILE).read_text() + "\n```")
    bar = Progress(cfg.training.iterations, start, enabled=progress)
    metrics: Dict[str, float] = {}
    done, stopped = start, False  # last completed iteration

    def checkpoint(i: int) -> None:
        save_checkpoint(algo.save_to_path, run_dir, i, {"env_steps": env_steps},
                        cfg.checkpoint.keep)

    try:
        it, empty = start, 0
        while it < cfg.training.iterations:
            metrics = {**namespace_metrics(algo.train()), **runner_health(algo)}
            empty = empty_iteration_streak(empty, metrics, it + 1)
            if empty:  # a restarting env runner: not a training iteration
                continue
            it += 1
            env_steps += metrics.get("env/env_steps", 0.0)
            metrics["env/env_steps_total"] = env_steps
            tb.scalars(metrics, it)
            bar.update(it, metrics, env_steps)
            done = it
            target = cfg.training.stop_return
            stopped = target is not None and metrics.get("env/episode_return_mean",
                                                         float("-inf")) >= target
            if stopped or it % cfg.checkpoint.every == 0 or it == cfg.training.iterations:
                checkpoint(it)
            if stopped:
                break
    except KeyboardInterrupt:
        save_on_interrupt(run_dir, done, checkpoint)
        raise
    except RunAborted:
        save_on_interrupt(run_dir, done, checkpoint, why="aborted")
        raise
    finally:
        bar.close()
        tb.close()
    print_run_location(run_dir)
    return RunResult(run_dir, done, env_steps, metrics, stopped)


def _restore_algo(algo, run_dir: Path, choice) -> tuple:
    """(iteration, env steps) of the checkpoint ``resume_checkpoint`` chose; (0, 0) if none."""
    if choice is None or choice.path is None:
        return 0, 0.0
    algo.restore_from_path(str(choice.path))
    state = read_state(choice.path)
    print(f"resumed {run_dir} from {choice.path.name} (iteration {state['iteration']})",
          flush=True)
    return state["iteration"], state["env_steps"]
