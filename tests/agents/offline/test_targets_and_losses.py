"""Hand-computed checks of the loss-side plugins: ELR, PS-KD, MixUp, StableMax, Dispersive,
soft orthogonality, self-distillation targets, the weight compander and MSBReg."""

import math

import numpy as np
import pytest
import torch

from regrl.agents.offline import (
    brownian_loss,
    compander,
    compander_inverse,
    dispersive_loss,
    elr_penalty,
    elr_update_targets,
    get_plugin,
    mixup,
    multiview_centroid_loss,
    pskd_alpha,
    pskd_targets,
    sample_mixup_lambda,
    singular_value_loss,
    soft_orthogonality,
    stablemax,
    stablemax_cross_entropy,
    weighted_distillation_targets,
)
from regrl.agents.offline.base import TaskInfo
from regrl.agents.offline.self_distill import round_of_epoch

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


# ---- ELR ------------------------------------------------------------------------------------
PROBS = [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]


def test_elr_target_update_two_samples():
    new = elr_update_targets(torch.zeros(2, 3, dtype=D), t(PROBS), beta=0.7)
    torch.testing.assert_close(new, t([[0.15, 0.09, 0.06], [0.03, 0.03, 0.24]]))
    again = elr_update_targets(new, t(PROBS), beta=0.7)  # 0.7 * 0.3p + 0.3p = 0.51p
    torch.testing.assert_close(again, 0.51 * t(PROBS))


def test_elr_target_update_clamps_and_renormalises():
    new = elr_update_targets(torch.zeros(1, 3, dtype=D), t([[1.0, 0.0, 0.0]]), beta=0.0)
    torch.testing.assert_close(new, t([[0.9999, 1e-4, 1e-4]]) / 1.0001)


