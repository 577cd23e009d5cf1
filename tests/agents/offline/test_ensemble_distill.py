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


# ---- the sequential schedule (the paper's): members first, then the student -------------------
def _blobs(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 6))
    y = rng.integers(0, 3, 200)
    path = tmp_path / "b.npz"
    np.savez(path, x=(centers[y] + rng.normal(size=(200, 6))).astype(np.float32), y=y)
    return path


def _seq_cfg(tmp_path, epochs=4, **plugin):
    return offline_config_from_dict(
        {
            "kind": "offline",
            "runs_root": str(tmp_path / "runs"),
            "data": {"path": str(_blobs(tmp_path)), "val_fraction": 0.25},
            "model": {"hidden": [16]},
            "training": {"epochs": epochs, "batch_size": 32, "lr": 0.01, "weight_decay": 0.5},
            "plugins": [{"name": "ensemble_distill", "members": 2, **plugin}],
        }
    )


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_sequential_student_gets_no_update_until_the_members_are_done(tmp_path):
    """Epochs 0-1 (member_epochs 2): the members step, the student does not move at all (with
    weight decay 0.5 any optimizer step would move it); epochs 2-3: the student steps and the
    members, finished, stay as they are."""
    from regrl.trainers.offline import OfflineLearner, prepare_data, shard_indices

    cfg = _seq_cfg(tmp_path, schedule="sequential", member_epochs=2)
    data = prepare_data(cfg)
    learner = OfflineLearner(cfg, data, torch.device("cpu"))
    (plugin,) = learner.plugins
    shard = shard_indices(len(data.x_train), 0, 1)
    student, members = _params(learner.model), [_params(m) for m in plugin.models]
    for epoch in (0, 1):
        metrics = learner.train_epoch(epoch, data, shard, 32)
        assert metrics["plugin/ensemble_distill/student_training"] == 0.0
    assert _same(student, _params(learner.model))
    assert not any(_same(b, _params(m)) for b, m in zip(members, plugin.models))
    finished = [_params(m) for m in plugin.models]
    metrics = learner.train_epoch(2, data, shard, 32)
    assert metrics["plugin/ensemble_distill/student_training"] == 1.0
    assert not _same(student, _params(learner.model))
    assert all(_same(b, _params(m)) for b, m in zip(finished, plugin.models))


def test_sequential_student_targets_come_from_the_finished_ensemble():
    plugin, _ = _plugin(members=2, alpha=0.25, schedule="sequential")  # 2 epochs: members 1
    assert plugin.member_epochs == 1
    x, y = torch.randn(5, 4), torch.eye(3)[[0, 1, 2, 0, 1]]
    assert plugin.targets({"x": x, "target": y}, epoch=0) is None and plugin.holding
    before = [_params(m) for m in plugin.models]
    target = plugin.targets({"x": x, "target": y}, epoch=1)
    assert not plugin.holding
    torch.testing.assert_close(target, 0.25 * y + 0.75 * plugin.teacher(x))
    assert all(_same(b, _params(m)) for b, m in zip(before, plugin.models))


@pytest.mark.parametrize(
    "epochs, plugin, match",
    [
        (1, {"schedule": "sequential"}, r"training.epochs \(1\) must be larger"),
        (4, {"schedule": "sequential", "member_epochs": 4}, "member_epochs < training.epochs"),
        (4, {"member_epochs": 2}, "member_epochs applies to schedule: sequential"),
        (4, {"schedule": "later"}, "schedule"),
    ],
)
def test_bad_schedules_are_one_line(tmp_path, epochs, plugin, match):
    from regrl.trainers.checks import ConfigError

    with pytest.raises(ConfigError, match=match):
        _seq_cfg(tmp_path, epochs=epochs, **plugin)
