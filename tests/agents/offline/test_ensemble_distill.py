"""Ensemble distillation: hand-computed ensemble probabilities and student targets; members
with their own initialisation and weight decay, stepped by the targets hook."""

import math

import numpy as np
import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import TaskInfo, distill_targets, ensemble_probs, get_plugin
from regrl.trainers.offline import offline_config_from_dict, train_offline

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def test_ensemble_mean_of_probabilities_by_hand():
    ln3 = math.log(3.0)
    p = ensemble_probs([t([[0.0, ln3]]), t([[ln3, 0.0]])])  # [.25, .75] and [.75, .25]
    torch.testing.assert_close(p, t([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_probs([])


def test_student_targets_mix_labels_and_teacher():
    torch.testing.assert_close(
        distill_targets(t([[1.0, 0.0]]), t([[0.2, 0.8]]), alpha=0.25), t([[0.4, 0.6]])
    )
    with pytest.raises(ValueError, match="alpha"):
        distill_targets(t([[1.0]]), t([[1.0]]), alpha=1.5)


def _plugin(**params):
    cls = get_plugin("ensemble_distill")
    plugin = cls(cls.Params(**params), TaskInfo("classification", 10, 3, 2, 0))
    torch.manual_seed(0)
    model = MLP(4, 3, (8,))
    plugin.setup(model, None, lambda m: torch.optim.AdamW(m.parameters(), lr=0.01))
    return plugin, model


def test_members_are_fresh_networks_with_their_own_weight_decay():
    plugin, model = _plugin(members=3, member_weight_decay=0.7)
    heads = [m.head.weight for m in plugin.models] + [model.head.weight]
    for i in range(len(heads)):
        for j in range(i + 1, len(heads)):
            assert not torch.equal(heads[i], heads[j])
    assert all(g["weight_decay"] == 0.7 for o in plugin.opts for g in o.param_groups)


def test_targets_hook_returns_the_mix_with_the_pre_step_teacher_and_steps_every_member():
    plugin, _ = _plugin(members=2, alpha=0.25)
    x, y = torch.randn(5, 4), torch.eye(3)[[0, 1, 2, 0, 1]]
    teacher = plugin.teacher(x)
    before = [m.head.weight.clone() for m in plugin.models]
    target = plugin.targets({"x": x, "target": y}, epoch=0)
    torch.testing.assert_close(target, 0.25 * y + 0.75 * teacher)
    assert all(not torch.equal(b, m.head.weight) for b, m in zip(before, plugin.models))


def test_learner_trains_members_and_checkpoints_them(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 6))
    y = rng.integers(0, 3, 200)
    np.savez(tmp_path / "b.npz", x=(centers[y] + rng.normal(size=(200, 6))).astype(np.float32), y=y)
    raw = {
        "kind": "offline",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "b.npz"), "val_fraction": 0.25},
        "model": {"hidden": [16]},
        "training": {"epochs": 4, "batch_size": 32, "lr": 0.01},
        "plugins": [{"name": "ensemble_distill", "members": 2, "alpha": 0.0}],
        "checkpoint": {"every": 4},
    }
    result = train_offline(offline_config_from_dict(raw), progress=False)
    assert result.metrics["val/accuracy"] > 0.6  # a student of pure distillation still learns
    state = torch.load(
        next(result.run_dir.glob("checkpoints/*/plugins_rank0.pt")), weights_only=False
    )
    members = state["plugins"]["ensemble_distill"]["members"]
    member = MLP(6, 3, (16,))
    member.load_state_dict(members[0])
    x = torch.from_numpy(centers[[0, 1, 2]].astype(np.float32))
    assert (member(x)["out"].argmax(-1) == torch.tensor([0, 1, 2])).all()  # the member learned
