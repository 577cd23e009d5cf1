"""Hand-computed checks of GRPO group advantages and GAE."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from regrl.agents.objectives import gae, group_advantages

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def test_group_unbiased_std_is_one_for_1_2_3():
    adv = group_advantages(t([1.0, 2.0, 3.0]), torch.tensor([0, 0, 0]))
    torch.testing.assert_close(adv, t([-1.0, 0.0, 1.0]) / (1.0 + 1e-6), rtol=0, atol=1e-12)


def test_group_population_std():
    adv = group_advantages(t([1.0, 2.0, 3.0]), torch.tensor([5, 5, 5]), std="population")
    expected = t([-1.0, 0.0, 1.0]) / (0.816496580927726 + 1e-6)  # sqrt(2/3)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)


def test_group_dr_grpo_no_std():
    adv = group_advantages(t([1.0, 2.0, 6.0]), torch.tensor([0, 0, 0]), std=None)
    torch.testing.assert_close(adv, t([-2.0, -1.0, 3.0]), rtol=0, atol=1e-12)


def test_group_ids_arbitrary_and_interleaved():
    rewards = t([1.0, 10.0, 2.0, 3.0, 30.0])
    ids = torch.tensor([7, -3, 7, 7, -3])
    adv = group_advantages(rewards, ids, eps=0.0)
    # group 7: [1,2,3] -> mean 2, std 1; group -3: [10,30] -> mean 20, unbiased std sqrt(200)
    s = math.sqrt(200.0)
    torch.testing.assert_close(adv, t([-1.0, -10.0 / s, 0.0, 1.0, 10.0 / s]), rtol=0, atol=1e-12)


def test_equal_rewards_and_singletons_give_exact_zero():
    rewards = t([0.1, 0.1, 0.1, 0.7, 4.0, 5.0])
    ids = torch.tensor([2, 2, 2, 9, 4, 4])
    for std in ("unbiased", "population", None):
        for eps in (1e-6, 0.0):
            adv = group_advantages(rewards, ids, std=std, eps=eps)
            assert torch.all(torch.isfinite(adv))
            assert adv[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    adv = group_advantages(rewards, ids, eps=0.0)
    torch.testing.assert_close(adv[4:], t([-0.5, 0.5]) / math.sqrt(0.5), rtol=0, atol=1e-12)


def test_float32_constant_group_exact_zero():
    adv = group_advantages(torch.full((8,), 0.3), torch.zeros(8, dtype=torch.long))
    assert adv.tolist() == [0.0] * 8


@pytest.mark.parametrize("bad", ["sample", "std", 1])
def test_group_bad_std_raises(bad):
    with pytest.raises(ValueError, match="std must be one of"):
        group_advantages(t([1.0, 2.0]), torch.tensor([0, 0]), std=bad)


def test_group_bad_shapes_raise():
    with pytest.raises(ValueError):
        group_advantages(t([1.0, 2.0]), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="integer"):
        group_advantages(t([1.0, 2.0]), t([0.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), st.sampled_from([0.0, 0.5, 1.0, -2.0, 7.25])),
        min_size=1,
        max_size=12,
    )
)
def test_group_matches_per_group_torch_std(pairs):
    ids = torch.tensor([g for g, _ in pairs])
    rewards = t([r for _, r in pairs])
    adv = group_advantages(rewards, ids)
    for g in ids.unique():
        sel = ids == g
        r = rewards[sel]
        if len(r) == 1 or bool((r == r[0]).all()):
            assert adv[sel].tolist() == [0.0] * len(r)
        else:
            torch.testing.assert_close(
                adv[sel], (r - r.mean()) / (r.std() + 1e-6), rtol=1e-9, atol=1e-9
            )


# GAE, gamma = 0.9, lam = 0.8 (gamma*lam = 0.72), worked by hand:
# rewards [1, 2, 3], values [0.5, 1.0, 1.5], next_values [1.0, 2.0, 4.0]
# delta_2 = 3 + 0.9*4 - 1.5 = 5.1 (no flags at t=2)
R, V, NV = [1.0, 2.0, 3.0], [0.5, 1.0, 1.5], [1.0, 2.0, 4.0]


def test_gae_termination_and_truncation_batched():
    rows_term = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    rows_trunc = [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    adv, ret = gae(
        t([R] * 3),
        t([V] * 3),
        t([NV] * 3),
        torch.tensor(rows_term, dtype=torch.bool),
        torch.tensor(rows_trunc, dtype=torch.bool),
        gamma=0.9,
        lam=0.8,
    )
    expected = t(
        [
            # no flags: A1 = 2.8 + 0.72*5.1 = 6.472; A0 = 1.4 + 0.72*6.472 = 6.05984
            [6.05984, 6.472, 5.1],
            # terminated at t=1: delta_1 = 2 - 1 = 1 (no bootstrap), chain cut; A0 = 1.4 + 0.72*1
            [2.12, 1.0, 5.1],
            # truncated at t=1: delta_1 = 2 + 0.9*2 - 1 = 2.8 (bootstraps), chain cut; A0 = 1.4 + 0.72*2.8
            [3.416, 2.8, 5.1],
        ]
    )
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ret, expected + t([V] * 3), rtol=0, atol=1e-12)


def test_gae_1d_with_termination_then_truncation():
    # term at t=0 -> delta_0 = 1 - 0.5 = 0.5, chain cut; trunc at t=1 -> A1 = 2.8
    adv, ret = gae(t(R), t(V), t(NV), t([1.0, 0.0, 0.0]), t([0.0, 1.0, 0.0]), gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, t([0.5, 2.8, 5.1]), rtol=0, atol=1e-12)
    torch.testing.assert_close(ret, t([1.0, 3.8, 6.6]), rtol=0, atol=1e-12)


def test_gae_lam_one_gamma_one_is_monte_carlo():
    # consistent next_values (nv_t = v_{t+1}) and a final termination: returns are reward-to-go
    adv, ret = gae(
        t(R), t(V), t([1.0, 1.5, 99.0]), t([0.0, 0.0, 1.0]), t([0.0, 0.0, 0.0]), gamma=1.0, lam=1.0
    )
    torch.testing.assert_close(ret, t([6.0, 5.0, 3.0]), rtol=0, atol=1e-12)


def test_gae_bad_args():
    z = t([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        gae(t(R), t(V), t([1.0]), z, z, gamma=0.9, lam=0.8)
    with pytest.raises(ValueError, match="gamma"):
        gae(t(R), t(V), t(NV), z, z, gamma=1.5, lam=0.8)
    with pytest.raises(ValueError, match="time last"):
        gae(
            torch.zeros(2, 2, 2),
            torch.zeros(2, 2, 2),
            torch.zeros(2, 2, 2),
            torch.zeros(2, 2, 2),
            torch.zeros(2, 2, 2),
            gamma=0.9,
            lam=0.8,
        )


@pytest.mark.parametrize("shape", [(7,), (1, 7), (3, 7)])
def test_gae_numpy_fast_path_matches_autograd_path(shape):
    """Without autograd the recursion runs in numpy; with it, in torch: same numbers."""
    g = torch.Generator().manual_seed(0)
    r, v, nv = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    term = torch.zeros(shape, dtype=torch.bool)
    term[..., 2] = True
    trunc = torch.zeros(shape, dtype=torch.bool)
    trunc[..., 4] = True
    fast, _ = gae(r, v, nv, term, trunc, gamma=0.9, lam=0.8)
    slow, _ = gae(r, v.clone().requires_grad_(True), nv, term, trunc, gamma=0.9, lam=0.8)
    assert slow.requires_grad and not fast.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-12)
