"""RIFT's candidate_policy term and candidate advantages, against hand computations of
docs/methods.md#rift-advantage, #rift-loss on a 2-state x 3-candidate example."""

import math

import pytest
import torch

from regrl.trainers.config import ConfigError, TermSpec, config_from_dict
from regrl.trainers.rllib.connectors import _episode_candidates, candidate_group_advantages
from regrl.trainers.rllib.terms import TERMS, CandidatePolicyParams, step_context, total_loss

torch.set_num_threads(1)
M = -1e8  # masked logit of an absent candidate


def example(kl_ref=True):
    # state 0: pi_theta uniform over 3, pi_old = (.5, .25, .25); state 1: candidate 2 invalid,
    # pi_theta = (.5, .5), pi_old = (.1, .9)
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, M]], requires_grad=True)
    old = torch.tensor(
        [[math.log(0.5), math.log(0.25), math.log(0.25)], [math.log(0.1), math.log(0.9), M]]
    )
    valid = torch.tensor([[True, True, True], [True, True, False]])
    adv = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 2.0, 0.0]])
    n = 2
    return step_context(
        dist_inputs=logits,
        old_dist_inputs=old,
        actions=torch.zeros(n, dtype=torch.long),
        logp=torch.zeros(n),
        old_logp=torch.zeros(n),
        advantages=torch.zeros(n),
        entropy=torch.zeros(n),
        mask=torch.ones(n, dtype=torch.bool),
        dist="categorical",
        reference={None: old} if kl_ref else None,
        candidate_advantages=adv,
        candidate_valid=valid,
    )


def rift_objective(A, rho, eps=0.2, c=3.0):
    """docs/methods.md#rift-loss, one candidate."""
    m = min(A * rho, A * min(max(rho, 1 - eps), 1 + eps))
    return max(m, c * A) if A < 0 else m


def test_dual_clip_surrogate_over_all_candidates_matches_hand_computation():
    ctx = example()
    loss, m = total_loss(ctx, (TermSpec("candidate_policy", CandidatePolicyParams()),))
    cases = [
        (1.0, (1 / 3) / 0.5),
        (-2.0, (1 / 3) / 0.25),
        (0.5, (1 / 3) / 0.25),
        (-1.0, 0.5 / 0.1),
        (2.0, 0.5 / 0.9),
    ]
    objs = [rift_objective(A, rho) for A, rho in cases]
    # by hand: 2/3, -8/3, 3/5, max(-5, -3) = -3 (dual clip binds), 10/9 -> loss 148/225
    assert objs == pytest.approx([2 / 3, -8 / 3, 3 / 5, -3.0, 10 / 9])
    assert loss.item() == pytest.approx(148 / 225, rel=1e-6)
    assert m["dual_clip_frac"].item() == pytest.approx(1 / 5)
    # negative-advantage candidates: ratios (1/3)/0.25 = 4/3 and 0.5/0.1 = 5 -> max 5
    assert m["neg_ratio_max"].item() == pytest.approx(5.0, rel=1e-5)
    (grad,) = torch.autograd.grad(loss, ctx.dist_inputs)
    assert torch.isfinite(grad).all()


def test_without_dual_clip_the_negative_candidate_is_unbounded():
    loss, _ = total_loss(
        example(), (TermSpec("candidate_policy", CandidatePolicyParams(dual_clip=None)),)
    )
    assert loss.item() == pytest.approx(238 / 225, rel=1e-6)  # -3 becomes -5


