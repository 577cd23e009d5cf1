"""The rl kind: RLlib resources and placement, and :class:`RLSession`, which the run harness
(:mod:`regrl.trainers.harness`) drives inside the Ray session of
:mod:`regrl.trainers.ray_session`.

Ray and RLlib are imported where a session starts (:class:`RLSession`, the resource check),
not with this module: the driver loads and validates an rl config (``regrl validate``)
without them."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from regrl.agents.objectives.terms import needs  # capabilities by flag, never by term name
from regrl.agents.registry import UnknownNameError
from regrl.trainers import feasibility
from regrl.trainers.checkpoint import RESTARTING, RunAborted, empty_iteration_streak
from regrl.trainers.config import ConfigError, ExperimentConfig, config_from_dict
from regrl.trainers.envs import env_entry, probe_env
from regrl.trainers.evaluate import evaluate
from regrl.trainers.feasibility import Demand
from regrl.trainers.harness import Result, Session
from regrl.trainers.kinds import (
    HarnessDriver,
    Source,
    raw_config,
    register_kind,
    source_name,
    train_kind,
)
from regrl.trainers.logging import namespace_metrics
from regrl.trainers.ray_session import ray_session
from regrl.trainers.run_files import EVAL_FILE

__all__ = ["train", "RLSession", "RLDriver"]


def train(
    cfg: Optional[ExperimentConfig] = None,
    *,
    resume: Optional[Path] = None,
    address: Optional[str] = None,
    progress: bool = True,
) -> Result:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume`` (the ``rl``
    kind's driver on :mod:`regrl.trainers.harness`); ``iteration``, ``env_steps`` and
    ``stopped_early`` of the result are its last iteration, env steps and early stop."""
    assert cfg is not None or resume is not None, "train() needs a config or a run to resume"
    return train_kind("rl", cfg, resume=resume, address=address, progress=progress)


@contextmanager
def rl_context(cfg: ExperimentConfig, address: Optional[str]):
    """The Ray session an RL run needs (checked for its resources; shut down if ours); the
    harness then sets the driver's torch threads (:func:`regrl.trainers.harness.set_up`)."""
    with ray_session(address):
        check_resources(cfg, autoscaling=address is not None)
        yield


def build_algo(cfg: ExperimentConfig):
    """The RLlib ``Algorithm`` of ``cfg``; RLlib is imported here, when a run starts, never
    when a config is only loaded or validated."""
    from regrl.trainers.rllib.algo import build_algorithm_config

    return build_algorithm_config(cfg).build_algo()


class RLSession(Session):
    """One RLlib run for :mod:`regrl.trainers.harness`: an iteration is one ``algo.train()``."""

    unit = "iteration"

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, choice=None):
        self.cfg, self.total = cfg, cfg.training.iterations
        self.env_steps, self.empty, self.aborted = 0.0, 0, False
        self.algo = build_algo(cfg)
        if cfg.resources.num_env_runners or cfg.resources.num_learners:
            print(placement_summary(placement(self.algo)), flush=True)

    def step(self, i: int) -> Optional[Dict[str, float]]:
        import ray

        before, began = runner_health(self.algo), time.monotonic()
        try:
            result = self.algo.train()
        except ray.exceptions.RayError as exc:
            lost = dead_learners(self.algo)
            if not lost:
                raise
            self.save_on_interrupt = False  # the learner state went with the actor
            raise RunAborted(
                f"{lost} of {self.cfg.resources.num_learners} learner actors died in iteration "
                f"{i} ({str(exc).strip().splitlines()[0][:200]}); a data-parallel learner "
                "group cannot go on with fewer learners (RLlib does not restart learners); "
                "the run continues from its last checkpoint"
            ) from None
        metrics = {**namespace_metrics(result), **runner_health(self.algo)}
        why = empty_cause(self.cfg.resources, time.monotonic() - began, before, metrics)
        self.empty = empty_iteration_streak(self.empty, metrics, i, why=why)
        if self.empty:  # a restarting or too slow env runner: not a training iteration
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
        return (
            target is not None and metrics.get("env/episode_return_mean", float("-inf")) >= target
        )

    def abort(self) -> None:
        """After Ctrl-C / SIGTERM: kill the env-runner and learner actors now. ``algo.stop()``
        queues each runner's ``stop()`` behind the call it is running (a slow simulator's reset
        can take minutes) and waits for it without a timeout, past the grace period a scheduler
        gives before SIGKILL; the checkpoint is already written."""
        self.aborted = True
        for group in (
            self.algo.env_runner_group,
            getattr(self.algo, "eval_env_runner_group", None),
        ):
            if group is not None:
                # what EnvRunnerGroup.stop() does last: ray.kill each actor, forget them
                group._worker_manager.clear()
        learners = self.algo.learner_group
        if learners is not None and learners.is_remote:
            # Ray Train's worker group: ray.kill without the backend's shutdown calls
            learners._backend_executor.shutdown(graceful_termination=False)

    def close(self) -> None:
        if not self.aborted:  # after abort() the actors are gone; ray.shutdown frees the rest
            self.algo.stop()


