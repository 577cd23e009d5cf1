"""Hand-computed checks of the gradient-side plugins: ⊥Grad, IGNITE, GLAD/SAM, HFT and the
Lipschitz projection with its certified bound."""

import math

import pytest
import torch
import torch.nn as nn

from regrl.agents.models import MLP
from regrl.agents.offline import (
    OrthoGrad,
    certified_lipschitz_bound,
    get_plugin,
    glad_gradient,
    hft_select_frozen,
    ignite_dual_update,
    ignite_gradient,
    model_lipschitz_bound,
    orthogonal_gradient,
    project_spectral_norm,
    sam_perturbation,
    spectral_norm,
)
from regrl.agents.offline.base import TaskInfo, plugin_generator

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def info(task="classification", epochs=4):
    return TaskInfo(task, 8, 2, epochs, 0)


class Quadratic(nn.Module):
    """A surrogate f_beta(x) = 0.5 (beta . x)^2 (IGNITE) / a loss 0.5 w^T A w (GLAD)."""

    def __init__(self, beta):
        super().__init__()
        self.beta = nn.Parameter(t(beta))

    def forward(self, x):
        return {"out": 0.5 * (x @ self.beta) ** 2, "features": x}


# ---- ⊥Grad --------------------------------------------------------------------------------
def test_orthogonal_gradient_hand_example():
    g = orthogonal_gradient(t([1.0, 0.0]), t([1.0, 1.0]))
    torch.testing.assert_close(g, t([0.0, math.sqrt(2)]))


def test_orthograd_step_is_orthogonal_to_w_and_keeps_norm():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4, dtype=D))
    g = torch.randn(3, 4, dtype=D)
    w.grad = g.clone()
    before = w.detach().clone()
    OrthoGrad(torch.optim.SGD([w], lr=0.1)).step()
    update = w.detach() - before
    assert torch.dot(update.flatten(), before.flatten()).item() == pytest.approx(0.0, abs=1e-12)
    assert update.norm().item() == pytest.approx(0.1 * g.norm().item(), rel=1e-12)


# ---- IGNITE --------------------------------------------------------------------------------
# x1 = [1, 0], x2 = [1, 2]: C = mean x x^T = [[1, 1], [1, 2]]; beta = [1, 1] -> grad G = [2, 3]
X = t([[1, 0], [1, 2]])
CU = t([5.0, 8.0]) / math.sqrt(13)  # C u with u = [2, 3] / sqrt 13


def test_ignite_gradient_formula():
    r = 0.05
    shifted = t([2.0, 3.0]) + r * CU  # exact for a quadratic
    out = ignite_gradient([t([1.0, -1.0])], [t([2.0, 3.0])], [shifted], lam=0.5, rho=0.1, r=r)
    torch.testing.assert_close(out[0], t([1.0, -1.0]) + 0.05 * CU)


def test_ignite_dual_ascent_update():
    new = ignite_dual_update(1e-3, math.sqrt(13), rho=0.05, eps=1e-3, eta=1e-3)
    assert new == pytest.approx(1e-3 + 1e-3 * (0.05 * math.sqrt(13) - 1e-3), abs=1e-15)
    assert ignite_dual_update(0.0, 0.0, rho=0.05, eps=1e-3, eta=1e-3) == 0.0  # stays >= 0


def test_ignite_plugin_on_tiny_quadratic():
    cls = get_plugin("ignite")
    plugin = cls(cls.Params(lam0=0.5, rho=0.1, r=0.05, eps=1e-3, eta=1e-3), info("regression"))
    model = Quadratic([1.0, 1.0])
    model.beta.grad = torch.zeros(2, dtype=D)
    metrics = plugin.after_backward(model, {"x": X}, closure=None)
    torch.testing.assert_close(model.beta.grad, 0.05 * CU)
    torch.testing.assert_close(model.beta.detach(), t([1.0, 1.0]))  # weights restored
    assert metrics["grad_norm"].item() == pytest.approx(math.sqrt(13))
    plugin.after_step(model)
    assert plugin.lam == pytest.approx(0.5 + 1e-3 * (0.1 * math.sqrt(13) - 1e-3))


