"""Hand-computed checks of the PPO / clip-higher / dual-clip loss and of the aggregation modes."""

import math

import pytest
import torch

import regrl.agents.objectives as objectives
from regrl.agents.objectives import aggregate, policy_loss
from regrl.agents.registry import UnknownNameError

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


# ratios 0.5, 1.0, 1.5, 5.0 with A = -1, +1, +2, -1 and eps = 0.2 (clip range [0.8, 1.2]):
#   r=0.5 A=-1: pg1 = 0.5,  pg2 = 0.8  -> 0.8  (clipped)
#   r=1.0 A=+1: pg1 = -1,   pg2 = -1   -> -1
#   r=1.5 A=+2: pg1 = -3,   pg2 = -2.4 -> -2.4 (clipped)
#   r=5.0 A=-1: pg1 = 5,    pg2 = 1.2  -> 5;   dual clip c=3: min(5, 3) = 3
RATIOS = [0.5, 1.0, 1.5, 5.0]
ADV = [-1.0, 1.0, 2.0, -1.0]
APPROX_KL = -math.log(0.5 * 1.0 * 1.5 * 5.0) / 4  # mean(-log ratio) = -log(3.75)/4


def _inputs():
    old_logp = t([-1.0, -2.0, -0.5, -3.0])
    logp = (old_logp + torch.log(t(RATIOS))).requires_grad_(True)
    return logp, old_logp, t(ADV)


def test_hand_example_no_dual_clip():
    logp, old_logp, adv = _inputs()
    loss, m = policy_loss(logp, old_logp, adv)
    assert loss.item() == pytest.approx((0.8 - 1.0 - 2.4 + 5.0) / 4, abs=1e-12)  # 0.6
    assert m["clip_frac"].item() == pytest.approx(0.5)
    assert m["dual_clip_frac"].item() == 0.0
    assert m["approx_kl"].item() == pytest.approx(APPROX_KL, abs=1e-12)
    loss.backward()
    # d/dlogp of pg1 = -A*ratio is -A*ratio/4 where pg1 is active; clipped elements have 0
    torch.testing.assert_close(logp.grad, t([0.0, -0.25, 0.0, 1.25]), rtol=0, atol=1e-12)


def test_hand_example_dual_clip_binds():
    logp, old_logp, adv = _inputs()
    loss, m = policy_loss(logp, old_logp, adv, dual_clip=3.0)
    assert loss.item() == pytest.approx((0.8 - 1.0 - 2.4 + 3.0) / 4, abs=1e-12)  # 0.1
    assert m["dual_clip_frac"].item() == pytest.approx(0.25)
    assert m["clip_frac"].item() == pytest.approx(0.5)
    loss.backward()
    torch.testing.assert_close(logp.grad, t([0.0, -0.25, 0.0, 0.0]), rtol=0, atol=1e-12)


def test_clip_higher_dapo():
    logp, old_logp, adv = _inputs()
    loss, _ = policy_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28)
    # only r=1.5 A=+2 changes: pg2 = -2*1.28 = -2.56
    assert loss.item() == pytest.approx((0.8 - 1.0 - 2.56 + 5.0) / 4, abs=1e-12)  # 0.56


def test_matches_rift_min_max_form_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    logp, old_logp = torch.randn(64, generator=g, dtype=D), torch.randn(64, generator=g, dtype=D)
    adv = torch.randn(64, generator=g, dtype=D)
    loss, _ = policy_loss(logp, old_logp, adv, dual_clip=3.0)
    rho = torch.exp(logp - old_logp)
    m = torch.minimum(adv * rho, adv * rho.clamp(0.8, 1.2))
    obj = torch.where(adv < 0, torch.maximum(m, 3.0 * adv), m)
    assert loss.item() == pytest.approx(-obj.mean().item(), abs=1e-12)


def test_2d_with_broadcast_advantages_and_each_agg():
    old_logp = t([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]])
    logp = old_logp.clone()  # ratio 1 -> per-token loss is -A
    adv = t([2.0, -1.0])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    expected = {
        "token-mean": (-2 - 2 + 1) / 3,
        "seq-mean-token-mean": (-2 + 1) / 2,
        "seq-mean-token-sum": (-4 + 1) / 2,
    }
    for agg, value in expected.items():
        loss, _ = policy_loss(logp, old_logp, adv, mask, agg=agg)
        assert loss.item() == pytest.approx(value, abs=1e-12), agg


def test_aggregate_ragged_2x3():
    L = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    M = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(L, M, "token-mean").item() == pytest.approx(7.0 / 3.0)
    assert aggregate(L, M, "seq-mean-token-mean").item() == pytest.approx((1.5 + 4.0) / 2)  # 2.75
    assert aggregate(L, M, "seq-mean-token-sum").item() == pytest.approx((3.0 + 4.0) / 2)  # 3.5
    assert aggregate(L, M.bool(), "token-mean").item() == pytest.approx(7.0 / 3.0)
    assert aggregate(L, None, "token-mean").item() == pytest.approx(3.5)


