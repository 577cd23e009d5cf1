"""Ray core actors of RLVR: rollout actors, reward actors and the learner actor.

Weights travel as ``ray.put``-style object refs of a CPU state dict plus a version number.
The ref is passed inside a list so Ray does not fetch it for an actor that is already up to
date; an actor whose version differs (a fresh or restarted one has -1) fetches and loads it
before generating, so a restarted rollout actor never samples with stale weights.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import ray

from trainers.rlvr.backends import _split, merge_rollouts
from trainers.rlvr.learner import Learner, proxy_kappa
from trainers.rlvr.rollout import RewardWorker, RolloutWorker


class RolloutActor(RolloutWorker):
    def __init__(self, cfg, kappa: Optional[float]):
        super().__init__(cfg, proxy_kappa=kappa)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def sync(self, weights_box: List, version: int) -> int:
        """Load the published weights if this actor's copy is older; returns its version."""
        if weights_box and version != self.version:
            self.set_weights(ray.get(weights_box[0]), version)
        return self.version

    def generate_synced(self, weights_box: List, version: int, *args):
        self.sync(weights_box, version)
        return self.generate(*args)


class RewardActor(RewardWorker):
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


class LearnerActor(Learner):
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id


def _options(cfg, cpus: float, resources: Dict[str, float], **extra):
    r = cfg.resources
    opts = dict(num_cpus=cpus, max_restarts=r.max_restarts, max_task_retries=r.max_restarts, **extra)
    if resources:
        opts["resources"] = dict(resources)
    return opts


class RayBackend:
    """Rollout, reward and learner actors; the driver only samples problems and logs."""

    mode = "ray"

    def __init__(self, cfg):
        r = cfg.resources
        self.cfg = cfg
        # A restarted learner would have lost its optimizer state: it is not restarted (resume
        # the run from its last checkpoint instead); rollout and reward actors are stateless.
        learner_opts = _options(cfg, r.cpus_per_actor, r.learner_resources, num_gpus=r.learner_num_gpus)
        learner_opts.update(max_restarts=0, max_task_retries=0)
        self.learner = ray.remote(LearnerActor).options(**learner_opts).remote(cfg)
        kappa = proxy_kappa(cfg)
        self.rollouts = [ray.remote(RolloutActor).options(
            **_options(cfg, r.cpus_per_actor, r.rollout_resources)).remote(cfg, kappa)
            for _ in range(r.num_rollout_actors)]
        self.rewards = [ray.remote(RewardActor).options(
            **_options(cfg, r.cpus_per_actor, r.reward_resources)).remote(cfg.task.name, cfg.task.kwargs)
            for _ in range(r.num_reward_actors)]
        self.pad_id = ray.get(self.learner.pad_token_id.remote())
        self.version, self.weights_box = -1, []  # first publish is version 0, like the local learner
        self.publish()

    def generate(self, prompts, n, temperature, seed, max_new_tokens=None):
        chunks = _split(prompts, len(self.rollouts))
        refs = [a.generate_synced.remote(self.weights_box, self.version, chunk, n, temperature,
                                         seed + 1000 * i, max_new_tokens)
                for i, (a, chunk) in enumerate(zip(self.rollouts, chunks))]
        return merge_rollouts(ray.get(refs), self.pad_id)

    def score(self, texts, problems):
        idx = _split(list(range(len(texts))), len(self.rewards))
        refs = [a.score.remote([texts[i] for i in part], [problems[i] for i in part])
                for a, part in zip(self.rewards, idx)]
        return [x for part in ray.get(refs) for x in part]

    def update(self, batch):
        return ray.get(self.learner.update.remote(batch))

    def publish(self) -> int:
        """Put the learner's weights in the object store with a new version number."""
        self.version += 1
        self.weights_box = [self.learner.weights.remote()]
        return self.version

    def save(self, path: str) -> None:
        ray.get(self.learner.save.remote(path))

    def restore(self, path: str) -> None:
        ray.get(self.learner.restore.remote(path))
        self.publish()

    def close(self) -> None:
        for a in self.rollouts + self.rewards + [self.learner]:
            ray.kill(a)
