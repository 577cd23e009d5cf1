"""model.trainable of RIFT's candidate scorer: head (RIFT's trainable_layers) or the whole
scorer; the frozen set is exactly what the candidate logits do not depend on."""

import pytest
import torch

from regrl.agents.models.planner import Planner
from regrl.trainers.config import ConfigError, config_from_dict
from regrl.trainers.traffic.planner_io import scene_planner_config, scene_tensors
from regrl.trainers.traffic.scorer_module import trainable_filter

torch.set_num_threads(1)


def planner():
    torch.manual_seed(0)
    return Planner(scene_planner_config(num_modes=4, dim=8))


def logit_grads(net):
    from regrl.envs.traffic.scene import OBS_DIM

    scene = dict(scene_tensors(torch.randn(3, OBS_DIM)))
    for mask in ("lane_mask", "neighbor_mask"):  # every lane and neighbour present
        scene[mask] = torch.ones_like(scene[mask])
    net(scene, with_traj=False)["logits"].sum().backward()
    return {
        n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in net.named_parameters()
    }


def test_head_trains_only_pi_head_and_scorer_everything_the_logits_depend_on():
    net = planner()
    names = [n for n, _ in net.named_parameters()]
    head, scorer = trainable_filter("head"), trainable_filter("scorer")
    assert {n for n in names if head(n)} == {n for n in names if n.startswith("pi_head.")}
    grads = logit_grads(net)
    # scorer = exactly the weights with a gradient from the logits (the trajectory head has none)
    assert {n for n in names if scorer(n)} == {n for n, g in grads.items() if g}
    assert any(n.startswith("traj_head.") for n in names) and not any(
        scorer(n) for n in names if n.startswith("traj_head.")
    )
    with pytest.raises(ValueError, match="head or scorer"):
        trainable_filter("all")


def test_trainable_is_checked_in_the_config_and_refused_outside_the_candidate_scorer():
    with pytest.raises(ConfigError, match="trainable"):
        config_from_dict({"model": {"trainable": "everything"}})
    from regrl.trainers.rllib.algo import build_algorithm_config

    cfg = config_from_dict({"env": {"name": "CartPole-v1"}, "model": {"trainable": "scorer"}})
    with pytest.raises(ConfigError, match="candidate scorer"):
        build_algorithm_config(cfg)
    raw = {"name": "rift_metadrive", "kwargs": {"action_mode": "raw"}}  # PPO's MLP, not a scorer
    cfg = config_from_dict({"env": raw, "model": {"trainable": "head"}})
    with pytest.raises(ConfigError, match="candidate scorer"):
        build_algorithm_config(cfg)


def test_tables_name_a_scorer_trainable_run_apart_from_rift():
    from regrl.trainers.traffic.evaluation import method_name

    def cfg(**model):
        return config_from_dict(
            {
                "env": {"name": "rift_metadrive", "kwargs": {"planner": "p.pt"}},
                "objective": {
                    "advantages": {"estimator": "candidates"},
                    "terms": [{"name": "candidate_policy", "dual_clip": 3.0}],
                },
                "model": model,
            }
        )

    assert method_name(cfg()) == "RIFT" == method_name(cfg(trainable="head"))
    assert method_name(cfg(trainable="scorer")) == "RIFT (scorer trainable)"
