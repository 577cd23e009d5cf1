"""benchmarks/lipschitz_bc.py: the attack, the demonstration recorder, the closed loop and the
--quick path end to end (linear expert, no PPO training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline.lipschitz import model_lipschitz_bound
from tests.benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def lbc():
    with benchmark_module("lipschitz_bc", register=True) as module:
        yield module


def _tiny_model(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(4, 2, (16, 16)).eval()


def _margins(lbc, model, x, action):
    with torch.no_grad():
        return lbc.action_margin(model(x)["out"], action)


@pytest.mark.parametrize("steps", [1, 5])
def test_attack_stays_in_ball_and_does_not_raise_margin(lbc, steps):
    model, eps = _tiny_model(), 0.1
    obs = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        action = model(obs)["out"].argmax(-1)
    adv = lbc.fgsm_perturb(model, obs, eps, steps)
    assert (adv - obs).abs().max() <= eps + 1e-6
    before, after = _margins(lbc, model, obs, action), _margins(lbc, model, adv, action)
    assert torch.all(after <= before + 1e-6)
    assert (after < before - 1e-4).float().mean() > 0.9  # it does attack, not just keep obs


def test_fgsm_on_linear_expert_is_exact(lbc):
    """Logits [-s, s], s = theta + 0.5 theta_dot: one step moves s by 1.5 eps towards the
    other action (margin 2|s| drops by exactly 3 eps) and leaves x, x_dot alone."""
    expert, eps = lbc.LinearExpert(), 0.02
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(2)) * 0.05
    action = expert(obs)["out"].argmax(-1)
    adv = lbc.fgsm_perturb(expert, obs, eps)
    torch.testing.assert_close(adv[:, :2], obs[:, :2])
    torch.testing.assert_close(
        _margins(lbc, expert, adv, action),
        _margins(lbc, expert, obs, action) - 3 * eps,
        atol=1e-5,
        rtol=0,
    )


def test_random_perturbation_stays_in_ball(lbc):
    obs = torch.zeros(1000, 4)
    noisy = lbc.random_perturb(obs, 0.05, torch.Generator().manual_seed(0))
    assert noisy.abs().max() <= 0.05 and noisy.abs().max() > 0.04


def test_certified_states_survive_the_attack(lbc):
    model, eps = _tiny_model(3), 0.05
    x = torch.randn(512, 4, generator=torch.Generator().manual_seed(4))
    bound = float(model_lipschitz_bound(model))
    with torch.no_grad():
        logits = model(x)["out"]
    action = logits.argmax(-1)
    cert = lbc.action_margin(logits, action) > 2 * math.sqrt(2) * bound * eps
    assert math.isclose(
        lbc.certified_fraction(model, x.numpy(), bound, eps), float(cert.double().mean())
    )
    adv = lbc.fgsm_perturb(model, x, eps, steps=5)
    with torch.no_grad():
        flipped = model(adv)["out"].argmax(-1) != action
    assert not torch.any(flipped & cert)


def test_demonstrations_are_deterministic_per_seed(lbc):
    expert = lbc.LinearExpert()
    a = lbc.record_demos(expert, episodes=2, seed=5, horizon=40)
    b = lbc.record_demos(expert, episodes=2, seed=5, horizon=40)
    c = lbc.record_demos(expert, episodes=2, seed=6, horizon=40)
    for key in ("x", "y", "returns"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x"], c["x"])
    assert a["x"].shape == (80, 4) and a["x"].dtype == np.float32 and a["y"].dtype == np.int64
    with torch.no_grad():
        relabel = expert(torch.as_tensor(a["x"]))["out"].argmax(-1).numpy()
    np.testing.assert_array_equal(relabel, a["y"])
    np.testing.assert_array_equal(a["returns"], [40.0, 40.0])


def test_closed_loop_is_deterministic_and_linear_expert_balances(lbc):
    expert = lbc.LinearExpert()
    clean = lbc.closed_loop_returns(expert, 3, seed=100, horizon=200)
    np.testing.assert_array_equal(clean, [200.0] * 3)
    r1 = lbc.closed_loop_returns(expert, 3, 100, eps=0.2, kind="random", horizon=200)
    r2 = lbc.closed_loop_returns(expert, 3, 100, eps=0.2, kind="random", horizon=200)
    np.testing.assert_array_equal(r1, r2)
    attacked = lbc.closed_loop_returns(expert, 3, 100, eps=0.2, kind="fgsm", horizon=200)
    assert attacked.mean() < 100  # a large attack makes the expert drop the pole


def test_quick_run_end_to_end(lbc, tmp_path):
    out = tmp_path / "report.md"
    assert (
        lbc.main(
            [
                "--quick",
                "--expert",
                "linear",
                "--work-dir",
                str(tmp_path / "work"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text()
    assert "| plain BC | ∞ |" in text and "| α = 10 | 10 |" in text and "FGSM ε=0.02" in text
    assert "--quick --expert linear" in text
    assert out.with_suffix(".png").stat().st_size > 1000
    runs = list((tmp_path / "work" / "runs" / "lipschitz_bc").iterdir())
    assert len(runs) == 3  # plain BC and two alphas, one seed each