def actor_demands(cfg: ExperimentConfig) -> List[Demand]:
    """The Ray actors of an RL run and what each reserves, as RLlib asks for them
    (``LearnerGroup``: a learner actor takes 1 CPU without a GPU, 0 CPUs with one). A local
    learner with a GPU reserves nothing but needs a GPU on the driver's node."""
    r = cfg.resources
    gpu = {"GPU": float(r.num_gpus_per_learner)} if r.num_gpus_per_learner else {}
    runner = {"CPU": float(r.num_cpus_per_env_runner), **r.env_runner_resources}
    learner = {"CPU": 0.0 if gpu else 1.0, **gpu, **r.learner_resources}
    return [
        Demand("env runner", r.num_env_runners, runner),
        Demand("learner", r.num_learners, learner),
        Demand("local learner", 1 if gpu and not r.num_learners else 0, gpu),
    ]


def check_resources(cfg: ExperimentConfig, *, autoscaling: bool) -> None:
    """Refuse, before training, actors that no node of this cluster can ever host (Ray would
    wait for them silently); on a cluster (``--address``) with an autoscaler, say what the
    run waits for."""
    feasibility.check(
        actor_demands(cfg),
        feasibility.ray_nodes(),
        autoscaler=feasibility.has_autoscaler() if autoscaling else False,
        fix="lower resources.num_learners, num_env_runners or num_cpus_per_env_runner, set "
        "resources.num_gpus_per_learner: 0 or remove the custom resources, or run on a "
        "cluster with --address",
    )


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def placement(algo) -> Dict[str, list]:
    """Node ids of the env-runner and learner actors (``driver`` for in-process ones)."""
    runners = (
        algo.env_runner_group.foreach_env_runner(lambda r: _node_id(), local_env_runner=False)
        if algo.config.num_env_runners
        else []
    )
    learners = (
        [r.get() for r in algo.learner_group.foreach_learner(lambda _learner: _node_id())]
        if algo.config.num_learners
        else []
    )
    return {"env_runners": list(runners), "learners": list(learners) or ["driver"]}


def runner_health(algo) -> Dict[str, float]:
    """Env-runner fault-tolerance counters (RLlib's new-stack results omit them)."""
    group = algo.env_runner_group
    if group is None or not algo.config.num_env_runners:
        return {}
    return {
        "perf/env_runner_restarts": float(group.num_remote_worker_restarts()),
        "perf/healthy_env_runners": float(group.num_healthy_remote_workers()),
    }