def test_aggregate_1d_elements_are_length_one_sequences():
    L, M = t([1.0, 2.0, 6.0]), t([1.0, 0.0, 1.0])
    assert aggregate(L, M, "token-mean").item() == pytest.approx(3.5)
    assert aggregate(L, M, "seq-mean-token-mean").item() == pytest.approx(7.0 / 3.0)
    assert aggregate(L, M, "seq-mean-token-sum").item() == pytest.approx(7.0 / 3.0)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_all_zero_mask_gives_zero_loss_and_finite_grads(agg):
    logp = t([[-1.0, -2.0], [-0.1, -5.0]]).requires_grad_(True)
    loss, m = policy_loss(
        logp,
        t([[-1.5, -1.0], [-3.0, -0.2]]),
        t([1.0, -2.0]),
        torch.zeros(2, 2),
        agg=agg,
        dual_clip=3.0,
    )
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(torch.isfinite(logp.grad)) and logp.grad.abs().sum().item() == 0.0
    assert all(v.item() == 0.0 for v in m.values())


def test_extreme_ratios_are_finite():
    old_logp = t([0.0, 0.0, 0.0, 0.0])
    logp = t([100.0, -100.0, 100.0, -100.0]).requires_grad_(True)
    loss, m = policy_loss(logp, old_logp, t([-1.0, 1.0, 1.0, -1.0]), dual_clip=3.0)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.all(torch.isfinite(logp.grad))
    # log ratio clamped to +-20: r=e^20, A=-1 -> dual clip 3; r=e^-20, A=+1 -> pg1=-e^-20 vs pg2=-0.8 -> -e^-20;
    # r=e^20, A=+1 -> -1.2; r=e^-20, A=-1 -> pg2 = 0.8
    assert loss.item() == pytest.approx((3.0 - math.exp(-20) - 1.2 + 0.8) / 4, abs=1e-12)
    assert m["approx_kl"].item() == pytest.approx(0.0)


def test_metrics_are_detached_scalars():
    logp, old_logp, adv = _inputs()
    _, m = policy_loss(logp, old_logp, adv, dual_clip=3.0)
    assert set(m) == {"clip_frac", "dual_clip_frac", "approx_kl"}
    for v in m.values():
        assert v.dim() == 0 and not v.requires_grad
        float(v)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dual_clip=1.0), "dual_clip"),
        (dict(dual_clip=0.5), "dual_clip"),
        (dict(clip_low=-0.1), "clip_low"),
        (dict(clip_low=0.0), "clip_low"),
        (dict(clip_high=0.0), "clip_high"),
        (dict(agg="mean"), "token-mean, seq-mean-token-mean, seq-mean-token-sum"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    logp, old_logp, adv = _inputs()
    with pytest.raises(ValueError, match=match):
        policy_loss(logp, old_logp, adv, **kwargs)


def test_bad_shapes_raise():
    logp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp, logp, torch.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        policy_loss(logp, logp, torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(logp, torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="valid"):
        aggregate(logp, None, "sum")


# ---- the objective registry (shared by every file of regrl.agents.objectives) ---------------------

PUBLIC = [
    "group_advantages",
    "gae",
    "policy_loss",
    "aggregate",
    "kl_penalty",
    "categorical_kl",
    "gaussian_kl",
    "demo_kl",
    "smooth_logits",
    "minp_proxy_logprob",
    "lp_reg_loss",
]


def test_every_public_function_is_registered_under_its_name():
    assert sorted(objectives.OBJECTIVES.names()) == sorted(PUBLIC)
    assert sorted(
        n for n in objectives.__all__ if n not in ("OBJECTIVES", "get_objective")
    ) == sorted(PUBLIC)
    for name in PUBLIC:
        assert objectives.get_objective(name) is getattr(objectives, name)
        assert name in objectives.OBJECTIVES
    assert all(entry.description for entry in objectives.OBJECTIVES)


def test_unknown_objective_lists_known_names():
    with pytest.raises(UnknownNameError) as err:
        objectives.get_objective("nope")
    msg = str(err.value)
    assert "nope" in msg and all(name in msg for name in PUBLIC)
    with pytest.raises(KeyError, match="Did you mean 'policy_loss'"):
        objectives.get_objective("policy_los")


def test_clip_low_one_switches_the_lower_clip_off():
    """Lp-Reg's recipe clip_ratio_low = 1.0: a ratio of 0.5 with A < 0 is no longer clipped."""
    logp, old_logp, adv = _inputs()
    loss, m = policy_loss(logp, old_logp, adv, clip_low=1.0, clip_high=0.2)
    assert loss.item() == pytest.approx((0.5 - 1.0 - 2.4 + 5.0) / 4, abs=1e-12)
    assert m["clip_frac"].item() == pytest.approx(0.25)  # only the r = 1.5, A > 0 element
