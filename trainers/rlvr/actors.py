"""Ray core actors of RLVR: rollout actors, reward actors and the learner actor(s).

Weights travel as ``ray.put``-style object refs of a CPU state dict plus a version number.
The ref is passed inside a list so Ray does not fetch it for an actor that is already up to
date; an actor whose version differs (a fresh or restarted one has -1) fetches and loads it
before generating, so a restarted rollout actor never samples with stale weights.
"""

from __future__ import annotations

import socket
from typing import Dict, List, Optional

import ray

from regrl.trainers.rlvr.backends import _split, merge_rollouts
from regrl.trainers.rlvr.learner import Learner, proxy_kappa
from regrl.trainers.rlvr.rollout import RewardWorker, RolloutWorker


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

    def free_address(self) -> str:
        """``tcp://<node ip>:<free port>``: rank 0's rendezvous for torch.distributed."""
        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"


def _options(cfg, cpus: float, resources: Dict[str, float], **extra):
    r = cfg.resources
    opts = dict(
        num_cpus=cpus, max_restarts=r.max_restarts, max_task_retries=r.max_restarts, **extra
    )
    if resources:
        opts["resources"] = dict(resources)
    return opts


class LearnerGroup:
    """``resources.num_learners`` learner actors. With more than one they form a
    torch.distributed group: each update sums their shard gradients before the optimizer
    step (see :meth:`Learner.update`). Rank 0 publishes weights and writes checkpoints."""

    def __init__(self, cfg):
        r = cfg.resources
        # A restarted learner would have lost its optimizer state (and left its process
        # group): it is not restarted; resume the run from its last checkpoint instead.
        opts = _options(cfg, r.cpus_per_actor, r.learner_resources, num_gpus=r.num_gpus_per_learner)
        opts.update(max_restarts=0, max_task_retries=0)
        self.actors = [
            ray.remote(LearnerActor).options(**opts).remote(cfg) for _ in range(r.num_learners)
        ]
        self.lead = self.actors[0]
        if len(self.actors) > 1:
            try:
                address = ray.get(self.lead.free_address.remote())
                ray.get(
                    [
                        a.init_distributed.remote(address, rank, len(self.actors))
                        for rank, a in enumerate(self.actors)
                    ]
                )
            except Exception:
                self.close()  # no half-joined group left holding resources
                raise

    def update(self, batch):
        """All learners get the same batch (stored once); their metrics are already reduced."""
        ref = ray.put(batch) if len(self.actors) > 1 else batch
        return ray.get([a.update.remote(ref) for a in self.actors])[0]

    def weights(self):
        return self.lead.weights.remote()

    def save(self, path: str) -> None:
        ray.get(self.lead.save.remote(path))  # replicas are identical after every step

    def restore(self, path: str) -> None:
        ray.get([a.restore.remote(path) for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)


class RayBackend:
    """Rollout, reward and learner actors; the driver only samples problems and logs."""

    mode = "ray"

    def __init__(self, cfg):
        r = cfg.resources
        self.cfg = cfg
        self.learners = LearnerGroup(cfg)  # rollout and reward actors are stateless
        self.learner = self.learners.lead
        kappa = proxy_kappa(cfg)
        self.rollouts = [
            ray.remote(RolloutActor)
            .options(**_options(cfg, r.cpus_per_actor, r.rollout_resources))
            .remote(cfg, kappa)
            for _ in range(r.num_rollout_actors)
        ]
        self.rewards = [
            ray.remote(RewardActor)
            .options(**_options(cfg, r.cpus_per_actor, r.reward_resources))
            .remote(cfg.task.name, cfg.task.kwargs)
            for _ in range(r.num_reward_actors)
        ]
        self.pad_id = ray.get(self.learner.pad_token_id.remote())
        self.version, self.weights_box = (
            -1,
            [],
        )  # first publish is version 0, like the local learner
        self.publish()

    def generate(self, prompts, n, temperature, seed, max_new_tokens=None):
        chunks = _split(prompts, len(self.rollouts))
        refs = [
            a.generate_synced.remote(
                self.weights_box,
                self.version,
                chunk,
                n,
                temperature,
                seed + 1000 * i,
                max_new_tokens,
            )
            for i, (a, chunk) in enumerate(zip(self.rollouts, chunks))
        ]
        return merge_rollouts(ray.get(refs), self.pad_id)

    def score(self, texts, problems):
        idx = _split(list(range(len(texts))), len(self.rewards))
        refs = [
            a.score.remote([texts[i] for i in part], [problems[i] for i in part])
            for a, part in zip(self.rewards, idx)
        ]
        return [x for part in ray.get(refs) for x in part]

    def update(self, batch):
        return self.learners.update(batch)

    def publish(self) -> int:
        """Put the learner's weights in the object store with a new version number."""
        self.version += 1
        self.weights_box = [self.learners.weights()]
        return self.version

    def save(self, path: str) -> None:
        self.learners.save(path)

    def restore(self, path: str) -> None:
        self.learners.restore(path)
        self.publish()

    def close(self) -> None:
        for a in self.rollouts + self.rewards:
            ray.kill(a)
        self.learners.close()
