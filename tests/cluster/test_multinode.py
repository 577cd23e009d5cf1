"""A head and two worker nodes on one machine (``ray.cluster_utils.Cluster``): custom
resources pin env runners and the learner to nodes; a killed env runner and a removed worker
node do not stop training."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import torch
from ray.cluster_utils import Cluster

from regrl.trainers.config import config_from_dict
from regrl.trainers.logging import namespace_metrics
from regrl.trainers.rllib.algo import build_algorithm_config
from regrl.trainers.run import placement, runner_health

MB = 1024**2


@pytest.fixture(scope="module")
def cluster():
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(
        initialize_head=True,
        head_node_args=dict(num_cpus=1, object_store_memory=80 * MB, include_dashboard=False),
    )
    workers = [
        c.add_node(
            num_cpus=1,
            object_store_memory=80 * MB,
            resources={"env_runner_slot": 2, "rollout_slot": 2, f"node_{i}": 1},
        )
        for i in range(2)
    ]
    learner_node = c.add_node(
        num_cpus=1, object_store_memory=80 * MB, resources={"learner_slot": 1}
    )
    c.wait_for_nodes()
    ray.init(address=c.address)
    yield c, workers, learner_node
    ray.shutdown()
    c.shutdown()


def cartpole(**resources):
    return config_from_dict(
        {
            "name": "multinode",
            "seed": 0,
            "env": {"name": "CartPole-v1"},
            "training": {
                "iterations": 3,
                "train_batch_size": 400,
                "minibatch_size": 100,
                "num_epochs": 1,
            },
            "resources": {
                "num_env_runners": 2,
                "env_runner_resources": {"env_runner_slot": 1},
                "num_cpus_per_env_runner": 0.5,
                **resources,
            },
        }
    )


def train(algo, n):
    return [{**namespace_metrics(algo.train()), **runner_health(algo)} for _ in range(n)]


def train_until_restored(algo, max_iterations=12):
    """Iterate while Ray restarts the lost actor (it takes a few iterations on 2 cores);
    every iteration must still sample and learn."""
    metrics = []
    while len(metrics) < max_iterations:
        metrics += train(algo, 1)
        if (
            metrics[-1]["perf/env_runner_restarts"] >= 1
            and metrics[-1]["perf/healthy_env_runners"] == 2
        ):
            break
    return metrics


def test_env_runners_and_learner_are_placed_on_the_configured_nodes(cluster):
    _, workers, learner_node = cluster
    cfg = cartpole(num_learners=1, learner_resources={"learner_slot": 1})
    algo = build_algorithm_config(cfg).build_algo()
    try:
        metrics = train(algo, 2)
        where = placement(algo)
    finally:
        algo.stop()
    worker_ids = {w.node_id for w in workers}
    assert len(where["env_runners"]) == 2 and set(where["env_runners"]) <= worker_ids
    assert where["learners"] == [learner_node.node_id]
    assert metrics[-1]["env/env_steps"] >= 400
    assert "learner/policy_loss" in metrics[-1] or any(
        k.startswith("learner/") for k in metrics[-1]
    )


def _runner_pids(algo):
    return algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False)


def test_killed_env_runner_is_restarted_and_counted(cluster):
    algo = build_algorithm_config(cartpole()).build_algo()
    try:
        train(algo, 1)
        os.kill(_runner_pids(algo)[0], signal.SIGKILL)  # a crash, not a polite stop
        metrics = train_until_restored(algo)
    finally:
        algo.stop()
    assert metrics[-1]["perf/env_runner_restarts"] >= 1
    assert metrics[-1]["perf/healthy_env_runners"] == 2
    assert all(m["env/env_steps"] >= 400 for m in metrics)  # sampling never stopped


def test_regrl_train_joins_the_cluster_by_address(cluster, tmp_path):
    """``regrl train --address ADDR`` (what ``--address auto`` does on a head node) runs its
    env runners on the worker nodes and checkpoints; the driver is a separate process."""
    c, workers, _ = cluster
    root = Path(__file__).resolve().parents[2]
    sets = [
        "training.iterations=2",
        "training.train_batch_size=400",
        "training.minibatch_size=100",
        "training.num_epochs=1",
        "resources.num_env_runners=2",
        "resources.num_cpus_per_env_runner=0.5",
        "resources.env_runner_resources={env_runner_slot: 1}",
        f"runs_root={tmp_path}",
    ]
    cmd = [
        sys.executable,
        "-m",
        "regrl.trainers.cli",
        "train",
        "configs/cartpole_ppo.yaml",
        "--address",
        c.address,
        "--quiet",
    ] + [a for s in sets for a in ("--set", s)]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("placement:"))
    live = {
        w.node_id[:8]
        for w in workers
        if w.node_id in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    }
    assert any(short in line for short in live), line
    assert "done: 2 iterations" in out.stdout
    assert list(tmp_path.glob("cartpole_ppo/*/checkpoints/iter_*2"))


RLVR = {
    "kind": "rlvr",
    "name": "rlvr_multinode",
    "model": {"path": "tiny", "tiny_width": 32},
    "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
    "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
    "training": {"steps": 2, "micro_batch_size": 4},
    "resources": {
        "mode": "ray",
        "num_rollout_actors": 2,
        "num_reward_actors": 1,
        "cpus_per_actor": 0.25,
        "max_restarts": 2,
        "rollout_resources": {"rollout_slot": 0.5},
        "reward_resources": {"rollout_slot": 0.5},
        "learner_resources": {"learner_slot": 1},
    },
    "eval": {"every": 0},
}


def test_rlvr_actors_placed_and_a_killed_rollout_actor_reloads_the_latest_weights(
    cluster, tmp_path
):
    """RLVR tiny-model loop on the multi-node cluster: rollout/reward actors on the workers,
    the learner on the learner node; a SIGKILLed rollout actor is restarted by Ray and syncs to
    the newest published weights before it generates again."""
    from regrl.trainers.rlvr import config as rc
    from regrl.trainers.rlvr.actors import RayBackend
    from regrl.trainers.rlvr.loop import Trainer

    _, workers, learner_node = cluster
    cfg = rc.config_from_dict(dict(RLVR, runs_root=str(tmp_path)), "multinode")
    backend = RayBackend(cfg)
    try:
        trainer = Trainer(cfg, backend)
        metrics = [trainer.step(s) for s in (1, 2)]
        worker_ids = {w.node_id for w in workers if w.node_id in _alive()}
        assert set(ray.get([a.node_id.remote() for a in backend.rollouts])) <= worker_ids
        assert set(ray.get([a.node_id.remote() for a in backend.rewards])) <= worker_ids
        assert ray.get(backend.learner.node_id.remote()) == learner_node.node_id
        assert metrics[-1]["learner/weights_version"] == backend.version >= 2

        victim = backend.rollouts[0]
        os.kill(ray.get(victim.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
        latest = backend.version
        metrics.append(trainer.step(3))  # waits for the restart, syncs, generates, learns
        assert ray.get(victim.weights_version.remote()) == latest  # not the initial weights
        assert backend.version == latest + 1  # step 3 updated and published again
        a, b = ray.get([r.generate.remote(["Compute 1+2."], 1, 0.0, 0) for r in backend.rollouts])
        assert torch.equal(a["tokens"], b["tokens"])  # same (latest) weights as the survivor
    finally:
        backend.close()


def _alive():
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


# Last: it removes a worker node for good.
def test_removed_worker_node_training_continues_on_the_other(cluster):
    c, workers, _ = cluster
    algo = build_algorithm_config(cartpole()).build_algo()
    try:
        train(algo, 1)
        before = placement(algo)["env_runners"]
        victim = next(w for w in workers if w.node_id in before)
        c.remove_node(victim)
        metrics = train_until_restored(algo)
        after = placement(algo)["env_runners"]
    finally:
        algo.stop()
    assert victim.node_id not in after
    assert len(after) == 2  # the lost runner came back on the surviving worker
    assert metrics[-1]["perf/env_runner_restarts"] >= 1
    assert metrics[-1]["env/env_steps"] > 0