def test_grpo_kl_is_the_per_entry_kl_div_mean():
    ctx = example()
    base, _ = total_loss(
        ctx, (TermSpec("candidate_policy", CandidatePolicyParams(dual_clip=None)),)
    )
    both, m = total_loss(
        ctx, (TermSpec("candidate_policy", CandidatePolicyParams(dual_clip=None, kl_coeff=0.2)),)
    )
    # F.kl_div(log pi_theta, pi_ref) entries pi_ref (log pi_ref - log pi_theta), 5 valid ones
    entries = [
        0.5 * math.log(0.5 * 3),
        0.25 * math.log(0.25 * 3),
        0.25 * math.log(0.25 * 3),
        0.1 * math.log(0.1 / 0.5),
        0.9 * math.log(0.9 / 0.5),
    ]
    assert m["candidate_kl"].item() == pytest.approx(sum(entries) / 5, rel=1e-5)
    assert (both - base).item() == pytest.approx(0.2 * sum(entries) / 5, rel=1e-5)


def test_demo_kl_is_reverse_kl_per_state():
    ctx = example()
    _, m = total_loss(
        ctx, (TermSpec("candidate_policy", CandidatePolicyParams(kl_coeff=0.1, kl="demo")),)
    )
    kl0 = sum((1 / 3) * math.log((1 / 3) / p) for p in (0.5, 0.25, 0.25))
    kl1 = 0.5 * math.log(0.5 / 0.1) + 0.5 * math.log(0.5 / 0.9)
    assert m["candidate_kl"].item() == pytest.approx((kl0 + kl1) / 2, rel=1e-5)


def test_kl_to_il_is_zero_at_the_il_scorer_and_the_reverse_kl_away_from_it():
    spec = (TermSpec("candidate_policy", CandidatePolicyParams()),)  # RIFT: no KL in the loss
    at_init = example()
    at_init.reference = {None: at_init.dist_inputs.detach().clone()}
    loss0, m0 = total_loss(at_init, spec)
    assert m0["kl_to_il"].item() == 0.0  # exactly: the scorer IS the IL scorer
    # pi_IL = the example's pi_old: per-state KL(pi_theta || pi_IL), mean over the 2 states
    loss, m = total_loss(example(), spec)
    kl0 = sum((1 / 3) * math.log((1 / 3) / p) for p in (0.5, 0.25, 0.25))
    kl1 = 0.5 * math.log(0.5 / 0.1) + 0.5 * math.log(0.5 / 0.9)
    assert m["kl_to_il"].item() == pytest.approx((kl0 + kl1) / 2, rel=1e-5)
    assert loss.item() == pytest.approx(loss0.item())  # a metric only: the loss is unchanged
    assert "kl_to_il" not in total_loss(example(kl_ref=False), spec)[1]


def test_kl_to_il_grows_after_one_update_of_the_scorer():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 3)
    feats = torch.randn(2, 4)
    ctx = example()
    il = head(feats).detach()
    ctx.dist_inputs = head(feats)[:, None]
    ctx.old_dist_inputs = il[:, None]
    ctx.reference = {None: il[:, None]}
    spec = (TermSpec("candidate_policy", CandidatePolicyParams()),)
    loss, m = total_loss(ctx, spec)
    assert m["kl_to_il"].item() == 0.0
    loss.backward()
    torch.optim.SGD(head.parameters(), lr=0.5).step()
    ctx.dist_inputs = head(feats)[:, None]
    assert total_loss(ctx, spec)[1]["kl_to_il"].item() > 1e-4


def test_rift_keeps_the_il_scorer_as_a_reference_in_every_arm():
    from regrl.agents.objectives.terms import reference_keys

    for params in (
        CandidatePolicyParams(),
        CandidatePolicyParams(dual_clip=None),
        CandidatePolicyParams(kl_coeff=0.2, kl="demo"),
    ):
        assert reference_keys((TermSpec("candidate_policy", params),)) == (None,)
    other = CandidatePolicyParams(kl_coeff=0.2, checkpoint="runs/x")
    assert reference_keys((TermSpec("candidate_policy", other),)) == (None, "runs/x")


