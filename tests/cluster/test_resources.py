"""Resource mapping without Ray: the cluster configs ask for what cluster.yaml's node types
offer (every actor's bundle on one node type), RLlib receives the placement, and a missing
GPU/label fails fast with a clear message."""

from pathlib import Path

import pytest
import torch
import yaml

from regrl.trainers.config import ConfigError, config_from_dict, load_config
from regrl.trainers.feasibility import unmet
from regrl.trainers.rllib.algo import build_algorithm_config
from regrl.trainers.run import actor_demands

ROOT = Path(__file__).resolve().parents[2]
NODE_TYPES = yaml.safe_load((ROOT / "cluster.yaml").read_text())["available_node_types"]
CLUSTER_RUNS = ["configs/cluster/smarl_gpu.yaml", "configs/cluster/cartpole_gpu.yaml"]


@pytest.mark.parametrize("path", CLUSTER_RUNS)
def test_cluster_config_maps_to_rllib_and_fits_cluster_yaml(path):
    cfg = load_config(ROOT / path, [])
    algo_cfg = build_algorithm_config(cfg)
    assert algo_cfg.num_gpus_per_learner == 1 and algo_cfg.num_learners == 1
    assert algo_cfg.custom_resources_per_learner == {"learner_slot": 1}
    assert algo_cfg.custom_resources_per_env_runner == {"env_runner_slot": 1}
    for demand in actor_demands(cfg):  # each actor's whole bundle fits one node type
        one = [type(demand)(demand.what, 1, demand.bundle)] if demand.count else []
        assert any(unmet(one, [t["resources"]]) == [] for t in NODE_TYPES.values()), demand
    nodes = [NODE_TYPES[t]["resources"] for t in ("head", "cpu_worker", "gpu_worker")]
    assert unmet(actor_demands(cfg), nodes) == []  # one node of each type hosts the run


def test_missing_gpu_is_reported_not_waited_for():
    cfg = load_config(ROOT / CLUSTER_RUNS[1], [])
    missing = unmet(actor_demands(cfg), [{"CPU": 2.0}])
    assert "one learner needs {GPU: 1, learner_slot: 1}, which no node has" in missing
    assert "GPU: 1 asked (1 learner x 1), the cluster has 0" in missing


def test_learner_resources_need_a_learner_actor():
    with pytest.raises(ConfigError, match="learner_resources needs num_learners >= 1"):
        config_from_dict(
            {
                "name": "x",
                "env": {"name": "CartPole-v1"},
                "resources": {"learner_resources": {"learner_slot": 1}},
            }
        )
    with pytest.raises(ConfigError, match="env_runner_resources.slot must be a number > 0"):
        config_from_dict(
            {
                "name": "x",
                "env": {"name": "CartPole-v1"},
                "resources": {"env_runner_resources": {"slot": 0}},
            }
        )


def test_learner_device_string_with_one_gpu(monkeypatch):
    """What RLlib picks for our GPU learner config, simulated on CPU: cuda:0 when Ray hands
    the learner actor one GPU, cpu without GPUs requested."""
    import ray.air._internal.torch_utils as tu
    from ray.rllib.utils.framework import get_device

    monkeypatch.setattr(tu, "get_devices", lambda: [torch.device("cuda:0")])
    monkeypatch.setattr(
        "ray._private.worker._mode", lambda: __import__("ray")._private.worker.WORKER_MODE
    )
    algo_cfg = build_algorithm_config(load_config(ROOT / CLUSTER_RUNS[1], []))
    assert str(get_device(algo_cfg, algo_cfg.num_gpus_per_learner)) == "cuda:0"
    assert str(get_device(algo_cfg, 0)) == "cpu"
