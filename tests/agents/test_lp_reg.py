"""Hand-computed checks of the Lp-Reg min-p proxy, the token selection rule and the loss."""

import math

import pytest
import torch

from regrl.agents.objectives import lp_reg_loss, minp_proxy_logprob, policy_loss

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


# ---- min-p proxy ----------------------------------------------------------------------------

PROBS = [0.5, 0.3, 0.19, 0.01]  # kappa = 0.05 -> keep p >= 0.025: tokens 0, 1, 2 (sum 0.99)


def test_minp_hand_example():
    logits = torch.log(t([PROBS] * 4)) + 7.0  # softmax is shift invariant
    out = minp_proxy_logprob(logits, torch.tensor([0, 1, 2, 3]), kappa=0.05)
    expected = t(
        [
            math.log(0.5 / 0.99),
            math.log(0.3 / 0.99),
            math.log(0.19 / 0.99),
            -1e4 - 7.0 - math.log(0.99),
        ]
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-9)
    assert out[3].item() == pytest.approx(-10006.98995, abs=1e-4)


def test_minp_kappa_one_keeps_only_argmax_and_shapes():
    logits = torch.log(t([[PROBS, PROBS[::-1]]]))  # [1, 2, 4]
    out = minp_proxy_logprob(logits, torch.tensor([[0, 0]]), kappa=1.0)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == 0.0  # the argmax renormalised to probability 1
    assert out[0, 1].item() == pytest.approx(
        -1e4 - math.log(0.5), abs=1e-9
    )  # row 2 argmax is index 3


def test_minp_float32_filtered_action_is_finite_and_detached():
    logits = torch.tensor([[30.0, 0.0, -20.0]], requires_grad=True)
    out = minp_proxy_logprob(logits, torch.tensor([2]))
    assert torch.isfinite(out).all() and out.item() < -9000.0
    assert not out.requires_grad


@pytest.mark.parametrize("kappa", [0.0, -0.1, 1.5])
def test_minp_bad_kappa(kappa):
    with pytest.raises(ValueError, match="kappa"):
        minp_proxy_logprob(torch.zeros(2, 3), torch.tensor([0, 1]), kappa=kappa)