# ---- GLAD / SAM ----------------------------------------------------------------------------
# L = 0.5 w^T A w, A = diag(1, 4), w = [1, 1]: g = [1, 4], g_SAM = g + rho A g / ||g||
A = t([1.0, 4.0])
G_SAM = t([1.0, 4.0]) + 0.1 * t([1.0, 16.0]) / math.sqrt(17)


def test_sam_perturbation_and_glad_gradient():
    e = sam_perturbation([t([1.0, 4.0])], rho=0.1)
    torch.testing.assert_close(e[0], 0.1 * t([1.0, 4.0]) / math.sqrt(17))
    out = glad_gradient([t([1.0, 4.0])], [G_SAM], gamma=0.5)
    torch.testing.assert_close(out[0], t([1.0, 4.0]) + 0.05 * t([1.0, 16.0]) / math.sqrt(17))


def test_glad_plugin_on_quadratic():
    w = nn.Parameter(t([1.0, 1.0]))
    model = nn.Module()
    model.w = w

    def closure():
        return 0.5 * (A * w * w).sum()

    closure().backward()
    cls = get_plugin("glad")
    cls(cls.Params(rho=0.1, gamma=0.5), info()).after_backward(model, {}, closure)
    torch.testing.assert_close(w.grad, t([1.0, 4.0]) + 0.5 * (G_SAM - t([1.0, 4.0])))
    torch.testing.assert_close(w.detach(), t([1.0, 1.0]))


# ---- HFT -----------------------------------------------------------------------------------
def test_hft_selects_exactly_half():
    names = ["a", "b", "c", "d", "e"]
    chosen = hft_select_frozen(names, plugin_generator(0, 1))
    assert len(chosen) == 2 and set(chosen) < set(names)
    draws = {tuple(hft_select_frozen(names, plugin_generator(0, r))) for r in range(10)}
    assert len(draws) > 1  # re-sampled per round


def test_hft_plugin_freezes_half_the_matrices_for_a_step():
    torch.manual_seed(0)
    model = MLP(3, 2, (4, 4, 4))  # 4 weight matrices
    cls = get_plugin("hft")
    plugin = cls(cls.Params(every=1), info())
    plugin.on_epoch_start(0, model)
    assert len(plugin.frozen) == 2
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(6, 3))["out"].pow(2).sum().backward()
    plugin.before_step(model)
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    weights = {n for n in before if n.endswith("weight")}
    assert weights - moved == set(plugin.frozen)
    assert len(weights & moved) == 2


# ---- Lipschitz -----------------------------------------------------------------------------
def test_spectral_projection_and_certified_bound():
    W1, W2 = t([[3.0, 0.0], [0.0, 1.0]]), t([[0.0, 2.0], [1.0, 0.0]])
    assert spectral_norm(t([[1.0, 1.0], [0.0, 1.0]])).item() == pytest.approx(
        (1 + math.sqrt(5)) / 2
    )
    torch.testing.assert_close(project_spectral_norm(W1, 2.0), t([[2.0, 0.0], [0.0, 2 / 3]]))
    assert project_spectral_norm(W2, 5.0) is W2  # already inside
    assert certified_lipschitz_bound([W1, W2]).item() == pytest.approx(6.0)


def test_lipschitz_plugin_bound_after_training_steps():
    torch.manual_seed(0)
    model = MLP(5, 3, (16, 16))
    cls = get_plugin("lipschitz")
    plugin = cls(cls.Params(alpha=2.0), info())
    plugin.wrap_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):  # big steps that would blow the norms up without the projection
        opt.zero_grad()
        model(torch.randn(32, 5))["out"].pow(2).sum().mul(-1).backward()
        opt.step()
        plugin.after_step(model)
    norms = [
        torch.linalg.svdvals(m.weight.detach().double())[0]
        for m in (model.trunk[0], model.trunk[2], model.head)
    ]
    bound = plugin.on_epoch_end(0, model)["certified_bound"]
    assert bound.item() == pytest.approx(float(torch.stack(norms).prod()), rel=1e-9)
    assert bound.item() <= 2.0 + 1e-6
    assert all(n <= 2.0 ** (1 / 3) + 1e-6 for n in norms)
    x, y = torch.randn(200, 5), torch.randn(200, 5)  # the certificate holds on samples
    ratio = (model(x)["out"] - model(y)["out"]).norm(dim=1) / (x - y).norm(dim=1)
    assert ratio.max().item() <= model_lipschitz_bound(model).item() + 1e-6
