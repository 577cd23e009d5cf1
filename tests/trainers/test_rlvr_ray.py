"""RLVR on local Ray: rollout / reward / learner actors for 2 steps, weight publication with
version numbers, actor placement info, and a killed rollout actor that restarts and
reloads the latest weights before generating."""

import pytest
import torch

from regrl.trainers.rlvr import config as rc

torch.set_num_threads(1)
CFG = {
    "kind": "rlvr",
    "model": {"path": "tiny", "tiny_width": 32},
    "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
    "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
    "objective": {"terms": [{"name": "lp_reg", "rho": 0.5}]},
    "training": {"steps": 2, "micro_batch_size": 4},
    "resources": {
        "mode": "ray",
        "num_rollout_actors": 2,
        "num_reward_actors": 1,
        "cpus_per_actor": 0.25,
        "max_restarts": 2,
    },
    "eval": {"every": 0},
    "checkpoint": {"every": 10},
}


@pytest.fixture(scope="module")
def backend(ray_session, tmp_path_factory):
    from regrl.trainers.rlvr.actors import RayBackend

    cfg = rc.config_from_dict(dict(CFG, runs_root=str(tmp_path_factory.mktemp("runs"))), "t")
    b = RayBackend(cfg)
    yield b
    b.close()


def test_ray_actors_two_steps_publish_weights(ray_session, backend):
    ray = ray_session
    from regrl.trainers.rlvr.loop import Trainer

    trainer = Trainer(backend.cfg, backend)
    for step in (1, 2):
        metrics = trainer.step(step)
        assert metrics["learner/weights_version"] == backend.version
        assert "learner/lp_reg_token_num" in metrics and metrics["perf/rollout_tokens_per_s"] > 0
    versions = ray.get(
        [a.sync.remote(backend.weights_box, backend.version) for a in backend.rollouts]
    )
    assert versions == [backend.version] * 2
    node = ray.get_runtime_context().get_node_id()
    assert ray.get([a.node_id.remote() for a in backend.rollouts]) == [node, node]


def test_killed_rollout_actor_restarts_with_latest_weights(ray_session, backend):
    ray = ray_session
    backend.publish()
    first = backend.rollouts[0]
    ray.kill(first, no_restart=False)  # crash: Ray restarts it with fresh (initial) weights
    # The kill lands between calls; generate (max_task_retries) waits for the restart, and
    # the restarted actor syncs to the published version before sampling.
    gen = backend.generate(["Compute 1+2."], 2, 1.0, seed=5)
    assert gen["tokens"].shape[0] == 2
    assert ray.get(first.weights_version.remote()) == backend.version
    # same weights as the never-killed actor: identical greedy completions
    a, b = ray.get([r.generate.remote(["Compute 1+2."], 1, 0.0, 0) for r in backend.rollouts])
    assert torch.equal(a["tokens"], b["tokens"]) and torch.allclose(a["logp"], b["logp"])
