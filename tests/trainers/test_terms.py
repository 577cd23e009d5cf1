"""Objective terms as the learner sums them: the default terms equal RLlib's stock PPO loss
on the same batch, and each extra term adds exactly its configured quantity."""

import pytest
import torch

from regrl.agents.objectives.terms import AdaptiveEntropyParams
from regrl.trainers.config import ExperimentConfig, TermSpec
from regrl.trainers.rllib.terms import (
    DemoKLParams,
    EntropyParams,
    KLParams,
    LpRegParams,
    PolicyParams,
    ValueParams,
    step_context,
    total_loss,
)


def context(dist="categorical", seed=0, n=64, n_actions=3, proxy_kappa=None):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_actions, generator=g, requires_grad=True)
    old_logits = logits.detach() + 0.3 * torch.randn(n, n_actions, generator=g)
    actions = torch.randint(0, n_actions, (n,), generator=g)
    cur = torch.distributions.Categorical(logits=logits)
    old = torch.distributions.Categorical(logits=old_logits)
    mask = torch.rand(n, generator=g) > 0.1
    ctx = step_context(
        dist_inputs=logits,
        old_dist_inputs=old_logits,
        actions=actions,
        logp=cur.log_prob(actions),
        old_logp=old.log_prob(actions),
        advantages=torch.randn(n, generator=g),
        entropy=cur.entropy(),
        mask=mask,
        dist=dist,
        proxy_kappa=proxy_kappa,
        values=torch.randn(n, generator=g) * 5,
        value_targets=torch.randn(n, generator=g) * 5,
        reference={"runs/bc": torch.randn(n, n_actions, generator=g), None: old_logits},
    )
    return ctx, logits


def stock_ppo_loss(ctx, clip=0.2, vf_coeff=0.5, vf_clip=10.0, ent_coeff=0.01):
    """RLlib 2.60 PPOTorchLearner.compute_loss_for_module, without the KL term."""
    m, adv = ctx.mask[:, 0], ctx.advantages  # steps are [N, 1] sequences
    ratio = torch.exp(ctx.logp - ctx.old_logp)[:, 0]
    surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip))
    vf_loss = torch.clamp((ctx.values - ctx.value_targets)[:, 0] ** 2, 0, vf_clip)
    per_step = -surrogate + vf_coeff * vf_loss - ent_coeff * ctx.entropy[:, 0]
    return torch.sum(per_step[m]) / m.sum()


def test_default_terms_equal_stock_ppo_loss_and_gradient():
    terms = (
        TermSpec("policy", PolicyParams()),
        TermSpec("value", ValueParams(0.5, 10.0)),
        TermSpec("entropy", EntropyParams(0.01)),
    )
    ctx, logits = context()
    ours, metrics = total_loss(ctx, terms)
    stock = stock_ppo_loss(ctx)
    torch.testing.assert_close(ours, stock, rtol=1e-6, atol=1e-6)
    (g_ours,) = torch.autograd.grad(ours, logits, retain_graph=True)
    (g_stock,) = torch.autograd.grad(stock, logits)
    torch.testing.assert_close(g_ours, g_stock, rtol=1e-5, atol=1e-7)
    assert set(metrics) >= {
        "policy_loss",
        "clip_frac",
        "approx_kl",
        "vf_loss",
        "entropy_bonus",
        "total_loss",
    }


def test_config_defaults_are_the_same_terms():
    names = [t.name for t in ExperimentConfig().objective.terms]
    assert names == ["policy", "value", "entropy"]


def test_demo_kl_term_adds_coeff_times_masked_categorical_kl():
    ctx, logits = context(seed=1)
    base, _ = total_loss(ctx, (TermSpec("policy", PolicyParams()),))
    both, m = total_loss(
        ctx,
        (
            TermSpec("policy", PolicyParams()),
            TermSpec("demo_kl", DemoKLParams(coeff=0.3, checkpoint="runs/bc")),
        ),
    )
    p = torch.distributions.Categorical(logits=logits)
    q = torch.distributions.Categorical(logits=ctx.reference["runs/bc"][:, 0])
    kl = torch.distributions.kl_divergence(p, q)[ctx.mask[:, 0]].mean()
    torch.testing.assert_close(both - base, 0.3 * kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m["demo_kl"], kl.detach(), rtol=1e-5, atol=1e-6)


def test_dual_clip_bounds_the_loss_of_negative_advantages():
    ctx, _ = context(seed=2)
    ctx.logp = ctx.old_logp + 3.0  # ratio e^3 ~ 20 on every sample
    plain, _ = total_loss(ctx, (TermSpec("policy", PolicyParams()),))
    dual, m = total_loss(ctx, (TermSpec("policy", PolicyParams(dual_clip=3.0)),))
    a, mask = ctx.advantages, ctx.mask[:, 0]
    expected = torch.where(a < 0, -3.0 * a, -a * 1.2)[mask].mean()
    torch.testing.assert_close(dual, expected, rtol=1e-6, atol=1e-6)
    assert dual < plain and m["dual_clip_frac"] == pytest.approx(
        float((a[mask] < 0).float().mean())
    )


def test_lp_reg_term_refuses_gaussian_heads():
    with pytest.raises(ValueError, match="categorical"):
        context(dist="gaussian", proxy_kappa=0.02)


