"""Objective terms as the learner sums them: the default terms equal RLlib's stock PPO loss
on the same batch, and each extra term adds exactly its configured quantity."""
import pytest
import torch

from trainers.config import ExperimentConfig, TermSpec
from trainers.rllib.terms import (DemoKLParams, EntropyParams, LossContext, LpRegParams,
                                  PolicyParams, ValueParams, total_loss)


def context(dist="categorical", seed=0, n=64, n_actions=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_actions, generator=g, requires_grad=True)
    old_logits = logits.detach() + 0.3 * torch.randn(n, n_actions, generator=g)
    actions = torch.randint(0, n_actions, (n,), generator=g)
    cur = torch.distributions.Categorical(logits=logits)
    old = torch.distributions.Categorical(logits=old_logits)
    mask = torch.rand(n, generator=g) > 0.1
    return LossContext(
        dist_inputs=logits, old_dist_inputs=old_logits, actions=actions,
        logp=cur.log_prob(actions), old_logp=old.log_prob(actions),
        advantages=torch.randn(n, generator=g), entropy=cur.entropy(), mask=mask, dist=dist,
        values=torch.randn(n, generator=g) * 5, value_targets=torch.randn(n, generator=g) * 5,
        ref_dist_inputs=torch.randn(n, n_actions, generator=g))


def stock_ppo_loss(ctx, clip=0.2, vf_coeff=0.5, vf_clip=10.0, ent_coeff=0.01):
    """RLlib 2.60 PPOTorchLearner.compute_loss_for_module, without the KL term."""
    m = ctx.mask
    ratio = torch.exp(ctx.logp - ctx.old_logp)
    surrogate = torch.min(ctx.advantages * ratio,
                          ctx.advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
    vf_loss = torch.clamp((ctx.values - ctx.value_targets) ** 2, 0, vf_clip)
    per_step = -surrogate + vf_coeff * vf_loss - ent_coeff * ctx.entropy
    return torch.sum(per_step[m]) / m.sum()


def test_default_terms_equal_stock_ppo_loss_and_gradient():
    terms = (TermSpec("policy", PolicyParams()), TermSpec("value", ValueParams(0.5, 10.0)),
             TermSpec("entropy", EntropyParams(0.01)))
    ctx = context()
    ours, metrics = total_loss(ctx, terms)
    stock = stock_ppo_loss(ctx)
    torch.testing.assert_close(ours, stock, rtol=1e-6, atol=1e-6)
    g_ours, = torch.autograd.grad(ours, ctx.dist_inputs, retain_graph=True)
    g_stock, = torch.autograd.grad(stock, ctx.dist_inputs)
    torch.testing.assert_close(g_ours, g_stock, rtol=1e-5, atol=1e-7)
    assert set(metrics) >= {"policy_loss", "clip_frac", "kl", "vf_loss", "entropy", "total_loss"}


def test_config_defaults_are_the_same_terms():
    names = [t.name for t in ExperimentConfig().objective.terms]
    assert names == ["policy", "value", "entropy"]


def test_demo_kl_term_adds_coeff_times_masked_categorical_kl():
    ctx = context(seed=1)
    base, _ = total_loss(ctx, (TermSpec("policy", PolicyParams()),))
    both, m = total_loss(ctx, (TermSpec("policy", PolicyParams()),
                               TermSpec("demo_kl", DemoKLParams(coeff=0.3))))
    p = torch.distributions.Categorical(logits=ctx.dist_inputs)
    q = torch.distributions.Categorical(logits=ctx.ref_dist_inputs)
    kl = torch.distributions.kl_divergence(p, q)[ctx.mask].mean()
    torch.testing.assert_close(both - base, 0.3 * kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m["demo_kl"], kl.detach(), rtol=1e-5, atol=1e-6)


def test_dual_clip_bounds_the_loss_of_negative_advantages():
    ctx = context(seed=2)
    ctx.logp = ctx.old_logp + 3.0  # ratio e^3 ~ 20 on every sample
    plain, _ = total_loss(ctx, (TermSpec("policy", PolicyParams()),))
    dual, m = total_loss(ctx, (TermSpec("policy", PolicyParams(dual_clip=3.0)),))
    a, mask = ctx.advantages, ctx.mask
    expected = torch.where(a < 0, -3.0 * a, -a * 1.2)[mask].mean()
    torch.testing.assert_close(dual, expected, rtol=1e-6, atol=1e-6)
    assert dual < plain and m["dual_clip_frac"] == pytest.approx(float((a[mask] < 0).float().mean()))


def test_lp_reg_term_refuses_gaussian_heads():
    ctx = context(dist="gaussian")
    with pytest.raises(ValueError, match="categorical"):
        total_loss(ctx, (TermSpec("lp_reg", LpRegParams()),))