def test_elr_penalty_value_and_gradient():
    targets = t([[0.15, 0.09, 0.06], [0.03, 0.03, 0.24]])
    probs = t(PROBS).requires_grad_(True)
    loss, m = elr_penalty(probs, targets, lam=3.0)
    # <t, p> = 0.114 and 0.198
    expected = 3.0 * (math.log(1 - 0.114) + math.log(1 - 0.198)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert m["agreement"].item() == pytest.approx((0.114 + 0.198) / 2, abs=1e-12)
    loss.backward()
    # d/dp_ic of lam * mean_i log(1 - <t_i, p_i>) = -lam / B * t_ic / (1 - <t_i, p_i>)
    assert probs.grad[0, 0].item() == pytest.approx(-1.5 * 0.15 / 0.886, abs=1e-12)
    assert probs.grad[1, 2].item() == pytest.approx(-1.5 * 0.24 / 0.802, abs=1e-12)


def test_elr_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        elr_update_targets(torch.zeros(1, 2), torch.ones(1, 2) / 2, beta=1.0)


def test_elr_plugin_buffer_follows_sample_index():
    plugin = get_plugin("elr")(
        get_plugin("elr").Params(beta=0.5, lam=1.0), TaskInfo("classification", 4, 2, 3, 0)
    )
    logits = torch.log(torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
    plugin.observe({"idx": torch.tensor([3, 1])}, {"out": logits}, 0)
    torch.testing.assert_close(
        plugin.t, torch.tensor([[0, 0], [0.25, 0.25], [0, 0], [0.375, 0.125]])
    )
    state = plugin.state_dict()
    plugin.t.zero_()
    plugin.load_state_dict(state)
    assert plugin.t[3, 0].item() == pytest.approx(0.375)


# ---- PS-KD ----------------------------------------------------------------------------------
def test_pskd_alpha_schedule():
    assert pskd_alpha(0, 0.8, 10) == pytest.approx(0.08)
    assert pskd_alpha(4, 0.8, 10) == pytest.approx(0.4)
    assert pskd_alpha(9, 0.8, 10) == pytest.approx(0.8)
    assert pskd_alpha(20, 0.8, 10) == pytest.approx(0.8)  # capped after T_end


def test_pskd_targets_at_epoch_t():
    out = pskd_targets(t([[0, 1, 0]]), t([[0.2, 0.5, 0.3]]), pskd_alpha(4, 0.8, 10))
    torch.testing.assert_close(out, t([[0.08, 0.8, 0.12]]))


def test_pskd_plugin_uses_label_first_then_previous_epoch_prediction():
    cls = get_plugin("pskd")
    plugin = cls(cls.Params(alpha_T=0.8), TaskInfo("classification", 3, 2, 4, 0))
    batch = {"idx": torch.tensor([2]), "target": torch.tensor([[1.0, 0.0]])}
    torch.testing.assert_close(plugin.targets(batch, 0), torch.tensor([[1.0, 0.0]]))
    plugin.observe(batch, {"out": torch.log(torch.tensor([[0.6, 0.4]]))}, 0)
    # epoch 1: alpha = 0.8 * 2 / 4 = 0.4 -> 0.6 * [1, 0] + 0.4 * [0.6, 0.4]
    torch.testing.assert_close(plugin.targets(batch, 1), torch.tensor([[0.84, 0.16]]))


# ---- MixUp ----------------------------------------------------------------------------------
def test_mixup_fixed_lambda():
    x, y = t([[0, 0], [2, 4]]), t([[1, 0], [0, 1]])
    xm, ym = mixup(x, y, 0.25, torch.tensor([1, 0]))
    torch.testing.assert_close(xm, t([[1.5, 3.0], [0.5, 1.0]]))
    torch.testing.assert_close(ym, t([[0.25, 0.75], [0.75, 0.25]]))


def test_mixup_lambda_distribution():
    rng = np.random.default_rng(0)
    assert sample_mixup_lambda(0.0, rng) == 1.0
    lams = np.array([sample_mixup_lambda(0.2, rng) for _ in range(4000)])
    assert abs(lams.mean() - 0.5) < 0.03  # Beta(a, a) is symmetric
    assert ((lams < 0.1) | (lams > 0.9)).mean() > 0.5  # and U-shaped for a < 1
    with pytest.raises(ValueError, match="lam"):
        mixup(t([[0.0]]), t([[1.0]]), 1.5, torch.tensor([0]))


# ---- StableMax --------------------------------------------------------------------------------
def test_stablemax_three_logits():
    probs = stablemax(t([1.0, 0.0, -1.0]))  # s = [2, 1, 1/2] -> / 3.5
    torch.testing.assert_close(probs, t([4 / 7, 2 / 7, 1 / 7]))
    loss, m = stablemax_cross_entropy(t([[1.0, 0.0, -1.0]], torch.float32), torch.tensor([0]))
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(math.log(7 / 4), abs=1e-12)
    assert m["prob_true"].item() == pytest.approx(4 / 7)


def test_stablemax_soft_targets_and_no_collapse():
    soft, _ = stablemax_cross_entropy(t([[1.0, 0.0, -1.0]]), t([[0.5, 0.5, 0.0]]))
    assert soft.item() == pytest.approx(-0.5 * math.log(4 / 7) - 0.5 * math.log(2 / 7))
    big = t([[1000.0, 0.0]], torch.float32)  # softmax gives p_1 = 0 exactly here
    assert torch.softmax(big, -1)[0, 1].item() == 0.0
    loss, _ = stablemax_cross_entropy(big, torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(1002.0), abs=1e-9)


# ---- Dispersive -------------------------------------------------------------------------------
def test_dispersive_three_points():
    z = t([[0, 0], [1, 0], [0, 2]])  # ||.||^2 / D = 0.5, 2.0, 2.5; / tau = 1, 4, 5
    loss, m = dispersive_loss(z, tau=0.5)
    expected = math.log((3 + 2 * (math.exp(-1) + math.exp(-4) + math.exp(-5))) / 9)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert m["mean_sq_dist"].item() == pytest.approx(2 * (0.5 + 2.0 + 2.5) / 9)


def test_dispersive_gradient_pushes_points_apart():
    z = t([[0, 0], [1, 0]]).requires_grad_(True)
    dispersive_loss(z, tau=1.0)[0].backward()
    assert z.grad[0, 0] > 0 and z.grad[1, 0] < 0  # descent moves them apart
    assert torch.isfinite(z.grad).all()


# ---- soft orthogonality -----------------------------------------------------------------------
def test_soft_orthogonality_2x2():
    assert soft_orthogonality(t([[1, 1], [0, 1]])).item() == pytest.approx(3.0)  # [[1,1],[1,0]]
    assert soft_orthogonality(t([[0, 1], [-1, 0]])).item() == 0.0
    # 3 x 2: the 2 x 2 Gram W^T W = [[2, 0], [0, 1]] -> ||.-I||^2 = 1
    assert soft_orthogonality(t([[1, 0], [1, 0], [0, 1]])).item() == pytest.approx(1.0)


# ---- self-distillation ------------------------------------------------------------------------
def test_weighted_distillation_targets_and_rounds():
    out = weighted_distillation_targets(t([[0, 1]]), t([[0.6, 0.4]]), alpha=0.3)
    torch.testing.assert_close(out, t([[0.42, 0.58]]))
    assert [round_of_epoch(e, 10, 3) for e in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]


# ---- weight compander -------------------------------------------------------------------------
def test_compander_formula_and_inverse():
    w = t([-1.0, 0.0, 0.25, 3.0])
    f = compander(w, 0.5, 1.0)  # sign(w) ((|w| + 1)^0.5 - 1)
    torch.testing.assert_close(f, t([-(math.sqrt(2) - 1), 0.0, math.sqrt(1.25) - 1, 1.0]))
    torch.testing.assert_close(compander_inverse(f, 0.5, 1.0), w)
    # slope at 0 is alpha * beta^(alpha - 1): 0.5 / sqrt(0.01) = 5 -> small weights amplified
    assert compander(t([1e-6]), 0.5, 0.01).item() == pytest.approx(5e-6, rel=1e-4)


def test_compander_plugin_keeps_initial_function():
    from regrl.agents.models import MLP

    torch.manual_seed(0)
    model, x = MLP(3, 2, (4,)), torch.randn(5, 3)
    before = model(x)["out"]
    cls = get_plugin("compander")
    cls(cls.Params(alpha=0.5, beta=0.1), TaskInfo("classification", 5, 2, 1, 0)).wrap_model(model)
    torch.testing.assert_close(model(x)["out"], before, atol=1e-5, rtol=1e-5)
    raw = model.head.parametrizations.weight.original
    torch.testing.assert_close(model.head.weight, compander(raw, 0.5, 0.1))


# ---- MSBReg -----------------------------------------------------------------------------------
def test_msbreg_parts_on_tiny_matrices():
    views = t([[[1, 0]], [[0, 1]]])  # V=2, B=1, D=2; the centroid direction is (1, 1)/sqrt 2
    assert multiview_centroid_loss(views, views).item() == pytest.approx(2 - math.sqrt(2))
    assert singular_value_loss(t([[2, 0], [0, 3]])).item() == pytest.approx(0.0, abs=1e-12)
    assert singular_value_loss(t([[1, 0], [5, 0]])).item() == pytest.approx(1.0)  # s = [sqrt2, 0]
    z = t([[3, 4]]).requires_grad_(True)
    br = brownian_loss(z, t([[1, 2]]))
    assert br.item() == pytest.approx(0.6 + 1.6)
    br.backward()  # d<z/|z|, xi>/dz = (xi - (z^.xi) z^) / |z|
    torch.testing.assert_close(z.grad, (t([[1, 2]]) - 2.2 * t([[0.6, 0.8]])) / 5)
