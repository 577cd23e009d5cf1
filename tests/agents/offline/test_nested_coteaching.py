"""Nested Dropout mask distribution and Co-teaching's schedule and small-loss selection."""

import math

import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import (
    coteaching_forget_rate,
    coteaching_select,
    get_plugin,
    nested_dropout_mask,
    nested_dropout_probs,
)
from regrl.agents.offline.base import TaskInfo
from regrl.agents.offline.nested_coteaching import nested_keep_probs, sample_nested_k


def test_nested_probs_hand_values():
    p = nested_dropout_probs(3, sigma=1.0)  # exp(-1), exp(-4), exp(-9) normalised
    z = math.exp(-1) + math.exp(-4) + math.exp(-9)
    torch.testing.assert_close(
        p, torch.tensor([math.exp(-1), math.exp(-4), math.exp(-9)], dtype=torch.float64) / z
    )
    torch.testing.assert_close(nested_keep_probs(p), torch.stack([p.sum(), p[1:].sum(), p[2]]))
    assert nested_dropout_mask(4, 2).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_nested_mask_distribution_matches_p_k():
    p = nested_dropout_probs(4, sigma=2.0)
    g = torch.Generator().manual_seed(0)
    ks = torch.tensor([sample_nested_k(p, g) for _ in range(20000)])
    freq = torch.bincount(ks, minlength=5)[1:].double() / len(ks)
    torch.testing.assert_close(freq, p, atol=0.01, rtol=0)


def test_nested_plugin_masks_head_input_only_in_training():
    torch.manual_seed(0)
    model = MLP(3, 2, (6,))
    cls = get_plugin("nested_dropout")
    plugin = cls(cls.Params(sigma=2.0), TaskInfo("classification", 4, 2, 1, 0))
    plugin.wrap_model(model)
    seen = []
    model.head.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    x = torch.rand(5, 3) + 1.0
    model.train()
    model(x)
    k = plugin.last_k
    assert (seen[-1][:, k:] == 0).all() and 1 <= k <= 6
    model.eval()
    model(x)
    keep = nested_keep_probs(nested_dropout_probs(6, 2.0)).float()
    torch.testing.assert_close(seen[-1], model.trunk(x) * keep)


def test_coteaching_forget_rate_schedule():
    assert coteaching_forget_rate(0, 0.4, 5) == 0.0
    assert coteaching_forget_rate(2, 0.4, 5) == pytest.approx(0.2)
    assert coteaching_forget_rate(4, 0.4, 5) == pytest.approx(0.4)
    assert coteaching_forget_rate(9, 0.4, 5) == pytest.approx(0.4)
    assert coteaching_forget_rate(2, 0.4, 5, exponent=2) == pytest.approx(0.08)


def test_coteaching_keeps_the_smallest_losses():
    l1 = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7])
    l2 = torch.tensor([0.2, 0.8, 0.4, 0.6, 0.1])
    i1, i2 = coteaching_select(l1, l2, forget_rate=0.4)  # keep int(0.6 * 5) = 3
    assert i1.tolist() == [1, 3, 2] and i2.tolist() == [4, 0, 2]
    i1, _ = coteaching_select(l1, l2, forget_rate=0.0)
    assert len(i1) == 5


def test_coteaching_plugin_weights_and_peer_update():
    torch.manual_seed(0)
    model = MLP(3, 2, (8,))
    cls = get_plugin("coteaching")
    plugin = cls(cls.Params(forget_rate=0.5, num_gradual=1), TaskInfo("classification", 8, 2, 2, 0))
    plugin.setup(model, None, lambda m: torch.optim.SGD(m.parameters(), lr=0.5))
    assert not torch.equal(plugin.peer.head.weight, model.head.weight)  # a second network
    x, target = torch.randn(8, 3), torch.eye(2)[torch.tensor([0, 1] * 4)]

    def per_sample(out):
        return -(target * torch.log_softmax(out["out"], -1)).sum(-1)

    peer_before = plugin.peer.head.weight.detach().clone()
    peer_losses = per_sample(plugin.peer(x)).detach()
    w = plugin.sample_weights({"x": x}, model(x), epoch=1, per_sample_loss=per_sample)
    # network 1 is trained on the peer's 4 smallest-loss samples (forget rate 0.5)
    assert w.nonzero().flatten().tolist() == sorted(torch.argsort(peer_losses)[:4].tolist())
    assert not torch.equal(plugin.peer.head.weight, peer_before)  # the peer took a step
