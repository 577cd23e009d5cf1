"""Hand-computed checks of the KL estimators, exact categorical/Gaussian KL and demo-KL."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from regrl.agents.objectives import categorical_kl, demo_kl, gaussian_kl, kl_penalty, smooth_logits

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def test_kl_estimators_at_specific_numbers():
    logp, ref = t([-1.0, -2.0, -0.5]), t([-2.0, -1.0, -0.5])
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), t([1.0, -1.0, 0.0]), rtol=0, atol=1e-15)
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), t([0.5, 0.5, 0.0]), rtol=0, atol=1e-15)
    # k3 = exp(d) - d - 1 with d = ref - logp: d=-1 -> e^-1; d=+1 -> e - 2; d=0 -> 0
    k3 = t([0.36787944117144233, 0.7182818284590451, 0.0])
    torch.testing.assert_close(kl_penalty(logp, ref, "k3"), k3, rtol=0, atol=1e-15)
    torch.testing.assert_close(kl_penalty(logp, ref, "low_var_kl"), k3, rtol=0, atol=1e-15)
    torch.testing.assert_close(kl_penalty(logp, ref, "mse"), t([0.5, 0.5, 0.0]), rtol=0, atol=1e-15)
    torch.testing.assert_close(kl_penalty(logp, ref, "kl"), t([1.0, -1.0, 0.0]), rtol=0, atol=1e-15)


def test_k3_clamps_and_stays_finite():
    logp = t([-100.0, 0.0, -3.0]).requires_grad_(True)
    ref = t([0.0, -100.0, 0.0])
    out = kl_penalty(logp, ref, "k3")
    # d = 100 -> clamped to 20 -> e^20 - 21 -> clamped to 10; d = -100 -> -20 -> e^-20 + 19 -> 10;
    # d = 3 -> e^3 - 4 = 16.0855 -> 10
    torch.testing.assert_close(out, t([10.0, 10.0, 10.0]), rtol=0, atol=1e-12)
    out.sum().backward()
    # saturated: both clamps cut the graph, so the gradient is exactly zero, not merely finite
    assert torch.equal(logp.grad, torch.zeros(3, dtype=D))
    # k1 and k2 are not clamped
    assert kl_penalty(t([-100.0]), t([0.0]), "k1").item() == -100.0
    assert kl_penalty(t([-100.0]), t([0.0]), "k2").item() == 5000.0


def test_k3_gradient_pushes_logp_toward_ref():
    logp = t([-2.0]).requires_grad_(True)
    kl_penalty(logp, t([-1.0]), "k3").sum().backward()
    # d/dlogp [e^(ref-logp) - (ref-logp) - 1] = 1 - e^(ref-logp) = 1 - e
    assert logp.grad.item() == pytest.approx(1.0 - math.e, abs=1e-12)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(t([0.0]), t([0.0]), "k4")
    with pytest.raises(ValueError, match="shape"):
        kl_penalty(t([0.0]), t([0.0, 1.0]), "k1")


def test_categorical_kl_hand_and_torch():
    logits_p = torch.log(t([[0.5, 0.5], [0.9, 0.1]]))
    logits_q = (
        torch.log(t([[0.25, 0.75], [0.9, 0.1]])) + 3.0
    )  # shift: logits need not be normalised
    kl = categorical_kl(logits_p, logits_q)
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    torch.testing.assert_close(kl, t([0.14384103622589045, 0.0]), rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 7, generator=g, dtype=D), torch.randn(5, 7, generator=g, dtype=D)
    ref = kl_divergence(Categorical(logits=a), Categorical(logits=b))
    torch.testing.assert_close(categorical_kl(a, b), ref, rtol=1e-12, atol=1e-12)


def test_categorical_kl_with_zero_probability_actions():
    ninf = -math.inf
    logits_p = t([[ninf, 0.0]])  # p = [0, 1]
    kl = categorical_kl(logits_p, t([[0.0, 0.0]]))
    assert kl.item() == pytest.approx(math.log(2.0), abs=1e-12)
    # both -inf in the same slot: 0 log 0 = 0, finite gradients
    lp = t([[ninf, 0.0, 0.0]]).requires_grad_(True)
    lq = t([[ninf, 0.0, math.log(3.0)]]).requires_grad_(True)
    kl = categorical_kl(lp, lq)
    # p = [0, .5, .5], q = [0, .25, .75]
    assert kl.item() == pytest.approx(0.5 * math.log(4.0 / 3.0), abs=1e-12)
    kl.sum().backward()
    assert torch.all(torch.isfinite(lp.grad)) and torch.all(torch.isfinite(lq.grad))


def test_gaussian_kl_hand_and_torch():
    # N(0, 1) || N(1, 2^2): log 2 + (1 + 1)/8 - 1/2
    kl = gaussian_kl(t([[0.0]]), t([[0.0]]), t([[1.0]]), torch.log(t([[2.0]])))
    assert kl.item() == pytest.approx(math.log(2.0) - 0.25, abs=1e-12)
    g = torch.Generator().manual_seed(2)
    mp, sp, mq, sq = (torch.randn(4, 3, generator=g, dtype=D) for _ in range(4))
    ref = kl_divergence(Independent(Normal(mp, sp.exp()), 1), Independent(Normal(mq, sq.exp()), 1))
    torch.testing.assert_close(gaussian_kl(mp, sp, mq, sq), ref, rtol=1e-12, atol=1e-12)


def test_demo_kl_categorical_detaches_bc():
    pol = torch.log(t([[0.5, 0.5]])).requires_grad_(True)
    bc = torch.log(t([[0.25, 0.75]])).requires_grad_(True)
    kl = demo_kl(pol, bc)
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(0.5 * math.log(4.0 / 3.0), abs=1e-12)
    kl.sum().backward()
    assert bc.grad is None and pol.grad is not None
    # gradient of KL(p||q) w.r.t. logits of p is p * (log p - log q - KL)
    p = t([0.5, 0.5])
    expected = p * (torch.log(p / t([0.25, 0.75])) - kl.detach())
    torch.testing.assert_close(pol.grad[0], expected, rtol=0, atol=1e-12)


def test_demo_kl_gaussian_layouts():
    mean_p, log_std_p = t([[0.0, 1.0]]), t([[0.0, 0.0]])
    mean_q, log_std_q = t([[1.0, 1.0]]), torch.log(t([[2.0, 1.0]]))
    expected = math.log(2.0) - 0.25  # dim 0 as above; dim 1 identical -> 0
    flat = demo_kl(
        torch.cat([mean_p, log_std_p], -1), torch.cat([mean_q, log_std_q], -1), dist="gaussian"
    )
    tup = demo_kl((mean_p, log_std_p), (mean_q, log_std_q), dist="gaussian")
    assert flat.item() == pytest.approx(expected, abs=1e-12)
    assert tup.item() == pytest.approx(expected, abs=1e-12)
    bc_mean = mean_q.clone().requires_grad_(True)
    assert not demo_kl((mean_p, log_std_p), (bc_mean, log_std_q), dist="gaussian").requires_grad


def test_demo_kl_bad_args():
    with pytest.raises(ValueError, match="categorical, gaussian"):
        demo_kl(t([[0.0]]), t([[0.0]]), dist="beta")
    with pytest.raises(ValueError, match="even"):
        demo_kl(t([[0.0, 1.0, 2.0]]), t([[0.0, 1.0, 2.0]]), dist="gaussian")


def test_smooth_logits_mixes_with_uniform_and_keeps_the_kl_finite():
    bc = torch.log(t([0.5, 0.5, 0.0]))  # pi_BC gives the third action no mass
    sm = smooth_logits(bc, 0.3)
    torch.testing.assert_close(
        sm.exp(), t([0.7 * 0.5 + 0.1, 0.7 * 0.5 + 0.1, 0.1]), rtol=0, atol=1e-15
    )
    policy = torch.log(t([0.2, 0.3, 0.5]))
    assert math.isinf(categorical_kl(policy, bc).item())
    expected = sum(p * math.log(p / q) for p, q in zip([0.2, 0.3, 0.5], [0.45, 0.45, 0.1]))
    assert categorical_kl(policy, sm).item() == pytest.approx(expected, abs=1e-12)
    torch.testing.assert_close(smooth_logits(bc, 0.0), torch.log_softmax(bc, -1))
    with pytest.raises(ValueError, match="lam"):
        smooth_logits(bc, 1.5)


def test_k3_gradient_in_expectation_is_the_forward_kl_gradient():
    """Documented in the kl / demo_kl terms: sum_a pi(a) d k3(a) / d theta, with k3 differentiated
    through log pi_theta only, equals d KL(pi_ref || pi_theta) / d theta, not d KL(pi_theta || pi_ref)."""
    theta = t([0.3, -1.0, 0.8, 0.1]).requires_grad_(True)
    ref = torch.log_softmax(t([1.0, 0.2, -0.5, 0.0]), -1)
    logp = torch.log_softmax(theta, -1)
    k3 = kl_penalty(logp, ref, "k3")
    (g_k3,) = torch.autograd.grad((logp.exp().detach() * k3).sum(), theta)
    (g_fwd,) = torch.autograd.grad(categorical_kl(ref, theta), theta)
    (g_rev,) = torch.autograd.grad(categorical_kl(theta, ref), theta)
    torch.testing.assert_close(g_k3, g_fwd, rtol=0, atol=1e-12)
    assert (g_k3 - g_rev).abs().max().item() > 1e-2