@pytest.mark.parametrize(
    "spec",
    [
        TermSpec("policy", PolicyParams(clip_low=0.2, clip_high=0.28, dual_clip=3.0)),
        TermSpec("lp_reg", LpRegParams(rho=0.5, clip_low=1.0, clip_high=9.0)),
        TermSpec("entropy", EntropyParams(coeff=0.1)),
        TermSpec("adaptive_entropy", AdaptiveEntropyParams(target=10.0, init_coeff=0.02)),
        TermSpec("kl", KLParams(coeff=0.5, estimator="k3")),
        TermSpec("kl", KLParams(coeff=0.5, estimator="full")),
        TermSpec("demo_kl", DemoKLParams(coeff=0.5, checkpoint="runs/bc", smoothing=0.1)),
        TermSpec("demo_kl", DemoKLParams(coeff=0.5, checkpoint="runs/bc", estimator="k3")),
    ],
    ids=lambda s: s.name,
)
def test_a_term_gives_the_same_loss_through_both_backends(spec):
    """One categorical decision per row: the RLlib builder (N steps) and the RLVR builder
    (N completions of one token) give a term the same loss and the same gradient."""
    from regrl.agents.objectives import minp_proxy_logprob
    from regrl.trainers.rlvr.terms import token_context

    g = torch.Generator().manual_seed(3)
    n, a = 32, 6
    logits = (2 * torch.randn(n, a, generator=g)).requires_grad_(True)
    old = logits.detach() + 0.5 * torch.randn(n, a, generator=g)
    ref, bc = (torch.randn(n, a, generator=g) for _ in range(2))
    actions = torch.randint(0, a, (n,), generator=g)
    adv, mask = torch.randn(n, generator=g), torch.rand(n, generator=g) > 0.2
    pick = lambda z: torch.log_softmax(z, -1).gather(-1, actions[:, None])[:, 0]
    cur = torch.distributions.Categorical(logits=logits)
    rl = step_context(
        dist_inputs=logits,
        old_dist_inputs=old,
        actions=actions,
        logp=pick(logits),
        old_logp=pick(old),
        advantages=adv,
        entropy=cur.entropy(),
        mask=mask,
        dist="categorical",
        proxy_kappa=0.02,
        reference={None: ref, "runs/bc": bc},
    )
    lm = token_context(
        logits=logits[:, None],
        tokens=actions[:, None],
        old_logp=pick(old)[:, None],
        advantages=adv,
        mask=mask[:, None],
        proxy_logp=minp_proxy_logprob(old, actions, kappa=0.02)[:, None],
        reference={None: ref[:, None], "runs/bc": bc[:, None]},
    )
    loss_rl, m_rl = total_loss(rl, (spec,))
    loss_lm, m_lm = total_loss(lm, (spec,))
    assert loss_rl.item() != 0.0
    torch.testing.assert_close(loss_rl, loss_lm, rtol=1e-6, atol=1e-7)  # float32, as the LM path
    (g_rl,) = torch.autograd.grad(loss_rl, logits)
    (g_lm,) = torch.autograd.grad(loss_lm, logits)
    torch.testing.assert_close(g_rl, g_lm, rtol=1e-5, atol=1e-7)
    assert m_rl.keys() == m_lm.keys()


def test_backends_read_needs_from_flags_and_references_by_checkpoint():
    from regrl.agents.objectives.terms import needs, proxy_kappa, reference_keys
    from regrl.trainers.rllib.terms import CandidatePolicyParams

    terms = (
        TermSpec("lp_reg", LpRegParams(kappa=0.05)),
        TermSpec("kl", KLParams()),
        TermSpec("demo_kl", DemoKLParams(checkpoint="runs/bc")),
        TermSpec("candidate_policy", CandidatePolicyParams(kl_coeff=0.0, checkpoint="runs/x")),
    )
    assert reference_keys(terms) == (None, "runs/bc")  # kl_coeff 0: only the IL scorer (None)
    assert proxy_kappa(terms) == 0.05 and proxy_kappa(terms[1:]) is None
    assert needs(terms, "needs_discrete") and not needs(terms[1:3], "needs_discrete")
    assert not needs(terms, "needs_values") and needs(
        (TermSpec("value", ValueParams()),), "needs_values"
    )


def test_adaptive_entropy_controller_and_gate():
    """Skywork-OR1 §3.2.2: alpha moves by delta toward the target entropy, clipped to
    [0, max_coeff]; the loss is -alpha * H only while H <= target (zero above it)."""
    from regrl.agents.objectives.terms import AdaptiveEntropyParams, adaptive_entropy_step

    p = AdaptiveEntropyParams(target=0.5, delta=0.01, max_coeff=0.02)
    assert adaptive_entropy_step(0.0, 0.3, p) == pytest.approx(0.01)  # below target: up
    assert adaptive_entropy_step(0.015, 0.3, p) == pytest.approx(0.02)  # clipped at max
    assert adaptive_entropy_step(0.015, 0.9, p) == pytest.approx(0.005)  # above target: down
    assert adaptive_entropy_step(0.004, 0.9, p) == 0.0  # never negative
    ctx, logits = context()
    h = ((ctx.entropy * ctx.mask).sum() / ctx.mask.sum()).detach()
    for target, gated in ((10.0, True), (0.01, False)):
        ctx.term_state = {"adaptive_entropy/coeff": 0.03}
        spec = TermSpec("adaptive_entropy", AdaptiveEntropyParams(target=target))
        loss, m = total_loss(ctx, (spec,))
        expected = -0.03 * h if gated else torch.zeros(())
        torch.testing.assert_close(loss, expected)
        assert float(m["adaptive_entropy_coeff"]) == pytest.approx(0.03)
        assert float(m["adaptive_entropy"]) == pytest.approx(float(h))
