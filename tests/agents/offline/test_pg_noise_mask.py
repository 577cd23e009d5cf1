"""Policy-gradient noise mask: hand-computed noise, Beta log-probability, REINFORCE surrogate
and baseline, and the plugin's two hooks (noised training inputs; a policy step on the
tuning split's loss improvement)."""

import math

import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import (
    TaskInfo,
    apply_noise_mask,
    get_plugin,
    mask_log_prob,
    reinforce_loss,
    update_baseline,
)
from regrl.agents.offline.pg_noise_mask import beta_concentrations
from regrl.trainers.offline import offline_config_from_dict, train_offline

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def test_noise_mask_scales_the_noise_per_feature():
    out = apply_noise_mask(t([[1.0, 2.0]]), t([[0.5, 0.0]]), t([[2.0, 3.0]]), strength=0.3)
    torch.testing.assert_close(out, t([[1.3, 2.0]]))


def test_beta_log_prob_by_hand():
    # Beta(2, 1) has density 2m; Beta(1, 1) is uniform (density 1)
    lp = mask_log_prob(t([[0.25, 0.7]]), t([[2.0, 1.0]]), t([[1.0, 1.0]]))
    torch.testing.assert_close(lp, t([math.log(0.5)]))


def test_concentrations_are_above_one():
    alpha, beta = beta_concentrations(t([[0.0, -50.0, 0.0, 3.0]]))
    torch.testing.assert_close(alpha, t([[1.0 + math.log(2.0), 1.0]]))
    torch.testing.assert_close(beta, t([[1.0 + math.log(2.0), 1.0 + math.log1p(math.exp(3.0))]]))


def test_reinforce_surrogate_and_baseline():
    lp = t([-1.0, -3.0]).requires_grad_(True)
    loss = reinforce_loss(lp, reward=0.5, baseline=0.2)
    assert loss.item() == pytest.approx(-(0.3) * -2.0)
    loss.backward()
    torch.testing.assert_close(lp.grad, t([-0.15, -0.15]))  # descent raises log-probs when r > b
    assert update_baseline(0.2, 0.5, momentum=0.9) == pytest.approx(0.23)


def _plugin(**params):
    cls = get_plugin("pg_noise_mask")
    plugin = cls(cls.Params(**params), TaskInfo("classification", 10, 3, 2, 0, in_dim=4))
    torch.manual_seed(0)
    model = MLP(4, 3, (8,))
    plugin.setup(model, None, None)
    return plugin, model


def test_training_inputs_are_noised_by_the_sampled_mask():
    plugin, _ = _plugin(strength=0.3)
    x = torch.rand(6, 4)
    torch.manual_seed(1)
    out = plugin.transform_batch({"x": x}, epoch=0)["x"]
    torch.manual_seed(1)
    with torch.no_grad():
        mask = torch.distributions.Beta(*plugin.policy(x)).sample()
    torch.testing.assert_close(out, x + 0.3 * mask * torch.randn_like(x))
    assert not torch.equal(out, x)
    torch.testing.assert_close(plugin.pending["mask"], mask)


@pytest.mark.parametrize("helps", [True, False])
def test_policy_step_reinforces_masks_that_helped_and_discourages_the_others(helps):
    plugin, model = _plugin(policy_lr=0.01)
    x = torch.rand(6, 4)
    plugin.transform_batch({"x": x}, epoch=0)
    mask = plugin.pending["mask"]
    with torch.no_grad():  # a stand-in for the training step: it moved the classifier
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    val = {"x": torch.rand(8, 4), "target": torch.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]}
    plugin.baseline = -100.0 if helps else 100.0  # the advantage's sign is set by the baseline
    before_lp = mask_log_prob(mask, *plugin.policy(x)).mean().item()
    metrics = plugin.validation_step(model, val, epoch=0)
    after_lp = mask_log_prob(mask, *plugin.policy(x)).mean().item()
    assert (after_lp > before_lp) == helps
    assert (metrics["advantage"].item() > 0) == helps
    assert plugin.pending == {}


def test_reward_is_the_tuning_loss_improvement_of_the_step():
    plugin, model = _plugin()
    x = torch.rand(6, 4)
    val = {"x": torch.rand(8, 4), "target": torch.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]}

    def loss():
        with torch.no_grad():
            return -(val["target"] * torch.log_softmax(model(val["x"])["out"], -1)).sum(-1).mean()

    plugin.transform_batch({"x": x}, epoch=0)
    l_before = loss()
    with torch.no_grad():
        model.head.bias.add_(torch.tensor([1.0, 0.0, -1.0]))
    l_after = loss()
    metrics = plugin.validation_step(model, val, epoch=0)
    assert metrics["reward"].item() == pytest.approx((l_before - l_after).item(), abs=1e-6)


def test_untrained_policy_ablation_never_steps():
    plugin, model = _plugin(train_policy=False)
    weights = [p.clone() for p in plugin.policy.parameters()]
    plugin.transform_batch({"x": torch.rand(6, 4)}, epoch=0)
    assert plugin.validation_step(model, {"x": torch.rand(2, 4)}, epoch=0) == {}
    assert all(torch.equal(a, b) for a, b in zip(weights, plugin.policy.parameters()))


def test_learner_steps_the_policy(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((200, 5)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    raw = {
        "kind": "offline",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "d.npz"), "val_fraction": 0.2, "tune_fraction": 0.2},
        "model": {"hidden": [8]},
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.01},
        "plugins": [{"name": "pg_noise_mask", "policy_lr": 0.01}],
        "checkpoint": {"every": 2},
    }
    result = train_offline(offline_config_from_dict(raw), progress=False)
    m = result.metrics
    assert {"plugin/pg_noise_mask/reward", "plugin/pg_noise_mask/mask_mean"} <= set(m)
    state = torch.load(
        next(result.run_dir.glob("checkpoints/*/plugins_rank0.pt")), weights_only=False
    )["plugins"]["pg_noise_mask"]
    assert state["baseline"] != 0.0  # the reward baseline moved: the policy was stepped
