"""Regularised mask tuning: the straight-through mask and gradient dropout by hand; the masked
network starts as the pre-trained one, keeps its weights frozen and learns only masks and the
output layer; linear probing; transfer from a pre-trained run through the learner."""

import numpy as np
import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import TaskInfo, get_plugin, gradient_dropout, ste_mask
from regrl.trainers.checkpoint import latest_checkpoint
from regrl.trainers.offline import LEARNER_FILE, offline_config_from_dict, train_offline

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def test_straight_through_mask():
    s = t([0.5, -0.2, 0.0, 3.0]).requires_grad_(True)
    m = ste_mask(s)
    torch.testing.assert_close(m, t([1.0, 0.0, 0.0, 1.0]))
    (m * t([1.0, 2.0, 3.0, 4.0])).sum().backward()
    torch.testing.assert_close(s.grad, t([1.0, 2.0, 3.0, 4.0]))  # identity backward


def test_gradient_dropout_by_hand():
    g = t([1.0, -2.0, 3.0, 4.0])
    torch.testing.assert_close(
        gradient_dropout(g, 0.5, t([0.1, 0.6, 0.5, 0.49])), t([0.0, -2.0, 3.0, 0.0])
    )
    with pytest.raises(ValueError, match="rate"):
        gradient_dropout(g, 1.0, g)


def _wrap(**params):
    cls = get_plugin("mask_tuning")
    plugin = cls(cls.Params(**params), TaskInfo("classification", 10, 3, 2, 0))
    torch.manual_seed(0)
    mlp = MLP(4, 3, (8, 8))
    return plugin, mlp, plugin.wrap_model(mlp)


def test_masked_network_starts_as_the_pretrained_one_and_trains_only_scores_and_head():
    plugin, mlp, model = _wrap()
    x = torch.randn(5, 4)
    torch.testing.assert_close(model(x)["out"], mlp(x)["out"])
    trainable = {n for n, p in model.named_parameters()}
    assert trainable == {"trunk.0.scores", "trunk.2.scores", "head.weight", "head.bias"}
    frozen = {
        k: v.clone() for k, v in model.state_dict().items() if "scores" not in k and "head" not in k
    }
    opt = torch.optim.SGD(model.parameters(), lr=10.0)
    model(x)["out"].pow(2).sum().backward()
    plugin.after_backward(model, {}, None)
    opt.step()
    for k, v in frozen.items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    assert not torch.equal(model(x)["out"], mlp(x)["out"])  # a large step flipped some masks


def test_gradient_dropout_hook_drops_about_q_of_the_score_gradients():
    plugin, _, model = _wrap(grad_dropout=0.5)
    model(torch.randn(64, 4))["out"].pow(2).sum().backward()
    torch.manual_seed(3)
    before = model.trunk[2].scores.grad.clone()
    plugin.after_backward(model, {}, None)
    after = model.trunk[2].scores.grad
    dropped = ((after == 0) & (before != 0)).float().sum() / (before != 0).float().sum()
    assert 0.3 < dropped.item() < 0.7
    assert torch.equal(after[after != 0], before[after != 0])  # the rest is unchanged


def test_linear_probing_mode_has_no_masks():
    _, mlp, model = _wrap(masks=False)
    assert {n for n, _ in model.named_parameters()} == {"head.weight", "head.bias"}
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x)["out"], mlp(x)["out"])


def test_transfer_through_the_learner_keeps_the_pretrained_weights(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(4, 6))
    y = rng.integers(0, 4, 300)
    x = (centers[y] + rng.normal(size=(300, 6))).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=x[y < 2], y=y[y < 2])  # pre-training task: classes 0, 1
    np.savez(tmp_path / "b.npz", x=x[y >= 2], y=y[y >= 2])  # downstream: classes 2, 3
    raw = {
        "kind": "offline",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "a.npz"), "val_fraction": 0.2},
        "model": {"hidden": [16], "out_dim": 4},
        "training": {"epochs": 3, "batch_size": 32, "lr": 0.01},
    }
    pre = train_offline(offline_config_from_dict(raw), progress=False).run_dir
    raw["data"]["path"] = str(tmp_path / "b.npz")
    raw["model"]["init_from"] = str(pre)
    raw["plugins"] = [{"name": "mask_tuning", "init_score": 0.005}]
    raw["training"]["epochs"] = 6
    result = train_offline(offline_config_from_dict(raw), progress=False)
    m = result.metrics
    assert 0.0 < m["plugin/mask_tuning/kept_weights"] < 1.0, m  # some masks were switched off
    after = torch.load(latest_checkpoint(result.run_dir) / LEARNER_FILE, weights_only=False)[
        "model"
    ]
    before = torch.load(latest_checkpoint(pre) / LEARNER_FILE, weights_only=False)["model"]
    torch.testing.assert_close(after["trunk.0.weight"], before["trunk.0.weight"], rtol=0, atol=0)