def dead_learners(algo, timeout_s: float = 30.0) -> int:
    """How many of the learner actors are dead (0 with a local learner). A learner that died
    mid-update surfaces as its peers' error (gloo: connection closed by peer), so each actor
    is asked whether it is alive."""
    group = algo.learner_group
    if group is None or not group.is_remote:
        return 0
    import ray

    dead = 0
    for worker in group._backend_executor.worker_group.workers:
        try:
            ray.get(worker.actor.__ray_ready__.remote(), timeout=timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            dead += 1
    return dead


def empty_cause(
    resources, seconds: float, before: Dict[str, float], after: Dict[str, float]
) -> str:
    """The likely cause of an iteration that sampled nothing and lasted ``seconds``.
    ``before``/``after`` are :func:`runner_health` around it. Every runner healthy, none
    restarted and the whole ``sample_timeout_s`` waited: the runners are alive but slower than
    the timeout (RLlib discards their late samples, and the next request queues behind the
    running one); otherwise a runner died and Ray is restarting it."""
    timeout = resources.sample_timeout_s
    restarted = after.get("perf/env_runner_restarts", 0.0) > before.get(
        "perf/env_runner_restarts", 0.0
    )
    healthy = after.get("perf/healthy_env_runners", 0.0) >= resources.num_env_runners > 0
    if timeout is not None and seconds >= timeout and healthy and not restarted:
        return (
            f"no env runner returned its sample within resources.sample_timeout_s = {timeout:g} "
            "s: a slow reset or step? raise resources.sample_timeout_s (null waits indefinitely)"
        )
    return RESTARTING


def placement_summary(where: Dict[str, list]) -> str:
    def short(ids):
        return ", ".join(i[:8] if i != "driver" else i for i in ids) or "driver"

    return (
        f"placement: env runners on node(s) [{short(where['env_runners'])}], "
        f"learners on [{short(where['learners'])}]"
    )


# ---------------------------------------------------------------------------- rl
@register_kind("rl", "simulator RL through RLlib (the default kind)")
class RLDriver(HarnessDriver):
    curve_metrics = ("env/episode_return_mean",)

    def load(
        self, source: Source, overrides: Sequence[str] = (), *, where: Optional[str] = None
    ) -> Any:
        cfg = self.parse(raw_config(source, overrides), source_name(source, where))
        _probe_env(cfg, source_name(source, where))
        return cfg

    def parse(self, data: Dict[str, Any], source: str) -> Any:
        data = dict(data)
        data.pop("kind", None)  # rl, or null (= rl): the schema fills in its own kind
        return config_from_dict(data, source=source)

    def check_trial(self, cfg) -> None:
        if env_entry(cfg.env.name).main_thread_only and cfg.resources.num_env_runners == 0:
            raise ConfigError(
                f"env {cfg.env.name!r} must run in a process's main thread (MetaDrive installs "
                "a signal handler) and a sweep trial runs in a worker thread: set "
                "resources.num_env_runners >= 1 so env-runner actors host it"
            )

    def context(self, cfg, address: Optional[str]):
        return rl_context(cfg, address)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        return RLSession(cfg, run_dir, choice)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> Result:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        m = result.metrics
        result.line = (
            f"done: {result.done} iterations, "
            f"{int(m.get('env/env_steps_total', 0))} env steps, "
            f"episode_return_mean {m.get('env/episode_return_mean', float('nan')):.2f}"
        )
        return result

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        report = evaluate(Path(run_dir), episodes)
        if "table" in report:  # evaluators with a results table (SMARL) print it, not JSON
            print((Path(run_dir) / report["table"]).read_text(), end="")
        else:
            print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=2))
        for fig in report.get("figures", []):
            print(f"figure: {fig}")
        print(f"report: {Path(run_dir) / EVAL_FILE}")
        return 0

    def bundles(self, cfg) -> List[Dict[str, float]]:
        """The driver (with the local learner's GPU), each env runner, each learner actor."""
        r = cfg.resources
        gpu = r.num_gpus_per_learner
        head = {"CPU": 1.0, **({"GPU": float(gpu)} if gpu and not r.num_learners else {})}
        runner = {"CPU": float(r.num_cpus_per_env_runner), **r.env_runner_resources}
        learner = {
            "CPU": 0.0 if gpu else 1.0,
            **({"GPU": float(gpu)} if gpu else {}),
            **r.learner_resources,
        }
        return [head] + [runner] * r.num_env_runners + [learner] * r.num_learners


def _probe_env(cfg, source: str) -> None:
    """Build the environment once so its problems are config errors, before Ray starts."""
    need_discrete = needs(cfg.objective.terms, "needs_discrete")
    try:
        probe_env(cfg.env.name, dict(cfg.env.kwargs), need_discrete=need_discrete)
    except (UnknownNameError, ValueError) as exc:
        raise ConfigError(f"{source}: env: {exc}") from None