def test_term_registration_and_config_errors():
    info = TERMS.get("candidate_policy")
    assert info.is_surrogate and info.needs_candidates
    assert not CandidatePolicyParams().uses_reference  # RIFT: no reference model
    assert CandidatePolicyParams(kl_coeff=0.2).uses_reference  # GRPO baseline
    with pytest.raises(ConfigError, match="dual_clip must be > 1"):
        config_from_dict({"objective": {"terms": [{"name": "candidate_policy", "dual_clip": 1}]}})
    with pytest.raises(ConfigError, match="both policy surrogates"):
        config_from_dict(
            {"objective": {"terms": [{"name": "candidate_policy"}, {"name": "policy"}]}}
        )
    with pytest.raises(ValueError, match="candidate action mode"):
        ctx = example()
        ctx.candidate_advantages = None
        total_loss(ctx, (TermSpec("candidate_policy", CandidatePolicyParams()),))


def test_candidate_group_advantages_population_std_over_valid_candidates():
    returns = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 99.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    adv = candidate_group_advantages(returns, valid)
    std = math.sqrt(2 / 3)  # population std of (1, 2, 3)
    expected = [[-1 / (std + 1e-5), 0.0, 1 / (std + 1e-5)], [0.0, 0.0, 0.0]]
    torch.testing.assert_close(adv, torch.tensor(expected), rtol=1e-6, atol=1e-7)


class FakeEpisode:
    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos) - 1

    def get_infos(self, t):
        return self.infos[t]


def test_episode_candidates_take_the_info_returned_with_the_observation():
    step = lambda r: {"candidate_returns": [r, r + 1.0], "candidate_valid": [True, r > 0]}
    # reset info, 2 steps (the last one ends the agent: no candidates), and the copy of the
    # last info that AddOneTsToEpisodesAndTruncate appends with its bootstrap step
    ep = FakeEpisode([step(1.0), step(0.0), {"metrics": {}}, {"metrics": {}}])
    returns, valid = _episode_candidates(ep, n_rows=3, n_real=2)
    assert returns.tolist() == [[1.0, 2.0], [0.0, 1.0], [0.0, 0.0]]
    assert valid.tolist() == [[True, True], [True, False], [False, False]]
    with pytest.raises(ValueError, match="candidate action mode"):
        _episode_candidates(FakeEpisode([{"x": 1}, {}]), 1, 1)


def test_top1_best_is_the_share_of_states_whose_greedy_choice_has_the_best_advantage():
    spec = (TermSpec("candidate_policy", CandidatePolicyParams()),)
    # example(): state 0 greedy = candidate 0 (ties go to the first), best advantage 1.0 at
    # candidate 0 -> hit; state 1 greedy = candidate 0 (advantage -1), best is candidate 1 -> miss
    assert total_loss(example(), spec)[1]["top1_best"].item() == pytest.approx(0.5)
    ctx = example()
    ctx.dist_inputs = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, M]], requires_grad=True)
    assert total_loss(ctx, spec)[1]["top1_best"].item() == pytest.approx(1.0)


def test_top1_best_ignores_invalid_candidates_and_groups_with_nothing_to_rank():
    from regrl.agents.objectives.terms import _top1_best

    logits = torch.tensor([[2.0, 1.0, 9.0], [2.0, 1.0, -5.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, True, False]] + [[True] * 3] * 2)
    # state 0: the invalid candidate has the largest logit but a low advantage; the greedy
    # valid pick (0) has the best valid advantage -> hit. State 1: the invalid candidate has
    # the largest advantage; the valid pick (0) is the best valid one -> hit. State 2: all
    # advantages equal -> not counted. State 3: greedy 0 has 0.5 < 1.0 -> miss.
    adv = torch.tensor([[1.0, -1.0, -7.0], [1.0, -1.0, 7.0], [0.0, 0.0, 0.0], [0.5, 1.0, -1.5]])
    assert _top1_best(logits, adv, valid).item() == pytest.approx(2 / 3)
    none_ranked = torch.zeros(4, 3)
    assert _top1_best(logits, none_ranked, valid).item() == 0.0
