"""Fire Together Wire Together: hand-computed mass targets, FLOPs and head loss; the masked
network (decoupled heads, pruned units are zero) and the plugin through the learner."""

import math

import numpy as np
import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import (
    TaskInfo,
    binary_mask,
    get_plugin,
    head_loss,
    masked_flops,
    mass_targets,
)
from regrl.trainers.offline import offline_config_from_dict, train_offline

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


@pytest.mark.parametrize(
    "acts, mass, keep",
    [
        ([[4.0, 3.0, 2.0, 1.0]], 0.7, [[1, 1, 0, 0]]),  # shares .4 .3 .2 .1, cumsum .4 .7 .9 1
        ([[4.0, 3.0, 2.0, 1.0]], 0.9, [[1, 1, 1, 0]]),
        ([[1.0, -4.0, 2.0, 3.0]], 0.7, [[0, 1, 0, 1]]),  # magnitudes, in sorted order
        ([[9.0, 1.0]], 0.7, [[0, 0]]),  # the official rule: the crossing unit is not kept
        ([[0.0, 0.0]], 0.9, [[0, 0]]),  # a dead layer keeps nothing
        ([[2.0, 0.0, 2.0]], 1.0, [[1, 0, 1]]),  # mass 1 drops exactly the silent units
    ],
)
def test_mass_targets_by_hand(acts, mass, keep):
    torch.testing.assert_close(mass_targets(t(acts), mass), t(keep))


def test_mass_out_of_range():
    with pytest.raises(ValueError, match="mass must be in"):
        mass_targets(t([[1.0]]), 0.0)


def test_flops_head_loss_and_mask():
    assert masked_flops([64, 10, 5, 10]) == 64 * 10 + 10 * 5 + 5 * 10
    torch.testing.assert_close(masked_flops([t([4.0, 4.0]), t([8.0, 7.0]), t([3.0, 3.0])]),
                               t([56.0, 49.0]))  # fmt: skip
    assert head_loss(t([[0.0, 0.0]]), t([[1.0, 0.0]])).item() == pytest.approx(math.log(2))
    torch.testing.assert_close(binary_mask(t([[-1.0, 0.0, 2.0]])), t([[0.0, 0.0, 1.0]]))


def _model(mass=0.9):
    torch.manual_seed(0)
    mlp = MLP(4, 3, (8, 8))
    plugin = get_plugin("ftwt")(
        get_plugin("ftwt").Params(mass=mass), TaskInfo("classification", 10, 3, 2, 0)
    )
    return plugin, mlp, plugin.wrap_model(mlp)


def test_heads_start_by_keeping_everything_so_the_net_is_the_mlp():
    _, mlp, model = _model()
    x = torch.randn(5, 4)
    out = model(x)
    torch.testing.assert_close(out["out"], mlp(x)["out"])
    torch.testing.assert_close(out["ftwt_flops"], torch.full((5,), 4.0 * 8 + 8 * 8 + 8 * 3))


def test_a_pruned_unit_is_zero_and_saves_its_flops():
    _, _, model = _model()
    with torch.no_grad():
        model.heads[0].bias[2] = -10.0
    out = model(torch.randn(5, 4))
    assert torch.all(out["features"][:, 2] == 0)
    torch.testing.assert_close(out["ftwt_flops"], torch.full((5,), 4.0 * 7 + 7 * 8 + 8 * 3))


def test_heads_and_trunk_are_trained_by_separate_losses():
    plugin, _, model = _model()
    with torch.no_grad():  # heads start at zero weights; give them some to pass gradients
        for h in model.heads:
            h.weight.normal_()
    out = model(torch.randn(5, 4))
    out["out"].sum().backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in model.heads.parameters())
    model.zero_grad()
    loss, metrics = plugin.extra_loss(out, {}, model, 0)
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.trunk.parameters())
    assert model.heads[0].weight.grad.abs().sum() > 0
    assert metrics["target_kept"].item() == pytest.approx(out["ftwt_targets"].mean().item())


def test_learner_trains_the_heads_and_reports_kept_flops(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 6))
    y = rng.integers(0, 3, 240)
    np.savez(tmp_path / "b.npz", x=(centers[y] + rng.normal(size=(240, 6))).astype(np.float32), y=y)
    raw = {
        "kind": "offline",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "b.npz"), "val_fraction": 0.25},
        "model": {"hidden": [32, 32]},
        "training": {"epochs": 8, "batch_size": 32, "lr": 0.01},
        "plugins": [{"name": "ftwt", "mass": 0.8}],
    }
    m = train_offline(offline_config_from_dict(raw), progress=False).metrics
    assert m["val/accuracy"] > 0.6, m
    # the heads learned to prune (they start keeping every unit: kept_flops would stay 1)
    assert m["plugin/ftwt/kept_flops"] < 0.8, m
    assert m["plugin/ftwt/mask_accuracy"] > 0.8, m