def test_minp_bad_actions():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        minp_proxy_logprob(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shaped"):
        minp_proxy_logprob(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


# ---- selection rule and loss --------------------------------------------------------------
# A = [-1, +2, -0.5] broadcast over T = 4; sequence 2 has only 2 valid tokens.
# Valid negative tokens (n_neg = 6), sorted by logp: (0,2) -5.0, (0,1) -3.0, (2,1) -2.5,
# (0,3) -2.0, (2,0) -0.2, (0,0) -0.1.
LOGP = [[-0.1, -3.0, -5.0, -2.0], [-7.0, -8.0, -0.5, -0.4], [-0.2, -2.5, -9.0, -0.3]]
PROXY = [
    [-0.05, -2.0, -1e4, -2.5],  # (0,0) below proxy but never a candidate; (0,2) min-p noise;
    [-1.0, -1.0, -0.1, -0.1],  # (0,3) candidate with logp > proxy; A > 0 row never selected
    [-0.1, -1.0, -1.0, -0.1],
]  # (2,2) lowest logp of all, but masked
ADV = [-1.0, 2.0, -0.5]
MASK = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
K3_01 = math.e - 2.0  # d = proxy - logp = 1
K3_21 = math.exp(1.5) - 2.5  # d = 1.5


def _run(rho, **kw):
    logp = t(LOGP).requires_grad_(True)
    loss, m = lp_reg_loss(
        logp, t(LOGP), t(PROXY), t(ADV), torch.tensor(MASK, dtype=torch.bool), rho=rho, **kw
    )
    return logp, loss, m


def test_selection_and_loss_hand_example():
    logp, loss, m = _run(rho=0.7)  # k = int(6 * 0.7) = 4 candidates -> (0,1) and (2,1) regularised
    assert m["reg_token_num"].item() == 2.0
    assert m["reg_token_frac"].item() == pytest.approx(0.2)
    assert m["kl_to_proxy"].item() == pytest.approx((K3_01 + K3_21) / 2, abs=1e-12)
    assert m["clip_frac"].item() == 0.0 and m["approx_kl"].item() == 0.0
    # ratio = 1: every valid token costs -A; the two regularised ones add k3 (beta = 1); 10 valid tokens
    assert loss.item() == pytest.approx((4.0 - 8.0 + 1.0 + K3_01 + K3_21) / 10, abs=1e-12)
    assert loss.item() == pytest.approx(-0.030002910120289, abs=1e-12)
    loss.backward()
    expected = t(
        [
            [0.1, (2.0 - math.e) / 10, 0.1, 0.1],
            [-0.2, -0.2, -0.2, -0.2],
            [0.05, (1.5 - math.exp(1.5)) / 10, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(logp.grad, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "rho, n_reg, kl_sum",
    [
        (0.1, 0, 0.0),  # k = max(1, int(0.6)) = 1: only the noise token (0,2), not regularised
        (0.35, 1, K3_01),  # k = 2: (0,2) noise, (0,1) regularised
        (0.5, 2, K3_01 + K3_21),  # k = 3: adds (2,1)
        # k = 6, every valid negative token: (2,0) -0.2 < -0.1 (d = 0.1) and (0,0) -0.1 < -0.05 (d = 0.05)
        # join; (0,3) stays above its proxy and (0,2) is noise
        (1.0, 4, K3_01 + K3_21 + (math.exp(0.1) - 1.1) + (math.exp(0.05) - 1.05)),
    ],
)
def test_selection_depends_on_k(rho, n_reg, kl_sum):
    _, loss, m = _run(rho=rho, beta=2.0)
    assert m["reg_token_num"].item() == n_reg
    assert loss.item() == pytest.approx((-3.0 + 2.0 * kl_sum) / 10, abs=1e-12)


def test_beta_zero_removes_the_clip_only():
    # beta = 0: regularised tokens keep the unclipped -A*ratio; with ratio 0.5 and A < 0 that differs
    logp, old = t([-3.0, -1.0]), t([-3.0 - math.log(0.5), -1.0])
    loss, m = lp_reg_loss(logp, old, t([-1.0, -5.0]), t([-1.0, -1.0]), None, rho=0.5, beta=0.0)
    # k = 1: token 0 (logp -3 < proxy -1) is regularised -> 0.5; token 1 ratio 1 -> 1.0
    assert m["reg_token_num"].item() == 1.0
    assert loss.item() == pytest.approx((0.5 + 1.0) / 2, abs=1e-12)
    loss_pg, _ = policy_loss(logp, old, t([-1.0, -1.0]))
    assert loss_pg.item() == pytest.approx((0.8 + 1.0) / 2, abs=1e-12)


def test_gradient_step_raises_protected_token_probability():
    a = 2
    theta = torch.log(t([0.6, 0.3, 0.01, 0.09])).requires_grad_(True)
    old_logp, proxy_logp, adv = (
        t([math.log(0.02)]),
        t([math.log(0.1)]),
        t([-1.0]),
    )  # ratio 0.5 < 1 - 0.2

    def logp_of(th):
        return torch.log_softmax(th, -1)[a].reshape(1)

    # the clipped surrogate alone gives no gradient here
    pg, _ = policy_loss(logp_of(theta), old_logp, adv)
    (g_pg,) = torch.autograd.grad(pg, theta)
    assert g_pg.abs().max().item() == 0.0
    # Lp-Reg (k = 1, applied): dL/dlogp = |A|*ratio + beta*(1 - pi_proxy/pi) = 0.5 + 1 - 10 = -8.5
    logp = logp_of(theta)
    loss, m = lp_reg_loss(logp, old_logp, proxy_logp, adv, None)
    assert m["reg_token_num"].item() == 1.0
    (g_logp,) = torch.autograd.grad(loss, logp, retain_graph=True)
    assert g_logp.item() == pytest.approx(-8.5, abs=1e-9)
    loss.backward()
    with torch.no_grad():
        new_logp = logp_of(theta - 0.1 * theta.grad)
    assert new_logp.item() > math.log(0.01) + 1e-3


def test_end_to_end_with_minp_proxy_noise_token_not_protected():
    old_logits = torch.log(t([[0.9, 0.095, 0.005], [0.6, 0.3, 0.1]]))
    actions = torch.tensor([2, 2])  # row 0: p=0.005 < 0.02*0.9 -> noise; row 1: kept (0.1 >= 0.012)
    proxy = minp_proxy_logprob(old_logits, actions, kappa=0.02)
    assert proxy[0].item() < -9000.0
    assert proxy[1].item() == pytest.approx(math.log(0.1), abs=1e-12)  # nothing filtered in row 1
    logp = t([math.log(0.004), math.log(0.05)])
    _, m = lp_reg_loss(logp, logp, proxy, t([-1.0, -1.0]), None, rho=1.0)
    assert m["reg_token_num"].item() == 1.0  # only row 1
    assert m["kl_to_proxy"].item() == pytest.approx(2.0 - math.log(2.0) - 1.0, abs=1e-12)


def test_all_zero_mask_and_extreme_ratios():
    logp = t([[-1.0, -2.0], [-3.0, -4.0]]).requires_grad_(True)
    loss, m = lp_reg_loss(
        logp, t([[0.0, 0.0], [0.0, 0.0]]), t([[0.0] * 2] * 2), t([-1.0, 1.0]), torch.zeros(2, 2)
    )
    assert (
        loss.item() == 0.0 and m["reg_token_num"].item() == 0.0 and m["kl_to_proxy"].item() == 0.0
    )
    loss.backward()
    assert torch.isfinite(logp.grad).all() and logp.grad.abs().sum().item() == 0.0

    logp = t([100.0, -100.0, -100.0]).requires_grad_(True)
    loss, _ = lp_reg_loss(
        logp, t([0.0, 0.0, 0.0]), t([0.0, 0.0, -1e4]), t([-1.0, -1.0, 1.0]), None, rho=1.0
    )
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()
    # log ratios clamp to +-20. token 0: A<0, ratio e^20 above the clip -> e^20; token 1: regularised,
    # -A*e^-20 + k3 (d = 100 -> clamped) = e^-20 + 10; token 2: A>0, max(-e^-20, -0.8) = -e^-20
    assert loss.item() == pytest.approx((math.exp(20) + 10.0) / 3, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rho=0.0), "rho"),
        (dict(rho=1.5), "rho"),
        (dict(beta=-1.0), "beta"),
        (dict(clip_low=0.0), "clip_low"),
        (dict(agg="sum"), "token-mean"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    x = t([-1.0, -2.0])
    with pytest.raises(ValueError, match=match):
        lp_reg_loss(x, x, x, t([-1.0, 1.0]), None, **kwargs)


def test_proxy_shape_mismatch_raises():
    x = t([-1.0, -2.0])
    with pytest.raises(ValueError, match="proxy_logp"):
        lp_reg_loss(x, x, t([-1.0]), t([-1.0, 1.0]), None)


def test_selection_ranks_by_current_not_behaviour_probability():
    """Two negative tokens whose order under pi_theta and pi_old is reversed; rho = 0.5 -> k = 1.
    The official code ranks by the current log-prob: token 0 (logp -3) is the candidate."""
    logp, old = t([-3.0, -1.0]), t([-1.0, -3.0])
    _, m = lp_reg_loss(logp, old, t([-0.5, -0.5]), t([-1.0, -1.0]), None, rho=0.5)
    assert m["reg_token_num"].item() == 1.0
    # k3 at token 0 (d = -0.5 + 3 = 2.5); ranking by pi_old would pick token 1 (d = 0.5)
    assert m["kl_to_proxy"].item() == pytest.approx(math.exp(2.5) - 3.5, abs=1e-12)


def test_saturated_k3_leaves_only_the_unclipped_pg_gradient():
    """Once pi_proxy / pi > ~13.6 the k3 output clamp (10) binds and its gradient is exactly 0;
    a selected token has no lower clip either, so with A < 0 only -A * ratio acts and it
    keeps pushing pi down (docs/methods.md#lp-reg-loss; documented in docs/rlvr.md)."""
    ratio = 0.5  # below 1 - clip_low: clipped for PPO
    logp = t([math.log(0.001)]).requires_grad_(True)
    old = logp.detach() - math.log(ratio)
    loss, m = lp_reg_loss(
        logp, old, t([math.log(0.02)]), t([-1.0]), None, rho=1.0
    )  # pi_proxy / pi = 20
    assert m["reg_token_num"].item() == 1.0 and m["kl_to_proxy"].item() == 10.0
    (g,) = torch.autograd.grad(loss, logp)
    assert g.item() == pytest.approx(ratio, abs=1e-12)  # d(-A * ratio)/dlogp with A = -1; k3 adds 0
    below = t([math.log(0.001)]).requires_grad_(
        True
    )  # pi_proxy / pi = 13 < 13.6: k3 still pulls up
    loss, _ = lp_reg_loss(below, below.detach(), t([math.log(0.013)]), t([-1.0]), None, rho=1.0)
    (g,) = torch.autograd.grad(loss, below)
    assert g.item() == pytest.approx(
        1.0 + (1.0 - 13.0), abs=1e-9
    )  # -A * ratio + (1 - pi_proxy / pi)


def test_recipe_clips_low_1_high_9_leave_ratios_up_to_10_unclipped():
    """The official recipe (clip_ratio_low 1.0, high 9.0): no lower clip, upper clip at 10."""
    logp, old = t([math.log(0.05), math.log(12.0)]), t([0.0, 0.0])  # ratios 0.05 and 12
    loss, m = lp_reg_loss(
        logp, old, t([-1e4, -1e4]), t([-1.0, 1.0]), None, clip_low=1.0, clip_high=9.0
    )
    assert m["reg_token_num"].item() == 0.0  # proxy = noise: nothing selected
    assert loss.item() == pytest.approx(
        (0.05 - 10.0) / 2, abs=1e-12
    )  # DAPO clips would give (0.8 - 1.28) / 2


def test_minp_filters_raw_logits_before_the_temperature():
    """Official order at T = 0.6: p = (0.8, 0.15, 0.04, 0.01) at T = 1 and kappa = 0.02 keep
    p / p_max >= 0.02: tokens 0, 1, 2 (0.04 / 0.8 = 0.05). Filtering z / T instead would keep
    p / p_max >= 0.02 ** 0.6 = 0.096 and drop token 2."""
    z = torch.log(t([0.8, 0.15, 0.04, 0.01]))
    T = 0.6
    actions = torch.tensor([0, 1, 2, 3])
    out = minp_proxy_logprob(z.expand(4, 4), actions, kappa=0.02, temperature=T)
    kept = torch.log_softmax(z[:3] / T, -1)  # renormalised over {0, 1, 2} at T
    torch.testing.assert_close(out[:3], kept, rtol=0, atol=1e-12)
    assert out[3].item() < -1000  # 0.01 / 0.8 < 0.02: noise
    assert (
        minp_proxy_logprob(z.expand(4, 4) / T, actions, kappa=0.02)[2].item() < -1000
    )  # the other order
    with pytest.raises(ValueError, match="temperature"):
        minp_proxy_logprob(z, torch.tensor(0), kappa=0.02, temperature=0.0)
